"""2. Staging throughput: one job reading N bytes and writing N bytes through the wrapper in copy mode.

The wrapped job is ``scratch.py shell`` called with the same arguments ``scratch()`` in
``workflow/rules/contract.smk`` builds (staging ``copy``), its command ``cp {input:q} {output:q}``
on stdin. The wrapper's own ``[scratch]`` record gives the seconds spent staging in and out.
Baselines, measured in the same repeat on the same disk: ``cp`` of the same bytes, ``cp`` followed
by an fsync of the copy (``sync FILE``), and the same job without the wrapper (``bash -c 'cp ...'``).
Every timed step starts after ``sync`` so that one step's writeback is not billed to the next.
"""

from __future__ import annotations

import shutil
import sys

from harness import MB, Check, Context, Result, Stats, fill_file, load, paired, scratch_record, settle


def run(ctx: Context, nbytes: int, repeats: int) -> Result:
    before = load()
    work = ctx.tmp / "staging"
    root = ctx.tmp / "tmp/staging-scratch"
    src = "data/in.bin"
    fill_file(work / src, nbytes, seed=1)
    (work / "results").mkdir(parents=True, exist_ok=True)
    scratch_py = ctx.repo / "workflow/scripts/scratch.py"
    cases = ("cp", "cp+fsync", "plain job", "wrapped job")
    t: dict[str, list[float]] = {c: [] for c in (*cases, "stage_in", "run", "stage_out")}
    for r in range(repeats):
        order = cases[r % 4 :] + cases[: r % 4]
        for case in order:
            out = f"results/{case.replace(' ', '-').replace('+', '-')}.bin"
            settle()
            if case == "cp":
                seconds, _ = ctx.run(["cp", src, out], cwd=work)
            elif case == "cp+fsync":
                seconds, _ = ctx.run(["sh", "-c", f"cp {src} {out} && sync {out}"], cwd=work)
            elif case == "plain job":
                seconds, _ = ctx.run(["bash", "-euo", "pipefail", "-c", f"cp {src} {out}"], cwd=work)
            else:
                cmd = [sys.executable, scratch_py, "shell", "--rule", "staging", "--wildcards", ""]
                cmd += ["--tmpdir", root, "--scratch-staging", "copy", "--scratch-on-failure", "remove"]
                cmd += ["--input", src, "--output", out, "--log"]
                seconds, proc = ctx.run(cmd, cwd=work, stdin=f"cp {src} {out}\n")
                record = scratch_record(proc.stderr)
                if record["in_bytes"] != nbytes or record["out_bytes"] != nbytes:
                    raise RuntimeError(f"unexpected byte counts in {record}")
                t["stage_in"].append(record["stage_in_s"])
                t["run"].append(record["run_s"])
                t["stage_out"].append(record["stage_out_s"])
            t[case].append(seconds)
            (work / out).unlink()
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)

    mb = nbytes / MB
    staging = paired(t["stage_in"], t["stage_out"], lambda a, b: a + b)
    cp_same_bytes = Stats([2 * x for x in t["cp"]])  # the wrapper moves N bytes in and N bytes out
    staging_vs_cp = paired(staging.values, cp_same_bytes.values, lambda a, b: a / b)
    stage_in_vs_cp = paired(t["stage_in"], t["cp"], lambda a, b: a / b)
    job_vs_plain = paired(t["wrapped job"], t["plain job"], lambda a, b: a / b)
    job_vs_plain_cp = paired(
        t["wrapped job"], [p + c for p, c in zip(t["plain job"], t["cp"], strict=True)], lambda a, b: a / b
    )

    def row(label: str, values: list[float]) -> list[str]:
        s = Stats(values)
        return [label, *s.cells("{:.3f} s"), f"{mb / s.median:.0f}" if s.median > 0 else "-"]

    size = f"{nbytes / MB / 1024:.0f} GB" if nbytes >= 1 << 30 else f"{mb:.0f} MB"
    rows = [
        row(f"`cp` ({size})", t["cp"]),
        row(f"`cp` + `sync FILE` ({size})", t["cp+fsync"]),
        row("plain job: `bash -c 'cp in out'`", t["plain job"]),
        row("wrapped job (copy mode), whole process", t["wrapped job"]),
        row("… stage-in: copy input into scratch", t["stage_in"]),
        row("… the command (`cp` inside scratch)", t["run"]),
        row("… stage-out: fsync + rename (same filesystem)", t["stage_out"]),
        row("… staging total (in + out)", staging.values),
    ]
    checks = [
        Check(
            "staging (in + out) / cp of the same bytes", staging_vs_cp.median, "<= 1.15", staging_vs_cp.median <= 1.15
        ),
        Check("stage-in / cp", stage_in_vs_cp.median),
        Check("wrapped job / plain job", job_vs_plain.median),
        Check("wrapped job / (plain job + cp of the input)", job_vs_plain_cp.median),
    ]
    notes = [
        "Copy mode moves the input once more than a plain job does, by design (inputs are read from "
        "node-local disk, not the shared filesystem); the fair comparison for the staging itself is `cp` "
        "of the same bytes: N in and N out.",
        "On the same filesystem the output comes back by fsync + rename, not by a copy: the stage-out "
        "time is the cost of making the result durable before it appears under `results/`.",
        f"The job's own `cp` inside scratch ({Stats(t['run']).median:.2f} s, range {Stats(t['run']).min:.2f}–"
        f"{Stats(t['run']).max:.2f} s) starts right after stage-in has left {size} of dirty pages, so the "
        "kernel throttles its writes while they are flushed; the plain job starts after `sync`. That, not the "
        "wrapper's own work, is most of the gap between the wrapped and the plain job.",
    ]
    return Result(
        key="staging",
        title=f"2. Staging throughput ({size} in, {size} out, copy mode)",
        method=(
            "`scratch.py shell --scratch-staging copy` with the arguments `scratch()` builds, command "
            "`cp {input:q} {output:q}`; scratch root in the same temp dir (same disk). Staging seconds come "
            "from the wrapper's own `[scratch]` record. The baseline for the target is `cp` of the same "
            "bytes (2 × one `cp` measured in the same repeat). Cases rotate within each repeat and each "
            "starts after `sync`."
        ),
        headers=["case", "median", "min", "max", "MB/s (median)"],
        rows=rows,
        checks=checks,
        notes=notes,
        load_before=before,
        load_after=load(),
        repeats=repeats,
    )
