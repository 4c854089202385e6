"""4. DAG scale: ``snakemake -n`` on the example with many samples vs a bare Snakefile of the same shape.

The sample sheets and one tiny input file per sample are generated in the rendered repository. The
bare Snakefile (``workflow/bench_bare.smk``) has the same four rules with the same inputs, outputs,
logs, params, ``conda:`` and ``temp()``/``report()`` markers, but none of our helpers: no config or
sample-sheet validation, no ``scratch()``, no publish set, no wildcard constraints. It sits next to
the real Snakefile so both pick up the same workflow profile, and both run with the same
``--profile profiles/local -n``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time

from harness import BenchError, Check, Context, Result, Stats, paired, tool

BARE = """# Bare baseline (written by benchmarks/bench_dag.py): the example's rule shapes, none of its helpers.
import csv

with open(config["samples"], newline="") as fh:
    SAMPLES = {row["sample"]: row for row in csv.DictReader(fh, delimiter="\\t")}
SAMPLE_IDS = sorted(SAMPLES)


rule all:
    input:
        expand("results/samples/{sample}.summary.json", sample=SAMPLE_IDS),
        "results/tables/summary.tsv",
        "results/report.html",


rule tokenize:
    input:
        text=lambda wc: "data/inputs/" + SAMPLES[wc.sample]["path"],
    output:
        temp("work/tokens/{sample}.tokens"),
    log:
        "logs/tokenize/{sample}.log",
    conda:
        "envs/base.yaml"
    params:
        min_length=3,
    shell:
        "LC_ALL=C tr -cs 'A-Za-z0-9' '\\\\n' < {input.text:q} | tr 'A-Z' 'a-z'"
        " | awk -v min={params.min_length} 'length($0) >= min' | LC_ALL=C sort > {output:q} 2> {log:q}"


rule summarize_sample:
    input:
        tokens="work/tokens/{sample}.tokens",
        text=lambda wc: "data/inputs/" + SAMPLES[wc.sample]["path"],
    output:
        "results/samples/{sample}.summary.json",
    log:
        "logs/summarize_sample/{sample}.log",
    conda:
        "envs/base.yaml"
    params:
        group=lambda wc: SAMPLES[wc.sample]["group"],
        top_words=5,
    script:
        "scripts/summarize_sample.py"


rule summary_table:
    input:
        summaries=expand("results/samples/{sample}.summary.json", sample=SAMPLE_IDS),
    output:
        "results/tables/summary.tsv",
    log:
        "logs/summary_table/summary_table.log",
    conda:
        "envs/base.yaml"
    script:
        "scripts/summary_table.py"


rule report:
    input:
        table="results/tables/summary.tsv",
    output:
        report("results/report.html", caption="report/report.rst", category="Summary"),
    log:
        "logs/report/report.log",
    conda:
        "envs/base.yaml"
    params:
        title="benchmark",
    script:
        "scripts/render_report.py"
"""


def make_samples(ctx: Context, sizes: list[int]) -> None:
    inputs = ctx.repo / "data/inputs/bench"
    inputs.mkdir(parents=True, exist_ok=True)
    lines = ["sample\tpath\tgroup"]
    for i in range(max(sizes)):
        (inputs / f"s{i:05d}.txt").write_text(f"sample {i} has a few words of text in it\n")
        lines.append(f"s{i:05d}\tbench/s{i:05d}.txt\tgroup{i % 3}")
    for n in sizes:
        (ctx.repo / f"config/bench_samples_{n}.tsv").write_text("\n".join(lines[: n + 1]) + "\n")


def _dry_run(ctx: Context, snakefile: str | None, n: int) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in MB, CPU seconds) of one ``snakemake -n`` on the sheet of n samples."""
    args = ["-n", "--profile", "profiles/local", "-q", "--config", f"samples=config/bench_samples_{n}.tsv"]
    if snakefile:
        args = ["-s", snakefile, *args]
    return _timed_with_peak(ctx, [tool("snakemake"), *args], timeout=1800)


def _timed_with_peak(ctx: Context, args: list[str], timeout: float) -> tuple[float, float, float]:
    """Run a command; (wall seconds, peak RSS in MB, user + system CPU seconds) of it and its children.

    os.wait4 returns the resource use of exactly this child, so every run is measured on its own
    (RUSAGE_CHILDREN of this process would keep the largest peak of all earlier runs).
    """
    if ctx.verbose:
        print("  $", " ".join(args), file=sys.stderr, flush=True)
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, cwd=ctx.repo, env=ctx.env, stdout=out, stderr=subprocess.STDOUT)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        if proc.returncode != 0:
            out.seek(0)
            tail = out.read().decode(errors="replace")[-3000:]
            why = f"was killed after {timeout} s" if seconds >= timeout else f"exited with {proc.returncode}"
            raise BenchError(f"{' '.join(args[:8])} ... {why}:\n{tail}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime  # ru_maxrss is in KiB on Linux


def run(ctx: Context, sizes: list[int], repeats: dict[int, int]) -> Result:
    (ctx.repo / "workflow/bench_bare.smk").write_text(BARE)
    make_samples(ctx, sizes)
    _dry_run(ctx, None, sizes[0])  # warm-up, not counted
    wall: dict[str, dict[int, list[float]]] = {"example": {}, "bare": {}}
    peak: dict[str, dict[int, list[float]]] = {"example": {}, "bare": {}}
    cpu: dict[str, dict[int, list[float]]] = {"example": {}, "bare": {}}
    for n in sizes:
        for r in range(repeats[n]):
            for variant in ("example", "bare") if r % 2 == 0 else ("bare", "example"):
                seconds, mb, cpu_seconds = _dry_run(ctx, "workflow/bench_bare.smk" if variant == "bare" else None, n)
                wall[variant].setdefault(n, []).append(seconds)
                peak[variant].setdefault(n, []).append(mb)
                cpu[variant].setdefault(n, []).append(cpu_seconds)
    smallest, largest = sizes[0], sizes[-1]

    def per_sample_ms(variant: str, n: int) -> float:
        """Median ms per sample beyond the smallest sheet (start-up and parsing taken out)."""
        times = wall[variant]
        return (Stats(times[n]).median - Stats(times[smallest]).median) / (n - smallest) * 1000

    rows = []
    ratios = {}
    for n in sizes:
        r, b = Stats(wall["example"][n]), Stats(wall["bare"][n])
        ratios[n] = paired(wall["example"][n], wall["bare"][n], lambda a, b: a / b).median
        per = [f"{per_sample_ms(v, n):.2f}" if n > smallest else "-" for v in ("example", "bare")]
        mem = [f"{Stats(peak[v][n]).median:.0f} MB" for v in ("example", "bare")]
        rows.append([f"{n:,}", *r.cells("{:.2f} s"), *b.cells("{:.2f} s"), f"{ratios[n]:.2f}", per[0], per[1], *mem])

    checks = [Check(f"example / bare at {largest:,} samples", ratios[largest], "<= 1.2", ratios[largest] <= 1.2)]
    notes = []
    if len(sizes) >= 3:
        mid = sizes[-2]
        growth = {
            v: per_sample_ms(v, largest) / per_sample_ms(v, mid) if per_sample_ms(v, mid) > 0 else float("inf")
            for v in ("example", "bare")
        }
        checks.append(
            Check(
                f"ms/sample at {largest:,} over ms/sample at {mid:,}, example (linear = 1)",
                growth["example"],
                "<= 1.3",
                growth["example"] <= 1.3,
            )
        )
        checks.append(Check(f"ms/sample at {largest:,} over ms/sample at {mid:,}, bare (linear = 1)", growth["bare"]))
        for v in ("example", "bare"):
            notes.append(
                f"{v}: {per_sample_ms(v, mid):.2f} ms per sample at {mid:,}, {per_sample_ms(v, largest):.2f} ms "
                f"at {largest:,} (growth {growth[v]:.2f}; linear = 1, quadratic ≈ {largest / mid:.0f})."
            )
    # CPU time does not wait for other processes: a cross-check of the wall-time ratio on a busy machine
    cpu_ratios = [paired(cpu["example"][n], cpu["bare"][n], lambda a, b: a / b).median for n in sizes]
    notes.append(
        "CPU seconds (user + system), example / bare: "
        + ", ".join(
            f"{Stats(cpu['example'][n]).median:.1f} / {Stats(cpu['bare'][n]).median:.1f} = {q:.2f} at {n:,}"
            for n, q in zip(sizes, cpu_ratios, strict=True)
        )
        + "."
    )
    for v in ("example", "bare"):
        extra_kb = (Stats(peak[v][largest]).median - Stats(peak[v][smallest]).median) * 1024 / (largest - smallest)
        notes.append(f"{v}: peak memory grows by {extra_kb:.1f} KB per sample ({smallest:,} to {largest:,} samples).")
    for v in ("example", "bare"):
        checks.append(Check(f"peak memory, {v} at {largest:,} samples", Stats(peak[v][largest]).median, unit="MB"))
    memory_ratio = paired(peak["example"][largest], peak["bare"][largest], lambda a, b: a / b).median
    checks.append(Check(f"peak memory example / bare at {largest:,} samples", memory_ratio))
    counts = sorted(set(repeats.values()), reverse=True)
    repeats_note = f"{counts[0]} repeat(s), {repeats[largest]} at {largest:,} samples" if len(counts) > 1 else ""
    return Result(
        key="dag",
        title="4. DAG scale (`snakemake -n`)",
        method=(
            "`snakemake -n -q --profile profiles/local --config samples=SHEET` on the rendered "
            "example, and the same with `-s workflow/bench_bare.smk`, for each sheet size; wall time of the "
            "whole process (start-up, parsing, sample-sheet checks, DAG). The two alternate within a repeat; "
            "the ratio is the median of per-repeat ratios. ms/sample: median wall time minus the median at "
            f"{smallest:,} samples (start-up), per extra sample. Peak memory: the largest resident set of the "
            "snakemake process and the children it waited for (`wait4` rusage, each run on its own), median."
        ),
        headers=[
            "samples",
            "example median",
            "min",
            "max",
            "bare median",
            "min",
            "max",
            "ratio",
            "example ms/sample",
            "bare ms/sample",
            "example peak RSS",
            "bare peak RSS",
        ],
        rows=rows,
        checks=checks,
        notes=notes,
        repeats=max(repeats.values()),
        repeats_note=repeats_note,
    )
