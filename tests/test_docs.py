"""The docs' facts, checked: every relative link and doc pointer resolves (files and #anchors), docs/options.md
(one level-2 heading `name` per option) and the README's table document exactly the cookiecutter options, and
no doc states a value a profile decides unless generated from it (generated docs) or said to be a default."""

import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml
from conftest import TEMPLATE, isolated_env, load_json, run_command, workflow_user
from slurm_cluster import configure_site

# Folders of the template repository that hold no docs of the template itself.
SKIP_DIRS = {".git", ".venv", "build", "node_modules", ".pytest_cache", ".ruff_cache", "__pycache__"}
SKIP_DIRS.add("{{cookiecutter.project_slug}}")
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
# A doc path named in any generated file (a comment, a message): docs/x.md, config/x.md, ../docs/x.md
DOC_POINTER = re.compile(r"(?<![\w/.-])((?:\.\./)*(?:docs|config)/[\w.-]+\.md)\b")
# Profile settings whose values docs tend to restate, and the words that show a statement is about one.
PROFILE_NUMBERS = {"latency-wait": r"latency", "slurm-init-seconds-before-status-checks": r"status.check"}
LATENCY = PROFILE_NUMBERS["latency-wait"]
# How a template doc says that a value is the template's and may differ in a user's repository.
AS_DEFAULT = re.compile(r"default|as generated", re.I)
QUESTIONS = load_json(TEMPLATE / "cookiecutter.json")
OPTIONS = [k for k in QUESTIONS if not k.startswith("_")]


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
    run = [sys.executable, "workflow/vendor/render_docs.py", *args]
    return run_command(run, cwd=repo, env=isolated_env(tmp_path), timeout=300, user=workflow_user())


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
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    """Every anchor a link may name in a Markdown file, duplicates numbered as GitHub does."""
    text = path.read_text(encoding="utf-8")
    seen, found = {}, set()
    for _, heading in headings(text):
        slug = github_slug(heading)
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return found | set(HTML_ANCHOR.findall(text))


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
    examples = {
        "Operating contexts (generated)": "operating-contexts-generated",
        "1. The scratch root is resolved inside the job": "1-the-scratch-root-is-resolved-inside-the-job",
        "`project_name`": "project_name",
        "nf-core / Nextflow `publishDir` and `scratch`": "nf-core--nextflow-publishdir-and-scratch",
        "Job output: `slurm-logdir`": "job-output-slurm-logdir",
    }
    assert {heading: github_slug(heading) for heading in examples} == examples


def test_the_template_readme_links_the_docs_it_promises():
    # that each link resolves: test_template_markdown_relative_links_resolve[README.md]
    linked = {target.partition("#")[0] for _, target in relative_links(TEMPLATE / "README.md")}
    assert {f"docs/{page}.md" for page in ("design", "options", "customising", "testing", "slurm")} <= linked


@pytest.mark.parametrize("md", TEMPLATE_DOCS, ids=lambda p: p.relative_to(TEMPLATE).as_posix())
def test_template_markdown_relative_links_resolve(md):
    assert broken_links([md], TEMPLATE) == []


def test_every_link_and_doc_pointer_in_the_generated_repo_resolves_and_none_names_the_templates_docs(render):
    repo = render()
    files = markdown_files(repo, {".git"})
    assert {"README.md", "docs/operations.md", "config/README.md"} <= {p.relative_to(repo).as_posix() for p in files}
    assert broken_links(files, repo) == []
    missing = []
    for path in sorted(p for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(repo)}:{lineno}"
            if re.search(r"template's (?:docs|documentation)", line):
                missing.append(f"{where}: points at the template's docs: {line.strip()}")
            for target in DOC_POINTER.findall(line):
                if not ((path.parent / target).exists() or (repo / target.lstrip("./")).exists()):
                    missing.append(f"{where}: {target} does not exist in the generated repository")
    assert missing == []


def test_options_page_documents_exactly_the_cookiecutter_options():
    documented, misplaced = [], []
    for level, text in headings((TEMPLATE / "docs/options.md").read_text(encoding="utf-8")):
        match = OPTION_HEADING.match(text)
        if match:
            (documented if level == 2 else misplaced).append(match.group(1))
    assert misplaced == [], "option headings must be level 2 (## `name`)"
    assert sorted(set(OPTIONS) - set(documented)) == [], "options missing from docs/options.md"
    assert sorted(set(documented) - set(OPTIONS)) == [], "docs/options.md documents options cookiecutter.json lacks"
    assert documented == OPTIONS, "docs/options.md lists the options in a different order than cookiecutter.json"


def test_template_readme_options_table_matches_cookiecutter_json():
    text = (TEMPLATE / "README.md").read_text().split("## Options", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| (.*?) \| (.*?) \|$", text, re.M)
    assert [name for name, _, _ in rows] == OPTIONS, "README options table is out of order or incomplete"
    for name, default, what in rows:
        value = QUESTIONS[name]
        if isinstance(value, list):  # a menu: the first entry is the default, and the table names every entry
            assert all(f"`{choice}`" in what for choice in value), f"{name}: README lacks a choice of {value}"
            value = value[0]
        elif isinstance(value, bool):  # a yes/no question
            value = "yes" if value else "no"
        if name == "project_slug" or value == "":  # derived from project_name; an empty default
            assert ("derived" if value else "empty") in default, name
        else:
            assert default == f"`{value}`", f"{name}: README says {default}, cookiecutter.json says {value}"
    assert set(OPTIONS) <= set(QUESTIONS["__prompts__"]), "every question has a plain-language prompt"


def test_statements_split_paragraphs_and_table_rows():
    text = "a\nb\n\n| h | v |\n| --- | --- |\n| x | 1 |\n\n```\ncode 1\n```\nc\n- d\n  e\n1. f\n"
    assert list(statements(text)) == [(1, "a b"), (6, "| h | v | | x | 1 |"), (11, "c"), (12, "- d e"), (14, "1. f")]


def test_generated_docs_show_the_site_settings_and_profile_numbers_as_edited_and_no_old_value(render, tmp_path):
    """Fill in the Slurm site settings as its admin would, then edit every profile's numbers as an operator
    would, regenerating the docs after each: the docs show the new values, none still states an old one, and
    --check tells stale from fresh."""
    repo = render()
    docs = markdown_files(repo, {".git"})
    ops = (repo / "docs/operations.md").read_text()
    for key in ("account", "partition"):
        assert f"| {key} (`slurm_{key}`) | *not set* (the site's default) |" in ops, key
    shipped = yaml.safe_load((repo / "profiles/slurm/config.yaml").read_text())["latency-wait"]
    configure_site(repo, account="proj42", partition="gpu", scratch_env="LOCAL_SCRATCH")
    set_profile_value(repo, "slurm", "latency-wait", 73)
    assert render_docs(repo, tmp_path).returncode == 0
    ops = (repo / "docs/operations.md").read_text()
    assert "| account (`slurm_account`) | proj42 |" in ops and "| partition (`slurm_partition`) | gpu |" in ops
    assert re.search(r"\| scratch root \(`tmpdir`\) \| `\(__import__\('os'\)\.environ\.get\('LOCAL_SCRATCH'\)", ops)
    rendered = profile_numbers(repo)
    assert 73 in rendered[LATENCY] and shipped not in rendered[LATENCY], "no other profile shares the shipped value"
    assert statements_with_numbers(docs, repo, {LATENCY: {shipped}}) == []

    new = iter(range(17, 100))
    for config in sorted((repo / "profiles").glob("*/config.yaml")):
        for key in PROFILE_NUMBERS.keys() & yaml.safe_load(config.read_text()).keys():
            set_profile_value(repo, config.parent.name, key, next(new))
    stale = render_docs(repo, tmp_path, "--check")
    assert stale.returncode == 1 and "docs/operations.md is out of date" in stale.stderr, repr(stale)
    assert render_docs(repo, tmp_path).returncode == 0
    assert render_docs(repo, tmp_path, "--check").returncode == 0
    old = {words: values - profile_numbers(repo)[words] for words, values in rendered.items()}
    old[LATENCY].add(shipped)
    assert statements_with_numbers(docs, repo, old) == []
    stated = list(statements((repo / "docs/operations.md").read_text()))
    for words, values in profile_numbers(repo).items():
        for value in values:
            assert any(re.search(words, t, re.I) and str(value) in NUMBER.findall(t) for _, t in stated), (
                f"docs/operations.md does not state the {words} value {value} now in a profile"
            )


@pytest.mark.parametrize("md", TEMPLATE_DOCS, ids=lambda p: p.relative_to(TEMPLATE).as_posix())
def test_template_docs_state_profile_numbers_only_as_defaults(md, local_reference):
    """The template's docs may quote what the shipped profiles say, but only as a default: a user's repository
    may say otherwise."""
    assert statements_with_numbers([md], TEMPLATE, profile_numbers(local_reference), unless=AS_DEFAULT) == []


def test_render_docs_check_says_in_one_line_without_a_traceback_that_the_job_graph_cannot_be_built(render, tmp_path):
    """A sample file the sheet names is gone: --check fails, naming the file and what to do, not with a traceback."""
    repo = render()
    (repo / "data/inputs/alpha.txt").unlink()
    run = render_docs(repo, tmp_path, "--check")
    assert run.returncode != 0 and "Traceback" not in run.output and 'File "' not in run.output, repr(run)
    (line,) = run.output.strip().splitlines()
    assert all(fact in line for fact in ("job graph cannot be built", "data/inputs/alpha.txt", "make docs")), line


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
    verify = [sys.executable, "workflow/vendor/publish.py", "verify"]
    verify = run_command(verify, cwd=repo, env=isolated_env(tmp_path), user=workflow_user())
    assert verify.returncode == 0, repr(verify)
