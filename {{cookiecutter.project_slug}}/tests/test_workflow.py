"""The contract, for whatever this workflow computes: every operating context builds the same final
outputs under results/ and publishes nothing; publishing makes a release that verifies; nothing runs
without a profile; a failing job explains itself in its log; the docs say what the files say.
These tests hold for any workflow built on this repository: keep them when you replace the example.
Outputs whose bytes legitimately differ between runs are listed in tests/volatile_outputs.py."""

import csv
import fnmatch
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import copy_workflow
from contract import contexts, load_profile  # workflow/vendor/contract.py
from volatile_outputs import VOLATILE

REPO = Path(__file__).resolve().parents[1]
CONTEXTS = contexts(REPO)
LOCAL_CONTEXTS = [c for c in CONTEXTS if load_profile(c, REPO).get("executor", "local") == "local"]


def final_outputs(repo, run_snakemake):
    """Every output under results/ that Snakemake plans for the default target (its --summary);
    a directory() output is one row."""
    summary = run_snakemake(repo, "--profile", "profiles/local", "--summary").stdout
    rows = csv.DictReader(io.StringIO(summary[summary.index("output_file") :]), delimiter="\t")
    return sorted(r["output_file"] for r in rows if r["output_file"].startswith("results/"))


def results_of(repo):
    """{path: bytes} of every file under results/; a volatile file's bytes are not compared."""
    files = sorted(p for p in (repo / "results").rglob("*") if p.is_file())
    return {str(p.relative_to(repo)): None if is_volatile(str(p.relative_to(repo))) else p.read_bytes() for p in files}


def is_volatile(path):
    return any(fnmatch.fnmatch(path, pattern) for pattern in VOLATILE)


def verify_passes(repo):
    """`publish.py verify` accepts the repository's current release."""
    verify = [sys.executable, "workflow/vendor/publish.py", "verify"]
    return subprocess.run(verify, cwd=repo, capture_output=True).returncode == 0


def outside_of(paths, finals):
    """The paths that are neither a final output nor inside a final directory() output."""
    return [p for p in paths if not any(p == f or p.startswith(f + "/") for f in finals)]


@pytest.mark.parametrize("context", LOCAL_CONTEXTS)
def test_each_local_context_builds_exactly_the_final_outputs_and_publishes_nothing(context, built_in, run_snakemake):
    repo = built_in(context)
    finals, made = final_outputs(repo, run_snakemake), results_of(repo)
    assert not outside_of(made, finals), "results/ holds only final outputs"
    assert all((repo / f).exists() for f in finals), "every final output was made"
    assert not (repo / "publish").exists(), "a plain run never publishes"
    again = run_snakemake(repo, "--profile", f"profiles/{context}")
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.skipif("cluster-sim" not in CONTEXTS, reason="this repository has no profiles/cluster-sim")
def test_the_simulated_cluster_gives_the_same_results_as_local_and_publishes_a_verified_release(
    built_in, workflow_copy, run_snakemake
):
    run_snakemake(workflow_copy, "--profile", "profiles/cluster-sim", timeout=600)
    assert results_of(workflow_copy) == results_of(built_in("local"))
    run_snakemake(workflow_copy, "--profile", "profiles/cluster-sim", "publish", timeout=600)
    assert verify_passes(workflow_copy)


def test_publish_makes_a_release_that_verify_and_sha256sum_accept_and_no_rerun_changes(
    built_in, tmp_path, run_snakemake
):
    workflow_copy = copy_workflow(tmp_path, built=built_in("local"))
    run_snakemake(workflow_copy, "--profile", "profiles/local", "publish")
    assert verify_passes(workflow_copy)
    release = workflow_copy / "publish/current"
    assert subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=release).returncode == 0
    again = run_snakemake(workflow_copy, "--profile", "profiles/local", "publish")
    assert "no new release" in again.stdout + again.stderr, "publishing the same results twice makes one release"
    run_snakemake(workflow_copy, "--profile", "profiles/local", "--forceall")
    rebuilt = run_snakemake(workflow_copy, "--profile", "profiles/local", "publish")
    assert "no new release" in rebuilt.stdout + rebuilt.stderr, (
        "a forced rerun changed published bytes: make the tools deterministic or leave those files unpublished "
        "(docs/rule-kinds.md, reproducible outputs)"
    )


def test_running_jobs_without_a_profile_is_refused_naming_the_contexts(workflow_copy, run_snakemake):
    for args in ([], ["--cores", "1"]):  # as typed first, and with the cores Snakemake then asks for
        proc = run_snakemake(workflow_copy, *args, check=False)
        assert proc.returncode != 0
        out = proc.stdout + proc.stderr
        assert "No operating context" in out and "--profile profiles/<context>" in out
        assert all(c in out for c in CONTEXTS)
        assert not (workflow_copy / "results").exists()


FAILING_SCRIPT_RULE = """

rule explode:
    input:
        "config/config.yaml",
    output:
        "work/explode.txt",
    log:
        "logs/explode/explode.log",
    script:
        "scripts/explode.py"
"""
FAILING_SCRIPT = """from scratch import scratch_job


def parse(path):
    raise ValueError(f"cannot parse {path}: no header line")


with scratch_job(snakemake) as job:
    parse(job.input[0])
"""


def test_a_failing_script_rules_log_holds_its_traceback_and_names_its_kept_scratch(workflow_copy, run_snakemake):
    with open(workflow_copy / "workflow/Snakefile", "a") as fh:
        fh.write(FAILING_SCRIPT_RULE)
    (workflow_copy / "workflow/scripts/explode.py").write_text(FAILING_SCRIPT)
    proc = run_snakemake(workflow_copy, "--profile", "profiles/local", "work/explode.txt", check=False)
    assert proc.returncode != 0
    log = (workflow_copy / "logs/explode/explode.log").read_text()
    assert "Traceback (most recent call last)" in log and "ValueError: cannot parse" in log, log
    # the script's own line (Snakemake runs a copy with a preamble, so only the line text is stable)
    assert re.search(r'explode\.py", line \d+, in parse\n +raise ValueError\(f"cannot parse \{path\}', log), log
    kept = re.search(r"scratch dir KEPT for debugging: (\S+) \(on host", log)
    assert kept and Path(kept.group(1)).is_dir()
    assert not (workflow_copy / "work/explode.txt").exists()
    subprocess.run(["rm", "-rf", kept.group(1)], check=True)


def test_generated_docs_match_the_files_they_describe():
    proc = subprocess.run(
        [sys.executable, "workflow/vendor/render_docs.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
