"""A shared machine: two unprivileged users (conftest.py) share one sticky node temp dir; a checkout moves."""

import json
import os
import pwd
import stat
import sys

import pytest
from conftest import IS_ROOT, SECOND_USER, TEST_USER, hand_over, isolated_env, node_tmp, workflow_user


@pytest.mark.parametrize("context, root_name", [("local", "{slug}-scratch-{uid}"), ("ci", "{slug}-ci-scratch-{uid}")])
def test_two_users_run_one_after_the_other_on_one_node_each_in_a_private_scratch_root(
    render, snakemake, tmp_path, context, root_name
):
    if not IS_ROOT:  # only root can make two users; in CI a skip would hide the test, so it fails there
        (pytest.fail if os.environ.get("CI") else pytest.skip)("two users on one node need the suite to run as root")
    node = node_tmp(tmp_path)
    first, second = render(), render()
    hand_over(second.parent, workflow_user(SECOND_USER))  # the second user's own checkout
    for user, repo in ((TEST_USER, first), (SECOND_USER, second)):
        base = tmp_path / f"env-{user}"  # the user's own home and caches; TMPDIR: the shared node temp dir
        base.mkdir()
        env = isolated_env(base, TMPDIR=str(node))
        for private in ("home", "xdg-cache"):
            hand_over(base / private, workflow_user(user))
        snakemake(repo, "--profile", f"profiles/{context}", env=env, user=user)
        assert (repo / "results/report.html").is_file()
    for user, repo in ((TEST_USER, first), (SECOND_USER, second)):
        uid = pwd.getpwnam(user).pw_uid
        root = node / root_name.format(slug=repo.name, uid=uid)
        info = root.lstat()
        assert stat.S_ISDIR(info.st_mode) and info.st_uid == uid, f"{root} is {user}'s own directory"
        assert stat.S_IMODE(info.st_mode) == 0o700, f"{root} has mode {stat.S_IMODE(info.st_mode):o}, not 700"
        assert list(root.iterdir()) == [], "no scratch dirs left after success"


def test_moving_the_checkout_reruns_nothing_and_no_recorded_command_names_a_place(published_example, snakemake):
    repo = published_example  # built in another folder (local_reference), then copied here: a moved checkout
    # what Snakemake keeps as each wrapped rule's code must not name the checkout or an interpreter
    recorded = [json.loads(p.read_text()) for p in (repo / ".snakemake/metadata").rglob("*") if p.is_file()]
    shell_code = {record["code"] for record in recorded if record.get("shellcmd")}
    assert shell_code, "the shell rules' code was recorded"
    for code in shell_code:
        assert str(repo) not in code and sys.executable not in code and "/bin/python" not in code, code
    moved = repo.with_name(f"{repo.name}-moved")
    repo.rename(moved)  # a renamed folder, a re-pointed symlink, another mount point: the same checkout
    again = snakemake(moved, "--profile", "profiles/local", "--dry-run")
    assert "Nothing to be done" in again.output, again.output[-3000:]
    changed = snakemake(moved, "--profile", "profiles/local", "--list-changes", "code")
    assert "results/" not in changed.stdout and "work/" not in changed.stdout, changed.stdout
