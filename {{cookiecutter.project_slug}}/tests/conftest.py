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


def place_copy(dest, source=REPO):
    """Copy a checkout (or a build of it, with its results and Snakemake's records) to dest. The folders
    beside this checkout are linked beside the copy, so inputs outside it (a shared reference at ../refs/)
    resolve the same."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for sibling in REPO.parent.iterdir():
        if sibling.name != dest.name and sibling != REPO and not (dest.parent / sibling.name).exists():
            (dest.parent / sibling.name).symlink_to(sibling)
    skip = [".venv", ".git", "__pycache__"]
    if source == REPO:
        skip += [".snakemake", "results", "publish", "logs", "work"]
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*skip), symlinks=True)  # keeps times
    return dest


@pytest.fixture
def workflow_copy(tmp_path):
    """A fresh copy of this repository's workflow, config and profiles, with nothing built."""
    return place_copy(tmp_path / "workspace" / "repo")


def snakemake_runner(cache):
    """Run the real snakemake CLI in a subprocess, with a timeout and a private cache."""
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))

    def run(repo, *args, timeout=300, check=True):
        proc = subprocess.run(
            [snakemake_cmd(), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return proc

    return run


@pytest.fixture
def run_snakemake(tmp_path):
    return snakemake_runner(tmp_path / "xdg-cache")


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    """{context: a copy of this repository with everything built under that context's profile}, each
    made once per test session, when a test first asks for it."""
    made = {}

    def build(context):
        if context not in made:
            where = tmp_path_factory.mktemp(f"build-{context}")
            repo = place_copy(where / "workspace" / "repo")
            snakemake_runner(where / "xdg-cache")(repo, "--profile", f"profiles/{context}", timeout=1800)
            made[context] = repo
        return made[context]

    return build


@pytest.fixture
def built_copy(tmp_path, builds):
    """A fresh copy of this repository as a finished run under a context's profile left it (results, logs
    and Snakemake's records), so tests that start from a finished run share one build."""
    return lambda context="local": place_copy(tmp_path / "workspace" / "repo", source=builds(context))
