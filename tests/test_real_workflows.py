"""The acceptance test of this template: real public workflows, ported into a generated repository by
following only its docs, run with real tools on small data made at test time, as the unprivileged user,
under every operating context.

Each port is a directory `tests/real_workflows/<name>/` with a `port.py` (found here without registration):
  TOOLS            executables it needs on PATH (missing: skipped locally, a failure under REQUIRE_SLURM=1)
  SYSTEM_PACKAGES  the Debian packages a user puts in the generated CI files' SYSTEM_PACKAGES line
  apply(repo, site)  turns a freshly rendered repository (default answers) into the port, as a user
                   following docs/customising.md would; `site` is a directory outside the checkout for what
                   a site shares (a reference genome, a wrapper mirror), which the repository names by a
                   path relative to itself (`../site/...`)
  PUBLISHED        the names a release of it holds
The site is handed to the workflow user read-only (root keeps it, as a shared reference would be kept);
the checkout becomes the user's own.

Every context, each proven once:
- local, ci and cluster-sim: the port's own generated `make test` passes. It builds exactly the final
  outputs in each local context, the simulated cluster's results equal the local ones and it publishes a
  verified release, a local publish makes a release that `publish.py verify` and `sha256sum -c` accept,
  and a forced rerun publishes no new release.
- a real Slurm, as tests/test_slurm.py uses it: the run builds exactly the final outputs Snakemake plans
  under results/, and a publish makes a release that `verify` and `sha256sum -c` accept and that holds
  PUBLISHED. That a cluster makes the very bytes the laptop makes is the port's own `make test`: its
  simulated cluster works in other node-local directories than the local run (so a tool that writes its
  paths or the date into an output is caught there), and the example's Slurm test compares Slurm with local.
Run times per port and step are printed (pytest -s shows them).
"""

import csv
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    BIN,
    hand_over,
    isolated_env,
    missing_in_ci_fails,
    node_tmp,
    require_slurm,
    run_command,
    tool,
    workflow_user,
)
from slurm_cluster import OVERRIDES, SITE, configure_site, jobs_in

PORTS_DIR = Path(__file__).parent / "real_workflows"
PORTS = sorted(p.parent.name for p in PORTS_DIR.glob("*/port.py"))
_loaded = {}


def load_port(name):
    """The port module of tests/real_workflows/<name>/port.py (loaded once)."""
    if name not in _loaded:
        spec = importlib.util.spec_from_file_location(f"real_workflow_{name}", PORTS_DIR / name / "port.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[name] = module
    return _loaded[name]


def need_tools(name, port):
    """Skip (fail in CI) when a tool of the port is not on the PATH its runs get: the venv's bin first."""
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    missing = [t for t in port.TOOLS if not shutil.which(t, path=path)]
    if missing:
        missing_in_ci_fails(
            f"port {name} needs {', '.join(missing)} on PATH (Debian packages: apt-get install "
            f"{port.SYSTEM_PACKAGES}; Python packages: the template's requirements.txt)"
        )


def share_read_only(site):
    """The site's shared files: readable and traversable by every user, writable by none but root."""
    for dirpath, _dirs, files in os.walk(site):
        os.chmod(dirpath, 0o755)
        for f in files:
            path = os.path.join(dirpath, f)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode & 0o555 | 0o444)
    os.chmod(site, 0o755)


def ported(render, name, slurm=False):
    """A repository rendered with the default answers and turned into port `name`; the site beside it."""
    port = load_port(name)
    need_tools(name, port)
    repo = render()
    site = repo.parent / "site"
    port.apply(repo, site)
    if slurm:
        configure_site(repo, **SITE)
    hand_over(repo, workflow_user())
    if site.exists():
        share_read_only(site)
    return port, repo


def results_files(repo):
    return sorted(str(p.relative_to(repo)) for p in (repo / "results").rglob("*") if p.is_file() or p.is_symlink())


def planned_final_outputs(summary):
    """The output_file rows under results/ of `snakemake --summary` (a directory() output is one row)."""
    rows = csv.DictReader(io.StringIO(summary[summary.index("output_file") :]), delimiter="\t")
    return sorted(r["output_file"] for r in rows if r["output_file"].startswith("results/"))


def assert_results_are_exactly(repo, planned):
    """Every planned output is there, and nothing else is: each file under results/ is a planned file or
    lies inside a planned directory."""
    assert planned, "Snakemake plans no final output under results/"
    missing = [p for p in planned if not (repo / p).exists()]
    assert not missing, f"planned final outputs missing under results/: {missing}"
    dirs = [p for p in planned if (repo / p).is_dir()]
    extra = [f for f in results_files(repo) if f not in planned and not any(f.startswith(d + "/") for d in dirs)]
    assert not extra, f"files under results/ that are no planned final output: {extra}"


@pytest.mark.slurm
@pytest.mark.xdist_group("slurm")
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", PORTS)
def test_port_on_slurm_builds_exactly_its_final_outputs_and_publishes_a_verified_release(render, tmp_path, name):
    require_slurm()
    port, repo = ported(render, name, slurm=True)
    env = isolated_env(tmp_path, TEST_NODE_SCRATCH=str(node_tmp(tmp_path, "node-scratch")))  # the node's scratch
    user = workflow_user()
    times = {}

    def cancel_jobs():
        jobs = jobs_in(repo)
        if jobs:
            subprocess.run(["scancel", *jobs], capture_output=True, timeout=30)

    def run(*args, step=None, timeout=900):
        t0 = time.monotonic()
        done = run_command(args, cwd=repo, env=env, timeout=timeout, on_timeout=cancel_jobs, user=user)
        if step:
            times[step] = time.monotonic() - t0
        assert done.returncode == 0, repr(done)
        return done

    def snakemake(*args, step=None):
        return run(tool("snakemake"), "--profile", "profiles/slurm", *OVERRIDES, *args, step=step)

    try:
        snakemake(step="run")
        planned = planned_final_outputs(snakemake("--summary").stdout)
        assert_results_are_exactly(repo, planned)
        assert not (repo / "publish").exists(), "a plain run publishes nothing"

        published = snakemake("publish", step="publish")
        assert "no new release" not in published.output
        run(sys.executable, "workflow/vendor/publish.py", "verify")
        run_in_release = run_command(
            ["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=repo / "publish/current", env=env, user=user
        )
        assert run_in_release.returncode == 0, repr(run_in_release)
        current = Path(os.path.realpath(repo / "publish/current"))
        absent = [n for n in port.PUBLISHED if not (current / n).is_file()]
        assert not absent, f"the release {current.name} lacks {absent}: {sorted(os.listdir(current))}"
    finally:
        shown = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in times.items())
        print(f"\n[real workflow] {name} on Slurm: {shown}")


@pytest.mark.timeout(2400)
@pytest.mark.parametrize("name", PORTS)
def test_port_own_generated_make_test_passes(render, tmp_path, name):
    _port, repo = ported(render, name)
    env = isolated_env(tmp_path, TMPDIR=str(node_tmp(tmp_path)))  # PATH: the template venv's bin first
    t0 = time.monotonic()
    done = run_command(["make", "test"], cwd=repo, env=env, timeout=2300, user=workflow_user())
    seconds = time.monotonic() - t0
    print(f"\n[real workflow] {name}: make test {seconds:.1f} s")
    assert done.returncode == 0, repr(done)
    # pytest's closing line (make may add "Leaving directory" lines after it)
    summary = [line for line in done.output.splitlines() if re.search(r"\d+ passed", line)][-1:]
    assert summary and "failed" not in summary[0] and "error" not in summary[0], done.output[-3000:]
    for kept in (f"tests/test_{name}.py", "tests/test_workflow.py", "tests/test_profiles.py"):
        assert kept in done.output, f"{kept} did not run:\n{done.output[-3000:]}"
