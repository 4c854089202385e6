"""6. Real Slurm: the example workflow through ``profiles/slurm`` against the same run with ``profiles/local``.

Needs a reachable Slurm cluster (``sudo bash tests/slurm/up.sh`` brings up a single-node one); without
one, ``run.py`` reports this benchmark as not run and says why. A second repository is rendered with the
default answers and gets the site settings a team at the test "site" fills into ``profiles/slurm``
(account, partition, the node-local scratch variable ``TEST_NODE_SCRATCH``, exported here as a site's
prolog would set it).

Cases, in rotating order within each repeat, each from an empty ``results/``:
- ``profiles/local`` (the baseline);
- ``profiles/slurm`` with the test-cluster overrides of ``tests/slurm_cluster.py`` (as in the Slurm tests) (first status check after
  2 s instead of 40 s, ``--latency-wait 10``, ``--jobs 2``);
- ``profiles/slurm`` as generated apart from ``--jobs 2`` (one node with 2 cores): its job grouping and
  its first status check after 10 s, i.e. what a user pays (full runs only; target: at most 10x local).
Per-job submit-to-start and start-to-end times come from ``sacct`` when accounting is on.

Full runs also run a 200-sample variant of the example (the example's inputs repeated) through
``profiles/slurm`` as generated, grouped and with grouping turned off on the command line
(``--groups none=none``), once each, and report rule jobs per second of wall time.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys

from harness import ROOT, BenchError, Check, Context, Result, Stats, paired

# The test cluster (site settings, overrides, cluster queries) is defined once, next to the tests that use it.
sys.path.insert(0, str(ROOT / "tests"))
from slurm_cluster import OVERRIDES, SITE, SLOTS, configure_site, jobs_in, unavailable, version  # noqa: E402

__all__ = ["run", "unavailable"]  # run.py asks unavailable() before it renders anything
AS_GENERATED = ["--jobs", str(SLOTS)]
UNGROUPED = ["--groups", "none=none"]  # a --groups on the command line replaces the profile's
JOB_ID = re.compile(r"SLURM jobid (\d+)")
MANY_SAMPLES = 200  # the default of run.py --slurm-samples
TARGET_GENERATED = 10.0  # issue 16: the example as generated at most 10x local wall time


def _many_samples(repo, n: int) -> int:
    """Make repo's sample sheet n samples long (the example's inputs, repeated); return its rule jobs."""
    sheet = repo / "config/samples.tsv"
    header, *rows = sheet.read_text().splitlines()
    lines = [header]
    for i in range(n):
        _sample, path, *rest = rows[i % len(rows)].split("\t")
        lines.append("\t".join([f"s{i:04d}", path, *rest]))
    sheet.write_text("\n".join(lines) + "\n")
    return 2 * n + 2  # tokenize and summarize_sample per sample, summary_table, report


def _job_times(ids: list[str]) -> tuple[list[float], list[float], list[float]]:
    """(submit-to-start, start-to-end) seconds per job, and start-to-end of their numbered job steps (one per
    group member: `srun` + Snakemake), from one sacct query; empty lists without accounting."""
    if not ids or not shutil.which("sacct"):
        return [], [], []
    proc = subprocess.run(
        ["sacct", "-n", "-P", "-j", ",".join(ids), "-o", "JobIDRaw,Submit,Start,End", "--noconvert"],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, SLURM_TIME_FORMAT="%s"),
    )
    waits, runs, steps = [], [], []
    for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
        job, *times = line.split("|")
        if len(times) != 3 or not all(t.isdigit() for t in times):
            continue
        submit, start, end = (int(t) for t in times)
        if job.isdigit():  # the job itself
            waits.append(start - submit)
            runs.append(end - start)
        elif re.fullmatch(r"\d+\.\d+", job):  # a numbered step (not .batch or .extern)
            steps.append(end - start)
    return waits, runs, steps


def _many(ctx: Context, env: dict, jobs_per_run: list, n: int) -> dict:
    """{"grouped"|"ungrouped": (wall s, rule jobs, Slurm jobs)} for the example with n samples."""
    repo = ctx.render(ctx.tmp / "rendered-slurm-many")
    configure_site(repo, **SITE)
    rule_jobs = _many_samples(repo, n)
    out = {}
    for name, extra in (("grouped", []), ("ungrouped", UNGROUPED)):
        shutil.rmtree(repo / "results", ignore_errors=True)
        shutil.rmtree(repo / "logs", ignore_errors=True)
        try:
            seconds, proc = ctx.snakemake(
                "--profile", "profiles/slurm", *AS_GENERATED, *extra, cwd=repo, env=env, timeout=5400
            )
        except BenchError:
            if ids := jobs_in(repo):
                subprocess.run(["scancel", *ids], capture_output=True, timeout=30)
            raise
        out[name] = (seconds, rule_jobs, len(set(JOB_ID.findall(proc.stdout + proc.stderr))))
    shutil.rmtree(repo / "results", ignore_errors=True)
    return out


def run(ctx: Context, repeats: int, with_generated: bool, many_samples: int = MANY_SAMPLES) -> Result:
    site = ctx.render(ctx.tmp / "rendered-slurm-site")
    configure_site(site, **SITE)
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
    waits, runs, jobs_per_run, busy, steps, inside = [], [], [], [], [], []
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
                w, t, member_steps = _job_times(ids)
                waits += w
                runs += t
                if name == "slurm" and t:
                    busy.append(sum(t) / (seconds * SLOTS))  # the job slots the run could keep busy
                if name == "slurm-generated" and t:
                    steps += member_steps
                    inside.append(sum(t) / seconds)  # its Slurm jobs run one after the other (fan-out, fan-in)
    shutil.rmtree(site / "results", ignore_errors=True)
    many = _many(ctx, env, jobs_per_run, many_samples) if with_generated else {}

    local = Stats(times["local"])
    rows = [["`profiles/local`", *local.cells("{:.1f} s"), "1.00x"]]
    checks = []
    labels = {
        "slurm": "`profiles/slurm` + test overrides (first status check after 2 s)",
        "slurm-generated": "`profiles/slurm` as generated (grouped, first status check after 10 s), `--jobs 2`",
    }
    for name in [n for n in names if n != "local"]:
        ratio = paired(times[name], times["local"], lambda a, b: a / b)
        rows.append([labels[name], *Stats(times[name]).cells("{:.1f} s"), f"{ratio.median:.2f}x"])
        if name == "slurm-generated":
            target = f"<= {TARGET_GENERATED:g}"
            checks.append(
                Check(
                    f"{labels[name].split(' (')[0]} / local (wall)",
                    ratio.median,
                    target,
                    ratio.median <= TARGET_GENERATED,
                )
            )
        else:
            checks.append(Check(f"{labels[name].split(' (')[0]} / local (wall)", ratio.median))
    for name, (seconds, rule_jobs, slurm_jobs) in many.items():
        rows.append(
            [
                f"{many_samples} samples, `profiles/slurm` as generated, {name}: {rule_jobs} rule jobs in "
                f"{slurm_jobs} Slurm jobs, {rule_jobs / seconds:.2f} rule jobs/s",
                f"{seconds:.0f} s",
                "",
                "",
                "",
            ]
        )
    if len(many) == 2:
        (g, rj, _), (u, _, _) = many["grouped"], many["ungrouped"]
        checks.append(Check(f"{many_samples} samples: rule jobs/s grouped / ungrouped", (rj / g) / (rj / u)))
    if waits:
        rows.append(["one Slurm job: submit to start (sacct, median over jobs)", *Stats(waits).cells("{:.0f} s"), ""])
        rows.append(["one Slurm job: start to end (sacct, median over jobs)", *Stats(runs).cells("{:.0f} s"), ""])
    if steps:
        rows.append(
            [
                "as generated: one group member (a job step: `srun`, a Snakemake start, the command; sacct, median)",
                *Stats(steps).cells("{:.0f} s"),
                "",
            ]
        )
    if inside:
        rows.append(
            ["as generated: share of the wall time spent inside Slurm jobs", *Stats(inside).cells("{:.0%}"), ""]
        )
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
        "Job grouping (`groups`, `group-components` in `profiles/slurm`) runs the example in 2 Slurm jobs "
        "instead of 8: one for every 8 samples' tokenize + summarize_sample, one for summary_table + report. "
        "Inside a group job, plugin 2.8.0 runs the members one at a time (its job-step executor is started "
        "with `--jobs 1`), each as its own `srun` job step with a Snakemake start on the node: "
        + (
            f"{statistics.median(steps):.0f} s per member here (the job-step row, from sacct), "
            if steps
            else "a few seconds per member (see the group job's log under `logs/slurm/`), "
        )
        + "so the group job of the example's 6 per-sample jobs runs for about 6 times that although their "
        "commands take milliseconds, and it ends after the status check at `init` seconds, so Snakemake "
        "learns of it only at the next one, `2 x init + 10` seconds after submission. That is what limits the "
        "example as generated: two dependent Slurm jobs (fan-out, fan-in), each paying its members' job steps "
        "and a status-check wait (the share-inside-Slurm-jobs row), which no profile setting removes: a "
        "shorter `init` moves the later checks further apart (2 s gives checks at 2, 14 and 36 s), smaller "
        "groups run more jobs on the same 2 cores. Lower would need the plugin to run a group's members "
        "without a Snakemake start each (or in parallel).",
        "Before grouping (8 Slurm jobs, first status check after 40 s), as generated took 282 s (98x local).",
    ]
    if many:
        notes.append(
            f"The {many_samples}-sample rows run once each (minutes per run); jobs/s counts rule jobs "
            f"({2 * many_samples + 2}) per second of wall time of the whole run."
        )
    if not waits:
        notes.append("Per-job times not shown: sacct answered nothing (accounting off).")
    return Result(
        key="slurm",
        title="6. Real Slurm: the example workflow vs the local profile",
        method=(
            "`snakemake --profile profiles/slurm` on the test cluster of `tests/slurm/up.sh`, in a repository "
            f"rendered with the default answers and the site settings {', '.join(f'{k} `{v}`' for k, v in SITE.items())} "
            "filled into `profiles/slurm/config.yaml`, from an empty `results/`, "
            "against `snakemake --profile profiles/local` on the default rendering; wall time of the whole "
            "run including Snakemake start-up. Cases rotate order each repeat."
        ),
        headers=["case", "median", "min", "max", "/ local (median)"],
        rows=rows,
        checks=checks,
        notes=notes,
        repeats=repeats,
    )
