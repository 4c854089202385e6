"""6. Real Slurm: the example workflow through ``profiles/slurm`` against the same run with ``profiles/local``.

Needs a reachable Slurm cluster (``sudo bash tests/slurm/up.sh`` brings up a single-node one); without
one, ``run.py`` reports this benchmark as not run and says why. A second repository is rendered with the
answers a team at the test "site" gives (account, partition, the node-local scratch variable
``TEST_NODE_SCRATCH``, exported here as a site's prolog would set it).

Cases, in rotating order within each repeat, each from an empty ``results/``:
- ``profiles/local`` (the baseline);
- ``profiles/slurm`` with the test-cluster overrides of ``tests/slurm_cluster.py`` (as in the Slurm tests) (first status check after
  2 s instead of 40 s, ``--latency-wait 10``, ``--jobs 2``);
- ``profiles/slurm`` as generated apart from ``--jobs 2`` (one node with 2 cores), i.e. what a user
  pays for the profile's 40 s wait before the first status check (full runs only).
Per-job submit-to-start and start-to-end times come from ``sacct`` when accounting is on.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys

from harness import ROOT, BenchError, Check, Context, Result, Stats, load, paired

# The test cluster (site answers, overrides, cluster queries) is defined once, next to the tests that use it.
sys.path.insert(0, str(ROOT / "tests"))
from slurm_cluster import OVERRIDES, SITE, SLOTS, jobs_in, unavailable, version  # noqa: E402

__all__ = ["run", "unavailable"]  # run.py asks unavailable() before it renders anything
AS_GENERATED = ["--jobs", str(SLOTS)]
JOB_ID = re.compile(r"SLURM jobid (\d+)")


def _job_times(ids: list[str]) -> tuple[list[float], list[float]]:
    """(submit-to-start, start-to-end) seconds per job from sacct; empty lists without accounting."""
    if not ids or not shutil.which("sacct"):
        return [], []
    proc = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "-o", "JobIDRaw,Submit,Start,End", "--noconvert"],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, SLURM_TIME_FORMAT="%s"),
    )
    waits, runs = [], []
    for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
        parts = line.split("|")
        if len(parts) == 4 and all(p.isdigit() for p in parts[1:]):
            submit, start, end = (int(p) for p in parts[1:])
            waits.append(start - submit)
            runs.append(end - start)
    return waits, runs


def run(ctx: Context, repeats: int, with_generated: bool) -> Result:
    before = load()
    site = ctx.render(ctx.tmp / "rendered-slurm-site", **SITE)
    node_scratch = ctx.tmp / "node-scratch"
    node_scratch.mkdir(exist_ok=True)
    # The real scontrol, not the harness's stub: the plugin's start-up probe is part of what a user pays.
    stub_dir = str(ctx.tmp / "stub-bin")
    path = os.pathsep.join(p for p in ctx.env["PATH"].split(os.pathsep) if p != stub_dir)
    env = dict(ctx.env, PATH=path, TEST_NODE_SCRATCH=str(node_scratch))
    cases = {"local": ["--profile", "profiles/local"], "slurm": ["--profile", "profiles/slurm", *OVERRIDES]}
    if with_generated:
        cases["slurm-generated"] = ["--profile", "profiles/slurm", *AS_GENERATED]
    times: dict[str, list[float]] = {name: [] for name in cases}
    waits, runs, jobs_per_run, busy = [], [], [], []
    names = list(cases)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            repo = ctx.repo if name == "local" else site
            shutil.rmtree(repo / "results", ignore_errors=True)
            try:
                seconds, proc = ctx.snakemake(*cases[name], cwd=repo, env=env, timeout=900)
            except BenchError:
                if name != "local" and (ids := jobs_in(repo)):
                    subprocess.run(["scancel", *ids], capture_output=True, timeout=30)
                raise
            times[name].append(seconds)
            if name != "local":
                ids = JOB_ID.findall(proc.stdout + proc.stderr)
                if not ids:
                    raise BenchError(f"{name}: no 'SLURM jobid' in Snakemake's output; did it run on Slurm?")
                jobs_per_run.append(len(ids))
                w, t = _job_times(ids)
                waits += w
                runs += t
                if name == "slurm" and t:
                    busy.append(sum(t) / (seconds * SLOTS))  # the job slots the run could keep busy
    shutil.rmtree(site / "results", ignore_errors=True)

    local = Stats(times["local"])
    rows = [["`profiles/local`", *local.cells("{:.1f} s"), "1.00x"]]
    checks = []
    labels = {
        "slurm": "`profiles/slurm` + test overrides (first status check after 2 s)",
        "slurm-generated": "`profiles/slurm` as generated (first status check after 40 s), `--jobs 2`",
    }
    for name in [n for n in names if n != "local"]:
        ratio = paired(times[name], times["local"], lambda a, b: a / b)
        rows.append([labels[name], *Stats(times[name]).cells("{:.1f} s"), f"{ratio.median:.2f}x"])
        checks.append(Check(f"{labels[name].split(' (')[0]} / local (wall)", ratio.median))
    if waits:
        rows.append(["one Slurm job: submit to start (sacct, median over jobs)", *Stats(waits).cells("{:.0f} s"), ""])
        rows.append(["one Slurm job: start to end (sacct, median over jobs)", *Stats(runs).cells("{:.0f} s"), ""])
    if busy:
        rows.append(["test overrides: job run time / (wall x 2 slots)", *Stats(busy).cells("{:.0%}"), ""])
    notes = [
        f"{version() or 'Slurm'}; {statistics.median(jobs_per_run):.0f} Slurm jobs per run of the example; the "
        "local profile runs the same jobs as children of one Snakemake process.",
        "Where the time goes on Slurm: every job is an `sbatch` submission and a whole Snakemake process on "
        "the node, and Snakemake learns that a job ended only at its next status check. The plugin (2.8.0) "
        "waits `slurm-init-seconds-before-status-checks` before a check; each check that finds nothing "
        "finished adds 10 s to the next wait (up to 180 s), one that finds a job finished resets it. A job "
        "of a few seconds thus costs about init + 10 s with the test overrides and about 40 s as generated, "
        "and a chain of dependent jobs pays that once per step. The row 'job run time / (wall x 2 slots)' "
        "is the share of the run the node spent running jobs. A real site adds queue wait; the single-node "
        "test cluster has none to speak of.",
        "No target: this is the price of the cluster executor for a workflow of seconds-long jobs, the "
        "reference for changes to `profiles/slurm`. Workflows whose jobs take minutes amortise it.",
    ]
    if not waits:
        notes.append("Per-job times not shown: sacct answered nothing (accounting off).")
    return Result(
        key="slurm",
        title="6. Real Slurm: the example workflow vs the local profile",
        method=(
            "`snakemake --profile profiles/slurm` on the test cluster of `tests/slurm/up.sh`, in a repository "
            f"rendered with {', '.join(f'`{k}={v}`' for k, v in SITE.items())}, from an empty `results/`, "
            "against `snakemake --profile profiles/local` on the default rendering; wall time of the whole "
            "run including Snakemake start-up. Cases rotate order each repeat."
        ),
        headers=["case", "median", "min", "max", "/ local (median)"],
        rows=rows,
        checks=checks,
        notes=notes,
        load_before=before,
        load_after=load(),
        repeats=repeats,
    )
