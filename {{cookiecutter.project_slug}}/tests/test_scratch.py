"""Unit tests of workflow/scripts/scratch.py: the staging mechanism."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import scratch
from scratch import ScratchError, ScratchJob, bring_back, read_records, resolve_root, scratch_job

SCRATCH_PY = Path(scratch.__file__)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    wd = tmp_path / "wd"
    (wd / "data").mkdir(parents=True)
    (wd / "data" / "in.txt").write_text("hello\nworld\n")
    monkeypatch.chdir(wd)
    return wd


def make_job(tmp_path, **kw):
    defaults = dict(
        rule="r",
        wildcards="sample=a",
        inputs=["data/in.txt"],
        outputs=["results/out.txt"],
        logs=["logs/r/a.log"],
        root=str(tmp_path / "scratch"),
        staging="link",
        on_failure="keep",
    )
    defaults.update(kw)
    return ScratchJob(**defaults)


def run_cli(workdir, command, *extra, root, staging="link", on_failure="keep", outputs=("results/out.txt",)):
    args = [
        sys.executable,
        str(SCRATCH_PY),
        "shell",
        "--rule",
        "r",
        "--wildcards",
        "sample=a",
        "--root",
        root,
        "--staging",
        staging,
        "--on-failure",
        on_failure,
        "--input",
        "data/in.txt",
        "--output",
        *outputs,
        "--log",
        "logs/r/a.log",
        *extra,
    ]
    return subprocess.run(args, input=command, cwd=workdir, capture_output=True, text=True, timeout=60)


def test_resolve_root_creates_missing_root_private_and_refuses_relative(tmp_path):
    root = resolve_root(str(tmp_path / "a" / "b"))
    assert root.is_dir() and stat.S_IMODE(root.stat().st_mode) == 0o700
    with pytest.raises(ScratchError, match="relative path"):
        resolve_root("relative/dir")


def test_resolve_root_makes_an_existing_root_of_this_user_private(tmp_path):
    root = tmp_path / "made-by-snakemake"
    root.mkdir(mode=0o755)  # Snakemake makes the tmpdir resource with the umask's mode
    os.chmod(root, 0o755)
    assert stat.S_IMODE(resolve_root(str(root)).stat().st_mode) == 0o700


def test_resolve_root_leaves_a_shared_sticky_temp_dir_as_it_is_and_job_dirs_private(workdir, tmp_path):
    shared = tmp_path / "node-tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    job = make_job(tmp_path, root=str(shared)).start()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE(job.dir.stat().st_mode) == 0o700


def test_resolve_root_refuses_another_users_directory(tmp_path):
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 4242, 4242)
    else:
        theirs = Path("/")  # root's, and not sticky
    with pytest.raises(ScratchError, match=r"belongs to uid \d+, not to this user .*getuid"):
        resolve_root(str(theirs))


def test_job_dir_is_under_root_and_named_after_rule_and_wildcards(workdir, tmp_path):
    job = make_job(tmp_path).start()
    assert job.dir.parent == tmp_path / "scratch"
    assert job.dir.name.startswith("r.sample=a.")
    assert (job.dir / "data" / "in.txt").is_symlink()


def test_link_staging_symlinks_and_copy_staging_copies(workdir, tmp_path):
    linked = make_job(tmp_path, staging="link").start()
    copied = make_job(tmp_path, staging="copy").start()
    assert (linked.dir / "data/in.txt").is_symlink()
    staged = copied.dir / "data/in.txt"
    assert not staged.is_symlink() and staged.read_text() == "hello\nworld\n"
    assert copied.stats["in_bytes"] == 12


def test_successful_shell_job_brings_output_back_and_removes_scratch(workdir, tmp_path):
    proc = run_cli(workdir, "tr a-z A-Z < data/in.txt > results/out.txt", root=str(tmp_path / "scratch"))
    assert proc.returncode == 0, proc.stderr
    assert (workdir / "results/out.txt").read_text() == "HELLO\nWORLD\n"
    assert list((tmp_path / "scratch").iterdir()) == []
    record = read_records([workdir / "logs"])[-1]
    assert record["status"] == "ok" and record["out_bytes"] == 12 and record["removed"] is True


def test_shell_job_runs_in_scratch_with_tmpdir_inside_it(workdir, tmp_path):
    proc = run_cli(workdir, 'printf "%s\\n%s\\n" "$PWD" "$TMPDIR" > results/out.txt', root=str(tmp_path / "scratch"))
    assert proc.returncode == 0, proc.stderr
    cwd, tmp = (workdir / "results/out.txt").read_text().splitlines()
    assert Path(cwd).parent == tmp_path / "scratch"
    assert tmp == cwd + "/.tmp"


def test_log_written_by_command_goes_straight_to_durable_path(workdir, tmp_path):
    proc = run_cli(workdir, "echo progress > logs/r/a.log; exit 3", root=str(tmp_path / "scratch"))
    assert proc.returncode == 3
    log = (workdir / "logs/r/a.log").read_text()
    assert log.startswith("progress\n")


def test_failing_job_keeps_scratch_names_it_in_log_and_leaves_no_output(workdir, tmp_path):
    proc = run_cli(workdir, "echo partial > results/out.txt; exit 5", root=str(tmp_path / "scratch"))
    assert proc.returncode == 5
    assert not (workdir / "results/out.txt").exists()
    kept = list((tmp_path / "scratch").iterdir())
    assert len(kept) == 1 and (kept[0] / "results/out.txt").read_text() == "partial\n"
    log = (workdir / "logs/r/a.log").read_text()
    assert f"scratch dir KEPT for debugging: {kept[0]}" in log
    assert "rm -rf" in log


def test_failing_job_with_remove_policy_removes_scratch(workdir, tmp_path):
    proc = run_cli(workdir, "exit 1", root=str(tmp_path / "scratch"), on_failure="remove")
    assert proc.returncode == 1
    assert list((tmp_path / "scratch").iterdir()) == []
    assert "scratch dir removed" in (workdir / "logs/r/a.log").read_text()


def test_missing_declared_output_fails_the_job_clearly(workdir, tmp_path):
    proc = run_cli(workdir, "true", root=str(tmp_path / "scratch"))
    assert proc.returncode != 0
    assert "declared output results/out.txt was not created" in proc.stderr


def test_copy_back_into_unwritable_directory_fails_clearly_without_partial(workdir, tmp_path, monkeypatch):
    """A read-only target dir (EACCES on create) fails the job; nothing lands in results/."""
    (workdir / "results").mkdir()
    job = make_job(tmp_path).start()
    (job.dir / "results/out.txt").write_text("x")
    monkeypatch.setattr(scratch.os, "stat", _fake_other_device(os.stat, job.dir))

    def read_only(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(scratch.shutil, "copyfile", read_only)
    with pytest.raises(ScratchError, match="copy-back of results/out.txt failed: Permission denied"):
        job.finish()
    assert list((workdir / "results").iterdir()) == []
    assert "scratch dir KEPT" in (workdir / "logs/r/a.log").read_text()


def test_copy_back_fails_clearly_when_target_parent_is_not_a_directory(workdir, tmp_path):
    (workdir / "results").write_text("a file where a directory should be")
    proc = run_cli(workdir, "echo 1 > results/out.txt", root=str(tmp_path / "scratch"))
    assert proc.returncode != 0
    assert "copy-back of results/out.txt failed" in proc.stderr
    assert (workdir / "results").read_text() == "a file where a directory should be"


def test_cross_device_copy_back_failure_removes_partial_copy(workdir, tmp_path, monkeypatch):
    """A copy-back that dies mid-copy leaves neither the output nor a partial file."""
    job = make_job(tmp_path).start()
    (job.dir / "results/out.txt").write_text("x" * 1000)
    monkeypatch.setattr(scratch.os, "stat", _fake_other_device(os.stat, job.dir))

    def broken_copy(src, dst):
        Path(dst).write_text("x" * 10)
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(scratch.shutil, "copyfile", broken_copy)
    with pytest.raises(ScratchError, match="No space left on device"):
        job.finish()
    assert list((workdir / "results").iterdir()) == []
    assert (job.dir / "results/out.txt").exists(), "scratch copy kept for debugging"


def _fake_other_device(real_stat, scratch_dir):
    def fake(path, *args, **kwargs):
        st = real_stat(path, *args, **kwargs)
        if str(path).startswith(str(scratch_dir)):
            return os.stat_result((st.st_mode, st.st_ino, st.st_dev + 1, *tuple(st)[3:10]))
        return st

    return fake


def test_cross_device_copy_back_is_verified_and_atomic(workdir, tmp_path, monkeypatch):
    job = make_job(tmp_path, outputs=["results/out.txt", "results/dir"]).start()
    (job.dir / "results/out.txt").write_bytes(b"y" * 4096)
    (job.dir / "results/dir/sub").mkdir(parents=True)
    (job.dir / "results/dir/sub/f").write_text("f")
    monkeypatch.setattr(scratch.os, "stat", _fake_other_device(os.stat, job.dir))
    job.finish()
    assert (workdir / "results/out.txt").read_bytes() == b"y" * 4096
    assert (workdir / "results/dir/sub/f").read_text() == "f"
    assert sorted(p.name for p in (workdir / "results").iterdir()) == ["dir", "out.txt"]
    assert job.stats["out_bytes"] == 4097


def test_bring_back_removes_stale_partial_from_killed_copy_back(workdir, tmp_path):
    final = workdir / "results/out.txt"
    final.parent.mkdir()
    stale = final.parent / f".out.txt{scratch.PARTIAL_MARK}999-abc"
    stale.write_text("half")
    src = tmp_path / "src.txt"
    src.write_text("whole")
    bring_back(src, final)
    assert final.read_text() == "whole" and not stale.exists()


def test_directory_output_round_trip(workdir, tmp_path):
    proc = run_cli(
        workdir,
        "mkdir -p results/d/x && echo 1 > results/d/x/one",
        root=str(tmp_path / "scratch"),
        outputs=("results/d",),
    )
    assert proc.returncode == 0, proc.stderr
    assert (workdir / "results/d/x/one").read_text() == "1\n"


def test_sigterm_to_wrapper_stops_command_and_keeps_scratch(workdir, tmp_path):
    args = [
        sys.executable,
        str(SCRATCH_PY),
        "shell",
        "--rule",
        "r",
        "--root",
        str(tmp_path / "scratch"),
        "--output",
        "results/out.txt",
        "--log",
        "logs/r/a.log",
    ]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, cwd=workdir, text=True, stderr=subprocess.PIPE)
    proc.stdin.write("echo started > results/out.txt; sleep 60\n")
    proc.stdin.close()
    deadline = __import__("time").monotonic() + 30
    started = []
    while not started and __import__("time").monotonic() < deadline:
        started = list((tmp_path / "scratch").glob("*/results/out.txt"))
    assert started, "command never started"
    proc.terminate()
    assert proc.wait(timeout=30) != 0
    assert not (workdir / "results/out.txt").exists()
    assert started[0].exists()


def test_script_context_manager_yields_scratch_paths_and_copies_back(workdir, tmp_path):
    smk = SimpleNamespace(
        rule="s",
        wildcards={"sample": "a"},
        input=_named(["data/in.txt"], text="data/in.txt"),
        output=_named(["results/o.json"]),
        log=_named(["logs/s/a.log"]),
        resources=SimpleNamespace(tmpdir=str(tmp_path / "scratch"), scratch_staging="copy", scratch_on_failure="keep"),
    )
    with scratch_job(smk) as job:
        assert job.input.text.startswith(str(tmp_path / "scratch"))
        assert os.environ["TMPDIR"] == str(job.dir / ".tmp")
        Path(job.output[0]).write_text(json.dumps({"n": len(Path(job.input.text).read_text())}))
        assert not (workdir / "results/o.json").exists(), "nothing appears before the block ends"
    assert json.loads((workdir / "results/o.json").read_text()) == {"n": 12}
    assert list((tmp_path / "scratch").iterdir()) == []


def test_script_context_manager_keeps_scratch_when_block_raises(workdir, tmp_path):
    smk = SimpleNamespace(
        rule="s",
        wildcards={},
        input=_named([]),
        output=_named(["results/o.txt"]),
        log=_named(["logs/s.log"]),
        resources=SimpleNamespace(tmpdir=str(tmp_path / "scratch"), scratch_staging="link", scratch_on_failure="keep"),
    )
    with pytest.raises(ValueError):
        with scratch_job(smk) as job:
            Path(job.output[0]).write_text("half")
            raise ValueError("boom")
    assert not (workdir / "results/o.txt").exists()
    assert "ValueError: boom" in (workdir / "logs/s.log").read_text()
    assert len(list((tmp_path / "scratch").iterdir())) == 1


def test_invalid_policy_values_are_refused_with_the_setting_name(tmp_path):
    with pytest.raises(ScratchError, match="scratch_staging='hardlink'"):
        make_job(tmp_path, staging="hardlink")
    with pytest.raises(ScratchError, match="scratch_on_failure='maybe'"):
        make_job(tmp_path, on_failure="maybe")


def test_output_outside_workdir_is_refused(workdir, tmp_path):
    with pytest.raises(ScratchError, match="outside the working directory"):
        make_job(tmp_path, outputs=[str(tmp_path / "elsewhere.txt")])


def test_kept_command_lists_and_cleans_kept_dirs(workdir, tmp_path):
    run_cli(workdir, "exit 1", root=str(tmp_path / "scratch"))
    kept_dir = next((tmp_path / "scratch").iterdir())
    listing = subprocess.run(
        [sys.executable, str(SCRATCH_PY), "kept", "logs"], cwd=workdir, capture_output=True, text=True, check=True
    )
    assert str(kept_dir) in listing.stdout and "present" in listing.stdout
    subprocess.run(
        [sys.executable, str(SCRATCH_PY), "kept", "--clean", "logs"], cwd=workdir, check=True, capture_output=True
    )
    assert not kept_dir.exists()


class _named(list):
    """Stand-in for Snakemake's Namedlist: a list with named entries."""

    def __init__(self, values, **names):
        super().__init__(values)
        self._names = names
        for k, v in names.items():
            setattr(self, k, v)

    def items(self):
        return self._names.items()
