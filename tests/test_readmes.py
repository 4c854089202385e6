"""The commands the docs give are the real ones: parsed out of the files and executed. (The generated README's
quick start runs in tests/test_ecosystem.py, in a fresh checkout before the CI commands.)"""

import re
import shutil
import sys
from pathlib import Path

from conftest import DEFAULT_SLUG, TEMPLATE, isolated_env, quick_start_commands, run_command, workflow_user


def test_template_quick_start_is_exactly_make_demo_and_make_test_and_make_demo_renders_runs_and_publishes(tmp_path):
    assert quick_start_commands(TEMPLATE / "README.md") == ["make demo", "make test"]
    assert re.search(r"^make test$", (TEMPLATE / ".ci/run").read_text(), re.M), ".ci/run runs the README's tests"
    work = tmp_path / "template"
    shutil.copytree(TEMPLATE, work, ignore=shutil.ignore_patterns(".venv", "build", ".git", "__pycache__"))
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (work / ".venv" / ".installed").touch(exist_ok=True)
    run = run_command(["make", "demo"], cwd=work, env=isolated_env(tmp_path), timeout=900)
    assert run.returncode == 0, repr(run)
    assert "Published release:" in run.stdout and "publish/current -> releases/" in run.stdout
    assert "OK: publish/current" in run.stdout
    assert (work / "build/demo" / DEFAULT_SLUG / "publish/current/MANIFEST.json").is_file()


def test_every_runbook_command_runs_in_order_in_a_fresh_repository_as_its_user(render, tmp_path):
    repo = render()
    section = (repo / "docs/operations.md").read_text().split("\n## Runbook\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    commands = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    assert len(commands) >= 12
    for needed in ("--unlock", "--rerun-incomplete", "scratch.py kept", "--latency-wait"):
        assert any(needed in c for c in commands), needed
    env = isolated_env(tmp_path)
    for command in commands:
        args = ["bash", "-euo", "pipefail", "-c", command]
        run = run_command(args, cwd=repo, env=env, timeout=300, user=workflow_user())
        assert run.returncode == 0, f"runbook command failed: {command}\n{run.output[-2000:]}"
    assert (repo / "publish/current/MANIFEST.json").is_file() and (repo / "report.zip").is_file()
