"""4. DAG scale: ``snakemake -n`` on the example with many samples vs a bare Snakefile of the same shape.

The sample sheets and one tiny input file per sample are generated in the rendered repository. The
bare Snakefile (``workflow/bench_bare.smk``) has the same four rules with the same inputs, outputs,
logs, params, ``conda:`` and ``temp()``/``report()`` markers, but none of our helpers: no config or
sample-sheet validation, no ``scratch()``, no publish set, no wildcard constraints. It sits next to
the real Snakefile so both pick up the same workflow profile, and both run with the same
``--profile profiles/local -n``.
"""

from __future__ import annotations

from harness import Check, Context, Result, Stats, load

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


def _dry_run(ctx: Context, snakefile: str | None, n: int) -> float:
    args = ["-n", "--profile", "profiles/local", "-q", "--config", f"samples=config/bench_samples_{n}.tsv"]
    if snakefile:
        args = ["-s", snakefile, *args]
    seconds, _ = ctx.snakemake(*args, timeout=1800)
    return seconds


def run(ctx: Context, sizes: list[int], repeats: dict[int, int]) -> Result:
    before = load()
    (ctx.repo / "workflow/bench_bare.smk").write_text(BARE)
    make_samples(ctx, sizes)
    _dry_run(ctx, None, sizes[0])  # warm-up, not counted
    real: dict[int, list[float]] = {}
    bare: dict[int, list[float]] = {}
    for n in sizes:
        for r in range(repeats[n]):
            for variant in ("real", "bare") if r % 2 == 0 else ("bare", "real"):
                if variant == "real":
                    real.setdefault(n, []).append(_dry_run(ctx, None, n))
                else:
                    bare.setdefault(n, []).append(_dry_run(ctx, "workflow/bench_bare.smk", n))
    rows = []
    ratios = {}
    for n in sizes:
        r, b = Stats(real[n]), Stats(bare[n])
        ratios[n] = r.median / b.median
        rows.append([f"{n:,}", *r.cells("{:.2f} s"), *b.cells("{:.2f} s"), f"{ratios[n]:.2f}"])

    def marginal(times: dict[int, list[float]], lo: int, hi: int) -> float:
        """Median seconds per extra sample between two sizes."""
        return (Stats(times[hi]).median - Stats(times[lo]).median) / (hi - lo)

    checks = [Check(f"example / bare at {sizes[-1]:,} samples", ratios[sizes[-1]], "<= 1.2", ratios[sizes[-1]] <= 1.2)]
    notes = []
    if len(sizes) >= 3:
        lo, mid, hi = sizes[-3], sizes[-2], sizes[-1]
        growth = {}
        for label, times in (("example", real), ("bare", bare)):
            m1, m2 = marginal(times, lo, mid), marginal(times, mid, hi)
            growth[label] = m2 / m1 if m1 > 0 else float("inf")
            notes.append(
                f"{label}: {m1 * 1000:.2f} ms per extra sample from {lo:,} to {mid:,}, "
                f"{m2 * 1000:.2f} ms from {mid:,} to {hi:,} (growth factor {growth[label]:.2f}; "
                f"linear = 1, quadratic ≈ {(hi + mid) / (mid + lo):.0f})."
            )
        checks.append(
            Check(
                "growth of ms/sample, example (linear = 1)",
                growth["example"],
                "<= 1.5",
                growth["example"] <= 1.5,
            )
        )
        checks.append(Check("growth of ms/sample, bare (linear = 1)", growth["bare"]))
    return Result(
        key="dag",
        title="4. DAG scale (`snakemake -n`)",
        method=(
            "`snakemake -n -q --profile profiles/local --config samples=SHEET` on the rendered "
            "example, and the same with `-s workflow/bench_bare.smk`, for each sheet size; wall time of the "
            "whole process (start-up, parsing, sample-sheet checks, DAG). The two alternate within a repeat. "
            "Growth factor: seconds per extra sample in the upper interval over the lower one."
        ),
        headers=["samples", "example median", "min", "max", "bare median", "min", "max", "ratio"],
        rows=rows,
        checks=checks,
        notes=notes,
        load_before=before,
        load_after=load(),
        repeats=max(repeats.values()),
    )
