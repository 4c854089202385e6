"""The READMEs' commands are the real ones: parsed out of the files and executed."""

import json
import re
import shutil
import sys
from pathlib import Path

from conftest import DEFAULT_SLUG, TEMPLATE, isolated_env, quick_start_commands, run_command


def test_template_quick_start_is_exactly_make_demo_and_make_test():
    assert quick_start_commands(TEMPLATE / "README.md") == ["make demo", "make test"]
    ci = (TEMPLATE / ".ci/run").read_text()
    assert re.search(r"^make test$", ci, re.M), ".ci/run must run the README's test command"


def test_template_readme_options_table_matches_cookiecutter_json():
    questions = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    keys = [k for k in questions if not k.startswith("_")]
    text = (TEMPLATE / "README.md").read_text().split("## Options", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| (.*?) \| (.*?) \|$", text, re.M)
    assert [name for name, _, _ in rows] == keys, "README options table is out of order or incomplete"
    for name, default, what in rows:
        value = questions[name]
        if isinstance(value, list):  # a menu: the first entry is the default, and the table names every entry
            assert all(f"`{choice}`" in what for choice in value), f"{name}: README lacks a choice of {value}"
            value = value[0]
        elif isinstance(value, bool):  # a yes/no question
            value = "yes" if value else "no"
        if name == "project_slug":
            assert "derived" in default
        elif value == "":
            assert "empty" in default, name
        else:
            assert default == f"`{value}`", f"{name}: README says {default}, cookiecutter.json says {value}"
    for name in keys:
        assert name in questions["__prompts__"], f"{name} has no plain-language prompt"


def test_make_demo_renders_runs_and_publishes(tmp_path):
    work = tmp_path / "template"
    shutil.copytree(TEMPLATE, work, ignore=shutil.ignore_patterns(".venv", "build", ".git", "__pycache__"))
    venv = Path(sys.executable).parent.parent
    (work / ".venv").symlink_to(venv)
    (work / ".venv" / ".installed").touch(exist_ok=True)
    run = run_command(["make", "demo"], cwd=work, env=isolated_env(tmp_path), timeout=900)
    assert run.returncode == 0, repr(run)
    repo = work / "build/demo" / DEFAULT_SLUG
    assert "Published release:" in run.stdout and "publish/current -> releases/" in run.stdout
    assert (repo / "publish/current/MANIFEST.json").is_file()
    assert "OK: publish/current" in run.stdout


def test_generated_readme_quick_start_is_exactly_make_setup_and_make_run(render):
    # tests/test_ecosystem.py runs them, as the unprivileged user, in a fresh checkout before the CI commands
    assert quick_start_commands(render() / "README.md") == ["make setup", "make run"]
