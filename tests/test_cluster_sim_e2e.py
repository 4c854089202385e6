"""The same workflow under the simulated cluster (profiles/cluster-sim): scheduler, faults, latency policy."""

import importlib.util
import json
import subprocess
import sys
import time

import pytest
from conftest import (
    TEMPLATE,
    isolated_env,
    manifest_files,
    node_tmp,
    results_bytes,
    run_command,
    scratch_records,
    tool,
)
from slurm_cluster import configure_site

pytestmark = pytest.mark.timeout(900)
# every context the template ships, discovered as a generated repository discovers its own
CONTEXTS = sorted(
    p.parent.name for p in (TEMPLATE / "{{cookiecutter.project_slug}}" / "profiles").glob("*/config.yaml")
)
# profiles/cluster-sim groups the per-sample rules into one scheduler job and the fan-in rules into another
SCHEDULER_JOBS = ["group:fan_in", "group:per_sample"]
RULE_JOBS = 8  # the example: 3 x tokenize, 3 x summarize_sample, summary_table, report


def scheduler_records(repo, workdir=None):
    """The simulated scheduler's job records of a run in `workdir` (default: `repo`), read by repo's scheduler."""
    spec = importlib.util.spec_from_file_location("scheduler", repo / "workflow/vendor/scheduler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_records(str((workdir or repo) / ".cluster-sim"))


def sim_env(tmp_path, **faults):
    env = isolated_env(tmp_path, SIM_NODE_SCRATCH_ROOT=str(node_tmp(tmp_path, "nodes")))
    env.update({k: str(v) for k, v in faults.items()})
    return env


def test_full_example_and_publish_under_cluster_sim_match_the_local_run_in_fewer_grouped_scheduler_jobs(
    render, snakemake, tmp_path, local_reference
):
    sim = render()
    env = sim_env(tmp_path)
    snakemake(sim, "--profile", "profiles/cluster-sim", env=env)
    snakemake(sim, "--profile", "profiles/cluster-sim", "publish", env=env)
    records = scheduler_records(sim)
    assert sorted(r["rule"] for r in records) == SCHEDULER_JOBS, "every rule job in one of the profile's groups"
    assert all(r["state"] == "success" and r["host"].startswith("simnode-") for r in records)
    assert "publish" not in {r["rule"] for r in records}, "publish runs locally"
    assert results_bytes(sim) == results_bytes(local_reference), "same meaning in both contexts, grouped or not"
    assert manifest_files(sim) == manifest_files(local_reference), "the same publish set, byte for byte"
    manifest = json.loads((sim / "publish/current/MANIFEST.json").read_text())
    assert manifest["provenance"]["context"] == "cluster-sim"
    assert subprocess.run([sys.executable, "workflow/vendor/publish.py", "verify"], cwd=sim).returncode == 0
    # per-context scratch is where the profile says: the node-local dir the scheduler gave each job
    node_dirs = {r["node_tmpdir"] for r in records}
    scratch = scratch_records(sim)
    assert len(scratch) == RULE_JOBS and all(r["status"] == "ok" and r["removed"] for r in scratch), "every job"
    roots = {rec["root"] for rec in scratch}
    assert {root.rsplit("/", 1)[0] for root in roots} <= node_dirs
    assert all(root.endswith(f"/{sim.name}-scratch-{sim.stat().st_uid}") for root in roots)  # uid: the owner
    assert {rec["staging"] for rec in scratch} == {"copy"}


@pytest.mark.parametrize(
    "fault",
    [{"SIM_VISIBILITY_LAG": 3}, {"SIM_LOST_STATUS": 3}],
    ids=["visibility-lag-below-latency-wait", "lost-status-answers"],
)
def test_a_fault_within_the_profiles_tolerance_does_not_stop_the_run(render, snakemake, tmp_path, fault):
    repo = render()
    target = "results/samples/alpha.summary.json"
    snakemake(repo, "--profile", "profiles/cluster-sim", target, env=sim_env(tmp_path, **fault))
    assert (repo / target).is_file()
    if "SIM_VISIBILITY_LAG" in fault:  # the lag was applied, not skipped
        assert all(r["faults"].get("visibility_lag") for r in scheduler_records(repo))


def test_visibility_lag_above_latency_wait_fails_then_a_rerun_after_the_lag_completes(render, snakemake, tmp_path):
    repo = render()
    lag = 14  # profiles/cluster-sim sets latency-wait 10
    # one job per rule (grouping off), so the first job's output is the one held back
    ungrouped = ["--profile", "profiles/cluster-sim", "--groups", "none=none"]  # --groups takes what follows
    env = sim_env(tmp_path, SIM_VISIBILITY_LAG=lag)
    run = snakemake(repo, "results/samples/alpha.summary.json", *ungrouped, env=env, check=False)
    assert run.returncode != 0
    assert "MissingOutputException" in run.output and "--latency-wait" in run.output
    assert not (repo / "results/samples/alpha.summary.json").exists()
    held = repo / "work/tokens/alpha.tokens"
    deadline = time.monotonic() + lag + 60
    while not held.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert held.exists(), "the late file arrived once the lag passed"
    snakemake(
        repo,
        "--profile",
        "profiles/cluster-sim",
        "results/samples/alpha.summary.json",
        "publish",
        env=sim_env(tmp_path),
    )
    assert (repo / "publish/current/samples/alpha.summary.json").is_file()


def test_killed_job_leaves_no_partial_output_and_rerun_incomplete_recovers(render, snakemake, tmp_path):
    repo = render()
    run = snakemake(
        repo,
        "--profile",
        "profiles/cluster-sim",
        "results/tables/summary.tsv",
        env=sim_env(tmp_path, SIM_KILL_JOB=1, SIM_KILL_AFTER=0.3),
        check=False,
    )
    assert run.returncode != 0
    killed = [r for r in scheduler_records(repo) if r.get("signal") or r["state"] == "failed"]
    assert killed, "the scheduler killed a job"
    assert not (repo / "results/tables/summary.tsv").exists()
    for path in (repo / "results").rglob("*") if (repo / "results").exists() else []:
        if path.is_file():
            json.loads(path.read_text())  # whatever exists is whole
    snakemake(
        repo,
        "--profile",
        "profiles/cluster-sim",
        "--rerun-incomplete",
        "results/tables/summary.tsv",
        env=sim_env(tmp_path),
    )
    assert (repo / "results/tables/summary.tsv").read_text().count("\n") == 4


@pytest.mark.parametrize("context", CONTEXTS)
def test_every_profile_dry_runs_cleanly(render, snakemake, tmp_path, context):
    repo = render()
    run = snakemake(repo, "--profile", f"profiles/{context}", "-n", "all", "publish", env=sim_env(tmp_path))
    assert "publish" in run.output and "tokenize" in run.output
    assert not (repo / "results").exists() and not (repo / "publish").exists()
    assert not [p for p in repo.iterdir() if "$" in p.name or "{" in p.name], "no literal variable folders"


def test_slurm_profile_dry_run_shows_site_resources(render, tmp_path):
    repo = render()
    configure_site(repo, account="proj42", partition="short")
    run = run_command(
        [tool("snakemake"), "--profile", "profiles/slurm", "-n", "results/tables/summary.tsv"],
        cwd=repo,
        env=isolated_env(tmp_path),
        timeout=300,
    )
    assert run.returncode == 0, repr(run)
    assert "slurm_account=proj42" in run.output and "slurm_partition=short" in run.output
    assert "runtime=15" in run.output and "mem_mb=512" in run.output, "per-rule values from workflow/profiles/default"
