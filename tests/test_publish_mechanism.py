"""workflow/vendor/publish.py on its own (imported from a rendered repository): releases, manifests, verify, prune."""

import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from conftest import missing_in_ci_fails


@pytest.fixture(autouse=True)
def _modules(mechanism):
    global publish
    import publish


@pytest.fixture
def repo(tmp_path, monkeypatch):
    (tmp_path / "results" / "tables").mkdir(parents=True)
    (tmp_path / "results" / "tables" / "t.tsv").write_text("a\tb\n1\t2\n")
    (tmp_path / "results" / "r.html").write_text("<p>hi</p>\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


ENTRIES = {"table.tsv": "results/tables/t.tsv", "report.html": "results/r.html"}


def cli(*args):  # in the working directory: the repo fixture's
    return subprocess.run([sys.executable, publish.__file__, *args], capture_output=True, text=True, timeout=120)


def _replace(path, text):  # as Snakemake does: a rerun replaces the file
    path.unlink()
    path.write_text(text)


def _ino(path):
    return os.stat(path).st_ino


def _inodes(tree):
    return {_ino(p) for p in Path(tree).rglob("*") if p.is_file()}


def _sha256sum_ok(release):
    return subprocess.call(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=release) == 0


def test_publish_creates_a_read_only_release_that_verify_accepts_and_points_current_at_it(repo, capsys):
    """With its manifest. A directory() entry publishes its files without Snakemake's timestamp marker. Off a
    terminal publish and verify print one summary line. Before the first release verify exits 2."""
    assert cli("verify").returncode == 2
    (repo / "results/plots/sub").mkdir(parents=True)
    odd = 'sub/q", "x}, {é.svg'  # the manifest's file lines are encoded in one pass: quotes, braces, non-ASCII
    for name, text in {
        "a.svg": "<svg/>\n",
        "sub/b.svg": "<svg></svg>\n",
        odd: "<svg/>",
        ".snakemake_timestamp": "",
    }.items():
        (repo / "results/plots" / name).write_text(text)
    provenance = {"context": "test", "files": [], "nested": {"files": []}}
    result = publish.publish({**ENTRIES, "plots": "results/plots"}, provenance=provenance)
    release = Path(result["release"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("publish: 5 files") and "\r" not in err
    assert result["created"] and os.readlink(repo / "publish/current") == f"releases/{release.name}", "relative"
    text = (release / "MANIFEST.json").read_text()
    manifest = json.loads(text)
    assert manifest["provenance"] == provenance
    names = ["plots/a.svg", "plots/sub/b.svg", f"plots/{odd}", "report.html", "table.tsv"]
    assert [f["path"] for f in manifest["files"]] == names
    published = {p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file()}
    assert published == {*names, "MANIFEST.json", "SHA256SUMS"}
    assert manifest["files"][4]["size"] == 8 and len(manifest["files"][4]["sha256"]) == 64
    lines = [json.dumps(entry, sort_keys=True) for entry in manifest["files"]]
    assert '"files": [\n    ' + ",\n    ".join(lines) + "\n  ]" in text, "indented, a line per file"
    assert (release / "table.tsv").read_text() == "a\tb\n1\t2\n"
    assert not os.stat(release / "table.tsv").st_mode & 0o222 and not os.stat(release).st_mode & 0o222
    proc = cli("verify")
    assert _sha256sum_ok(release), "sha256sum -c reads the odd name too"
    assert proc.returncode == 0 and "OK" in proc.stdout and "5 files" in proc.stdout
    assert proc.stderr.startswith("verify: hashed 6 files") and proc.stderr.count("\n") == 1


def test_one_release_per_content_with_unchanged_files_hard_linked_to_earlier_ones_never_to_results(repo, monkeypatch):
    """Unchanged: no new release; changed: a new one, the old untouched, unchanged files hard links (copies where
    they cannot be linked); reverted: the matching release again."""
    result_file = repo / "results/tables/t.tsv"
    mode_before = os.stat(result_file).st_mode
    first = publish.publish(ENTRIES)
    assert os.stat(result_file).st_mode == mode_before, "publishing leaves results/ writable for a rebuild"
    again = publish.publish(ENTRIES)
    assert (again["created"], again["moved"], again["release"]) == (False, False, first["release"])
    assert again["hashed"] == 2, "results written a moment ago may still change within a timestamp tick: hashed again"
    _replace(repo / "results/r.html", "<p>changed</p>\n")
    result = publish.publish(ENTRIES)
    old, new = Path(first["release"]), Path(result["release"])
    assert result["created"] and result["linked"] == 1 and (repo / "publish/current").resolve() == new.resolve()
    assert (old / "report.html").read_text() == "<p>hi</p>\n", "old release untouched"
    assert _ino(new / "table.tsv") == _ino(old / "table.tsv"), "unchanged: shared"
    assert _ino(new / "report.html") != _ino(old / "report.html"), "changed: its own"
    assert not _inodes(repo / "results") & (_inodes(old) | _inodes(new)), "nothing linked to results/"
    assert not os.stat(new / "table.tsv").st_mode & 0o222, "still read-only"
    result_file.write_text("rewritten\n")  # a tool that rewrites its output in place, then deletes it
    result_file.unlink()
    for release in (old, new):
        assert publish.verify(release) == [] and _sha256sum_ok(release)
        assert cli("verify", str(release)).returncode == 0
    result_file.write_text("a\tb\n1\t2\n")
    _replace(repo / "results/r.html", "<p>hi</p>\n")
    third = publish.publish(ENTRIES)
    assert (third["created"], third["moved"], third["release"]) == (False, True, first["release"])
    assert len(publish.releases(repo / "publish")) == 2
    monkeypatch.setattr(publish.os, "link", mock.Mock(side_effect=OSError(31, "Too many links")))
    _replace(repo / "results/r.html", "<p>once more</p>\n")
    fourth = publish.publish(ENTRIES)
    assert fourth["created"] and fourth["linked"] == 0, "copied when it cannot be linked"
    assert _ino(Path(fourth["release"]) / "table.tsv") != _ino(old / "table.tsv")
    assert publish.verify(fourth["release"]) == []


DAMAGE = {
    "missing": lambda f: (os.chmod(f.parent, 0o755), f.unlink()),
    "altered": lambda f: (os.chmod(f, 0o644), f.write_text("<p>ho</p>\n"), os.chmod(f, 0o444)),  # same size
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_release_is_named_and_neither_reused_nor_shared(repo, damage):
    first = Path(publish.publish(ENTRIES)["release"])
    DAMAGE[damage](first / "report.html")
    result = publish.publish(ENTRIES)
    second = Path(result["release"])
    assert result["created"] and second != first and result["linked"] == 1
    assert [d.split(" (")[0] for d in result["damaged"]] == [f"{first.name}: {damage}: report.html"]
    assert result["damaged"][0] in publish.report(result)
    assert _ino(second / "table.tsv") == _ino(first / "table.tsv"), "the intact file is shared"
    assert (second / "report.html").read_text() == "<p>hi</p>\n", "the damaged one is copied from results/"
    assert (repo / "publish/current").resolve() == second.resolve() and publish.verify(second) == []


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"x": "config/elsewhere.txt"}, "is not under results/"),
        ({"x": "results/../secret.txt"}, "is not under results/"),
        ({"x": "results/missing.txt"}, "does not exist"),
        ({"x": "results/link.txt"}, "symlink that leaves results/"),
        ({"x": "results/via/secret.txt"}, "symlink that leaves results/"),
        ({"d": "results/leaky"}, "results/leaky/out is a symlink that leaves results/"),  # in a directory() entry
        ({"d": "results/odd"}, "results/odd/pipe is not a regular file"),
        ({"d": "results/broken"}, "results/broken/gone is a broken symlink"),
        *[
            ({name: "results/r.html"}, "plain relative path")
            for name in ("../x", "MANIFEST.json", ".", "a/./b", "a//b", "a/", "/a", "a\\b", "a\tb", "")
        ],
    ],
)
def test_publish_refuses_bad_declarations_naming_the_entry(repo, entries, message):
    for path in ("config/elsewhere.txt", "secret.txt", "outside/secret.txt"):
        (repo / path).parent.mkdir(exist_ok=True)
        (repo / path).write_text("s")
    (repo / "results/link.txt").symlink_to(repo / "secret.txt")  # a file symlink out of results/
    (repo / "results/via").symlink_to(repo / "outside")  # a folder symlink out of results/
    for folder in ("leaky", "odd", "broken"):
        (repo / "results" / folder).mkdir()
    (repo / "results/leaky/out").symlink_to(repo / "secret.txt")
    os.mkfifo(repo / "results/odd/pipe")
    (repo / "results/broken/gone").symlink_to(repo / "results/nothing")
    with pytest.raises(publish.PublishError, match=message):
        publish.publish(entries)
    assert not (repo / "publish/current").exists()


def test_every_spelling_of_a_source_resolves_to_the_same_file(repo):
    html = ["results/r.html", "./results/r.html", "results//tables/../r.html", str(repo / "results/r.html")]
    spellings = {**{f"{i}.html": path for i, path in enumerate(html)}, "t": "results/tables/", "u": "results/tables/."}
    resolved = dict(publish.resolve_sources(spellings, Path("results")))
    assert {resolved[f"{i}.html"] for i in range(4)} == {str((repo / "results/r.html").resolve())}
    assert resolved["t/t.tsv"] == resolved["u/t.tsv"] == str((repo / "results/tables/t.tsv").resolve())
    with pytest.raises(publish.PublishError, match="is not under results/"):
        publish.resolve_sources({"x": "results/.."}, Path("results"))


def _reseal(release, name):  # rewrite name's SHA256SUMS line to match the file, as a careful forger would
    sums = release / "SHA256SUMS"
    os.chmod(sums, 0o644)
    line = f"{publish.sha256_file(release / name)}  {name}"
    sums.write_text("".join(f"{line if s.endswith(f'  {name}') else s}\n" for s in sums.read_text().splitlines()))


def _forge_provenance(data):
    data["provenance"].update(context="forged")


def _rewrite_manifest(release, change=_forge_provenance, reseal=False):
    manifest = release / "MANIFEST.json"
    os.chmod(manifest, 0o644)
    data = json.loads(manifest.read_text())
    change(data)
    manifest.write_text(json.dumps(data))
    if reseal:
        _reseal(release, "MANIFEST.json")


TAMPERING = {
    "edit": (lambda r: (r / "table.tsv").write_text("a\tb\n1\t3\n"), "altered: table.tsv"),
    "delete": (lambda r: (r / "table.tsv").unlink(), "missing: table.tsv"),
    "edit describe's metadata": (lambda r: (r / "meta.json").write_text("{}"), "altered: meta.json"),
    "add file": (lambda r: (r / "extra.txt").write_text("x"), "extra: extra.txt"),
    "add dir": (lambda r: (r / "empty").mkdir(), "extra: empty/"),
    "add a fifo": (lambda r: os.mkfifo(r / "pipe"), "extra: pipe"),
    "symlink to a directory": (lambda r: (r / "evil").symlink_to("/etc"), "extra: evil (a symlink"),
    "replace file by symlink": (
        lambda r: (r / "report.html").unlink() or (r / "report.html").symlink_to(r / "table.tsv"),
        "report.html",
    ),
    "file list": (lambda r: _rewrite_manifest(r, lambda d: d["files"][0].update(size=3)), "altered: MANIFEST.json"),
    "provenance": (lambda r: _rewrite_manifest(r), "altered: MANIFEST.json (provenance edited)"),
    "provenance and checksums": (lambda r: _rewrite_manifest(r, reseal=True), "does not match the release name"),
}
SHA256SUM_SEES = {"edit", "delete", "edit describe's metadata", "replace file by symlink", "file list", "provenance"}


@pytest.mark.parametrize("tamper", sorted(TAMPERING))
def test_verify_names_whatever_was_tampered_with_and_sha256sum_agrees_where_it_looks(repo, tamper):
    """Also in the metadata a describe= adds: SHA256SUMS and verify cover it like every file."""
    describe = lambda staging, manifest: (staging / "meta.json").write_text('{"files": 2}')  # noqa: E731
    release = Path(publish.publish(ENTRIES, provenance={"context": "test"}, describe=describe)["release"])
    assert publish.verify(release) == []
    for path in (release, release / "table.tsv", release / "meta.json"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    change, expected = TAMPERING[tamper]
    change(release)
    proc = cli("verify")
    assert proc.returncode == 1 and expected in proc.stderr, proc.stdout + proc.stderr
    if tamper in SHA256SUM_SEES:
        assert not _sha256sum_ok(release)


def test_interrupted_publish_leaves_current_intact_and_next_publish_cleans_up(repo):
    first = publish.publish(ENTRIES)
    (repo / "results/r.html").write_text("changed")
    # a publish killed while its release is being built (describe= holds it there)
    code = f"import publish, time; publish.publish({ENTRIES!r}, describe=lambda staging, manifest: time.sleep(120))"
    env = dict(os.environ, PYTHONPATH=str(Path(publish.__file__).parent))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=repo, env=env)
    deadline, staged = time.monotonic() + 60, []
    while not staged and time.monotonic() < deadline and proc.poll() is None:
        staged = list((repo / "publish").glob(".staging-*/MANIFEST.json"))
    assert staged, "publish never reached its staging dir"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert (repo / "publish/current").resolve() == Path(first["release"]).resolve()
    assert cli("verify").returncode == 0
    assert list((repo / "publish").glob(".staging-*")), "the interrupted staging dir is still there"
    publish.publish(ENTRIES)
    assert not list((repo / "publish").glob(".staging-*")), "next publish removed it"


def test_list_marks_current_and_prune_keeps_the_newest_and_current_dropping_only_links(repo):
    made = []
    for i in range(4):
        _replace(repo / "results/r.html", f"v{i}")
        made.append(Path(publish.publish(ENTRIES)["release"]))
    listing = cli("list").stdout
    assert all(r.name in listing for r in made) and f"* {made[-1].name}" in listing
    assert len({_ino(r / "table.tsv") for r in made}) == 1 and os.stat(made[-1] / "table.tsv").st_nlink == 4
    refused = cli("prune", "--keep", "0")
    assert refused.returncode == 2 and "at least 1" in refused.stderr
    publish.point_current(repo / "publish", made[0])
    proc = cli("prune", "--keep", "2")
    assert proc.returncode == 0, proc.stderr
    kept = [made[0], *made[2:]]
    assert [r.name for r in publish.releases(repo / "publish")] == [r.name for r in kept]
    assert os.stat(made[-1] / "table.tsv").st_nlink == 3
    assert all(publish.verify(r) == [] and _sha256sum_ok(r) for r in kept)
    publish.prune(repo / "publish", 1)
    assert all(publish.verify(r) == [] and _sha256sum_ok(r) for r in (made[0], made[-1]))
    assert cli("verify").returncode == 0


def _grow_table(data):
    next(f for f in data["files"] if f["path"] == "table.tsv")["size"] += 1
    data["content_digest"] = publish.content_digest(data["files"])  # a careful forger


FORGERIES = {  # MANIFEST.json, pinned by its own SHA256SUMS line, keeps table.tsv's old sha256 / a grown size
    "sha256": lambda c: ((c / "table.tsv").write_text("a\tb\n1\t3\n"), _reseal(c, "table.tsv")),  # same size
    "size": lambda c: _rewrite_manifest(c, _grow_table, reseal=True),
}


@pytest.mark.parametrize("problem", sorted(FORGERIES))
def test_verify_names_the_file_forged_in_a_renamed_copy_whose_sha256sums_still_agree(repo, tmp_path, problem):
    """A renamed copy has no release name to pin SHA256SUMS."""
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", publish.publish(ENTRIES)["release"], str(copy)], check=True)
    subprocess.run(["chmod", "-R", "u+w", str(copy)], check=True)
    FORGERIES[problem](copy)
    assert _sha256sum_ok(copy), "consistent sums"
    problems = publish.verify(copy)
    assert problems and all("table.tsv" in p and problem in p for p in problems), problems
    proc = cli("verify", str(copy))
    assert proc.returncode == 1 and "table.tsv" in proc.stderr, proc.stdout


# storage and time that grow with what changed (issue 23)
def test_republishing_hashes_only_changed_results_unless_the_hash_cache_is_unreadable(repo, monkeypatch):
    """Also after a prune; verify reads every file."""
    monkeypatch.setattr(publish, "RACY_NS", 0)  # results old enough that their identities are remembered
    many = {"many": "results/many"}
    (repo / "results/many").mkdir()
    for i in range(20):
        (repo / f"results/many/f{i:02d}.txt").write_text(f"file {i}\n" * (i + 1))
    hashed, real = [], publish.sha256_file  # every path publish.sha256_file reads, in order
    monkeypatch.setattr(publish, "sha256_file", lambda path, *args: (hashed.append(Path(path)), real(path, *args))[1])

    def changed_only(name):
        _replace(repo / f"results/many/{name}", f"changed {name}\n")
        hashed.clear()
        result = publish.publish(many)
        read = [p for p in hashed if ".staging-" not in str(p)]  # the new release's own MANIFEST.json aside
        assert read == [(repo / f"results/many/{name}").resolve()]
        assert result["hashed"] == 1 and result["linked"] == 19 and publish.verify(result["release"]) == []

    first = Path(publish.publish(many)["release"])
    assert len([p for p in hashed if "results" in p.parts]) == 20
    hashed.clear()
    again = publish.publish(many)
    assert not again["created"] and hashed == [] and again["hashed"] == 0
    assert publish.verify(first) == [] and len(hashed) == 21, "verify reads the 20 files and the manifest"
    changed_only("f07.txt")
    assert publish.verify(first) == []
    for i in range(3):
        _replace(repo / "results/many/f00.txt", f"v{i}\n")
        publish.publish(many)
    publish.prune(repo / "publish", 1)  # the kept files lose links: their ctime changes
    changed_only("f01.txt")
    (repo / "publish/.hashes.json").write_text("{not json")
    _replace(repo / "results/many/f03.txt", "changed\n")
    result = publish.publish(many)
    assert result["hashed"] == 20 and result["linked"] == 19 and publish.verify(result["release"]) == []
    assert json.loads((repo / "publish/.hashes.json").read_text())["format"] == 1


def test_progress_on_a_terminal_is_one_line_updated_a_few_times_a_second(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(publish.time, "monotonic", lambda: clock[0])
    terminal = io.StringIO()
    terminal.isatty = lambda: True
    progress = publish.Progress("verify", terminal)
    progress.phase("hashing", 100, 100 << 20)
    for _ in range(100):  # 100 files of 1 MB over 10 s
        clock[0] += 0.1
        progress.add(1, 1 << 20)
    updates = terminal.getvalue().split("\r")[1:]
    assert 20 <= len(updates) <= 40, len(updates)  # not before 1 s, then at most 4 a second
    assert "\n" not in terminal.getvalue()
    line = r"verify: hashing (\d+)/100 files, \1\.0 MB/100\.0 MB, 10\.0 MB/s, \d+ s left\x1b\[K"
    assert all(re.fullmatch(line, update) for update in updates), updates
    assert "hashing 10/100 files, 10.0 MB/100.0 MB, 10.0 MB/s, 9 s left" in updates[0]
    progress.done("hashed 100 files")
    assert terminal.getvalue().endswith("verify: hashed 100 files in 10.0 s\x1b[K\n")


def test_many_copies_are_flushed_by_one_syncfs_instead_of_an_fsync_each(repo, monkeypatch):
    real = publish._syncfs()
    if real is None:
        missing_in_ci_fails("no syncfs here: every copy is fsynced")
    (repo / "results/lots").mkdir()
    for i in range(publish.SYNCFS_FILES):
        (repo / f"results/lots/{i}.txt").write_text(f"{i}\n")
    synced, flushed_files, fsync = [], [], os.fsync
    monkeypatch.setattr(publish, "_syncfs", lambda: lambda path: (synced.append(path), real(path)))
    regular = lambda fd: stat.S_ISREG(os.fstat(fd).st_mode)  # noqa: E731
    monkeypatch.setattr(os, "fsync", lambda fd: (regular(fd) and flushed_files.append(fd), fsync(fd))[1])
    release = publish.publish({"lots": "results/lots"})["release"]
    assert len(synced) == 1 and flushed_files == [], "one syncfs flushes the files, metadata and folders"
    assert publish.verify(release) == []
    publish.publish(ENTRIES)  # two copies, MANIFEST.json and SHA256SUMS: an fsync each
    assert len(flushed_files) == 4 and len(synced) == 1


def test_small_files_are_written_from_the_bytes_hashed_big_ones_copied(repo, monkeypatch):
    (repo / "results/big.bin").write_bytes(os.urandom(publish.KEEP_FILE_BYTES + 1))
    cloned, clone = [], publish.durable.clone
    monkeypatch.setattr(
        publish.durable, "clone", lambda src, *args, **kw: (cloned.append(src), clone(src, *args, **kw))[1]
    )
    release = Path(publish.publish({**ENTRIES, "big.bin": "results/big.bin"})["release"])
    assert [Path(p).name for p in cloned] == ["big.bin"], "the small files are read once, for their hash"
    assert publish.verify(release) == [] and _sha256sum_ok(release)
    assert not os.stat(release / "table.tsv").st_mode & 0o222


@pytest.mark.parametrize("kept", [True, False], ids=["small-written-from-memory", "large-copied-from-results"])
def test_a_result_changed_during_publish_gives_a_release_of_the_hashed_bytes_or_none(repo, monkeypatch, kept):
    """A small file is written from the bytes it was hashed from: the release holds them, whatever results/
    holds by then. A larger one is copied from results/ again: a change after hashing is refused, naming it."""
    source = repo / "results/tables/t.tsv"
    if not kept:
        source.write_bytes(b"x" * (publish.KEEP_FILE_BYTES + 1))
    hashed = source.read_bytes()
    real_write_new, real_clone = publish.durable.write_new, publish.durable.clone

    def change_then(write):
        def changed_first(*args, **kwargs):
            if not source.read_bytes().endswith(b"changed\n"):
                with open(source, "ab") as fh:
                    fh.write(b"changed\n")
            return write(*args, **kwargs)

        return changed_first

    monkeypatch.setattr(publish.durable, "write_new", change_then(real_write_new))
    monkeypatch.setattr(publish.durable, "clone", change_then(real_clone))
    if kept:
        release = Path(publish.publish(ENTRIES)["release"])
        assert (release / "table.tsv").read_bytes() == hashed and publish.verify(release) == []
    else:
        with pytest.raises(publish.PublishError, match=r"results/tables/t.tsv changed while it was being published"):
            publish.publish(ENTRIES)
        assert not (repo / "publish/current").exists() and not list((repo / "publish/releases").iterdir())
