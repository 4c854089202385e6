"""The generated example, end to end on the local profile, through the real snakemake CLI."""

import csv
import json
import re
import shutil
from pathlib import Path

from conftest import isolated_env, node_tmp


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in Path(path).rglob("*") if p.is_file())


def test_local_run_builds_exactly_the_declared_outputs_consistently_and_leaves_no_scratch(render, snakemake, tmp_path):
    # each summary's content against an independent count: the generated tests/test_example.py (run by the
    # generated `make test` in test_ecosystem.py); a second run doing nothing: the generated tests/test_workflow.py
    repo = render()
    env = isolated_env(tmp_path, TMPDIR=str(node_tmp(tmp_path)))  # a node's /tmp: the workflow user may write it
    snakemake(repo, "--profile", "profiles/local", env=env)
    with open(repo / "config/samples.tsv") as fh:
        samples = sorted(row["sample"] for row in csv.DictReader(fh, delimiter="\t"))
    assert files_under(repo / "results") == sorted(
        [f"samples/{s}.summary.json" for s in samples] + ["tables/summary.tsv", "report.html"]
    )
    summaries = [json.loads((repo / f"results/samples/{s}.summary.json").read_text()) for s in samples]
    with open(repo / "results/tables/summary.tsv") as fh:
        table = list(csv.DictReader(fh, delimiter="\t"))
    assert [(r["sample"], int(r["words"]), r["top_word"]) for r in table] == [
        (s["sample"], s["words"], s["top_words"][0][0]) for s in summaries
    ]
    assert f"{sum(s['words'] for s in summaries)} words in total" in (repo / "results/report.html").read_text()
    assert not (repo / "publish").exists(), "a plain run writes nothing under publish/"
    scratch_root = tmp_path / "node-tmp" / f"{repo.name}-scratch-{repo.stat().st_uid}"  # per user: the checkout's owner
    assert scratch_root.is_dir() and list(scratch_root.iterdir()) == [], "no scratch dirs left after success"


def test_ci_profile_gives_identical_results_to_local(render, snakemake, local_reference):
    local, ci = local_reference, render(project_name="Text Statistics CI")
    snakemake(ci, "--profile", "profiles/ci")
    for rel in files_under(local / "results"):
        if rel.endswith(".html"):
            continue  # the report title is the project name
        assert (local / "results" / rel).read_bytes() == (ci / "results" / rel).read_bytes(), rel


def test_run_without_a_profile_stops_before_any_job_and_names_the_repositorys_contexts(render, snakemake):
    repo = render()
    shutil.copytree(repo / "profiles/local", repo / "profiles/site-b")  # a context a team added: offer it too
    run = snakemake(repo, "--cores", "1", check=False)
    assert run.returncode != 0
    assert "No operating context" in run.output
    assert "--profile profiles/<context>, one of: local, ci, slurm, cluster-sim, site-b" in run.output, run.output
    assert not (repo / "results").exists() and not (repo / "publish").exists()


def test_bare_dry_run_shows_the_whole_plan_with_the_policy_marked_as_the_profiles(render, snakemake):
    repo = render()
    run = snakemake(repo, "-n", "-p")  # no profile: planning needs none
    assert "This was a dry-run" in run.output, repr(run)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", run.output.split("Job stats:", 1)[1], re.M))
    expected = {"all": "1", "tokenize": "3", "summarize_sample": "3", "summary_table": "1", "report": "1"}
    assert counts == {**expected, "total": "9"}, run.output
    # the plan shows where the profile's policy goes instead of inventing a value
    assert "--scratch-staging '<no profile>' --scratch-on-failure '<no profile>'" in run.output
    assert not (repo / "results").exists() and not (repo / "logs").exists()


def test_jobs_started_without_the_onstart_check_still_refuse_to_run_without_a_profiles_policy(render, snakemake):
    repo = render()
    run = snakemake(repo, "--cores", "1", "--no-hooks", check=False)  # the refusal in onstart skipped
    assert run.returncode != 0
    assert "scratch_staging='<no profile>' is not one of" in run.output and "--profile profiles/<context>" in run.output
    assert not (repo / "results").exists() and not (repo / "publish").exists()
