"""Shared fixtures: import the mechanism modules and run the real snakemake CLI."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))


def snakemake_cmd():
    """The snakemake next to this Python (the venv), else the one on PATH."""
    here = Path(sys.executable).with_name("snakemake")
    return str(here) if here.exists() else (shutil.which("snakemake") or "snakemake")


@pytest.fixture
def workflow_copy(tmp_path):
    """A fresh copy of this repository's workflow, config and profiles. The folders beside the checkout
    are linked beside the copy, so inputs outside it (a shared reference at ../refs/) resolve the same."""
    dest = tmp_path / "workspace" / "repo"
    dest.parent.mkdir()
    for sibling in REPO.parent.iterdir():
        if sibling.name != dest.name and sibling != REPO:
            (dest.parent / sibling.name).symlink_to(sibling)
    ignore = shutil.ignore_patterns(".snakemake", "results", "publish", "logs", "work", ".venv", ".git", "__pycache__")
    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)
    return dest


@pytest.fixture
def run_snakemake(tmp_path):
    """Run the real snakemake CLI in a subprocess, with a timeout and a private cache."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg-cache"))

    def run(repo, *args, timeout=300, check=True):
        proc = subprocess.run(
            [snakemake_cmd(), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return proc

    return run
