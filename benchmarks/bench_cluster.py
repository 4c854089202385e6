"""5. Cluster-sim throughput: N wrapped trivial jobs through the simulated scheduler (profiles/cluster-sim).

Uses the ``bench_wrapped`` rule of ``bench_overhead.py`` (``shell: scratch("echo > {output:q}")``).
Each job goes submit -> detached supervisor -> job script (a whole ``snakemake`` process on the
"node") -> status polling, exactly as in the cluster-sim tests, with the profile's own settings
(jobs, status-check rate). The baseline is the same jobs with the local executor (``profiles/local``,
``--cores 2``), which runs them as children of one Snakemake process.
"""

from __future__ import annotations

import importlib.util
import shutil
import statistics

import yaml
from bench_overhead import OUTPUT_DIR, snakemake_args, targets, write_rules
from harness import Check, Context, Result, Stats, paired


def _records(ctx: Context, state_dir) -> list[dict]:
    spec = importlib.util.spec_from_file_location("sim_scheduler", ctx.repo / "workflow/vendor/scheduler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_records(str(state_dir))


def window_rates(records: list[dict], windows: int = 4) -> list[float]:
    """Jobs/s in consecutive windows of finished jobs (by end time), from the first submission on."""
    ends = sorted(rec["end_time"] for rec in records)
    start, done, rates = min(rec["submit_time"] for rec in records), 0, []
    for k in range(1, windows + 1):
        upto = len(ends) * k // windows
        if upto > done:
            rates.append((upto - done) / max(ends[upto - 1] - start, 1e-9))
            start, done = ends[upto - 1], upto
    return rates


def run(ctx: Context, n: int, repeats: int) -> Result:
    write_rules(ctx)
    outdir = ctx.repo / OUTPUT_DIR / "wrapped"
    cluster_t, local_t, job_s, queue_s, windows = [], [], [], [], []
    for r in range(repeats):
        order = ("cluster-sim", "local") if r % 2 == 0 else ("local", "cluster-sim")
        for profile in order:
            shutil.rmtree(outdir, ignore_errors=True)
            if profile == "local":
                seconds, _ = ctx.snakemake(*snakemake_args(ctx, targets("wrapped", n)), timeout=3600)
                local_t.append(seconds)
                continue
            state = ctx.tmp / f"cluster-sim-state-{r}"
            env = dict(ctx.env, SIM_CLUSTER_DIR=str(state))
            seconds, _ = ctx.snakemake(
                *snakemake_args(ctx, targets("wrapped", n), "cluster-sim"), env=env, timeout=3600
            )
            records = _records(ctx, state)
            done = [rec for rec in records if rec["state"] == "success"]
            if len(done) != n:
                raise RuntimeError(f"cluster-sim: {len(done)} of {n} jobs succeeded")
            cluster_t.append(seconds)
            job_s.append(statistics.median(rec["end_time"] - rec["start_time"] for rec in done))
            queue_s.append(statistics.median(rec["start_time"] - rec["submit_time"] for rec in done))
            windows += window_rates(done)
            shutil.rmtree(state, ignore_errors=True)
    shutil.rmtree(outdir, ignore_errors=True)

    cluster_rate = Stats([n / s for s in cluster_t])
    local_rate = Stats([n / s for s in local_t])
    ratio = paired(cluster_rate.values, local_rate.values, lambda a, b: a / b)
    rows = [
        ["cluster-sim: whole run", *Stats(cluster_t).cells("{:.1f} s"), f"{cluster_rate.median:.2f}"],
        [f"cluster-sim: jobs/s per quarter of the jobs ({len(windows)} windows)", *Stats(windows).cells("{:.2f}"), ""],
        ["cluster-sim: one job, start to end (median over jobs)", *Stats(job_s).cells("{:.2f} s"), ""],
        ["cluster-sim: submit to start (median over jobs)", *Stats(queue_s).cells("{:.3f} s"), ""],
        ["local executor, `--cores 2`: whole run", *Stats(local_t).cells("{:.1f} s"), f"{local_rate.median:.2f}"],
    ]
    checks = [
        Check("cluster-sim jobs/s", cluster_rate.median, unit="jobs/s"),
        Check("cluster-sim / local executor (jobs/s)", ratio.median),
    ]
    slots = yaml.safe_load((ctx.repo / "profiles/cluster-sim/config.yaml").read_text())["jobs"]
    ceiling = slots / statistics.median(job_s)
    notes = [
        f"Every cluster-sim job is a whole Snakemake process on the simulated node (about "
        f"{statistics.median(job_s):.1f} s each here, most of it Snakemake start-up); with the profile's "
        f"`jobs: {slots}` that alone caps throughput near {ceiling:.1f} jobs/s, and on 2 cores the job "
        "processes compete for CPU with the polling main process.",
        "No target was set for this number; it is the reference for changes to the scheduler, the "
        "profile's polling settings or the job script.",
    ]
    return Result(
        key="cluster",
        title=f"5. Cluster-sim throughput ({n} jobs)",
        method=(
            "`snakemake -s workflow/bench_overhead.smk --profile profiles/cluster-sim` building N targets of "
            "the wrapped trivial rule, with a fresh scheduler state dir per run; jobs/s = N / wall time of "
            "the whole run. Per-job times and the spread over consecutive quarters of the jobs (by end time) "
            "come from the scheduler's records. Baseline: the same targets with `--profile profiles/local "
            "--cores 2`."
        ),
        headers=["case", "median", "min", "max", "jobs/s (median)"],
        rows=rows,
        checks=checks,
        notes=notes,
        repeats=repeats,
        repeats_note=f"{repeats} run(s) of {n} jobs; min/max of jobs/s over the quarters of the jobs",
    )
