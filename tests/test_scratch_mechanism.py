"""workflow/vendor/scratch.py of a rendered repo on its own; permission failures run as the workflow user."""

import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import as_user, hand_over, node_tmp, other_filesystem_than, require_root, workflow_user

POLICY = {"scratch_staging": "link", "scratch_on_failure": "keep"}
JOB = {"rule": "r", "wildcards": ["sample=a"], "input": ["data/in.txt"], "output": ["results/out.txt"]}


@pytest.fixture
def scratch(mechanism):
    import scratch

    return scratch


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "wd" / "data").mkdir(parents=True)
    (tmp_path / "wd" / "data" / "in.txt").write_text("hello\nworld\n")
    monkeypatch.chdir(tmp_path / "wd")
    return tmp_path / "wd"


def make_job(scratch, root, outputs=("results/out.txt",), **policy):
    policy = {"tmpdir": str(root), **POLICY, **policy}
    return scratch.ScratchJob(["data/in.txt"], list(outputs), ["logs/r/a.log"], policy, rule="r", wildcards="sample=a")


def cli(scratch, root, **job):
    """The `scratch.py shell` command line of a job: JOB and POLICY, overridden by `job`."""
    args = [sys.executable, scratch.__file__, "shell"]
    for name, value in {**JOB, "log": ["logs/r/a.log"], **POLICY, "tmpdir": str(root), **job}.items():
        args += [f"--{name.replace('_', '-')}", *([value] if isinstance(value, str) else value)]
    return args


def run_cli(scratch, workdir, command, root, user=None, **job):
    kwargs = {"cwd": workdir, "capture_output": True, "text": True, "timeout": 60, **as_user(user, [workdir])}
    return subprocess.run(cli(scratch, root, **job), input=command, **kwargs)


def test_a_root_is_made_private_a_shared_sticky_one_kept_as_it_is_a_relative_one_refused(scratch, workdir, tmp_path):
    (tmp_path / "old").mkdir(mode=0o755)
    for root in (tmp_path / "a" / "b", tmp_path / "old"):
        assert scratch.resolve_root(str(root)) == str(root) and stat.S_IMODE(os.stat(root).st_mode) == 0o700
    job = make_job(scratch, shared := node_tmp(tmp_path)).start()
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777 and stat.S_IMODE(os.stat(job.dir).st_mode) == 0o700
    with pytest.raises(scratch.ScratchError, match="not an absolute path"):
        scratch.resolve_root("relative/scratch")


def test_another_users_root_is_refused_with_what_to_do(scratch, tmp_path):
    require_root("give a folder to another user")
    (tmp_path / "theirs").mkdir()
    hand_over(tmp_path / "theirs", workflow_user())
    with pytest.raises(scratch.ScratchError, match="give each user a root of their own"):
        scratch.resolve_root(str(tmp_path / "theirs"))


def test_job_dir_is_named_after_the_job_and_a_rerun_replaces_what_a_killed_run_left(scratch, workdir, tmp_path):
    first = make_job(scratch, tmp_path / "scratch").start()
    assert Path(first.dir).parent == tmp_path / "scratch" and Path(first.dir).name.startswith("r.sample=a.")
    Path(first.dir, "leftover").mkdir(mode=0o500)  # read-only, as some tools leave folders
    again = make_job(scratch, tmp_path / "scratch").start()
    assert again.dir == first.dir and again.cwd == first.cwd and not Path(again.dir, "leftover").exists()
    other = make_job(scratch, tmp_path / "scratch", outputs=("results/other.txt",)).start()
    assert other.dir != first.dir, "each job of a checkout has a dir of its own"
    unnamed = scratch.ScratchJob([], ["results/x.tsv"], [], {"tmpdir": str(tmp_path / "scratch"), **POLICY}).start()
    assert Path(unnamed.dir).name.startswith("x.tsv."), "a shell job is named after its first output"


def test_a_rule_without_wildcards_runs_with_an_outside_input_staged_at_its_relative_path(scratch, workdir, tmp_path):
    (tmp_path / "shared" / "ref").mkdir(parents=True)
    (tmp_path / "shared" / "ref" / "genome.fa").write_text(">chr1\nACGT\n")
    job = {"rule": "fan_in", "wildcards": [], "input": ["../shared/ref/genome.fa", "data/in.txt"]}
    command = "(cat ../shared/ref/genome.fa data/in.txt; wc -l < data/in.txt; pwd) > results/out.txt"
    proc = run_cli(scratch, workdir, command, tmp_path / "s", scratch_staging="copy", log="logs/fan_in.log", **job)
    assert proc.returncode == 0, proc.stderr
    *text, where = (line.strip() for line in (workdir / "results/out.txt").read_text().splitlines())
    assert text == [">chr1", "ACGT", "hello", "world", "2"] and Path(where).is_relative_to(tmp_path / "s"), "in scratch"
    record = json.loads((workdir / "logs/fan_in.log").read_text().split("[scratch] ", 1)[1])
    assert record["rule"] == "fan_in" and record["wildcards"] == ""


def test_link_staging_symlinks_and_copy_staging_copies(scratch, workdir, tmp_path):
    linked = make_job(scratch, tmp_path / "link-scratch").start()
    copied = make_job(scratch, tmp_path / "copy-scratch", scratch_staging="copy").start()
    assert Path(linked.dir, "data/in.txt").is_symlink()
    staged = Path(copied.dir, "data/in.txt")
    assert not staged.is_symlink() and staged.read_text() == "hello\nworld\n" and copied.stats["in_bytes"] == 12


def test_a_shell_job_runs_in_scratch_brings_back_file_and_dir_outputs_and_removes_scratch(scratch, workdir, tmp_path):
    command = "tr a-z A-Z < data/in.txt > results/out.txt; mkdir -p results/d/x; "
    command += 'printf "%s\\n%s\\n" "$PWD" "$TMPDIR" > results/d/x/env'
    proc = run_cli(scratch, workdir, command, tmp_path / "scratch", output=["results/out.txt", "results/d"])
    assert proc.returncode == 0, proc.stderr
    assert (workdir / "results/out.txt").read_text() == "HELLO\nWORLD\n"
    cwd, tmp = (workdir / "results/d/x/env").read_text().splitlines()
    assert Path(cwd).parent == tmp_path / "scratch" and tmp == cwd + "/.tmp"
    assert list((tmp_path / "scratch").iterdir()) == []
    record = scratch.read_records([str(workdir / "logs")])[-1]
    assert (record["status"], record["removed"], record["out_bytes"]) == ("ok", True, 12 + len(f"{cwd}\n{tmp}\n"))


def test_a_failing_job_leaves_no_output_keeps_scratch_named_in_its_log_and_kept_cleans_it(scratch, workdir, tmp_path):
    command = "echo progress > logs/r/a.log; echo partial > results/out.txt; exit 5"
    proc = run_cli(scratch, workdir, command, tmp_path / "scratch")
    assert proc.returncode == 5 and not (workdir / "results/out.txt").exists()
    (kept,) = list((tmp_path / "scratch").iterdir())
    assert (kept / "results/out.txt").read_text() == "partial\n"
    log = (workdir / "logs/r/a.log").read_text()
    assert log.startswith("progress\n"), "a log written by the command goes straight to its durable path"
    assert f"scratch dir KEPT for debugging: {kept}" in log and "rm -rf" in log
    kept_cmd = [sys.executable, scratch.__file__, "kept"]
    listing = subprocess.run([*kept_cmd, "logs"], cwd=workdir, capture_output=True, text=True, check=True)
    assert str(kept) in listing.stdout and "present" in listing.stdout
    subprocess.run([*kept_cmd, "--clean", "logs"], cwd=workdir, check=True)
    assert not kept.exists()


def test_failing_job_with_the_remove_policy_removes_scratch(scratch, workdir, tmp_path):
    proc = run_cli(scratch, workdir, "exit 1", tmp_path / "scratch", scratch_on_failure="remove")
    assert proc.returncode == 1 and list((tmp_path / "scratch").iterdir()) == []
    assert "scratch dir removed" in (workdir / "logs/r/a.log").read_text()


def test_a_missing_or_bad_policy_or_a_path_outside_the_workdir_is_refused_before_any_run(scratch, workdir, tmp_path):
    with pytest.raises(scratch.ScratchError, match="scratch_staging='hardlink'.*profile"):
        make_job(scratch, tmp_path, scratch_staging="hardlink")
    with pytest.raises(scratch.ScratchError, match="scratch_on_failure=None"):
        make_job(scratch, tmp_path, scratch_on_failure=None)
    with pytest.raises(scratch.ScratchError, match="outside the working directory"):
        make_job(scratch, tmp_path, outputs=[str(tmp_path / "elsewhere.txt")])
    args = [sys.executable, scratch.__file__, "shell", "--output", "results/out.txt"]
    proc = subprocess.run(args, input="true", cwd=workdir, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--tmpdir" in proc.stderr, "no policy value is defaulted by the wrapper"
    proc = run_cli(scratch, workdir, "touch ran", tmp_path / "s", input=[str(workdir / "data/in.txt")])
    assert proc.returncode != 0 and "is an absolute path" in proc.stderr and "os.path.relpath" in proc.stderr
    assert not (tmp_path / "s").exists() and not (workdir / "ran").exists()


def test_copy_back_fails_clearly_for_a_missing_output_or_one_whose_parent_is_a_file(scratch, workdir, tmp_path):
    proc = run_cli(scratch, workdir, "true", tmp_path / "scratch")
    assert proc.returncode != 0 and "declared output results/out.txt was not created" in proc.stderr
    (workdir / "results").write_text("a file where a directory should be")
    proc = run_cli(scratch, workdir, "echo 1 > results/out.txt", tmp_path / "scratch")
    assert proc.returncode != 0 and "copy-back failed" in proc.stderr
    assert (workdir / "results").read_text() == "a file where a directory should be"


def test_copy_back_into_a_folder_the_user_cannot_write_fails_clearly_and_leaves_nothing(scratch, workdir, tmp_path):
    require_root("give a folder to another user")
    hand_over(workdir, workflow_user())
    (workdir / "results").mkdir()
    os.chown(workdir / "results", 0, 0)  # not the job's: it may not create files there
    proc = run_cli(scratch, workdir, "echo 1 > results/out.txt", node_tmp(tmp_path), user=workflow_user())
    assert proc.returncode == 70 and "copy-back failed" in proc.stderr and "Permission denied" in proc.stderr
    assert list((workdir / "results").iterdir()) == []
    assert "scratch dir KEPT" in (workdir / "logs/r/a.log").read_text()


def test_copy_back_across_filesystems_is_checked_and_atomic(scratch, workdir):
    with tempfile.TemporaryDirectory(dir=other_filesystem_than(workdir), ignore_cleanup_errors=True) as root:
        job = make_job(scratch, root, outputs=["results/out.txt", "results/dir"]).start()
        Path(job.dir, "results/out.txt").write_bytes(b"y" * 4096)
        Path(job.dir, "results/dir/sub").mkdir(parents=True)
        Path(job.dir, "results/dir/sub/f").write_text("f")
        job.finish()
    assert (workdir / "results/out.txt").read_bytes() == b"y" * 4096
    assert (workdir / "results/dir/sub/f").read_text() == "f"
    assert sorted(p.name for p in (workdir / "results").iterdir()) == ["dir", "out.txt"], "no partial copy left"
    assert job.stats["out_bytes"] == 4097


def test_bring_back_removes_a_stale_partial_left_by_a_killed_copy_back(scratch, workdir, tmp_path):
    (workdir / "results").mkdir()
    (stale := workdir / f"results/.out.txt{scratch.PARTIAL_MARK}999").write_text("half")
    (tmp_path / "src.txt").write_text("whole")
    scratch.bring_back(str(tmp_path / "src.txt"), str(workdir / "results/out.txt"))
    assert (workdir / "results/out.txt").read_text() == "whole" and not stale.exists()


def test_sigterm_to_the_wrapper_stops_the_command_and_keeps_scratch(scratch, workdir, tmp_path):
    proc = subprocess.Popen(cli(scratch, tmp_path / "scratch"), stdin=subprocess.PIPE, cwd=workdir, text=True)
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
        self.__dict__.update(names)

    def items(self):
        return vars(self).items()


def snakemake_object(root, output, staging="link", inputs=()):
    return SimpleNamespace(
        rule="s",
        wildcards=Named([], sample="a"),
        input=Named(list(inputs), **({"text": inputs[0]} if inputs else {})),
        output=Named([output]),
        log=Named(["logs/s/a.log"]),
        resources=SimpleNamespace(tmpdir=str(root), scratch_staging=staging, scratch_on_failure="keep"),
    )


def test_script_context_manager_works_in_scratch_and_on_an_error_logs_it_and_keeps_scratch(scratch, workdir, tmp_path):
    smk = snakemake_object(tmp_path / "scratch", "results/o.json", "copy", inputs=["data/in.txt"])
    with scratch.scratch_job(smk) as job:
        assert job.input.text.startswith(str(tmp_path / "scratch"))
        assert os.environ["TMPDIR"] == os.path.join(job.dir, ".tmp")
        Path(job.output[0]).write_text(json.dumps({"n": len(Path(job.input.text).read_text())}))
        assert not (workdir / "results/o.json").exists(), "nothing appears before the block ends"
    assert json.loads((workdir / "results/o.json").read_text()) == {"n": 12}
    assert list((tmp_path / "scratch").iterdir()) == []
    with pytest.raises(ValueError), scratch.scratch_job(snakemake_object(tmp_path / "scratch", "results/o.txt")) as job:
        Path(job.output[0]).write_text("half")
        raise ValueError("boom")
    assert not (workdir / "results/o.txt").exists()
    log = (workdir / "logs/s/a.log").read_text()
    assert "Traceback (most recent call last)" in log and "ValueError: boom" in log
    assert len(list((tmp_path / "scratch").iterdir())) == 1
