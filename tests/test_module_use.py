"""The generated workflow used the way teams share Snakemake workflows: as a `module` of a host workflow
in another directory, and deployed with snakedeploy. Runs, publishes and verifies in the host's directory,
with the workflow's own git commit in the release and the host's labelled apart."""

import json
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import (
    DEFAULT_SLUG,
    hand_over,
    isolated_env,
    node_tmp,
    render_template,
    results_bytes,
    run_command,
    tool,
    workflow_user,
)
from test_cluster_sim_e2e import scheduler_records, sim_env

pytestmark = pytest.mark.timeout(600)
TAG = "v0.1.0"
PREFIX = "wf_"
OWNER = "example-lab"  # the "GitHub" owner snakedeploy deploys from (served from a local clone)


def run_ok(args, cwd, env):
    """Run a command as the workflow user; fail with its output unless it exits 0."""
    run = run_command([str(a) for a in args], cwd=cwd, env=env, user=workflow_user())
    assert run.returncode == 0, repr(run)
    return run


@pytest.fixture(scope="module")
def tagged_repo(tmp_path_factory):
    """(repo, commit of the tag): a generated repository with its first commit tagged as a release."""
    tmp = tmp_path_factory.mktemp("tagged")
    proc, out = render_template(tmp, out=tmp / "out", init_git="yes")
    assert proc.returncode == 0, proc.stderr
    hand_over(out, workflow_user())
    repo, env = out / DEFAULT_SLUG, isolated_env(tmp)
    run_ok(["git", "tag", TAG], repo, env)
    return repo, run_ok(["git", "rev-parse", f"{TAG}^{{commit}}"], repo, env).stdout.strip()


def job_resources(output, rule):
    """{name: value} of every job of `rule` that Snakemake's output shows, one dict per job."""
    blocks = re.findall(rf"^(?:local)?rule {rule}:\n((?:    .*\n)+)", output, re.M)
    found = [re.search(r"^    resources: (.*)$", block, re.M) for block in blocks]
    return [dict(pair.split("=", 1) for pair in match.group(1).split(", ")) for match in found if match]


def assert_per_rule_resources_applied(repo, output, prefix):
    """Every job of every rule in the workflow's own workflow/profiles/default/ ran with its values there."""
    wanted = yaml.safe_load((repo / "workflow/profiles/default/config.yaml").read_text())["set-resources"]
    for rule, resources in wanted.items():
        jobs = job_resources(output, prefix + rule)
        assert jobs, f"no job of {prefix}{rule} in the output"
        for job in jobs:
            assert {k: job.get(k) for k in resources} == {k: str(v) for k, v in resources.items()}, prefix + rule


def assert_release_names_both_commits(root, workflow_commit, env):
    """The release verifies and its provenance names the workflow's commit and, apart, the host's."""
    manifest = json.loads((root / "publish/current/MANIFEST.json").read_text())
    provenance = manifest["provenance"]
    assert (provenance["git_commit"], provenance["git_dirty"]) == (workflow_commit, False)
    host_commit = run_ok(["git", "rev-parse", "HEAD"], root, env).stdout.strip()
    assert provenance["deployment"] == {"git_commit": host_commit, "git_dirty": False}
    assert host_commit != workflow_commit
    return manifest


def build_host(tmp_path, repo):
    """A host workflow repository that uses `repo` as the module `wf`, with the files a module user supplies."""
    host = tmp_path / "host"
    (host / "workflow/profiles/default").mkdir(parents=True)
    for supplied in ("config", "data", "profiles"):
        shutil.copytree(repo / supplied, host / supplied)
    shutil.copy(repo / ".gitignore", host / ".gitignore")
    module = Path(os.path.relpath(repo / "workflow/Snakefile", host / "workflow"))
    (host / "workflow/Snakefile").write_text(
        'configfile: "config/config.yaml"\n\n\n'
        f'module wf:\n    snakefile:\n        "{module.as_posix()}"\n    config:\n        config\n\n\n'
        f"use rule * from wf as {PREFIX}*\n"
    )
    # the per-rule resources, and the cluster profiles' rule groups, under the prefixed rule names
    for source, target in (
        ("workflow/profiles/default/config.yaml", "workflow/profiles/default/config.yaml"),
        ("profiles/cluster-sim/config.yaml", "profiles/cluster-sim/config.yaml"),
    ):
        script = [sys.executable, repo / "workflow/vendor/module_profile.py", "--prefix", PREFIX, repo / source]
        (host / target).write_text(run_ok(script, repo, isolated_env(tmp_path)).stdout)
    hand_over(host, workflow_user())
    env = isolated_env(tmp_path)
    run_ok(["git", "init", "--quiet"], host, env)
    run_ok(["git", "add", "."], host, env)
    run_ok(["git", "commit", "--quiet", "-m", "host workflow"], host, env)
    return host


@pytest.mark.parametrize("context", ["local", "cluster-sim"])
def test_a_host_workflow_elsewhere_runs_publishes_and_verifies_the_workflow_as_a_module(
    context, tagged_repo, local_reference, tmp_path
):
    repo, tag_commit = tagged_repo
    host = build_host(tmp_path, repo)
    env = sim_env(tmp_path) if context == "cluster-sim" else isolated_env(tmp_path, TMPDIR=str(node_tmp(tmp_path)))
    profile = f"--profile=profiles/{context}"
    run = run_ok([tool("snakemake"), profile], host, env)
    run_ok([tool("snakemake"), profile, f"{PREFIX}publish"], host, env)
    verify = run_ok([sys.executable, repo / "workflow/vendor/publish.py", "verify"], host, env)
    assert verify.stdout.startswith("OK: publish/current")

    assert results_bytes(host) == results_bytes(local_reference), "the same results as a normal run of the repository"
    assert not (repo / "results").exists() and not (repo / "publish").exists(), "nothing lands in the module"
    manifest = assert_release_names_both_commits(host, tag_commit, env)
    made_by = {entry["rule"] for entry in manifest["files"]}
    assert made_by == {f"{PREFIX}{rule}" for rule in ("summarize_sample", "summary_table", "report")}
    crate = json.loads((host / "publish/current/ro-crate-metadata.json").read_text())
    workflow = next(e for e in crate["@graph"] if e["@id"] == "workflow/Snakefile")
    assert workflow["name"] == "Text Statistics Workflow", "the crate describes the module, not the host"
    assert (host / "publish/current/workflow/Snakefile").read_bytes() == (repo / "workflow/Snakefile").read_bytes()
    if context == "local":
        assert_per_rule_resources_applied(repo, run.output, PREFIX)
        run_ok([tool("snakemake"), profile, "--report", "report.zip", f"{PREFIX}all"], host, env)
        caption = (repo / "workflow/report/report.rst").read_text().split(",")[0]
        with zipfile.ZipFile(host / "report.zip") as report:
            assert caption in report.read("report/report.html").decode(), "the report caption comes from the module"
    else:
        # the prefixed groups applied: one scheduler job per group, as in the repository itself
        assert sorted(r["rule"] for r in scheduler_records(repo, host)) == ["group:fan_in", "group:per_sample"]
        inside_jobs = "".join(p.read_text() for p in (host / ".cluster-sim/jobs").glob("*.out"))
        assert_per_rule_resources_applied(repo, inside_jobs, PREFIX)


def test_snakedeploy_deploys_the_tagged_workflow_and_the_deployment_runs_publishes_and_verifies(
    tagged_repo, local_reference, tmp_path
):
    repo, tag_commit = tagged_repo
    # The repository as its users reach it: https://github.com/<owner>/<slug>, served here from a local bare
    # clone through git's own URL rewriting, so snakedeploy and Snakemake take their GitHub route offline.
    remotes, work = tmp_path / "remotes", tmp_path / "work"
    remotes.mkdir()
    work.mkdir()
    hand_over(remotes, workflow_user())
    hand_over(work, workflow_user())
    rewrite = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{remotes.as_uri()}/.insteadOf"}
    env = isolated_env(tmp_path, TMPDIR=str(node_tmp(tmp_path)), GIT_CONFIG_VALUE_0="https://github.com/", **rewrite)
    bare = remotes / OWNER / f"{DEFAULT_SLUG}.git"
    run_ok(["git", "clone", "--quiet", "--bare", repo, bare], remotes, env)
    url = f"https://github.com/{OWNER}/{DEFAULT_SLUG}"
    run_ok([tool("snakedeploy"), "deploy-workflow", url, "deployed", "--tag", TAG], work, env)

    deployed = work / "deployed"
    snakefile = (deployed / "workflow/Snakefile").read_text()
    assert f'github("{OWNER}/{DEFAULT_SLUG}", path="workflow/Snakefile", tag="{TAG}")' in snakefile
    assert (deployed / "config/config.yaml").is_file() and (deployed / "profiles/local/config.yaml").is_file()
    # what the module user supplies besides: the inputs, the per-rule resources (snakedeploy keeps the rule
    # names, so the file is used as it is) and a repository of their own
    shutil.copytree(repo / "data", deployed / "data")
    (deployed / "workflow/profiles/default").mkdir(parents=True)
    resources = run_ok(["git", "show", f"{TAG}:workflow/profiles/default/config.yaml"], bare, env).stdout
    (deployed / "workflow/profiles/default/config.yaml").write_text(resources)
    shutil.copy(repo / ".gitignore", deployed / ".gitignore")
    hand_over(deployed, workflow_user())
    for git in (["init", "--quiet"], ["add", "."], ["commit", "--quiet", "-m", "deployment"]):
        run_ok(["git", *git], deployed, env)

    run = run_ok([tool("snakemake"), "--profile", "profiles/local"], deployed, env)
    run_ok([tool("snakemake"), "--profile", "profiles/local", "publish"], deployed, env)
    verify = run_ok([sys.executable, repo / "workflow/vendor/publish.py", "verify"], deployed, env)
    assert verify.stdout.startswith("OK: publish/current")
    assert results_bytes(deployed) == results_bytes(local_reference)
    assert_release_names_both_commits(deployed, tag_commit, env)
    assert_per_rule_resources_applied(repo, run.output, "")
    crate = json.loads((deployed / "publish/current/ro-crate-metadata.json").read_text())
    workflow = next(e for e in crate["@graph"] if e["@id"] == "workflow/Snakefile")
    assert workflow["codeRepository"] == url, "the crate names where the workflow comes from"


def test_a_host_without_a_profile_can_plan_but_every_job_of_the_module_refuses_to_run(tagged_repo, tmp_path):
    repo, _ = tagged_repo
    host = build_host(tmp_path, repo)
    env = isolated_env(tmp_path)
    plan = run_ok([tool("snakemake"), "-n"], host, env)  # planning needs no profile, in a host too
    assert "This was a dry-run" in plan.output and f"{PREFIX}tokenize" in plan.output
    # Snakemake runs only the main Snakefile's onstart, so the module's jobs refuse one by one
    run = run_command([tool("snakemake"), "--cores", "1"], cwd=host, env=env, user=workflow_user())
    assert run.returncode != 0
    assert "scratch_staging='<no profile>' is not one of" in run.output and "--profile profiles/<context>" in run.output
    assert not (host / "results").exists() and not (host / "publish").exists()
