"""Every command in the generated docs/operations.md runbook runs, in order, in a fresh repository."""

import re

from conftest import isolated_env, run_command, workflow_user


def runbook_commands(operations_md: str) -> list[str]:
    section = operations_md.split("\n## Runbook\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_every_runbook_command_runs_in_order_in_a_fresh_repository_as_its_user(render, tmp_path):
    repo = render()
    commands = runbook_commands((repo / "docs/operations.md").read_text())
    assert len(commands) >= 12
    assert any("--unlock" in c for c in commands) and any("--rerun-incomplete" in c for c in commands)
    assert any("scratch.py kept" in c for c in commands) and any("--latency-wait" in c for c in commands)
    env = isolated_env(tmp_path)
    for command in commands:
        run = run_command(
            ["bash", "-euo", "pipefail", "-c", command], cwd=repo, env=env, timeout=300, user=workflow_user()
        )
        assert run.returncode == 0, f"runbook command failed: {command}\n{run.output[-2000:]}"
    assert (repo / "publish/current/MANIFEST.json").is_file() and (repo / "report.zip").is_file()
