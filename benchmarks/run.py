#!/usr/bin/env python3
"""Benchmarks of the template's mechanisms against plain baselines; rewrites docs/performance.md.

    python benchmarks/run.py                  # full sizes (make bench), writes docs/performance.md
    python benchmarks/run.py --smoke --no-write
    python benchmarks/run.py --only dag --no-write --samples 10 1000
    python benchmarks/run.py --smoke --only slurm    # needs a Slurm cluster (tests/slurm/up.sh)
    python benchmarks/run.py --scale                 # also publish and verify 1,000,000 files (slow)
    python benchmarks/run.py --only scale --no-write # just that

The template is rendered into a fresh temp dir with the real cookiecutter; every measurement uses the
real ``snakemake`` CLI (the one next to this interpreter) in subprocesses. Each benchmark prints a
table and ``ratio[<name>] ...`` lines with the target and PASS or MISS.

The ``slurm`` benchmark needs a reachable Slurm cluster. A full run without one reports it as not run
(with the reason, also in the doc); ``--only slurm`` without one fails. Smoke runs leave it out unless
named with ``--only``, so that ``make test`` never puts benchmark jobs on the cluster its Slurm tests use.

The ``reflink`` benchmark makes an XFS (reflink=1) and a btrfs filesystem on loop devices (needs root,
``xfsprogs`` and ``btrfs-progs``); a filesystem it cannot make is reported as not run, with the reason.

The ``scale`` benchmark publishes and verifies 1,000,000 small files (``--scale-files``) once and reports
time and peak memory against ``cp -a`` + ``sha256sum``. It takes about 20 minutes and needs about 9 GB of
disk, 2 million inodes and 3 GB of memory, so a full run leaves it out (the doc then says so) unless given ``--scale``;
``--only scale`` runs it too, and ``--smoke`` runs it with a few hundred files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

import bench_cluster
import bench_dag
import bench_overhead
import bench_publish
import bench_reflink
import bench_scale
import bench_slurm
import bench_staging
from harness import MB, ROOT, BenchError, Context, Result, fmt_load, load, machine

BENCHMARKS = ("overhead", "staging", "publish", "dag", "cluster", "slurm", "reflink", "scale")
DOC = ROOT / "docs/performance.md"
FINDINGS = Path(__file__).with_name("findings.md")
FINDINGS_HEAD = "## Profiling"  # the doc ends with one section so headed, which points at findings.md
# dated profiling history stays out of the performance page: it is in findings.md, linked from there
FINDINGS_POINTER = [
    "## Profiling records",
    "",
    "Where each target was missed, what profiling found and the before/after pairs of each fix, with their",
    f"dates: [benchmarks/{FINDINGS.name}](../benchmarks/{FINDINGS.name}).",
]

FULL = dict(
    jobs=50,
    staging_mb=1024,
    small_files=10_000,
    small_bytes=1024,
    big_files=5,
    big_mb=1024,
    many_files=100,  # issue 23: full publish and republish of 100 x 100 MB
    many_mb=100,
    reflink_files=5,  # issue 23: 5 x 1 GB on XFS and btrfs with reflinks
    reflink_mb=1024,
    scale_files=1_000_000,
    samples=[10, 1_000, 10_000, 100_000],
    cluster_jobs=200,
    # at least 5 repeats of every case that runs for under a minute (publication on this VM varies up to 5x
    # between single runs); fewer only for runs of minutes: shadow (50 Snakemake starts), the largest sheet
    # (a dry run of 100,000 samples takes about 3 CPU minutes in Snakemake itself), the cluster runs
    repeats=dict(
        overhead=5,
        shadow=2,
        staging=6,
        publish_small=5,
        publish_big=5,
        publish_many=5,
        reflink=5,
        dag=5,
        dag_largest=1,
        cluster=1,
        slurm=5,
    ),
)
SMOKE = dict(  # each size the least that runs every code path: a smoke run checks the code, not the numbers
    jobs=2,
    staging_mb=1,
    small_files=50,
    small_bytes=1024,
    big_files=2,
    big_mb=1,
    many_files=3,
    many_mb=1,
    reflink_files=2,
    reflink_mb=1,
    scale_files=300,
    samples=[10, 20, 30],
    cluster_jobs=4,
    repeats=dict(
        overhead=1,
        shadow=1,
        staging=1,
        publish_small=1,
        publish_big=1,
        publish_many=1,
        reflink=1,
        dag=1,
        dag_largest=1,
        cluster=1,
        slurm=1,
    ),
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat (never writes the docs)")
    p.add_argument("--no-write", action="store_true", help="do not rewrite docs/performance.md")
    p.add_argument(
        "--update-doc",
        action="store_true",
        help="with --only: replace just these benchmarks' sections and summary rows in docs/performance.md",
    )
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these (implies --no-write)")
    p.add_argument("--repeats", type=int, help="repeats for every benchmark (default: per benchmark)")
    p.add_argument("--jobs", type=int, help="trivial jobs for the per-job overhead")
    p.add_argument("--staging-mb", type=int, help="input and output size of the staging job, MB")
    p.add_argument("--small-files", type=int, help="number of small files to publish")
    p.add_argument("--big-files", type=int, help="number of big files to publish")
    p.add_argument("--big-mb", type=int, help="size of each big file, MB")
    p.add_argument("--many-files", type=int, help="number of files of the many-big-files set (publish, republish)")
    p.add_argument("--many-mb", type=int, help="size of each file of the many-big-files set, MB")
    p.add_argument("--reflink-files", type=int, help="number of files published on the reflink filesystems")
    p.add_argument("--reflink-mb", type=int, help="size of each file published on the reflink filesystems, MB")
    p.add_argument(
        "--scale", action="store_true", help="also run the scale benchmark (1,000,000 files; tens of minutes)"
    )
    p.add_argument("--scale-files", type=int, help="number of small files of the scale benchmark")
    p.add_argument("--samples", type=int, nargs="+", help="sample-sheet sizes for the DAG benchmark")
    p.add_argument("--cluster-jobs", type=int, help="jobs through the simulated scheduler")
    p.add_argument("--slurm-samples", type=int, default=200, help="samples of the many-sample Slurm runs (default 200)")
    p.add_argument("--template", type=Path, default=ROOT, help="template to render (default: this repository)")
    p.add_argument("--tmp-dir", type=Path, help="where to make the temp dir (default: the system temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    p.add_argument("-v", "--verbose", action="store_true", help="print every command")
    return p.parse_args(argv)


def sizes(args) -> dict:
    base = dict(SMOKE if args.smoke else FULL)
    base["repeats"] = dict(base["repeats"])
    keys = ("jobs", "staging_mb", "small_files", "big_files", "big_mb", "many_files", "many_mb")
    keys += ("reflink_files", "reflink_mb", "scale_files", "samples", "cluster_jobs")
    for key in keys:
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    if args.repeats:
        base["repeats"] = {k: args.repeats for k in base["repeats"]}
    base["samples"] = sorted(set(base["samples"]))
    base["slurm_samples"] = args.slurm_samples
    return base


def run_one(name: str, ctx: Context, s: dict) -> Result:
    reps = s["repeats"]
    if name == "overhead":
        return bench_overhead.run(ctx, s["jobs"], reps["overhead"], reps["shadow"])
    if name == "staging":
        return bench_staging.run(ctx, s["staging_mb"] * MB, reps["staging"])
    if name == "publish":
        sets = (
            s["small_files"],
            s["small_bytes"],
            s["big_files"],
            s["big_mb"] * MB,
            s["many_files"],
            s["many_mb"] * MB,
        )
        return bench_publish.run(ctx, *sets, reps["publish_small"], reps["publish_big"], reps["publish_many"])
    if name == "reflink":
        return bench_reflink.run(ctx, s["reflink_files"], s["reflink_mb"] * MB, reps["reflink"])
    if name == "scale":
        return bench_scale.run(ctx, s["scale_files"], s["small_bytes"])
    if name == "dag":
        largest = max(s["samples"])
        dag_reps = {n: reps["dag_largest"] if n == largest else reps["dag"] for n in s["samples"]}
        return bench_dag.run(ctx, s["samples"], dag_reps)
    if name == "slurm":
        return bench_slurm.run(ctx, reps["slurm"], with_generated=not ctx.smoke, many_samples=s["slurm_samples"])
    return bench_cluster.run(ctx, s["cluster_jobs"], reps["cluster"])


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------
def text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def check_rows(result: Result) -> list[list[str]]:
    return [[c.name, c.text(), c.target or "(no target)", c.verdict] for c in result.checks]


def print_result(result: Result, smoke: bool) -> None:
    print(f"\n== {result.title}  [{result.seconds:.0f} s, {result.repeats_text}, load {fmt_load(result.load_before)}]")
    print(text_table(result.headers, result.rows))
    for c in result.checks:
        verdict = c.verdict if c.ok is not None else "info"
        if smoke and c.ok is not None:
            verdict += " (smoke sizes: not a verdict)"
        target = f"target {c.target}" if c.target else "no target"
        print(f"ratio[{result.key}] {c.name} = {c.text()} ({target}: {verdict})")
    for case, reason in result.not_run:
        print(f"not run[{result.key}] {case}: {reason}")
    for note in result.notes:
        print(f"  note: {note}")
    sys.stdout.flush()


def summary_rows(result: Result) -> list[list[str]]:
    checks = [c for c in result.checks if c.ok is not None] or result.checks[:1]  # no target: the headline
    title = result.title.split(" (")[0]
    rows = [[title, c.name, c.text(), c.target or "(none)", c.verdict] for c in checks]
    return rows + [[title, case, "-", "-", f"not run: {reason}"] for case, reason in result.not_run]


def section_lines(r: Result, remeasured: str = "") -> list[str]:
    return [
        f"## {r.title}",
        "",
        *([remeasured, ""] if remeasured else []),
        r.method,
        "",
        f"{r.repeats_text}; {r.seconds:.0f} s; load average before {fmt_load(r.load_before)}, "
        f"after {fmt_load(r.load_after)}.",
        "",
        md_table(r.headers, r.rows),
        "",
        md_table(["quantity", "measured", "target", "verdict"], check_rows(r)),  # the name says if not a median
        "",
        *[f"- {n}" for n in r.notes],
        *[f"- Not run: {case}: {reason}." for case, reason in r.not_run],
    ]


def update_doc(text: str, results: list[Result], remeasured: str) -> str:
    """`text` (docs/performance.md) with the sections and summary rows of `results` replaced.

    Used by --only ... --update-doc: one benchmark re-measured without rerunning the others; its
    section says when and how, the rest of the page keeps its own date. A benchmark the page does
    not have yet (added since the last full run, or left out of it, like `scale`) gets its section
    before the profiling records and its rows at the end of the summary table.
    """
    lines = text.splitlines()
    for r in results:
        head = f"## {r.title}"
        if head not in lines:
            absent = f"## {r.key}: not measured in this run"  # what render_doc wrote for a benchmark not run
            if absent in lines:
                start = lines.index(absent)
                end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
                del lines[start:end]
            at = next((i for i, line in enumerate(lines) if line.startswith(FINDINGS_HEAD)), len(lines))
            lines[at:at] = [head, ""]
        start = lines.index(head)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = [*section_lines(r, remeasured), ""]
        prefix = f"| {r.title.split(' (')[0]} |"
        old = [i for i, line in enumerate(lines) if line.startswith(prefix)]
        new = md_table(["x"] * 5, summary_rows(r)).splitlines()[2:]
        if old:
            lines[old[0] : old[-1] + 1] = new
            continue
        if "## Summary" not in lines:
            raise SystemExit(f"{DOC.relative_to(ROOT)} has no '## Summary' table; run the full `make bench` first")
        table = lines.index("## Summary") + 2  # the table's header line
        last = next(i for i in range(table, len(lines) + 1) if i == len(lines) or not lines[i].startswith("|"))
        lines[last:last] = new
    tail = [i for i, line in enumerate(lines) if line.startswith(FINDINGS_HEAD)]
    lines[tail[0] if tail else len(lines) :] = ["", *FINDINGS_POINTER] if not tail else FINDINGS_POINTER
    return "\n".join(lines) + "\n"


def render_doc(
    results: list[Result], info: dict, started: dt.datetime, total: float, s: dict, ctx: Context, not_run: dict
) -> str:
    summary = md_table(
        ["benchmark", "quantity", "measured", "target", "verdict"], [row for r in results for row in summary_rows(r)]
    )
    lines = [
        "# Performance",
        "",
        "What the template's mechanisms (the scratch wrapper, publication, the sample-sheet helpers, the",
        "simulated cluster and `profiles/slurm` on a real Slurm) cost, measured against plain baselines on one",
        "machine. This page is written by `make bench` (`python benchmarks/run.py`); rerun it after changing",
        "`workflow/vendor/scratch.py`, `workflow/vendor/publish.py`, `workflow/rules/common.smk` or a",
        "profile. `make test` runs the same code at tiny sizes (`tests/test_benchmarks_smoke.py`), which",
        "checks that it works, not the numbers; the Slurm benchmark is smoke-tested with the Slurm tests.",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC; the whole run took **{total / 60:.1f} minutes**.",
        "",
        md_table(
            ["machine", ""],
            [
                ["cores", str(info["cores"])],
                ["RAM", f"{info['ram_gb']} GB"],
                ["CPU", info["cpu"]],
                ["kernel", info["kernel"]],
                ["Python", info["python"]],
                ["Snakemake", info["snakemake"]],
                [
                    "temp dir filesystem",
                    f"{info['filesystem']} (the temp dir holds the rendered repository, scratch and releases)",
                ],
                ["load average (1/5/15 min) at start", fmt_load(info["load_start"])],
                ["load average at end", fmt_load(info["load_end"])],
            ],
        ),
        "",
        "Other processes (test suites) may have been running; each benchmark's table states the load",
        "average before and after it. Timings are wall-clock; each table gives the median with min and max",
        "over the repeats, and ratios are medians of ratios taken within a repeat.",
        "",
        "## Summary",
        "",
        summary,
        "",
        "## Method",
        "",
        "- `benchmarks/run.py` renders the template with the real `cookiecutter` into a fresh temp dir and",
        "  runs the real `snakemake` CLI in subprocesses, with `XDG_CACHE_HOME` and `TMPDIR` inside that dir",
        "  (so the profiles' scratch roots, derived from `system_tmpdir`, are there too).",
        "- Baselines run in the same invocation, interleaved with the measured case in rotating order.",
        f"- Sizes: {s['jobs']} trivial jobs; {s['staging_mb']} MB staged in and out; "
        f"{s['small_files']:,} files of {s['small_bytes']} B, {s['big_files']} files of {s['big_mb']} MB and "
        f"{s['many_files']} files of {s['many_mb']} MB published; {s['reflink_files']} files of "
        f"{s['reflink_mb']} MB on each reflink filesystem; {s['scale_files']:,} files of {s['small_bytes']} B "
        f"at scale (with `--scale`); sample sheets of {', '.join(f'{n:,}' for n in s['samples'])} samples; "
        f"{s['cluster_jobs']} cluster-sim jobs. Repeats: "
        + ", ".join(f"{k} {v}" for k, v in s["repeats"].items())
        + ".",
    ]
    if ctx.scontrol_stubbed:
        lines += [
            "- This machine has a Slurm client but the Slurm executor plugin's start-up probe",
            "  (`scontrol show config`, run by every `snakemake` process, timeout 10 s) can hang there; the",
            "  benchmarks put a stub `scontrol` that fails at once first on `PATH` so that up to 10 s of",
            "  site-specific start-up per process does not swamp the numbers. Real installs pay it wherever",
            "  `scontrol` is slow to answer.",
        ]
    for r in results:
        lines += ["", *section_lines(r)]
    for name, reason in not_run.items():
        lines += ["", f"## {name}: not measured in this run", "", f"Not run: {reason}."]
    lines += ["", *FINDINGS_POINTER]
    return "\n".join(lines) + "\n"


def _force_remove(path: Path) -> None:
    def onerror(func, p, _exc):
        parent = os.path.dirname(p)
        os.chmod(parent, stat.S_IRWXU)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, stat.S_IRWXU)
        func(p)

    shutil.rmtree(path, onerror=onerror)


def main(argv=None) -> int:
    args = parse_args(argv)
    write = not (args.no_write or args.smoke or args.only)
    s = sizes(args)
    chosen = [b for b in BENCHMARKS if (b in args.only if args.only else not (args.smoke and b == "slurm"))]
    not_run = {"slurm": reason} if "slurm" in chosen and (reason := bench_slurm.unavailable()) else {}
    if not_run and args.only:  # asked for by name: a missing cluster is an error, found before any work
        print(f"slurm benchmark cannot run: {not_run['slurm']}", file=sys.stderr)
        return 1
    if "scale" in chosen and not (args.only or args.smoke or args.scale):  # slow: only when asked for
        not_run["scale"] = "left out of this run (tens of minutes); `run.py --scale` adds it"
    for name, reason in not_run.items():
        print(f"{name}: not run: {reason}", file=sys.stderr)
    chosen = [b for b in chosen if b not in not_run]
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="template-bench-", dir=args.tmp_dir))
    results: list[Result] = []
    failed = []
    try:
        ctx = Context(tmp, args.template.resolve(), smoke=args.smoke, verbose=args.verbose)
        info = machine(ctx)
        info["load_start"] = load()
        print(
            f"machine: {info['cores']} cores, {info['ram_gb']} GB RAM, {info['cpu']}, Python {info['python']}, "
            f"Snakemake {info['snakemake']}, temp dir on {info['filesystem']}; load {fmt_load(info['load_start'])}"
        )
        print(f"mode: {'smoke' if args.smoke else 'full'}; sizes: {s}")
        for name in chosen:
            b0, load_before = time.perf_counter(), load()
            try:
                result = run_one(name, ctx, s)
            except (BenchError, RuntimeError, OSError) as exc:
                failed.append(name)
                print(f"\n== {name}: FAILED after {time.perf_counter() - b0:.0f} s\n{exc}", file=sys.stderr)
                continue
            result.seconds = time.perf_counter() - b0
            result.load_before, result.load_after = load_before, load()
            results.append(result)
            print_result(result, args.smoke)
        info["load_end"] = load()
    finally:
        if args.keep:
            print(f"temp dir kept: {tmp}")
        else:
            _force_remove(tmp)
    total = time.perf_counter() - t0
    print(f"\ntotal: {total:.0f} s ({total / 60:.1f} min)")
    if failed:
        print(f"FAILED: {', '.join(failed)}; {DOC.relative_to(ROOT)} not written", file=sys.stderr)
        return 1
    if args.update_doc and args.only and not args.smoke:
        given = argv if argv is not None else sys.argv[1:]
        local = {"--template", "--tmp-dir"}  # places on this machine stay out of the doc
        kept = [a for i, a in enumerate(given) if a not in local and (i == 0 or given[i - 1] not in local)]
        command = " ".join(["python benchmarks/run.py", *kept])
        remeasured = (
            f"Re-measured {started:%Y-%m-%d %H:%M} UTC on its own with `{command}` ({total / 60:.1f} minutes); "
            "the rest of this page is from the run dated at the top."
        )
        DOC.write_text(update_doc(DOC.read_text(), results, remeasured))
        print(f"updated {', '.join(r.key for r in results)} in {DOC.relative_to(ROOT)}")
    elif write:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(render_doc(results, info, started, total, s, ctx, not_run))
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
