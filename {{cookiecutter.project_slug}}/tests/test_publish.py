"""Unit tests of workflow/scripts/publish.py: releases, manifests, verify, prune."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import publish
from publish import PublishError

PUBLISH_PY = Path(publish.__file__)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    (tmp_path / "results" / "tables").mkdir(parents=True)
    (tmp_path / "results" / "tables" / "t.tsv").write_text("a\tb\n1\t2\n")
    (tmp_path / "results" / "r.html").write_text("<p>hi</p>\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


ENTRIES = {"table.tsv": "results/tables/t.tsv", "report.html": "results/r.html"}


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, str(PUBLISH_PY), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_publish_creates_release_with_manifest_and_points_current(repo):
    result = publish.publish(ENTRIES, provenance={"context": "test"})
    release = Path(result["release"])
    assert result["created"] and (repo / "publish/current").resolve() == release.resolve()
    assert os.readlink(repo / "publish/current") == f"releases/{release.name}", "relative symlink"
    manifest = json.loads((release / "MANIFEST.json").read_text())
    assert {f["path"] for f in manifest["files"]} == {"table.tsv", "report.html"}
    entry = next(f for f in manifest["files"] if f["path"] == "table.tsv")
    assert entry["size"] == 8 and len(entry["sha256"]) == 64
    assert manifest["provenance"] == {"context": "test"}
    assert (release / "table.tsv").read_text() == "a\tb\n1\t2\n"


def test_release_files_and_dirs_are_read_only(repo):
    release = Path(publish.publish(ENTRIES)["release"])
    assert not os.stat(release / "table.tsv").st_mode & 0o222
    assert not os.stat(release).st_mode & 0o222


def test_publishing_unchanged_results_creates_no_new_release(repo):
    first = publish.publish(ENTRIES)
    second = publish.publish(ENTRIES)
    assert not second["created"] and not second["moved"]
    assert second["release"] == first["release"]
    assert len(publish.releases(repo / "publish")) == 1


def test_changed_result_creates_second_release_and_moves_current(repo):
    first = publish.publish(ENTRIES)
    (repo / "results/r.html").unlink()  # as Snakemake does: a rerun replaces the file
    (repo / "results/r.html").write_text("<p>changed</p>\n")
    second = publish.publish(ENTRIES)
    assert second["created"] and second["release"] != first["release"]
    assert (repo / "publish/current").resolve() == Path(second["release"]).resolve()
    assert (Path(first["release"]) / "report.html").read_text() == "<p>hi</p>\n", "old release untouched"


def test_reverting_results_reuses_the_matching_release(repo):
    first = publish.publish(ENTRIES)
    original = (repo / "results/r.html").read_text()
    (repo / "results/r.html").unlink()
    (repo / "results/r.html").write_text("v2")
    publish.publish(ENTRIES)
    (repo / "results/r.html").unlink()
    (repo / "results/r.html").write_text(original)
    third = publish.publish(ENTRIES)
    assert not third["created"] and third["moved"] and third["release"] == first["release"]
    assert len(publish.releases(repo / "publish")) == 2


def test_copy_mode_copies_instead_of_linking(repo):
    release = Path(publish.publish(ENTRIES, mode="copy")["release"])
    assert os.stat(release / "table.tsv").st_ino != os.stat(repo / "results/tables/t.tsv").st_ino
    assert publish.verify(release) == []


def test_hardlink_mode_shares_inodes(repo):
    result = publish.publish(ENTRIES, mode="hardlink")
    assert result["hardlinked"] == 2
    assert os.stat(Path(result["release"]) / "table.tsv").st_ino == os.stat(repo / "results/tables/t.tsv").st_ino


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"x": "config/elsewhere.txt"}, "is not under results/"),
        ({"x": "results/../secret.txt"}, "is not under results/"),
        ({"x": "results/missing.txt"}, "does not exist"),
        ({"../x": "results/r.html"}, "plain relative path"),
        ({"MANIFEST.json": "results/r.html"}, "plain relative path"),
    ],
)
def test_publish_refuses_bad_declarations_naming_the_entry(repo, entries, message):
    (repo / "config").mkdir(exist_ok=True)
    (repo / "config/elsewhere.txt").write_text("x")
    with pytest.raises(PublishError, match=message):
        publish.publish(entries)
    assert not (repo / "publish/current").exists()


def test_publish_refuses_symlink_that_escapes_results(repo):
    (repo / "secret.txt").write_text("s")
    (repo / "results/link.txt").symlink_to(repo / "secret.txt")
    with pytest.raises(PublishError, match="symlink that leaves results/"):
        publish.publish({"link.txt": "results/link.txt"})


@pytest.mark.parametrize("tamper", ["edit", "delete", "add", "manifest"])
def test_verify_names_the_tampered_file(repo, tamper):
    release = Path(publish.publish(ENTRIES, mode="copy")["release"])
    os.chmod(release, 0o755)
    target = release / "table.tsv"
    os.chmod(target, 0o644)
    if tamper == "edit":
        target.write_text("a\tb\n1\t3\n")
        expected = "altered: table.tsv"
    elif tamper == "delete":
        target.unlink()
        expected = "missing: table.tsv"
    elif tamper == "add":
        (release / "extra.txt").write_text("x")
        expected = "extra: extra.txt"
    else:
        m = release / "MANIFEST.json"
        os.chmod(m, 0o644)
        data = json.loads(m.read_text())
        data["files"][0]["size"] += 1
        m.write_text(json.dumps(data))
        expected = "content_digest does not match"
    proc = cli("verify", cwd=repo)
    assert proc.returncode == 1
    assert expected in proc.stderr


def test_verify_passes_on_intact_release_and_fails_without_one(repo):
    assert cli("verify", cwd=repo).returncode == 2
    publish.publish(ENTRIES)
    proc = cli("verify", cwd=repo)
    assert proc.returncode == 0 and "OK" in proc.stdout and "2 files" in proc.stdout


def test_interrupted_publish_leaves_current_intact_and_next_publish_cleans_up(repo):
    first = publish.publish(ENTRIES)
    big = repo / "results/big.bin"
    big.write_bytes(os.urandom(1 << 20) * 300)  # 300 MB: slow enough to catch mid-copy
    entries = {"big.bin": "results/big.bin", **ENTRIES}
    code = f"import publish; publish.publish({entries!r}, mode='copy')"
    env = dict(os.environ, PYTHONPATH=str(PUBLISH_PY.parent))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=repo, env=env)
    deadline = time.monotonic() + 60
    partial = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = [p for p in (repo / "publish").glob(".staging-*/big.bin") if p.stat().st_size > 0]
        if found:
            partial = found[0]
            break
    assert partial is not None, "publish never reached the big file"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert (repo / "publish/current").resolve() == Path(first["release"]).resolve()
    assert cli("verify", cwd=repo).returncode == 0
    assert list((repo / "publish").glob(".staging-*")), "the interrupted staging dir is still there"
    publish.publish(ENTRIES)
    assert not list((repo / "publish").glob(".staging-*")), "next publish removed it"


def _publish_in_process(entries, queue):
    queue.put(publish.publish(entries))


def test_concurrent_publishes_both_succeed_with_one_release(repo):
    queue = multiprocessing.get_context("fork").Queue()
    procs = [
        multiprocessing.get_context("fork").Process(target=_publish_in_process, args=(ENTRIES, queue)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    results = [queue.get(timeout=5) for _ in procs]
    assert sorted(r["created"] for r in results) == [False, True]
    assert len(publish.releases(repo / "publish")) == 1
    assert cli("verify", cwd=repo).returncode == 0


def test_list_marks_current_and_prune_never_removes_it(repo):
    names = []
    for i in range(3):
        (repo / "results/r.html").unlink()
        (repo / "results/r.html").write_text(f"v{i}")
        names.append(Path(publish.publish(ENTRIES)["release"]).name)
    listing = cli("list", cwd=repo).stdout
    assert all(n in listing for n in names)
    assert f"* {names[-1]}" in listing
    publish.point_current(repo / "publish", repo / "publish/releases" / names[0])
    proc = cli("prune", "--keep", "1", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    remaining = sorted(p.name for p in publish.releases(repo / "publish"))
    assert remaining == sorted({names[0], max(names)})
    assert cli("verify", cwd=repo).returncode == 0


def test_prune_refuses_keep_zero(repo):
    publish.publish(ENTRIES)
    proc = cli("prune", "--keep", "0", cwd=repo)
    assert proc.returncode == 2 and "at least 1" in proc.stderr
