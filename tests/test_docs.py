"""The docs are right where a machine can check them: every relative link resolves (files and #anchors),
docs/options.md documents exactly the cookiecutter options, docs/design.md compares with the alternatives,
and no doc states a value that a profile or an answer decides unless it is generated from it (the generated
repository) or says it is a default (the template's docs).

Convention for docs/options.md: each option has a level-2 heading that is exactly its name in backticks
(## `license`); no other heading consists of a backticked name alone.
"""

import json
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml
from conftest import TEMPLATE, isolated_env, render_template, run_command, workflow_user

# Folders of the template repository that hold no docs of the template itself.
SKIP_DIRS = {
    ".git",
    ".venv",
    "build",
    "node_modules",
    ".pytest_cache",
    ".ruff_cache",
    "__pycache__",
    "{{cookiecutter.project_slug}}",
}
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+).+?\1")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.I)
SCHEME = re.compile(r"^(?:https?|mailto):", re.I)
OPTION_HEADING = re.compile(r"^`([A-Za-z_][A-Za-z0-9_]*)`$")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s")
TABLE_RULE = re.compile(r"^\s*\|[\s:|-]+\|\s*$")
NUMBER = re.compile(r"(?<![\w.$/-])(\d+)(?![\w])")
# Profile settings whose values docs tend to restate, and the words that show a statement is about one.
PROFILE_NUMBERS = {"latency-wait": r"latency", "slurm-init-seconds-before-status-checks": r"status.check"}
# How a template doc says that a value is the template's and may differ in a user's repository.
AS_DEFAULT = re.compile(r"default|as generated", re.I)


def markdown_files(root, skip=()):
    return sorted(p for p in Path(root).rglob("*.md") if not set(p.relative_to(root).parts[:-1]) & set(skip))


def prose_lines(text):
    """(line number, line) of a Markdown text outside fenced code blocks, HTML comments blanked."""
    text = HTML_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    fence = None
    for lineno, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
        else:
            yield lineno, line


def statements(text):
    """(line number, text) of each paragraph, list item and table row (with its table's header row), outside
    code."""
    para, start, header = [], 0, None
    for lineno, line in [*prose_lines(text), (None, "")]:
        if line.lstrip().startswith("|"):
            if para:
                yield start, " ".join(para)
                para = []
            if header is None:
                header = line
            elif not TABLE_RULE.match(line):
                yield lineno, f"{header} {line}"
            continue
        header = None
        if para and LIST_ITEM.match(line):
            yield start, " ".join(para)
            para = []
        if line.strip():
            start = start if para else lineno
            para.append(line.strip())
        elif para:
            yield start, " ".join(para)
            para = []


def statements_with_numbers(files, root, numbers, unless=None):
    """Statements about a profile setting (by its words) that contain one of `numbers[words]` (and do not
    match `unless`)."""
    found = []
    for md in files:
        for lineno, text in statements(md.read_text(encoding="utf-8")):
            if unless is not None and unless.search(text):
                continue
            for words, values in numbers.items():
                hits = set(NUMBER.findall(text)) & {str(v) for v in values}
                if re.search(words, text, re.I) and hits:
                    found.append(f"{md.relative_to(root)}:{lineno}: {sorted(hits)} in: {text[:300]}")
    return found


def profile_numbers(repo):
    """{words: values} of the PROFILE_NUMBERS settings in every profile of a generated repository."""
    numbers = {words: set() for words in PROFILE_NUMBERS.values()}
    for config in (repo / "profiles").glob("*/config.yaml"):
        profile = yaml.safe_load(config.read_text()) or {}
        for key, words in PROFILE_NUMBERS.items():
            if key in profile:
                numbers[words].add(profile[key])
    return numbers


def render_docs(repo, tmp_path, *args):
    """Run the generated repository's render_docs.py as its owner."""
    return run_command(
        [sys.executable, "workflow/vendor/render_docs.py", *args],
        cwd=repo,
        env=isolated_env(tmp_path),
        timeout=300,
        user=workflow_user(),
    )


def set_profile_value(repo, context, key, value):
    config = repo / "profiles" / context / "config.yaml"
    text, count = re.subn(rf"^{re.escape(key)}: *\S+", f"{key}: {value}", config.read_text(), flags=re.M)
    assert count == 1, f"{config} has no single {key} line"
    config.write_text(text)


def headings(text):
    """(level, text) of every ATX heading outside code blocks."""
    for _, line in prose_lines(text):
        match = HEADING.match(line)
        if match:
            yield len(match.group(1)), match.group(2)


def github_slug(heading):
    """The anchor GitHub gives a heading: link text kept, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    """Every anchor a link may name in a Markdown file, duplicates numbered as GitHub does."""
    text = path.read_text(encoding="utf-8")
    seen, found = {}, set()
    for _, heading in headings(text):
        slug = github_slug(heading)
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    found.update(HTML_ANCHOR.findall(text))
    return found


def relative_links(path):
    """(line number, target) of every link that is not http(s) or mailto, outside code."""
    for lineno, line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if not SCHEME.match(target):
                yield lineno, target


def broken_links(files, root):
    problems = []
    for md in files:
        for lineno, target in relative_links(md):
            where = f"{md.relative_to(root)}:{lineno}: ({target})"
            file_part, _, anchor = target.partition("#")
            dest = (md.parent / unquote(file_part)).resolve() if file_part else md
            if not dest.exists():
                problems.append(f"{where}: {dest} does not exist")
            elif anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest):
                problems.append(f"{where}: no heading with anchor #{anchor} in {dest.name}")
    return problems


TEMPLATE_DOCS = markdown_files(TEMPLATE, SKIP_DIRS)


def test_github_slugs_match_known_examples():
    assert github_slug("Operating contexts (generated)") == "operating-contexts-generated"
    assert (
        github_slug("1. The scratch root is resolved inside the job") == "1-the-scratch-root-is-resolved-inside-the-job"
    )
    assert github_slug("`project_name`") == "project_name"
    assert github_slug("nf-core / Nextflow `publishDir` and `scratch`") == "nf-core--nextflow-publishdir-and-scratch"
    assert github_slug("Job output: `slurm-logdir`") == "job-output-slurm-logdir"


def test_the_template_has_the_docs_its_readme_promises():
    names = {p.relative_to(TEMPLATE).as_posix() for p in TEMPLATE_DOCS}
    for page in (
        "README.md",
        "docs/design.md",
        "docs/options.md",
        "docs/customising.md",
        "docs/testing.md",
        "docs/slurm.md",
    ):
        assert page in names


@pytest.mark.parametrize("md", TEMPLATE_DOCS, ids=lambda p: p.relative_to(TEMPLATE).as_posix())
def test_template_markdown_relative_links_resolve(md):
    assert broken_links([md], TEMPLATE) == []


def test_generated_repo_markdown_relative_links_resolve(render):
    repo = render()
    files = markdown_files(repo, {".git"})
    names = {p.relative_to(repo).as_posix() for p in files}
    assert {"README.md", "docs/operations.md", "config/README.md"} <= names
    assert broken_links(files, repo) == []


def test_options_page_documents_exactly_the_cookiecutter_options():
    questions = json.loads((TEMPLATE / "cookiecutter.json").read_text(encoding="utf-8"))
    keys = [k for k in questions if not k.startswith("_")]
    documented, misplaced = [], []
    for level, text in headings((TEMPLATE / "docs/options.md").read_text(encoding="utf-8")):
        match = OPTION_HEADING.match(text)
        if match:
            (documented if level == 2 else misplaced).append(match.group(1))
    assert misplaced == [], "option headings must be level 2 (## `name`)"
    assert sorted(set(keys) - set(documented)) == [], "options missing from docs/options.md"
    assert sorted(set(documented) - set(keys)) == [], "docs/options.md documents options cookiecutter.json lacks"
    assert documented == keys, "docs/options.md lists the options in a different order than cookiecutter.json"


def test_statements_split_paragraphs_and_table_rows():
    text = "a\nb\n\n| h | v |\n| --- | --- |\n| x | 1 |\n\n```\ncode 1\n```\nc\n- d\n  e\n1. f\n"
    assert list(statements(text)) == [(1, "a b"), (6, "| h | v | | x | 1 |"), (11, "c"), (12, "- d e"), (14, "1. f")]


def test_generated_docs_state_no_number_a_profile_has_changed(render, tmp_path):
    """Set the Slurm site's latency-wait as its admin would, then edit every profile's numbers as an operator
    would, regenerating the docs after each: no doc of the generated repository may still state an old value,
    and --check tells stale from fresh."""
    repo = render()
    docs = markdown_files(repo, {".git"})
    shipped = yaml.safe_load((repo / "profiles/slurm/config.yaml").read_text())["latency-wait"]
    set_profile_value(repo, "slurm", "latency-wait", 73)
    assert render_docs(repo, tmp_path).returncode == 0
    rendered = profile_numbers(repo)
    assert 73 in rendered[PROFILE_NUMBERS["latency-wait"]]
    assert shipped not in rendered[PROFILE_NUMBERS["latency-wait"]], "no other profile shares the shipped value"
    assert statements_with_numbers(docs, repo, {PROFILE_NUMBERS["latency-wait"]: {shipped}}) == []

    new = iter(range(17, 100))
    for config in sorted((repo / "profiles").glob("*/config.yaml")):
        profile = yaml.safe_load(config.read_text())
        for key in PROFILE_NUMBERS:
            if key in profile:
                set_profile_value(repo, config.parent.name, key, next(new))
    stale = render_docs(repo, tmp_path, "--check")
    assert stale.returncode == 1 and "docs/operations.md is out of date" in stale.stderr, repr(stale)

    assert render_docs(repo, tmp_path).returncode == 0
    fresh = render_docs(repo, tmp_path, "--check")
    assert fresh.returncode == 0, repr(fresh)
    old = {words: values - profile_numbers(repo)[words] for words, values in rendered.items()}
    old[PROFILE_NUMBERS["latency-wait"]].add(shipped)
    assert statements_with_numbers(docs, repo, old) == []
    text = (repo / "docs/operations.md").read_text()
    for words, values in profile_numbers(repo).items():
        for value in values:
            assert any(re.search(words, t, re.I) and str(value) in NUMBER.findall(t) for _, t in statements(text)), (
                f"docs/operations.md does not state the {words} value {value} now in a profile"
            )


@pytest.fixture(scope="module")
def shipped_profile_numbers(tmp_path_factory):
    """What the profiles of a repository rendered with the default answers say."""
    tmp_path = tmp_path_factory.mktemp("shipped")
    proc, out = render_template(tmp_path, init_git="no")
    assert proc.returncode == 0, proc.stderr
    (repo,) = [p for p in out.iterdir() if p.is_dir()]
    return profile_numbers(repo)


@pytest.mark.parametrize("md", TEMPLATE_DOCS, ids=lambda p: p.relative_to(TEMPLATE).as_posix())
def test_template_docs_state_profile_numbers_only_as_defaults(md, shipped_profile_numbers):
    """The template's docs may quote what the shipped profiles say, but only as a default: a user's repository
    may say otherwise."""
    assert statements_with_numbers([md], TEMPLATE, shipped_profile_numbers, unless=AS_DEFAULT) == []


def test_a_copied_profile_appears_in_the_regenerated_contexts_table(render, tmp_path):
    repo = render()
    for name in ("gpu-box", "aa-site"):
        shutil.copytree(repo / "profiles/local", repo / "profiles" / name)
    set_profile_value(repo, "gpu-box", "latency-wait", 41)
    assert render_docs(repo, tmp_path, "--check", "--sections", "contexts").returncode == 1

    assert render_docs(repo, tmp_path, "--sections", "contexts").returncode == 0
    table = (repo / "docs/operations.md").read_text().split("<!-- BEGIN GENERATED: contexts", 1)[1]
    table = table.split("<!-- END GENERATED: contexts -->", 1)[0]
    rows = re.findall(r"^\| `([\w-]+)` \|", table, re.M)
    assert rows == ["local", "ci", "slurm", "cluster-sim", "aa-site", "gpu-box"]
    assert re.search(r"^\| `gpu-box` \|(?:[^|]*\|){5} 41 \|", table, re.M), table
    assert render_docs(repo, tmp_path, "--check").returncode == 0


def test_render_docs_check_says_in_one_line_without_a_traceback_that_the_job_graph_cannot_be_built(render, tmp_path):
    """A sample file the sheet names is gone: --check fails, naming the file and what to do, not with a traceback."""
    repo = render()
    (repo / "data/inputs/alpha.txt").unlink()
    run = render_docs(repo, tmp_path, "--check")
    assert run.returncode != 0, repr(run)
    assert "Traceback" not in run.output and 'File "' not in run.output, repr(run)
    assert len(run.output.strip().splitlines()) == 1, repr(run)
    assert "job graph cannot be built" in run.output, repr(run)
    assert "data/inputs/alpha.txt" in run.output, repr(run)
    assert "make docs" in run.output, repr(run)


# Ways of saying that a reader of results/ keeps seeing the old file while a rerun replaces it.
def test_a_failed_rerun_leaves_the_result_absent_and_publish_current_whole(published_example, snakemake, tmp_path):
    """What design.md says a reader sees: a failed rerun removes the old result; publish/current stays."""
    repo = published_example
    table = repo / "results/tables/summary.tsv"
    assert table.is_file()
    summary = sorted((repo / "results/samples").glob("*.summary.json"))[0]
    summary.write_text("{ not json")  # newer than the table, and unreadable: the rerun of summary_table fails
    rerun = snakemake(repo, "--profile", "profiles/local", check=False)
    assert rerun.returncode != 0 and "summary_table" in rerun.output, repr(rerun)
    assert not table.exists(), "Snakemake deleted the old table when the job started; the failed job left none"
    assert (repo / "publish/current/summary.tsv").is_file()
    verify = run_command(
        [sys.executable, "workflow/vendor/publish.py", "verify"],
        cwd=repo,
        env=isolated_env(tmp_path),
        user=workflow_user(),
    )
    assert verify.returncode == 0, repr(verify)
