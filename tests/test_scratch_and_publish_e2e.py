"""The scratch wrapper and publish step through the real snakemake CLI on a rendered repository.

Faults are real: a job is SIGKILLed mid-write, a command fails, a copy-back target is unwritable,
publishes race. A small extra rule file is dropped into the rendered workflow where a fault needs a
job that writes slowly; it uses the same scratch() helper as the example rules.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import isolated_env, node_tmp, require_slurm, scratch_records, start_snakemake, tool

# the contexts a scenario runs in: a parameter, not a file per context; the real Slurm's tests share one
# xdist group (one cluster) and are marked so that `-m "not slurm"` leaves them out
CONTEXTS = ["local", "cluster-sim", pytest.param("slurm", marks=[pytest.mark.slurm, pytest.mark.xdist_group("slurm")])]

SLOW_RULES = """

rule slow_writer:
    output:
        "results/slow/{name}.bin",
    log:
        "logs/slow_writer/{name}.log",
    shell:
        scratch(
            "exec 2> {log:q}; "
            "head -c 50000000 /dev/zero > {output:q}; "
            "while [ ! -e RELEASE_DIR/release-{wildcards.name} ]; do sleep 0.05; done; "
            "head -c 50000000 /dev/zero >> {output:q}"
        )


rule failing:
    output:
        "results/failing/{name}.txt",
    log:
        "logs/failing/{name}.log",
    shell:
        scratch("exec 2> {log:q}; echo partial > {output:q}; echo boom >&2; exit 7")


# final outputs, not published: results/ holds nothing else
FINAL_OUTPUTS.update(dict.fromkeys(
    [f"results/slow/{name}.bin" for name in "abst"] + ["results/failing/x.txt"]
))
"""


def add_fault_rules(repo: Path) -> None:
    """Append the fault rules; the slow writer waits for a release file in the repo (it runs in scratch)."""
    with open(repo / "workflow/Snakefile", "a") as fh:
        fh.write(SLOW_RULES.replace("RELEASE_DIR", str(repo)))


def wait_for(predicate, timeout=120, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def result_files(repo):
    return sorted(str(p.relative_to(repo / "results")) for p in (repo / "results").rglob("*") if p.is_file())


def test_killed_run_leaves_no_partial_output_and_rerun_incomplete_recovers(render, snakemake, node_scratch):
    repo = render()
    add_fault_rules(repo)
    node_tmp, env = node_scratch
    proc = start_snakemake(repo, env, "--profile", "profiles/local", "results/slow/a.bin")
    try:
        partial = wait_for(
            lambda: [p for p in node_tmp.rglob("results/slow/a.bin") if p.stat().st_size > 0],
            what="the job to be mid-write in scratch",
        )[0]
        os.killpg(proc.pid, signal.SIGKILL)  # the whole run: snakemake and its job, like a lost node
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert 0 < partial.stat().st_size < 100_000_000, "killed while the output was half written"
    assert not (repo / "results/slow").exists() or result_files(repo) == [], "no partial file under results/"
    (repo / "release-a").touch()
    snakemake(repo, "--profile", "profiles/local", "--unlock", env=env, timeout=120)
    snakemake(repo, "--profile", "profiles/local", "--rerun-incomplete", "results/slow/a.bin", env=env, timeout=120)
    assert (repo / "results/slow/a.bin").stat().st_size == 100_000_000


def test_job_process_killed_mid_write_fails_cleanly(render, snakemake, node_scratch):
    repo = render()
    add_fault_rules(repo)
    node_tmp, env = node_scratch
    proc = start_snakemake(repo, env, "--profile", "profiles/local", "results/slow/b.bin")
    wait_for(lambda: [p for p in node_tmp.rglob("results/slow/b.bin") if p.stat().st_size > 0], what="mid-write")
    head = subprocess.run(["pgrep", "-f", "-n", "while \\[ ! -e .*release-b"], capture_output=True, text=True)
    shell_pids = [int(p) for p in head.stdout.split()]
    assert shell_pids, "found the job's shell"
    os.kill(shell_pids[0], signal.SIGKILL)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    assert not (repo / "results/slow/b.bin").exists()
    assert "scratch dir KEPT" in (repo / "logs/slow_writer/b.log").read_text()


def run_in_context(context, render, snakemake, tmp_path, *targets):
    """(repo, run, node): a fresh repository with the fault rules, `targets` built with profiles/<context>
    (not checked), and the directory the context's jobs take their node-local scratch from."""
    if context == "slurm":
        from test_slurm import render_site, run_slurm

        require_slurm()
        repo = render_site(render)
        add_fault_rules(repo)
        one_attempt = ["--retries", "0"]  # the profile's retry is pinned by the scancel test of test_slurm.py
        return repo, run_slurm(repo, tmp_path, *one_attempt, *targets, check=False), tmp_path / "node-scratch"
    repo = render()
    add_fault_rules(repo)
    if context == "cluster-sim":
        from test_cluster_sim_e2e import sim_env

        env, node = sim_env(tmp_path), tmp_path / "nodes"
    else:
        node = node_tmp(tmp_path)
        env = isolated_env(tmp_path, TMPDIR=str(node))
    return repo, snakemake(repo, "--profile", f"profiles/{context}", *targets, env=env, check=False), node


@pytest.mark.parametrize("context", CONTEXTS)
def test_failing_job_keeps_its_node_local_scratch_names_it_in_its_log_and_writes_nothing_to_results(
    context, render, snakemake, tmp_path
):
    repo, run, node = run_in_context(context, render, snakemake, tmp_path, "results/failing/x.txt")
    assert run.returncode != 0, run.output[-3000:]
    assert not (repo / "results/failing").exists() or result_files(repo) == []
    log = (repo / "logs/failing/x.log").read_text()
    assert log.startswith("boom\n"), "the command's own stderr went straight to the durable log"
    kept = re.search(r"scratch dir KEPT for debugging: (\S+) \(on host", log)
    assert kept, log
    kept_dir = Path(kept.group(1))
    assert kept_dir.parent.name == f"{repo.name}-scratch-{repo.stat().st_uid}", "per user: the checkout's owner"
    assert node in kept_dir.parents, f"in the node-local scratch of {context}"
    assert (kept_dir / "results/failing/x.txt").read_text() == "partial\n"
    if context == "local":  # the listing reads this host's scratch root
        listing = subprocess.run(
            [sys.executable, "workflow/vendor/scratch.py", "kept"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
        assert str(kept_dir) in listing.stdout


def test_scratch_records_show_where_each_job_worked(render, snakemake, node_scratch):
    repo = render()
    node_tmp, env = node_scratch
    snakemake(repo, "--profile", "profiles/ci", env=env)
    records = scratch_records(repo)
    assert {r["rule"] for r in records} == {"tokenize", "summarize_sample", "summary_table", "report"}
    assert {r["outputs"][0] for r in records if r["rule"] == "tokenize"} == {
        f"work/tokens/{s}.tokens" for s in ("alpha", "beta", "gamma")
    }
    assert {r["wildcards"] for r in records if r["rule"] == "tokenize"} == {
        "sample=alpha",
        "sample=beta",
        "sample=gamma",
    }
    assert all(r["status"] == "ok" and r["removed"] for r in records)
    assert {r["root"] for r in records} == {str(node_tmp / f"{repo.name}-ci-scratch-{repo.stat().st_uid}")}
    assert {r["staging"] for r in records} == {"copy"}, "the ci profile copies inputs"
    assert all(r["in_bytes"] > 0 and r["out_bytes"] > 0 for r in records)


def test_concurrent_publish_commands_end_cleanly_with_one_release(published_example, tmp_path):
    repo = published_example
    shutil.rmtree(repo / "publish")  # built, never published
    env = isolated_env(tmp_path)
    procs = [
        subprocess.Popen(
            [tool("snakemake"), "--profile", "profiles/local", "--nolock", "publish"],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum("published new release" in o for o in outputs) == 1
    assert len(list((repo / "publish/releases").iterdir())) == 1
    assert subprocess.run([sys.executable, "workflow/vendor/publish.py", "verify"], cwd=repo).returncode == 0


def test_a_final_output_outside_results_is_refused_before_any_job(render, snakemake):
    repo = render()
    snakefile = repo / "workflow/Snakefile"
    text = snakefile.read_text()
    assert '    rules.report.output.html: "report.html",\n' in text
    snakefile.write_text(
        text.replace(
            '    rules.report.output.html: "report.html",\n',
            '    rules.report.output.html: "report.html",\n    "config/config.yaml": "cfg",\n',
        )
    )
    run = snakemake(repo, "--profile", "profiles/local", "-n", "publish", check=False)
    assert run.returncode != 0
    assert "final output config/config.yaml is not under results/" in run.output
