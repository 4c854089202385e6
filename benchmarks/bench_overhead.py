"""1. Per-job overhead: N trivial jobs wrapped by scratch() vs the same rule plain vs shadow: copy-minimal vs
shadow: "minimal", which the profile's shadow_route: 'scratch' hands to scratch.py (workflow/vendor/shadow_route.py).

The rules live in a small Snakefile written next to the rendered workflow's own Snakefile. It sets the
same configfile and includes ``rules/common.smk`` and ``rules/contract.smk``, so the wrapped rule uses the real ``scratch()``
helper and the real ``workflow/vendor/scratch.py``. Each run is a whole ``snakemake`` process with
``--profile profiles/local --cores 2``; the metric is the wall time difference per job. The outputs
go under ``work/bench/``: the contract refuses a plain or shadow rule that writes under ``results/``.
"""

from __future__ import annotations

import shutil
import sys

from harness import Check, Context, Result, Stats, paired, scratch_record

SNAKEFILE = "workflow/bench_overhead.smk"
OUTPUT_DIR = "work/bench"  # the rules' outputs (RULES below), one folder per variant
RULES = """# Benchmark rules (written by benchmarks/bench_overhead.py): the same trivial job four ways.
configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/contract.smk"


FINAL_OUTPUTS = {}  # none: the benchmark's jobs write under work/


rule bench_plain:
    output:
        "work/bench/plain/{i}.txt",
    shell:
        "echo > {output:q}"


rule bench_wrapped:
    output:
        "work/bench/wrapped/{i}.txt",
    shell:
        scratch("echo > {output:q}")


rule bench_shadow:
    output:
        "work/bench/shadow/{i}.txt",
    shadow:
        "copy-minimal"
    shell:
        "echo > {output:q}"


rule bench_route:
    output:
        "work/bench/route/{i}.txt",
    shadow:
        "minimal"
    shell:
        "echo > {output:q}"
"""
VARIANTS = ("plain", "wrapped", "shadow", "route")
SPAWNED = ("shadow", "route")  # a separate Snakemake process per job: about a second each


def write_rules(ctx: Context) -> None:
    (ctx.repo / SNAKEFILE).write_text(RULES)


def targets(variant: str, n: int) -> list[str]:
    return [f"{OUTPUT_DIR}/{variant}/{i}.txt" for i in range(n)]


def snakemake_args(ctx: Context, targets_: list[str], profile: str = "local") -> list[str]:
    args = [*targets_, "-s", SNAKEFILE, "--profile", f"profiles/{profile}", "-q"]
    if profile == "local":
        args += ["--cores", "2", "--shadow-prefix", str(ctx.tmp / "shadow-prefix")]
    return args


def _wrapper_alone(ctx: Context, n: int) -> tuple[Stats, Stats]:
    """scratch.py vs bash for the same command, serially, no Snakemake: seconds per call."""
    work = ctx.repo / OUTPUT_DIR / "alone"
    scratch_py = ctx.repo / "workflow/vendor/scratch.py"
    root = ctx.tmp / "tmp/overhead-alone-scratch"
    bash_t, wrap_t = [], []
    work.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        out = f"{OUTPUT_DIR}/alone/{i}.txt"
        seconds, _ = ctx.run(["bash", "-euo", "pipefail", "-c", f"echo > {out}"], cwd=ctx.repo)
        bash_t.append(seconds)
        (ctx.repo / out).unlink()
        cmd = [sys.executable, scratch_py, "shell", "--rule", "bench_wrapped", "--wildcards", str(i)]
        cmd += ["--tmpdir", root, "--scratch-staging", "link", "--scratch-on-failure", "keep"]
        cmd += ["--input", "--output", out, "--log"]
        seconds, proc = ctx.run(cmd, cwd=ctx.repo, stdin=f"echo > {out}\n")
        scratch_record(proc.stderr)
        wrap_t.append(seconds)
    shutil.rmtree(work, ignore_errors=True)
    return Stats(bash_t), Stats(wrap_t)


def run(ctx: Context, n: int, repeats: int, shadow_repeats: int) -> Result:
    write_rules(ctx)
    bench = ctx.repo / OUTPUT_DIR
    # warm-up (not counted): first run in the repository creates .snakemake/ and compiles caches
    ctx.snakemake(*snakemake_args(ctx, targets("plain", 1)))
    shutil.rmtree(bench, ignore_errors=True)
    walls: dict[str, list[float]] = {v: [] for v in (*VARIANTS, "nothing")}
    for r in range(repeats):
        turn = r % len(VARIANTS)
        order = VARIANTS[turn:] + VARIANTS[:turn]  # rotate, so drift in machine load spreads evenly
        if r >= shadow_repeats:  # shadow jobs cost about a second each: fewer repeats keep the run short
            order = tuple(v for v in order if v not in SPAWNED)
        for variant in order:
            shutil.rmtree(bench / variant, ignore_errors=True)
            seconds, _ = ctx.snakemake(*snakemake_args(ctx, targets(variant, n)))
            walls[variant].append(seconds)
        # the same invocation with every output present: start-up and DAG, no job
        seconds, _ = ctx.snakemake(*snakemake_args(ctx, targets("plain", n)))
        walls["nothing"].append(seconds)
    alone_n = max(5, n // 2)
    bash_alone, wrap_alone = _wrapper_alone(ctx, alone_n)
    shutil.rmtree(bench, ignore_errors=True)

    ms = 1000.0 / n
    k = len(walls["shadow"])  # shadow ran in the first k repeats: pair it with those
    per_job = {v: paired(walls[v], walls["nothing"][: len(walls[v])], lambda a, b: (a - b) * ms) for v in VARIANTS}
    added = paired(walls["wrapped"], walls["plain"], lambda a, b: (a - b) * ms)
    shadow_added = paired(walls["shadow"], walls["plain"][:k], lambda a, b: (a - b) * ms)
    route_added = paired(walls["route"], walls["plain"][:k], lambda a, b: (a - b) * ms)
    route_vs_shadow = paired(walls["route"], walls["shadow"], lambda a, b: (a - b) * ms)
    wrapped_vs_plain = paired(walls["wrapped"], walls["plain"], lambda a, b: a / b)
    wrapped_vs_shadow = paired(walls["wrapped"][:k], walls["shadow"], lambda a, b: a / b)
    labels = {
        "plain": "plain rule (`echo > {output}`)",
        "wrapped": "same rule through `scratch()`",
        "shadow": '`shadow: "copy-minimal"` + `--shadow-prefix`',
        "route": "`shadow: \"minimal\"` through `shadow_route: 'scratch'`",
    }
    rows = []
    for v in VARIANTS:
        rows.append([labels[v], *Stats(walls[v]).cells("{:.2f} s"), f"{per_job[v].median:.1f} ms"])
    rows.append(["nothing to do (all outputs present)", *Stats(walls["nothing"]).cells("{:.2f} s"), "-"])
    rows.append(["wrapper added per job (wrapped − plain)", *added.cells("{:.1f} ms"), ""])
    rows.append(["shadow added per job (shadow − plain)", *shadow_added.cells("{:.1f} ms"), ""])
    rows.append(["shadow route added per job (route − plain)", *route_added.cells("{:.1f} ms"), ""])
    rows.append(
        ["shadow route against Snakemake's shadow, per job (route − shadow)", *route_vs_shadow.cells("{:.1f} ms"), ""]
    )
    rows.append(
        [
            f"`scratch.py shell` alone, serial, per call ({alone_n} calls)",
            *wrap_alone.scaled(1000).cells("{:.1f} ms"),
            "",
        ]
    )
    rows.append(
        [f"`bash -c` alone, serial, per call ({alone_n} calls)", *bash_alone.scaled(1000).cells("{:.1f} ms"), ""]
    )
    checks = [
        Check("wrapper ms/job added over plain", added.median, "<= 50 ms/job", added.median <= 50, unit="ms/job"),
        Check("wrapped / shadow (wall)", wrapped_vs_shadow.median, "<= 1.00", wrapped_vs_shadow.median <= 1.0),
        Check("wrapped / plain (wall)", wrapped_vs_plain.median),
        Check("shadow route ms/job added over plain", route_added.median, unit="ms/job"),
    ]
    alone_extra = (wrap_alone.median - bash_alone.median) * 1000
    notes = [
        f"Run with 2 cores, so two jobs run at once: the wall time per job is roughly half the work per job. "
        f"A wrapped job starts one extra Python process (`scratch.py`), makes and removes a scratch dir, "
        f"fsyncs and renames the output; run serially without Snakemake that costs "
        f"{alone_extra:.0f} ms per call more than `bash -c` alone.",
        f"Snakemake's local executor runs a shadow job in a separate `python -m snakemake` process "
        "(`run_single_job` in `snakemake/executors/local.py` spawns every shadow or `run:` job unless "
        f"`--force-use-threads`), hence {shadow_added.median:+.0f} ms/job against {added.median:+.1f} ms/job "
        "for the wrapper.",
        f"The shadow route's jobs are spawned the same way, and then staged by `scratch.py` in the profile's "
        f"scratch root (the pin check once per process, the fsync and rename of the output): "
        f"{route_added.median:+.0f} ms/job over plain, {route_vs_shadow.median:+.0f} ms/job against "
        "Snakemake's own shadow.",
    ]
    return Result(
        key="overhead",
        title=f"1. Per-job overhead ({n} trivial jobs)",
        method=(
            f"`snakemake -s {SNAKEFILE} --profile profiles/local --cores 2 --shadow-prefix DIR` building {n} "
            "targets of one rule; wall time of the whole process. The four variants run in rotating order "
            'within each repeat; "nothing to do" is the same invocation with every output present '
            "(start-up and DAG only), which ms/job subtracts. Added ms/job is the paired difference "
            f"(wrapped − plain) / {n} within a repeat."
        ),
        headers=["case", "median", "min", "max", "ms/job over nothing-to-do (median)"],
        rows=rows,
        checks=checks,
        notes=notes,
        repeats=repeats,
        repeats_note=f"{repeats} repeats; shadow in the first {k} only (about 1 s per shadow job)",
    )
