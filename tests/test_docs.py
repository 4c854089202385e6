"""The docs are right where a machine can check them: every relative link resolves (files and #anchors),
docs/options.md documents exactly the cookiecutter options, docs/design.md compares with the alternatives.

Convention for docs/options.md: each option has a level-2 heading that is exactly its name in backticks
(## `license`); no other heading consists of a backticked name alone.
"""

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from conftest import TEMPLATE

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


def test_design_page_compares_with_each_alternative():
    text = (TEMPLATE / "docs/design.md").read_text(encoding="utf-8")
    titles = [heading.lower() for _, heading in headings(text)]
    rows = [line.split("|")[1].lower() for _, line in prose_lines(text) if line.startswith("|") and line.count("|") > 2]
    for alternative in ("shadow", "snakemake-storage-plugin-fs", "publishdir"):
        assert any(alternative in t for t in titles), f"docs/design.md has no section on {alternative}"
        assert any(alternative in r for r in rows), f"the comparison table in docs/design.md lacks {alternative}"
    assert any("opinions" in t for t in titles), "docs/design.md states its opinions"
