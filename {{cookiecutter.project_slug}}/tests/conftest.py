"""Shared fixtures: import the mechanism modules and run the real snakemake CLI."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "vendor"))


def snakemake_cmd():
    """The snakemake next to this Python (the venv), else the one on PATH."""
    here = Path(sys.executable).with_name("snakemake")
    return str(here) if here.exists() else (shutil.which("snakemake") or "snakemake")


def copy_workflow(parent, built=None):
    """A fresh copy of this repository's workflow, config and profiles under `parent`; given `built` (a
    repository from built_in()), a copy of that build instead, its results and Snakemake's records
    included. The folders beside the checkout are linked beside the copy, so inputs outside it (a shared
    reference at ../refs/) resolve the same."""
    dest = parent / "workspace" / "repo"
    dest.parent.mkdir(parents=True)
    for sibling in REPO.parent.iterdir():
        if sibling.name != dest.name and sibling != REPO:
            (dest.parent / sibling.name).symlink_to(sibling)
    ignore = shutil.ignore_patterns(".snakemake", "results", "publish", "logs", "work", ".venv", ".git", "__pycache__")
    shutil.copytree(built or REPO, dest, ignore=None if built else ignore, symlinks=True)
    return dest


def snakemake(repo, *args, cache, timeout=300, check=True):
    """The real snakemake CLI in a subprocess, with a timeout and a private cache folder."""
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    proc = subprocess.run([snakemake_cmd(), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture
def workflow_copy(tmp_path):
    """A fresh copy of the workflow for a test that runs, changes or publishes something."""
    return copy_workflow(tmp_path)


@pytest.fixture
def run_snakemake(tmp_path):
    """run_snakemake(repo, *args, timeout=300, check=True): the snakemake CLI, with this test's cache."""

    def run(repo, *args, timeout=300, check=True):
        return snakemake(repo, *args, cache=tmp_path / "xdg-cache", timeout=timeout, check=check)

    return run


@pytest.fixture(scope="session")
def built_in(tmp_path_factory):
    """built_in(context): a copy of the workflow built with profiles/<context>, once per test session and
    shared by the tests that only read it (so each build is paid once). Take a workflow_copy to change
    files or to publish."""
    built = {}

    def build(context):
        if context not in built:
            parent = tmp_path_factory.mktemp(f"built-{context}")
            repo = copy_workflow(parent)
            snakemake(repo, "--profile", f"profiles/{context}", cache=parent / "xdg-cache", timeout=600)
            built[context] = repo
        return built[context]

    return build
