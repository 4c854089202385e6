"""The pre-generation hook rejects bad answers clearly and leaves nothing behind."""

import shutil
from pathlib import Path

import pytest
from conftest import TEMPLATE, render_template


@pytest.mark.parametrize(
    "answers, field, allowed",
    [
        ({"project_slug": "1-starts-with-digit"}, "project_slug", "starting with a letter"),
        ({"project_slug": "Has Spaces"}, "project_slug", "lowercase letters"),
        ({"project_name": "   "}, "project_name", "non-empty name"),
        ({"author_email": "not-an-email"}, "author_email", "name@example.org"),
        ({"author_name": 'Quote "Q"'}, "author_name", "without"),
        ({"version": "v1"}, "version", "X.Y.Z"),
        ({"python_version": "3.9"}, "python_version", "3.11 or a newer"),
        ({"license": "GPL"}, "license", "MIT, BSD-3-Clause, Apache-2.0, none"),
        ({"ci": "jenkins"}, "ci", "github, gitlab, none"),
        ({"init_git": "maybe"}, "init_git", "yes, no"),
        ({"slurm_account": "acct;rm"}, "slurm_account", "empty or letters"),
        ({"slurm_partition": "a b"}, "slurm_partition", "empty or letters"),
        ({"slurm_runtime_minutes": "0"}, "slurm_runtime_minutes", "at least 1"),
        ({"cluster_latency_wait": "-5"}, "cluster_latency_wait", "0 or more"),
        ({"cluster_latency_wait": "soon"}, "cluster_latency_wait", "whole number"),
        ({"cluster_scratch_env": "$SLURM_TMPDIR"}, "cluster_scratch_env", "environment variable name"),
        ({"cluster_scratch_env": "9LIVES"}, "cluster_scratch_env", "not starting with a digit"),
    ],
)
def test_bad_answer_exits_nonzero_names_field_and_leaves_no_directory(tmp_path, answers, field, allowed):
    proc, out = render_template(tmp_path, **{"init_git": "no", **answers})
    assert proc.returncode != 0
    value = list(answers.values())[0]
    line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR: ")), "")
    assert line.startswith(f"ERROR: {field}={value!r}"), proc.stderr
    assert allowed in line
    assert not out.exists() or not any(out.iterdir()), "a failed render must leave no output directory"


def test_every_invalid_answer_is_reported_in_one_run(tmp_path):
    proc, out = render_template(tmp_path, ci="jenkins", version="x", init_git="no")
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR: ")]
    assert [e.split("=")[0] for e in errors] == ["ERROR: version", "ERROR: ci"]
    assert not out.exists() or not any(out.iterdir())


def test_non_ascii_project_name_gives_a_valid_slug(render):
    repo = render(project_name="Métagénomique QC")
    assert repo.name == "metagenomique-qc"


def test_name_starting_with_digit_gets_a_prefixed_slug(render):
    repo = render(project_name="3D Imaging")
    assert repo.name == "wf-3d-imaging"


def test_post_gen_hook_prints_the_next_two_commands(tmp_path):
    proc, _ = render_template(tmp_path, init_git="no")
    assert proc.returncode == 0
    assert "make setup" in proc.stdout and "make run" in proc.stdout


def test_init_git_yes_makes_one_clean_commit(render):
    import subprocess

    repo = render(init_git="yes")
    log = subprocess.run(["git", "log", "--oneline"], cwd=repo, capture_output=True, text=True, check=True)
    assert len(log.stdout.splitlines()) == 1
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    assert status.stdout == "", "everything generated is committed"


def test_tool_caches_in_the_template_checkout_do_not_reach_the_generated_repository(tmp_path):
    template = tmp_path / "template"
    template.mkdir()
    for name in ("cookiecutter.json", "hooks", "{{cookiecutter.project_slug}}"):
        source = Path(TEMPLATE) / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, template / name)
    project = template / "{{cookiecutter.project_slug}}"
    planted = ["workflow/scripts/__pycache__/scratch.cpython-311.pyc", ".pytest_cache/README.md"]
    planted += [".ruff_cache/CACHEDIR.TAG", ".snakemake/log/old.snakemake.log", "tests/stray.pyc"]
    for rel in planted:
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_bytes(b"left by a tool\n")
    proc, out = render_template(tmp_path, template=template, init_git="no")
    assert proc.returncode == 0, proc.stderr
    (repo,) = out.iterdir()
    assert (repo / "workflow/scripts/scratch.py").is_file()
    caches = {"__pycache__", ".pytest_cache", ".ruff_cache", ".snakemake"}
    left = [str(p.relative_to(repo)) for p in repo.rglob("*") if p.name in caches or p.suffix == ".pyc"]
    assert left == [], f"tool caches copied into the new project: {left}"
