"""workflow/vendor/scratch.py, the staging mechanism, on its own: roots, staging, copy-back, failures.

The modules come from a rendered repository (the `mechanism` fixture). Cross-filesystem copy-back uses
/dev/shm (tmpfs) as a second real filesystem; permission failures run as the unprivileged workflow user.
"""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import as_user, hand_over, workflow_user

POLICY = {"scratch_staging": "link", "scratch_on_failure": "keep"}


@pytest.fixture
def scratch(mechanism):
    import scratch

    return scratch


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    wd = tmp_path / "wd"
    (wd / "data").mkdir(parents=True)
    (wd / "data" / "in.txt").write_text("hello\nworld\n")
    monkeypatch.chdir(wd)
    return wd


def make_job(scratch, root, outputs=("results/out.txt",), **policy):
    policy = {"tmpdir": str(root), **POLICY, **policy}
    return scratch.ScratchJob(["data/in.txt"], list(outputs), ["logs/r/a.log"], policy, rule="r", wildcards="sample=a")


def run_cli(scratch, workdir, command, root, outputs=("results/out.txt",), user=None, **policy):
    policy = {**POLICY, **policy}
    args = [sys.executable, scratch.__file__, "shell", "--rule", "r", "--wildcards", "sample=a", "--tmpdir", str(root)]
    args += ["--scratch-staging", policy["scratch_staging"], "--scratch-on-failure", policy["scratch_on_failure"]]
    args += ["--input", "data/in.txt", "--output", *outputs, "--log", "logs/r/a.log"]
    return subprocess.run(
        args, input=command, cwd=workdir, capture_output=True, text=True, timeout=60, **as_user(user, [workdir])
    )


def test_root_is_created_private_and_a_relative_root_is_refused(scratch, tmp_path):
    root = scratch.resolve_root(str(tmp_path / "a" / "b"))
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    with pytest.raises(scratch.ScratchError, match="not an absolute path"):
        scratch.resolve_root("relative/scratch")


def test_an_existing_root_of_this_user_is_made_private(scratch, tmp_path):
    (tmp_path / "r").mkdir(mode=0o755)
    scratch.resolve_root(str(tmp_path / "r"))
    assert stat.S_IMODE(os.stat(tmp_path / "r").st_mode) == 0o700


def test_a_shared_sticky_temp_dir_is_used_as_it_is_with_private_job_dirs(scratch, workdir, tmp_path):
    shared = tmp_path / "node-tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    job = make_job(scratch, shared).start()
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(job.dir).st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory owned by another user")
def test_another_users_root_is_refused_with_what_to_do(scratch, tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    hand_over(theirs, workflow_user())
    with pytest.raises(scratch.ScratchError, match="give each user a root of their own"):
        scratch.resolve_root(str(theirs))


def test_job_dir_is_under_the_root_and_named_after_the_job(scratch, workdir, tmp_path):
    job = make_job(scratch, tmp_path / "scratch").start()
    assert Path(job.dir).parent == tmp_path / "scratch" and Path(job.dir).name.startswith("r.sample=a.")
    unnamed = scratch.ScratchJob([], ["results/x.tsv"], [], {"tmpdir": str(tmp_path / "scratch"), **POLICY}).start()
    assert Path(unnamed.dir).name.startswith("x.tsv."), "a shell job is named after its first output"


def test_a_rerun_of_a_job_works_in_the_same_dir_and_replaces_what_a_killed_run_left(scratch, workdir, tmp_path):
    first = make_job(scratch, tmp_path / "scratch").start()
    Path(first.dir, "leftover").mkdir(mode=0o500)  # read-only, as some tools leave folders
    again = make_job(scratch, tmp_path / "scratch").start()
    assert again.dir == first.dir and again.cwd == first.cwd
    assert not Path(again.dir, "leftover").exists()
    other = make_job(scratch, tmp_path / "scratch", outputs=("results/other.txt",)).start()
    assert other.dir != first.dir, "each job of a checkout has a dir of its own"


def test_a_shell_rule_without_wildcards_runs(scratch, workdir, tmp_path):
    args = [sys.executable, scratch.__file__, "shell", "--rule", "fan_in", "--wildcards", "--tmpdir", str(tmp_path)]
    args += ["--scratch-staging", "copy", "--scratch-on-failure", "keep", "--input", "data/in.txt"]
    args += ["--output", "results/all.txt", "--log", "logs/fan_in.log"]
    proc = subprocess.run(
        args, input="wc -l < data/in.txt > results/all.txt", cwd=workdir, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert (workdir / "results/all.txt").read_text().strip() == "2"
    record = json.loads((workdir / "logs/fan_in.log").read_text().split("[scratch] ", 1)[1])
    assert record["rule"] == "fan_in" and record["wildcards"] == ""


def test_an_input_outside_the_working_directory_is_staged_at_the_same_relative_path(scratch, workdir, tmp_path):
    (tmp_path / "shared" / "ref").mkdir(parents=True)
    (tmp_path / "shared" / "ref" / "genome.fa").write_text(">chr1\nACGT\n")
    args = [sys.executable, scratch.__file__, "shell", "--rule", "r", "--wildcards", "--tmpdir", str(tmp_path / "s")]
    args += ["--scratch-staging", "copy", "--scratch-on-failure", "keep"]
    args += ["--input", "../shared/ref/genome.fa", "data/in.txt", "--output", "results/x.txt", "--log", "logs/r.log"]
    command = "cat ../shared/ref/genome.fa data/in.txt > results/x.txt; pwd >> results/x.txt"
    proc = subprocess.run(args, input=command, cwd=workdir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = (workdir / "results/x.txt").read_text().splitlines()
    assert lines[:4] == [">chr1", "ACGT", "hello", "world"]
    assert Path(lines[4]).is_relative_to(tmp_path / "s"), "the command ran in scratch"


def test_an_absolute_input_of_a_shell_command_is_refused_before_it_runs(scratch, workdir, tmp_path):
    args = [sys.executable, scratch.__file__, "shell", "--rule", "r", "--wildcards", "--tmpdir", str(tmp_path / "s")]
    args += ["--scratch-staging", "link", "--scratch-on-failure", "keep"]
    args += ["--input", str(workdir / "data/in.txt"), "--output", "results/x.txt", "--log", "logs/r.log"]
    proc = subprocess.run(args, input="touch ran", cwd=workdir, capture_output=True, text=True)
    assert proc.returncode != 0 and "is an absolute path" in proc.stderr and "os.path.relpath" in proc.stderr
    assert not (tmp_path / "s").exists() and not (workdir / "ran").exists()


def test_link_staging_symlinks_and_copy_staging_copies(scratch, workdir, tmp_path):
    linked = make_job(scratch, tmp_path / "link-scratch").start()
    copied = make_job(scratch, tmp_path / "copy-scratch", scratch_staging="copy").start()
    assert Path(linked.dir, "data/in.txt").is_symlink()
    staged = Path(copied.dir, "data/in.txt")
    assert not staged.is_symlink() and staged.read_text() == "hello\nworld\n"
    assert copied.stats["in_bytes"] == 12


def test_successful_shell_job_brings_its_output_back_and_removes_scratch(scratch, workdir, tmp_path):
    proc = run_cli(scratch, workdir, "tr a-z A-Z < data/in.txt > results/out.txt", tmp_path / "scratch")
    assert proc.returncode == 0, proc.stderr
    assert (workdir / "results/out.txt").read_text() == "HELLO\nWORLD\n"
    assert list((tmp_path / "scratch").iterdir()) == []
    record = scratch.read_records([str(workdir / "logs")])[-1]
    assert record["status"] == "ok" and record["out_bytes"] == 12 and record["removed"] is True


def test_shell_job_runs_in_scratch_with_its_temp_dir_inside(scratch, workdir, tmp_path):
    proc = run_cli(scratch, workdir, 'printf "%s\\n%s\\n" "$PWD" "$TMPDIR" > results/out.txt', tmp_path / "scratch")
    assert proc.returncode == 0, proc.stderr
    cwd, tmp = (workdir / "results/out.txt").read_text().splitlines()
    assert Path(cwd).parent == tmp_path / "scratch" and tmp == cwd + "/.tmp"


def test_a_log_written_by_the_command_goes_straight_to_its_durable_path(scratch, workdir, tmp_path):
    proc = run_cli(scratch, workdir, "echo progress > logs/r/a.log; exit 3", tmp_path / "scratch")
    assert proc.returncode == 3
    assert (workdir / "logs/r/a.log").read_text().startswith("progress\n")


def test_failing_job_keeps_scratch_names_it_in_the_log_and_leaves_no_output(scratch, workdir, tmp_path):
    proc = run_cli(scratch, workdir, "echo partial > results/out.txt; exit 5", tmp_path / "scratch")
    assert proc.returncode == 5 and not (workdir / "results/out.txt").exists()
    (kept,) = list((tmp_path / "scratch").iterdir())
    assert (kept / "results/out.txt").read_text() == "partial\n"
    log = (workdir / "logs/r/a.log").read_text()
    assert f"scratch dir KEPT for debugging: {kept}" in log and "rm -rf" in log


def test_failing_job_with_the_remove_policy_removes_scratch(scratch, workdir, tmp_path):
    proc = run_cli(scratch, workdir, "exit 1", tmp_path / "scratch", scratch_on_failure="remove")
    assert proc.returncode == 1 and list((tmp_path / "scratch").iterdir()) == []
    assert "scratch dir removed" in (workdir / "logs/r/a.log").read_text()


def test_a_missing_declared_output_fails_the_job_clearly(scratch, workdir, tmp_path):
    proc = run_cli(scratch, workdir, "true", tmp_path / "scratch")
    assert proc.returncode != 0 and "declared output results/out.txt was not created" in proc.stderr


def test_missing_policy_is_refused_naming_the_setting_and_the_profile(scratch, workdir, tmp_path):
    with pytest.raises(scratch.ScratchError, match="scratch_staging='hardlink'.*profile"):
        make_job(scratch, tmp_path, scratch_staging="hardlink")
    with pytest.raises(scratch.ScratchError, match="scratch_on_failure=None"):
        make_job(scratch, tmp_path, scratch_on_failure=None)
    args = [sys.executable, scratch.__file__, "shell", "--output", "results/out.txt"]
    proc = subprocess.run(args, input="true", cwd=workdir, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--tmpdir" in proc.stderr, "no policy value is defaulted by the wrapper"


def test_an_output_outside_the_working_directory_is_refused(scratch, workdir, tmp_path):
    with pytest.raises(scratch.ScratchError, match="outside the working directory"):
        make_job(scratch, tmp_path, outputs=[str(tmp_path / "elsewhere.txt")])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the results folder to someone else")
def test_copy_back_into_a_folder_the_user_cannot_write_fails_clearly_and_leaves_nothing(scratch, workdir, tmp_path):
    hand_over(workdir, workflow_user())
    (workdir / "results").mkdir()
    os.chown(workdir / "results", 0, 0)  # not the job's: it may not create files there
    node = tmp_path / "node"
    node.mkdir(mode=0o1777)
    os.chmod(node, 0o1777)
    proc = run_cli(scratch, workdir, "echo 1 > results/out.txt", node, user=workflow_user())
    assert proc.returncode == 70 and "copy-back failed" in proc.stderr and "Permission denied" in proc.stderr
    assert list((workdir / "results").iterdir()) == []
    assert "scratch dir KEPT" in (workdir / "logs/r/a.log").read_text()


def test_copy_back_fails_clearly_when_the_target_parent_is_a_file(scratch, workdir, tmp_path):
    (workdir / "results").write_text("a file where a directory should be")
    proc = run_cli(scratch, workdir, "echo 1 > results/out.txt", tmp_path / "scratch")
    assert proc.returncode != 0 and "copy-back failed" in proc.stderr
    assert (workdir / "results").read_text() == "a file where a directory should be"


SHM = Path("/dev/shm")


@pytest.mark.skipif(
    not SHM.is_dir() or os.stat(SHM).st_dev == os.stat("/tmp").st_dev, reason="needs /dev/shm on its own filesystem"
)
def test_copy_back_across_filesystems_is_checked_and_atomic(scratch, workdir, tmp_path):
    root = Path(__import__("tempfile").mkdtemp(dir=SHM))
    try:
        job = make_job(scratch, root, outputs=["results/out.txt", "results/dir"]).start()
        Path(job.dir, "results/out.txt").write_bytes(b"y" * 4096)
        Path(job.dir, "results/dir/sub").mkdir(parents=True)
        Path(job.dir, "results/dir/sub/f").write_text("f")
        job.finish()
    finally:
        __import__("shutil").rmtree(root, ignore_errors=True)
    assert (workdir / "results/out.txt").read_bytes() == b"y" * 4096
    assert (workdir / "results/dir/sub/f").read_text() == "f"
    assert sorted(p.name for p in (workdir / "results").iterdir()) == ["dir", "out.txt"], "no partial copy left"
    assert job.stats["out_bytes"] == 4097


def test_bring_back_removes_a_stale_partial_left_by_a_killed_copy_back(scratch, workdir, tmp_path):
    final = workdir / "results/out.txt"
    final.parent.mkdir()
    stale = final.parent / f".out.txt{scratch.PARTIAL_MARK}999"
    stale.write_text("half")
    (tmp_path / "src.txt").write_text("whole")
    scratch.bring_back(str(tmp_path / "src.txt"), str(final))
    assert final.read_text() == "whole" and not stale.exists()


def test_a_directory_output_round_trips(scratch, workdir, tmp_path):
    command = "mkdir -p results/d/x && echo 1 > results/d/x/one"
    proc = run_cli(scratch, workdir, command, tmp_path / "scratch", outputs=("results/d",))
    assert proc.returncode == 0, proc.stderr
    assert (workdir / "results/d/x/one").read_text() == "1\n"


def test_sigterm_to_the_wrapper_stops_the_command_and_keeps_scratch(scratch, workdir, tmp_path):
    args = [sys.executable, scratch.__file__, "shell", "--tmpdir", str(tmp_path / "scratch")]
    args += ["--scratch-staging", "link", "--scratch-on-failure", "keep", "--output", "results/out.txt"]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, cwd=workdir, text=True, stderr=subprocess.PIPE)
    proc.stdin.write("echo started > results/out.txt; sleep 60\n")
    proc.stdin.close()
    deadline, started = time.monotonic() + 30, []
    while not started and time.monotonic() < deadline:
        started = list((tmp_path / "scratch").glob("*/results/out.txt"))
    assert started, "command never started"
    proc.terminate()
    assert proc.wait(timeout=30) != 0
    assert not (workdir / "results/out.txt").exists() and started[0].exists()


class Named(list):
    """Stand-in for Snakemake's Namedlist: a list with named entries."""

    def __init__(self, values, **names):
        super().__init__(values)
        self._names = names
        self.__dict__.update(names)

    def items(self):
        return self._names.items()


def snakemake_object(root, output, staging="link", inputs=()):
    return SimpleNamespace(
        rule="s",
        wildcards=Named([], sample="a"),
        input=Named(list(inputs), **({"text": inputs[0]} if inputs else {})),
        output=Named([output]),
        log=Named(["logs/s/a.log"]),
        resources=SimpleNamespace(tmpdir=str(root), scratch_staging=staging, scratch_on_failure="keep"),
    )


def test_script_context_manager_gives_scratch_paths_and_brings_outputs_back(scratch, workdir, tmp_path):
    smk = snakemake_object(tmp_path / "scratch", "results/o.json", "copy", inputs=["data/in.txt"])
    with scratch.scratch_job(smk) as job:
        assert job.input.text.startswith(str(tmp_path / "scratch"))
        assert os.environ["TMPDIR"] == os.path.join(job.dir, ".tmp")
        Path(job.output[0]).write_text(json.dumps({"n": len(Path(job.input.text).read_text())}))
        assert not (workdir / "results/o.json").exists(), "nothing appears before the block ends"
    assert json.loads((workdir / "results/o.json").read_text()) == {"n": 12}
    assert list((tmp_path / "scratch").iterdir()) == []


def test_script_context_manager_keeps_scratch_and_logs_the_traceback_when_the_block_raises(scratch, workdir, tmp_path):
    smk = snakemake_object(tmp_path / "scratch", "results/o.txt")
    with pytest.raises(ValueError), scratch.scratch_job(smk) as job:
        Path(job.output[0]).write_text("half")
        raise ValueError("boom")
    assert not (workdir / "results/o.txt").exists()
    log = (workdir / "logs/s/a.log").read_text()
    assert "Traceback (most recent call last)" in log and "ValueError: boom" in log
    assert len(list((tmp_path / "scratch").iterdir())) == 1


def test_kept_lists_and_cleans_the_kept_dirs(scratch, workdir, tmp_path):
    run_cli(scratch, workdir, "exit 1", tmp_path / "scratch")
    kept = next((tmp_path / "scratch").iterdir())
    listing = subprocess.run(
        [sys.executable, scratch.__file__, "kept", "logs"], cwd=workdir, capture_output=True, text=True, check=True
    )
    assert str(kept) in listing.stdout and "present" in listing.stdout
    subprocess.run([sys.executable, scratch.__file__, "kept", "--clean", "logs"], cwd=workdir, check=True)
    assert not kept.exists()
