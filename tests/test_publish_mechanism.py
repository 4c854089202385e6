"""workflow/vendor/publish.py, the release mechanism, on its own: releases, manifests, verify, prune.

The module comes from a rendered repository (the `mechanism` fixture).
"""

import json
import multiprocessing
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _modules(mechanism):
    global publish, PublishError, PUBLISH_PY
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


def test_release_is_independent_of_results_in_place_writes_and_deletion(repo):
    result_file = repo / "results/tables/t.tsv"
    mode_before = os.stat(result_file).st_mode
    release = Path(publish.publish(ENTRIES)["release"])
    assert os.stat(result_file).st_mode == mode_before, "publishing leaves results/ writable for a rebuild"
    assert os.stat(release / "table.tsv").st_ino != os.stat(result_file).st_ino
    with open(result_file, "w") as fh:  # a tool that rewrites its output in place
        fh.write("rewritten\n")
    result_file.unlink()
    assert (release / "table.tsv").read_text() == "a\tb\n1\t2\n"
    assert publish.verify(release) == []


def test_damaged_current_release_is_replaced_and_named_not_reported_unchanged(repo):
    first = Path(publish.publish(ENTRIES)["release"])
    os.chmod(first, 0o755)
    (first / "report.html").unlink()
    again = publish.publish(ENTRIES)
    assert again["created"] and Path(again["release"]) != first
    assert again["damaged"] and first.name in again["damaged"][0] and "missing: report.html" in again["damaged"][0]
    assert "damaged release not reused" in publish.report(again)
    assert (repo / "publish/current").resolve() == Path(again["release"]).resolve()
    assert publish.verify(repo / "publish/current") == []


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


def test_publish_refuses_a_folder_symlink_that_escapes_results(repo):
    (repo / "outside").mkdir()
    (repo / "outside/secret.txt").write_text("s")
    (repo / "results/via").symlink_to(repo / "outside")
    with pytest.raises(PublishError, match="symlink that leaves results/"):
        publish.publish({"secret.txt": "results/via/secret.txt"})


def test_every_spelling_of_a_source_resolves_to_the_same_file(repo):
    spellings = {
        "a.html": "results/r.html",
        "b.html": "./results/r.html",
        "c.html": "results//tables/../r.html",
        "d.html": str(repo / "results/r.html"),
        "t": "results/tables/",
        "u": "results/tables/.",
    }
    resolved = dict(publish.resolve_sources(spellings, Path("results")))
    assert {resolved[f"{n}.html"] for n in "abcd"} == {str((repo / "results/r.html").resolve())}
    assert resolved["t/t.tsv"] == resolved["u/t.tsv"] == str((repo / "results/tables/t.tsv").resolve())
    with pytest.raises(PublishError, match="is not under results/"):
        publish.resolve_sources({"x": "results/.."}, Path("results"))


@pytest.mark.parametrize("name", [".", "a/./b", "a//b", "a/", "/a", "a\\b", "a\tb", ""])
def test_names_that_are_not_plain_relative_paths_are_refused(name):
    with pytest.raises(PublishError, match="plain relative path"):
        publish.check_publish_name(name)


def test_manifest_is_the_json_of_the_indented_layout_with_a_line_per_file(repo):
    release = Path(publish.publish(ENTRIES, provenance={"files": [], "nested": {"files": []}})["release"])
    text = (release / "MANIFEST.json").read_text()
    manifest = json.loads(text)
    assert manifest["provenance"] == {"files": [], "nested": {"files": []}}
    assert [f["path"] for f in manifest["files"]] == ["report.html", "table.tsv"]
    assert '\n    {"path": "report.html", "sha256": ' in text


def _rewrite_manifest(release, change, update_checksums=False):
    manifest = release / "MANIFEST.json"
    os.chmod(manifest, 0o644)
    data = json.loads(manifest.read_text())
    change(data)
    manifest.write_text(json.dumps(data))
    if update_checksums:  # a careful forger also rewrites SHA256SUMS
        sums = release / "SHA256SUMS"
        os.chmod(sums, 0o644)
        lines = [
            (publish.sha256_file(manifest) if line.endswith("  MANIFEST.json") else line.split("  ")[0])
            + "  "
            + line.split("  ", 1)[1]
            for line in sums.read_text().splitlines()
        ]
        sums.write_text("\n".join(lines) + "\n")


TAMPERING = {
    "edit": (lambda r: (r / "table.tsv").write_text("a\tb\n1\t3\n"), "altered: table.tsv"),
    "delete": (lambda r: (r / "table.tsv").unlink(), "missing: table.tsv"),
    "add file": (lambda r: (r / "extra.txt").write_text("x"), "extra: extra.txt"),
    "add dir": (lambda r: (r / "empty").mkdir(), "extra: empty/"),
    "symlink to a directory": (lambda r: (r / "evil").symlink_to("/etc"), "extra: evil (a symlink"),
    "replace file by symlink": (
        lambda r: ((r / "report.html").unlink(), (r / "report.html").symlink_to(r / "table.tsv")),
        "report.html",
    ),
    "file list": (
        lambda r: _rewrite_manifest(r, lambda d: d["files"][0].update(size=d["files"][0]["size"] + 1)),
        "altered: MANIFEST.json",
    ),
    "provenance": (
        lambda r: _rewrite_manifest(r, lambda d: d["provenance"].update(context="forged")),
        "altered: MANIFEST.json (provenance edited)",
    ),
    "provenance and checksums": (
        lambda r: _rewrite_manifest(r, lambda d: d["provenance"].update(context="forged"), update_checksums=True),
        "SHA256SUMS: does not match the release name",
    ),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERING))
def test_verify_names_whatever_was_tampered_with(repo, tamper):
    release = Path(publish.publish(ENTRIES, provenance={"context": "test"})["release"])
    for path in (release, release / "table.tsv"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    change, expected = TAMPERING[tamper]
    change(release)
    proc = cli("verify", cwd=repo)
    assert proc.returncode == 1, proc.stdout
    assert expected in proc.stderr


@pytest.mark.parametrize("tamper", ["", "edit", "delete", "provenance"])
def test_verify_and_sha256sum_agree(repo, tamper):
    release = Path(publish.publish(ENTRIES, provenance={"context": "test"})["release"])
    if tamper:
        for path in (release, release / "table.tsv"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        TAMPERING[tamper][0](release)
    ours = cli("verify", cwd=repo).returncode == 0
    coreutils = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=release, capture_output=True)
    assert ours == (coreutils.returncode == 0) == (not tamper)


def test_verify_passes_on_intact_release_and_fails_without_one(repo):
    assert cli("verify", cwd=repo).returncode == 2
    publish.publish(ENTRIES)
    proc = cli("verify", cwd=repo)
    assert proc.returncode == 0 and "OK" in proc.stdout and "2 files" in proc.stdout


def test_interrupted_publish_leaves_current_intact_and_next_publish_cleans_up(repo):
    first = publish.publish(ENTRIES)
    (repo / "results/r.html").write_text("changed")
    # a publish that is killed while its release is being built (describe= holds it there)
    code = f"import publish, time; publish.publish({ENTRIES!r}, describe=lambda staging, manifest: time.sleep(120))"
    env = dict(os.environ, PYTHONPATH=str(PUBLISH_PY.parent))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=repo, env=env)
    deadline, staged = time.monotonic() + 60, []
    while not staged and time.monotonic() < deadline and proc.poll() is None:
        staged = list((repo / "publish").glob(".staging-*/MANIFEST.json"))
    assert staged, "publish never reached its staging dir"
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


def test_metadata_written_by_describe_is_covered_by_checksums_and_verify(repo):
    def describe(staging, manifest):
        (staging / "extra-metadata.json").write_text(json.dumps({"files": len(manifest["files"])}))

    release = Path(publish.publish(ENTRIES, describe=describe)["release"])
    assert "  extra-metadata.json" in (release / "SHA256SUMS").read_text()
    assert publish.verify(release) == []
    os.chmod(release, 0o755)
    os.chmod(release / "extra-metadata.json", 0o644)
    (release / "extra-metadata.json").write_text("{}")
    assert publish.verify(release) == ["altered: extra-metadata.json (sha256 differs from SHA256SUMS)"]


def test_directory_entry_publishes_its_files_without_snakemakes_timestamp_marker(repo):
    outdir = repo / "results/plots"  # a directory() output, as Snakemake leaves it
    outdir.mkdir()
    (outdir / "a.svg").write_text("<svg/>\n")
    (outdir / "sub").mkdir()
    (outdir / "sub/b.svg").write_text("<svg></svg>\n")
    (outdir / ".snakemake_timestamp").write_text("")
    release = Path(publish.publish({"plots": "results/plots"})["release"])
    published = {p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file()}
    assert published == {"plots/a.svg", "plots/sub/b.svg", "MANIFEST.json", "SHA256SUMS"}
    manifest = json.loads((release / "MANIFEST.json").read_text())
    assert {f["path"] for f in manifest["files"]} == {"plots/a.svg", "plots/sub/b.svg"}
    assert ".snakemake_timestamp" not in (release / "SHA256SUMS").read_text()
    assert publish.verify(release) == []


def _renamed_copy(release, tmp_path):
    """A writable copy of `release` under another name, so the release-name check does not apply."""
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(release), str(copy)], check=True)
    subprocess.run(["chmod", "-R", "u+w", str(copy)], check=True)
    return copy


def test_verify_names_a_file_changed_with_its_checksum_line_in_a_renamed_copy(repo, tmp_path):
    # MANIFEST.json still lists the old sha256, and its own SHA256SUMS line still holds
    copy = _renamed_copy(publish.publish(ENTRIES)["release"], tmp_path)
    (copy / "table.tsv").write_text("a\tb\n1\t3\n")  # same size, other bytes
    new_sha = publish.sha256_file(copy / "table.tsv")
    sums = copy / "SHA256SUMS"
    lines = [
        f"{new_sha}  table.tsv" if line.endswith("  table.tsv") else line for line in sums.read_text().splitlines()
    ]
    sums.write_text("\n".join(lines) + "\n")
    assert subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=copy).returncode == 0, "consistent sums"
    problems = publish.verify(copy)
    assert problems and all("table.tsv" in p for p in problems), problems
    assert any("sha256" in p for p in problems), problems
    proc = cli("verify", str(copy), cwd=repo)
    assert proc.returncode == 1, proc.stdout
    assert "table.tsv" in proc.stderr


def test_verify_names_a_file_whose_size_in_the_manifest_differs_from_the_file_on_disk(repo, tmp_path):
    copy = _renamed_copy(publish.publish(ENTRIES)["release"], tmp_path)

    def grow_table(data):
        entry = next(f for f in data["files"] if f["path"] == "table.tsv")
        entry["size"] += 1
        data["content_digest"] = publish.content_digest(data["files"])  # a careful forger

    _rewrite_manifest(copy, grow_table, update_checksums=True)
    problems = publish.verify(copy)
    assert problems and all("table.tsv" in p and "size" in p for p in problems), problems


# --------------------------------------------------------------------------
# storage and time that grow with what changed (issue 23)
# --------------------------------------------------------------------------
def _replace(path, text):
    """As Snakemake does: a rerun replaces the file."""
    path.unlink()
    path.write_text(text)


def _inodes(tree):
    return {os.stat(p).st_ino for p in Path(tree).rglob("*") if p.is_file()}


def _sha256sum_ok(release):
    return (
        subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=release, capture_output=True).returncode == 0
    )


@pytest.fixture
def many(repo, monkeypatch):
    """20 results in one directory entry, old enough that their identities are remembered."""
    monkeypatch.setattr(publish, "RACY_NS", 0)
    (repo / "results/many").mkdir()
    for i in range(20):
        (repo / f"results/many/f{i:02d}.txt").write_text(f"file {i}\n" * (i + 1))
    return {"many": "results/many"}


@pytest.fixture
def hashed(monkeypatch):
    """Every path publish.sha256_file reads, in order."""
    seen = []
    real = publish.sha256_file

    def spy(path, *args):
        seen.append(Path(path))
        return real(path, *args)

    monkeypatch.setattr(publish, "sha256_file", spy)
    return seen


def test_unchanged_files_are_hard_links_to_the_previous_release_never_to_results(repo):
    first = Path(publish.publish(ENTRIES)["release"])
    _replace(repo / "results/r.html", "<p>changed</p>\n")
    result = publish.publish(ENTRIES)
    second = Path(result["release"])
    assert result["created"] and result["linked"] == 1
    assert os.stat(second / "table.tsv").st_ino == os.stat(first / "table.tsv").st_ino, "unchanged: shared"
    assert os.stat(second / "report.html").st_ino != os.stat(first / "report.html").st_ino, "changed: its own"
    assert not _inodes(repo / "results") & (_inodes(first) | _inodes(second)), "nothing linked to results/"
    assert not os.stat(second / "table.tsv").st_mode & 0o222, "still read-only"
    with open(repo / "results/tables/t.tsv", "w") as fh:  # a tool that rewrites its output in place
        fh.write("rewritten\n")
    for release in (first, second):
        assert publish.verify(release) == [] and _sha256sum_ok(release)
        assert cli("verify", str(release), cwd=repo).returncode == 0


def test_prune_only_drops_links_and_every_kept_release_still_verifies(repo):
    made = []
    for i in range(4):
        _replace(repo / "results/r.html", f"v{i}")
        made.append(Path(publish.publish(ENTRIES)["release"]))
    assert len({os.stat(r / "table.tsv").st_ino for r in made}) == 1, "one table.tsv for all four"
    assert os.stat(made[-1] / "table.tsv").st_nlink == 4
    proc = cli("prune", "--keep", "2", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert [r.name for r in publish.releases(repo / "publish")] == [r.name for r in made[2:]]
    assert os.stat(made[-1] / "table.tsv").st_nlink == 2
    for release in made[2:]:
        assert publish.verify(release) == [] and _sha256sum_ok(release)
    publish.prune(repo / "publish", 1)
    assert publish.verify(made[-1]) == [] and _sha256sum_ok(made[-1])


def test_a_damaged_copy_in_an_earlier_release_is_never_shared(repo):
    first = Path(publish.publish(ENTRIES)["release"])
    os.chmod(first / "table.tsv", 0o644)
    (first / "table.tsv").write_text("a\tb\n1\t3\n")  # same size, other bytes
    os.chmod(first / "table.tsv", 0o444)
    result = publish.publish(ENTRIES)
    second = Path(result["release"])
    assert result["created"] and result["damaged"] and result["linked"] == 1
    assert os.stat(second / "report.html").st_ino == os.stat(first / "report.html").st_ino, "intact: shared"
    assert os.stat(second / "table.tsv").st_ino != os.stat(first / "table.tsv").st_ino, "damaged: copied"
    assert publish.verify(second) == [] and (second / "table.tsv").read_text() == "a\tb\n1\t2\n"


def test_a_file_is_copied_when_it_cannot_be_hard_linked(repo, monkeypatch):
    first = Path(publish.publish(ENTRIES)["release"])

    def refuse(*_args, **_kwargs):
        raise OSError(31, "Too many links")

    monkeypatch.setattr(publish.os, "link", refuse)
    _replace(repo / "results/r.html", "<p>changed</p>\n")
    result = publish.publish(ENTRIES)
    assert result["created"] and result["linked"] == 0
    assert os.stat(Path(result["release"]) / "table.tsv").st_ino != os.stat(first / "table.tsv").st_ino
    assert publish.verify(result["release"]) == []


def test_republishing_after_one_of_many_changed_hashes_only_that_one(repo, many, hashed):
    first = Path(publish.publish(many)["release"])
    assert len([p for p in hashed if "results" in p.parts]) == 20
    hashed.clear()
    _replace(repo / "results/many/f07.txt", "changed\n")
    result = publish.publish(many)
    read = [p for p in hashed if ".staging-" not in str(p)]  # the new release's own MANIFEST.json aside
    assert read == [(repo / "results/many/f07.txt").resolve()]
    assert result["hashed"] == 1 and result["linked"] == 19
    assert publish.verify(result["release"]) == [] and publish.verify(first) == []


def test_republishing_unchanged_results_reads_no_file_but_verify_reads_every_one(repo, many, hashed):
    release = Path(publish.publish(many)["release"])
    hashed.clear()
    again = publish.publish(many)
    assert not again["created"] and hashed == [] and again["hashed"] == 0
    assert publish.verify(release) == [] and len(hashed) == 21, "verify reads the 20 files and the manifest"


def test_republishing_after_a_prune_still_hashes_only_the_changed_file(repo, many, hashed):
    for i in range(3):
        _replace(repo / "results/many/f00.txt", f"v{i}\n")
        publish.publish(many)
    publish.prune(repo / "publish", 1)  # the kept files lose links: their ctime changes
    hashed.clear()
    _replace(repo / "results/many/f01.txt", "changed\n")
    result = publish.publish(many)
    assert [p for p in hashed if ".staging-" not in str(p)] == [(repo / "results/many/f01.txt").resolve()]
    assert result["linked"] == 19


def test_a_result_changed_just_before_publishing_is_hashed_again_next_time(repo):
    # written a moment ago, a file may still change within one timestamp tick: its identity is not trusted
    publish.publish(ENTRIES)
    assert publish.publish(ENTRIES)["hashed"] == 2


def test_an_unreadable_hash_cache_only_costs_hashing_again(repo, many):
    publish.publish(many)
    (repo / "publish/.hashes.json").write_text("{not json")
    _replace(repo / "results/many/f03.txt", "changed\n")
    result = publish.publish(many)
    assert result["hashed"] == 20 and result["linked"] == 19
    assert publish.verify(result["release"]) == []
    assert json.loads((repo / "publish/.hashes.json").read_text())["format"] == 1


def test_publish_and_verify_print_one_summary_line_when_not_on_a_terminal(repo, capsys):
    publish.publish(ENTRIES)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("publish: 2 files") and "\r" not in err
    proc = cli("verify", cwd=repo)
    assert proc.returncode == 0 and proc.stderr.startswith("verify: hashed 3 files") and proc.stderr.count("\n") == 1


class _Terminal:
    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_progress_on_a_terminal_is_one_line_updated_a_few_times_a_second(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(publish.time, "monotonic", lambda: clock[0])
    terminal = _Terminal()
    progress = publish.Progress("verify", terminal)
    progress.phase("hashing", 100, 100 << 20)
    for _ in range(100):  # 100 files of 1 MB over 10 s
        clock[0] += 0.1
        progress.add(1, 1 << 20)
    updates = terminal.text.split("\r")[1:]
    assert 20 <= len(updates) <= 40, len(updates)  # not before 1 s, then at most 4 a second
    assert "\n" not in terminal.text
    line = r"verify: hashing (\d+)/100 files, \1\.0 MB/100\.0 MB, 10\.0 MB/s, \d+ s left\x1b\[K"
    assert all(re.fullmatch(line, update) for update in updates), updates
    assert "hashing 10/100 files, 10.0 MB/100.0 MB, 10.0 MB/s, 9 s left" in updates[0]
    progress.done("hashed 100 files")
    assert terminal.text.endswith("verify: hashed 100 files in 10.0 s\x1b[K\n")


def test_many_copies_are_flushed_by_one_syncfs_instead_of_an_fsync_each(repo, monkeypatch):
    real = publish._syncfs()
    if real is None:
        pytest.skip("no syncfs here: every copy is fsynced")
    (repo / "results/lots").mkdir()
    for i in range(publish.SYNCFS_FILES):
        (repo / f"results/lots/{i}.txt").write_text(f"{i}\n")
    synced, flushed_files = [], []
    fsync = os.fsync

    def spy(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            flushed_files.append(fd)
        return fsync(fd)

    monkeypatch.setattr(publish, "_syncfs", lambda: lambda path: (synced.append(path), real(path)))
    monkeypatch.setattr(os, "fsync", spy)
    release = publish.publish({"lots": "results/lots"})["release"]
    assert len(synced) == 1 and flushed_files == [], "one syncfs flushes the files, metadata and folders"
    assert publish.verify(release) == []
    publish.publish(ENTRIES)  # two copies, MANIFEST.json and SHA256SUMS: an fsync each
    assert len(flushed_files) == 4 and len(synced) == 1


def test_small_files_are_written_from_the_bytes_hashed_big_ones_copied(repo, monkeypatch):
    (repo / "results/big.bin").write_bytes(os.urandom(publish.KEEP_FILE_BYTES + 1))
    cloned = []
    clone = publish.durable.clone
    monkeypatch.setattr(
        publish.durable,
        "clone",
        lambda src, dst, mode=None, flush=False: (cloned.append(src), clone(src, dst, mode, flush))[1],
    )
    release = Path(publish.publish({**ENTRIES, "big.bin": "results/big.bin"})["release"])
    assert [Path(p).name for p in cloned] == ["big.bin"], "the small files are read once, for their hash"
    assert publish.verify(release) == [] and _sha256sum_ok(release)
    assert not os.stat(release / "table.tsv").st_mode & 0o222
