"""Job grouping, policy of profiles/cluster-sim and profiles/slurm (their end-to-end tests check the fewer scheduler
jobs): a failing member of a group job, a rule added to the profile's per-sample group; grouping off for one run."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_cluster_sim_e2e import scheduler_records, sim_env

pytestmark = pytest.mark.timeout(900)

# A rule in the per-sample group that reads tokenize's output, writes part of its output, then fails.
FAILING_MEMBER = """

rule failing_member:
    input: "work/tokens/{sample}.tokens"
    output: "results/failing_member/{sample}.txt"
    log: "logs/failing_member/{sample}.log"
    shell: scratch("exec 2> {log:q}; head -n 2 {input:q} > {output:q}; echo boom >&2; exit 7")
"""
FINAL = '\nFINAL_OUTPUTS.update(dict.fromkeys(expand("results/failing_member/{sample}.txt", sample=SAMPLE_IDS)))\n'


def test_failing_member_of_a_group_writes_nothing_partial_keeps_its_scratch_and_names_it_in_its_log(
    render, snakemake, tmp_path
):
    repo = render()
    (repo / "workflow/rules/failing_member.smk").write_text(FAILING_MEMBER)
    with open(repo / "workflow/Snakefile", "a") as fh:
        fh.write('\ninclude: "rules/failing_member.smk"\n' + FINAL)  # final, not published
    config = repo / "profiles/cluster-sim/config.yaml"
    text = config.read_text()
    assert text.count("\n  tokenize: per_sample") == 1, "the profile groups tokenize per sample"
    config.write_text(
        text.replace("\n  tokenize: per_sample", "\n  failing_member: per_sample\n  tokenize: per_sample")
    )
    targets = ["results/failing_member/alpha.txt", "results/samples/beta.summary.json"]
    run = snakemake(repo, "--profile", "profiles/cluster-sim", *targets, env=sim_env(tmp_path), check=False)
    assert run.returncode != 0, run.output[-3000:]
    records = scheduler_records(repo)
    assert [(r["rule"], r["state"]) for r in records] == [("group:per_sample", "failed")], "both samples, one job"
    assert not (repo / "results").exists() or not [p for p in (repo / "results").rglob("*") if p.is_file()], (
        "Snakemake removes the outputs of every member of a failed group job, finished ones too (docs/slurm.md)"
    )
    log = (repo / "logs/failing_member/alpha.log").read_text()
    kept = re.search(r"scratch dir KEPT for debugging: (\S+) \(on host", log)
    assert log.startswith("boom\n") and kept, log
    kept_dir = Path(kept[1])
    assert Path(records[0]["node_tmpdir"]) in kept_dir.parents, "in the group job's node-local dir"
    assert (kept_dir / "results/failing_member/alpha.txt").read_text().count("\n") == 2, "the partial output"
    listing = subprocess.run(
        [sys.executable, "workflow/vendor/scratch.py", "kept"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert str(kept_dir) in listing.stdout


def test_grouping_is_turned_off_for_one_run_with_groups_none_on_the_command_line(render, snakemake, tmp_path):
    repo = render()
    one_sample = "results/samples/alpha.summary.json"  # tokenize, then summarize_sample: one group when grouped
    snakemake(repo, one_sample, "--profile", "profiles/cluster-sim", "--groups", "none=none", env=sim_env(tmp_path))
    records = scheduler_records(repo)
    assert sorted(r["rule"] for r in records) == ["summarize_sample", "tokenize"], "one scheduler job per rule job"
