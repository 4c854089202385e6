"""Job grouping as profile policy: profiles/cluster-sim and profiles/slurm run short per-sample jobs
together in fewer scheduler jobs, with the same results and the same scratch guarantees.

Grouping is ignored by local runs, so a local run is the reference for the results. A grouped
failure is made real by dropping one extra rule file into the rendered workflow (as the scratch
tests do) and naming its rule in the rendered profile's `groups:`, as a team adding a rule would.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import missing_in_ci_fails, scratch_records
from slurm_cluster import unavailable
from test_cluster_sim_e2e import results_bytes, scheduler_records, sim_env

pytestmark = pytest.mark.timeout(900)
RULE_JOBS = 8  # the example: 3 x tokenize, 3 x summarize_sample, summary_table, report

# A rule in the per-sample group that reads tokenize's output, writes part of its output, then fails.
FAILING_MEMBER = """

rule failing_member:
    input:
        "work/tokens/{sample}.tokens",
    output:
        "results/failing_member/{sample}.txt",
    log:
        "logs/failing_member/{sample}.log",
    shell:
        scratch("exec 2> {log:q}; head -n 2 {input:q} > {output:q}; echo boom >&2; exit 7")
"""


def add_grouped_failing_rule(repo: Path, profile: str) -> None:
    """The extra rule file, included by the Snakefile and put in the profile's per-sample group."""
    (repo / "workflow/rules/failing_member.smk").write_text(FAILING_MEMBER)
    with open(repo / "workflow/Snakefile", "a") as fh:
        fh.write('\ninclude: "rules/failing_member.smk"\n')
        # final, not published: results/ holds only final outputs
        fh.write(
            '\nFINAL_OUTPUTS.update(dict.fromkeys(expand("results/failing_member/{sample}.txt", sample=SAMPLE_IDS)))\n'
        )
    config = repo / "profiles" / profile / "config.yaml"
    text = config.read_text()
    assert "\n  tokenize: per_sample" in text, "the profile groups tokenize per sample"
    config.write_text(
        text.replace(
            "\n  tokenize: per_sample", "\n  failing_member: per_sample # test rule\n  tokenize: per_sample", 1
        )
    )


def manifest_files(repo):
    manifest = json.loads((repo / "publish/current/MANIFEST.json").read_text())
    return sorted((f["path"], f["sha256"]) for f in manifest["files"])


def test_grouped_cluster_sim_run_matches_the_local_run_in_fewer_scheduler_jobs(render, snakemake, tmp_path):
    local, sim = render(), render()
    snakemake(local, "--profile", "profiles/local")
    snakemake(local, "--profile", "profiles/local", "publish")
    env = sim_env(tmp_path)
    snakemake(sim, "--profile", "profiles/cluster-sim", env=env)
    snakemake(sim, "--profile", "profiles/cluster-sim", "publish", env=env)
    assert results_bytes(sim) == results_bytes(local), "grouping changes no result"
    assert manifest_files(sim) == manifest_files(local), "the same publish set, byte for byte"
    records = scheduler_records(sim)
    assert len(records) < RULE_JOBS, f"{len(records)} scheduler jobs for {RULE_JOBS} rule jobs"
    assert sorted(r["rule"] for r in records) == ["group:fan_in", "group:per_sample"]
    assert all(r["state"] == "success" for r in records)
    scratch = scratch_records(sim)
    assert len(scratch) == RULE_JOBS and all(r["status"] == "ok" and r["removed"] for r in scratch)
    assert {r["root"].rsplit("/", 1)[0] for r in scratch} <= {r["node_tmpdir"] for r in records}


def test_failing_member_of_a_group_writes_nothing_partial_keeps_its_scratch_and_names_it_in_its_log(
    render, snakemake, tmp_path
):
    repo = render()
    add_grouped_failing_rule(repo, "cluster-sim")
    targets = ["results/failing_member/alpha.txt", "results/samples/beta.summary.json"]
    run = snakemake(repo, "--profile", "profiles/cluster-sim", *targets, env=sim_env(tmp_path), check=False)
    assert run.returncode != 0, run.output[-3000:]
    records = scheduler_records(repo)
    assert [r["rule"] for r in records] == ["group:per_sample"], "both samples' jobs ran as one group job"
    assert records[0]["state"] == "failed"
    assert not (repo / "results/failing_member").exists() or not any((repo / "results/failing_member").iterdir())
    assert not (repo / "results").exists() or not [p for p in (repo / "results").rglob("*") if p.is_file()], (
        "Snakemake removes the outputs of every member of a failed group job, finished ones too (docs/slurm.md)"
    )
    log = (repo / "logs/failing_member/alpha.log").read_text()
    assert log.startswith("boom\n"), log
    kept = re.search(r"scratch dir KEPT for debugging: (\S+) \(on host", log)
    assert kept, log
    kept_dir = Path(kept.group(1))
    assert Path(records[0]["node_tmpdir"]) in kept_dir.parents, "in the group job's node-local dir"
    assert (kept_dir / "results/failing_member/alpha.txt").read_text().count("\n") == 2, "the partial output"
    listing = subprocess.run(
        [sys.executable, "workflow/vendor/scratch.py", "kept"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert str(kept_dir) in listing.stdout


def test_grouping_is_turned_off_for_one_run_with_groups_none_on_the_command_line(render, snakemake, tmp_path):
    repo = render()
    snakemake(repo, "--profile", "profiles/cluster-sim", "--groups", "none=none", env=sim_env(tmp_path))
    assert len(scheduler_records(repo)) == RULE_JOBS, "one scheduler job per rule job, as the profile comment says"


# --------------------------------------------------------------------------
# the real Slurm (tests/slurm/up.sh): the example as generated, grouped
# --------------------------------------------------------------------------
@pytest.mark.slurm
@pytest.mark.xdist_group("slurm")
@pytest.mark.timeout(1200)
def test_grouped_example_on_slurm_matches_the_local_run_in_fewer_sbatch_jobs(render, snakemake, tmp_path):
    if unavailable():
        reason = "no Slurm cluster reachable (start one with: sudo bash tests/slurm/up.sh)"
        missing_in_ci_fails(reason)
    from test_slurm import render_site, run_slurm

    local, repo = render(), render_site(render)
    snakemake(local, "--profile", "profiles/local")
    run = run_slurm(repo, tmp_path)
    assert results_bytes(repo) == results_bytes(local), "grouping changes no result"
    jobs = set(re.findall(r"SLURM jobid (\d+)", run.output))
    assert 0 < len(jobs) < RULE_JOBS, f"{len(jobs)} sbatch jobs for {RULE_JOBS} rule jobs"
    slurm_logs = sorted(p.parent.name for p in (repo / "logs/slurm").rglob("*.log"))
    assert slurm_logs == ["group_fan_in_report_summary_table", "group_per_sample_summarize_sample_tokenize"]
    sacct = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(sorted(jobs)), "-o", "JobIDRaw,State"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    states = dict(line.split("|") for line in sacct.stdout.split())
    assert states == {job: "COMPLETED" for job in jobs}, sacct.stdout + sacct.stderr
    scratch = scratch_records(repo)
    assert len(scratch) == RULE_JOBS and all(r["status"] == "ok" and r["removed"] for r in scratch)
