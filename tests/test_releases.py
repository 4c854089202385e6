"""Releases as a user meets them: run, publish, change, run again, as an unprivileged user.

Every run here goes through the real snakemake CLI as the workflow user (see conftest.py), because
the defects these tests pin (a read-only result blocking a rebuild, a rebuild rewriting a release)
never show up for root.
"""

import json
import os
import subprocess
import sys

from conftest import as_user, workflow_user

LOCAL = ("--profile", "profiles/local")


def publish_py(repo, *args):
    """workflow/vendor/publish.py as the workflow user."""
    return subprocess.run(
        [sys.executable, "workflow/vendor/publish.py", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        **as_user(workflow_user()),
    )


def set_config(repo, key, value):
    config = repo / "config/config.yaml"
    lines = [f"{key}: {value}" if line.startswith(f"{key}:") else line for line in config.read_text().splitlines()]
    config.write_text("\n".join(lines) + "\n")


def release_files(release):
    return {p.relative_to(release).as_posix(): p.read_bytes() for p in sorted(release.rglob("*")) if p.is_file()}


def test_change_and_rebuild_after_publish_works_for_a_non_root_user(published_example, snakemake):
    repo = published_example
    published = (repo / "publish/current").resolve()
    before = release_files(published)
    assert os.stat(repo / "results/tables/summary.tsv").st_mode & 0o200, "results/ stays writable by its owner"
    set_config(repo, "min_word_length", 4)
    rebuilt = snakemake(repo, *LOCAL)  # failed with ProtectedOutputException when releases were hardlinks
    assert "ProtectedOutputException" not in rebuilt.output
    assert "summarize_sample" in rebuilt.output, "the changed parameter rebuilt the per-sample results"
    assert release_files(published) == before, "the rebuild did not touch the published release"
    second = snakemake(repo, *LOCAL, "publish")
    assert "published new release" in second.output
    assert publish_py(repo, "verify").returncode == 0
    assert publish_py(repo, "verify", str(published)).returncode == 0, "the first release is still intact"


def test_writing_a_result_in_place_does_not_change_the_published_release(published_example, snakemake):
    repo = published_example
    published = (repo / "publish/current/summary.tsv").read_bytes()
    # as the workflow user, append to the result through the same inode (what an in-place tool does)
    code = "open('results/tables/summary.tsv', 'a').write('tampered\\n')"
    subprocess.run([sys.executable, "-c", code], cwd=repo, check=True, **as_user(workflow_user()))
    assert (repo / "publish/current/summary.tsv").read_bytes() == published
    assert publish_py(repo, "verify").returncode == 0


def test_publish_refuses_results_snakemake_has_no_record_of(published_example, snakemake):
    repo = published_example
    current = (repo / "publish/current").resolve()
    subprocess.run(["rm", "-rf", str(repo / ".snakemake")], check=True)
    set_config(repo, "min_word_length", 5)  # invisible to Snakemake now: its records are gone
    refused = snakemake(repo, *LOCAL, "publish", check=False)
    assert refused.returncode != 0
    assert "Snakemake has no record of how results/" in refused.output
    assert "--forceall" in refused.output, "the error says how to rebuild"
    assert (repo / "publish/current").resolve() == current, "nothing was published under the new config's checksum"
    snakemake(repo, *LOCAL, "--forceall")
    snakemake(repo, *LOCAL, "publish")
    manifest = json.loads((repo / "publish/current/MANIFEST.json").read_text())
    assert {f["rule"] for f in manifest["files"]} == {"summarize_sample", "summary_table", "report"}
    assert all(f["made_at"].endswith("Z") for f in manifest["files"])


def test_publish_from_a_dirty_work_tree_is_recorded_and_warned_about(render, snakemake):
    repo = render(init_git="yes")
    snakemake(repo, *LOCAL)
    clean = snakemake(repo, *LOCAL, "publish")
    assert "uncommitted changes" not in clean.output
    first = json.loads((repo / "publish/current/MANIFEST.json").read_text())["provenance"]
    assert first["git_dirty"] is False and len(first["git_commit"]) == 40
    assert first["context"] == "local" and first["workflow_version"] == "0.1.0"  # the version of CITATION.cff
    assert len(first["config_sha256"]) == 64 and first["snakemake_version"].startswith("9.")
    with open(repo / "workflow/Snakefile", "a") as fh:
        fh.write("\n# a local edit\n")
    set_config(repo, "top_words", 4)
    snakemake(repo, *LOCAL)
    dirty = snakemake(repo, *LOCAL, "publish")
    assert "WARNING: the workflow's git work tree has uncommitted changes" in dirty.output
    assert json.loads((repo / "publish/current/MANIFEST.json").read_text())["provenance"]["git_dirty"] is True


def test_each_published_file_records_the_context_whose_job_made_it_and_publish_its_own(render, snakemake):
    repo = render()
    snakemake(repo, "--profile", "profiles/cluster-sim", timeout=600)
    snakemake(repo, *LOCAL, "publish")
    manifest = json.loads((repo / "publish/current/MANIFEST.json").read_text())
    assert manifest["provenance"]["context"] == "local", "the publish command's own context"
    assert {e["path"]: e["context"] for e in manifest["files"]} == {e["path"]: "cluster-sim" for e in manifest["files"]}
    crate = json.loads((repo / "publish/current/ro-crate-metadata.json").read_text())
    (run,) = [e for e in crate["@graph"] if e.get("@id") == "#run"]
    assert run["name"].endswith("with profiles/cluster-sim")
    described = [
        e["description"]
        for e in crate["@graph"]
        if e.get("@type") == "File" and "made by rule" in e.get("description", "")
    ]
    assert described and all(d.endswith("with profiles/cluster-sim") for d in described)
