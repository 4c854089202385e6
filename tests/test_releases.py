"""Releases as a user meets them: run, publish, change, run again, through the real snakemake CLI as the
unprivileged workflow user (conftest.py), because the defects pinned here never show up for root."""

import json
import os
import subprocess
import sys

from conftest import as_user, workflow_user

LOCAL = ("--profile", "profiles/local")


def as_workflow_user(repo, *args):
    return subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=120, **as_user(workflow_user()))


def verify(repo, *release):
    """Exit status of workflow/vendor/publish.py verify, as the workflow user."""
    return as_workflow_user(repo, sys.executable, "workflow/vendor/publish.py", "verify", *release).returncode


def set_config(repo, key, value):
    config = repo / "config/config.yaml"
    lines = [f"{key}: {value}" if line.startswith(f"{key}:") else line for line in config.read_text().splitlines()]
    config.write_text("\n".join(lines) + "\n")


def release_files(release):
    return {p.relative_to(release).as_posix(): p.read_bytes() for p in sorted(release.rglob("*")) if p.is_file()}


def test_after_a_publish_a_non_root_user_writes_and_rebuilds_results_leaving_the_release_and_publish_needs_records(
    published_example, snakemake
):
    """Publish refuses results Snakemake has no record of (their config unknown) and says how to rebuild."""
    repo = published_example
    published = (repo / "publish/current").resolve()
    before = release_files(published)
    assert os.stat(repo / "results/tables/summary.tsv").st_mode & 0o200, "results/ stays writable by its owner"
    append = "open('results/tables/summary.tsv', 'a').write('tampered\\n')"  # an in-place tool: the same inode
    assert as_workflow_user(repo, sys.executable, "-c", append).returncode == 0
    set_config(repo, "min_word_length", 4)
    rebuilt = snakemake(repo, *LOCAL)  # failed with ProtectedOutputException when releases were hardlinks
    assert "summarize_sample" in rebuilt.output, "the changed parameter rebuilt the per-sample results"
    assert release_files(published) == before, "neither the in-place write nor the rebuild touched the release"
    assert "published new release" in snakemake(repo, *LOCAL, "publish").output
    assert verify(repo) == 0 and verify(repo, str(published)) == 0, "the new and the first release are intact"
    current = (repo / "publish/current").resolve()
    subprocess.run(["rm", "-rf", str(repo / ".snakemake")], check=True)
    set_config(repo, "min_word_length", 5)  # invisible to Snakemake now: its records are gone
    refused = snakemake(repo, *LOCAL, "publish", check=False)
    assert refused.returncode != 0 and "no record of how results/" in refused.output
    assert "--forceall" in refused.output, "the error says how to rebuild"
    assert (repo / "publish/current").resolve() == current, "nothing was published under the new config's checksum"
    snakemake(repo, *LOCAL, "--forceall")
    snakemake(repo, *LOCAL, "publish")
    files = json.loads((repo / "publish/current/MANIFEST.json").read_text())["files"]
    assert {f["rule"] for f in files} == {"summarize_sample", "summary_table", "report"}
    assert all(f["made_at"].endswith("Z") for f in files)


def test_each_published_file_records_the_context_whose_job_made_it_and_publish_its_own(render, snakemake):
    repo = render()
    snakemake(repo, "--profile", "profiles/cluster-sim", timeout=600)
    snakemake(repo, *LOCAL, "publish")
    manifest = json.loads((repo / "publish/current/MANIFEST.json").read_text())
    assert manifest["provenance"]["context"] == "local", "the publish command's own context"
    assert {e["context"] for e in manifest["files"]} == {"cluster-sim"}
    crate = json.loads((repo / "publish/current/ro-crate-metadata.json").read_text())
    (run,) = [e for e in crate["@graph"] if e.get("@id") == "#run"]
    assert run["name"].endswith("with profiles/cluster-sim")
    files = [e.get("description", "") for e in crate["@graph"] if e.get("@type") == "File"]
    described = [d for d in files if "made by rule" in d]
    assert described and all(d.endswith("with profiles/cluster-sim") for d in described)
