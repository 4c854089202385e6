"""`make bench` at tiny sizes: every benchmark runs end to end and reports its ratios.

This checks that the benchmark code works against the current template (render, real snakemake CLI,
wrapper, publish, simulated cluster); it does not check the numbers, which mean nothing at these sizes.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import isolated_env

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs/performance.md"
BENCHMARKS = ("overhead", "staging", "publish", "dag", "cluster", "scale")
REFLINK_FILESYSTEMS = {"xfs": "mkfs.xfs", "btrfs": "mkfs.btrfs"}

pytestmark = pytest.mark.xdist_group("benchmarks-smoke")  # one smoke run, shared by the tests below


def run_benchmarks(tmp, *args, env=None, timeout=300):
    """`benchmarks/run.py ARGS` with its temp dir and caches under tmp; the CompletedProcess."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/run.py"), *args, "--tmp-dir", str(tmp)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or isolated_env(tmp),
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench-smoke")
    doc_before = DOC.read_bytes() if DOC.exists() else None
    proc = run_benchmarks(tmp, "--smoke", "--no-write")
    doc_after = DOC.read_bytes() if DOC.exists() else None
    return proc, tmp, doc_before, doc_after


def test_smoke_run_of_all_benchmarks_but_slurm_exits_zero(smoke):
    proc = smoke[0]
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_smoke_run_prints_a_ratio_for_each_benchmark(smoke, benchmark):
    proc = smoke[0]
    assert re.search(rf"^ratio\[{benchmark}\] .+ = \d+\.\d+x ", proc.stdout, re.M), proc.stdout[-4000:]


@pytest.mark.parametrize(
    "line",
    [
        # like with like: durable stage-out and publish against baselines that flush too (issue 23)
        r"ratio\[staging\] staging \(in \+ out\) / \(cp \+ sync FILE\) of the same bytes = ",
        r"ratio\[publish\] small: publish / \(cp -a \+ sha256sum \+ sync\), worst of \d+ repeat\(s\) = ",
        # the many big files (100 x 100 MB at full size): full publish and republish after one changed
        r"ratio\[publish\] many: publish / \(cp -a \+ openssl dgst -sha256 \+ sync\), worst of \d+ repeat\(s\) = ",
        r"ratio\[publish\] many: republish after 1 of N changed / full publish = ",
        r"ratio\[publish\] many: disk growth of the republish = ",
        r"ratio\[scale\] publish / \(cp -a \+ sha256sum \+ sync\) = ",
        r"ratio\[scale\] verify / sha256sum -c SHA256SUMS = ",
        r"ratio\[scale\] publish: peak memory = \d+\.\d MB ",
    ],
)
def test_smoke_run_prints_the_issue_23_ratios(smoke, line):
    proc = smoke[0]
    assert re.search(rf"^{line}", proc.stdout, re.M), proc.stdout[-6000:]


@pytest.mark.parametrize("filesystem", REFLINK_FILESYSTEMS)
def test_smoke_run_publishes_on_reflink_filesystems_or_says_why_not(smoke, filesystem):
    proc = smoke[0]
    measured = rf"^ratio\[reflink\] {filesystem}: full publish / hashing the same bytes alone = \d+\.\d+x "
    not_run = rf"^not run\[reflink\] {filesystem}: \S.*"
    sbin = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    can = os.geteuid() == 0 and shutil.which(REFLINK_FILESYSTEMS[filesystem], path=sbin)
    if can and os.path.exists("/dev/loop-control"):  # everything it needs is here: a number, not an excuse
        assert re.search(measured, proc.stdout, re.M), proc.stdout[-6000:]
    else:
        assert re.search(not_run, proc.stdout, re.M), proc.stdout[-6000:]
    assert not list(Path(smoke[1]).glob("template-bench-*")), "images and mount points removed"


def test_smoke_run_never_writes_the_performance_doc(smoke):
    _, _, before, after = smoke
    assert before == after


def test_smoke_run_removes_its_temp_dir(smoke):
    tmp = smoke[1]
    assert not any(p.name.startswith("template-bench-") for p in tmp.iterdir())


def test_smoke_run_leaves_the_slurm_benchmark_out_so_make_test_puts_no_jobs_on_the_cluster(smoke):
    proc = smoke[0]
    assert "ratio[slurm]" not in proc.stdout and "== 6." not in proc.stdout


def test_slurm_benchmark_asked_for_without_a_cluster_fails_at_once_with_how_to_start_one(tmp_path):
    env = isolated_env(tmp_path)
    env["PATH"] = str(Path(sys.executable).parent)  # no sinfo on PATH: no cluster to reach
    proc = run_benchmarks(tmp_path, "--smoke", "--only", "slurm", env=env, timeout=60)
    assert proc.returncode == 1
    assert "slurm benchmark cannot run" in proc.stderr and "tests/slurm/up.sh" in proc.stderr, proc.stderr
    assert not any(p.name.startswith("template-bench-") for p in tmp_path.iterdir()), "nothing rendered"


def test_updating_one_benchmark_replaces_only_its_section_and_summary_rows():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import run
    from harness import Check, Result

    def result(key, title, value, note):
        return Result(
            key,
            title,
            f"method of {key}",
            ["case", "s"],
            [["a", "1 s"]],
            [Check("q", value, "<= 2", value <= 2)],
            [note],
        )

    old = [result("one", "1. One (a)", 1.5, "first"), result("two", "2. Two (b)", 3.0, "old note")]
    doc = "# Performance\n\n## Summary\n\n" + run.md_table(
        ["b", "q", "m", "t", "v"], [r for x in old for r in run.summary_rows(x)]
    )
    doc += (
        "\n\n"
        + "\n".join(run.section_lines(old[0]) + [""] + run.section_lines(old[1]))
        + "\n\n## Profiling (old)\n\nold records\n"
    )
    new = run.update_doc(doc, [result("two", "2. Two (b)", 1.0, "new note")], "Re-measured today.")
    assert "| 1. One | q | 1.50x | <= 2 | PASS |" in new and "\n- first\n" in new  # the other benchmark untouched
    assert "| 2. Two | q | 1.00x | <= 2 | PASS |" in new and "3.00x" not in new  # its summary row replaced
    assert "old note" not in new and "\n- new note\n" in new and "Re-measured today." in new
    pointer = "\n".join(run.FINDINGS_POINTER) + "\n"
    assert new.index("## 2. Two (b)") < new.index("## Profiling") and new.endswith(pointer)  # history: a link
    assert "old records" not in new and (ROOT / "benchmarks/findings.md").is_file()
    assert new.count("## 2. Two (b)") == 1

    # a benchmark the page does not have yet (new, or left out of the last full run) is added
    doc_with_absent = new.replace(
        "\n## Profiling", "\n## three: not measured in this run\n\nNot run: slow.\n\n## Profiling"
    )
    added = run.update_doc(doc_with_absent, [result("three", "3. Three (c)", 0.5, "third")], "Measured today.")
    assert "| 2. Two | q | 1.00x | <= 2 | PASS |\n| 3. Three | q | 0.50x | <= 2 | PASS |\n" in added
    assert added.index("## 2. Two (b)") < added.index("## 3. Three (c)") < added.index("## Profiling")
    assert "not measured in this run" not in added and "\n- third\n" in added
