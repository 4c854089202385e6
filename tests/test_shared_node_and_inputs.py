"""Several users on one node, and checkouts that move: what a shared machine does to a workflow.

The workflows run as unprivileged users (see conftest.py); two of them share one sticky node temp
dir, as they would share a cluster node's /tmp.
"""

import os
import pwd
import stat

import pytest
from conftest import IS_ROOT, SECOND_USER, TEST_USER, hand_over, isolated_env, node_tmp, workflow_user


def need_two_users():
    """Two users on one node can only be made as root; in CI a skip would hide the test, so it fails."""
    if IS_ROOT:
        return
    reason = "two unprivileged users on one node need the suite to run as root (it creates them)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so this test may not be skipped")
    pytest.skip(reason)


def user_env(base, node, user):
    """An environment of `user`'s own (home, caches) whose TMPDIR is the shared node temp dir."""
    base.mkdir(exist_ok=True)
    env = isolated_env(base, TMPDIR=str(node))
    for private in ("home", "xdg-cache"):
        hand_over(base / private, workflow_user(user))
    return env


@pytest.mark.parametrize("context, root_name", [("local", "{slug}-scratch-{uid}"), ("ci", "{slug}-ci-scratch-{uid}")])
def test_two_users_run_one_after_the_other_on_one_node_each_in_a_private_scratch_root(
    render, snakemake, tmp_path, context, root_name
):
    need_two_users()
    node = node_tmp(tmp_path)
    first, second = render(), render()
    hand_over(second.parent, workflow_user(SECOND_USER))  # the second user's own checkout
    for user, repo in ((TEST_USER, first), (SECOND_USER, second)):
        env = user_env(tmp_path / f"env-{user}", node, user)
        snakemake(repo, "--profile", f"profiles/{context}", env=env, user=user)
        assert (repo / "results/report.html").is_file()
    for user, repo in ((TEST_USER, first), (SECOND_USER, second)):
        uid = pwd.getpwnam(user).pw_uid
        root = node / root_name.format(slug=repo.name, uid=uid)
        info = root.lstat()
        assert stat.S_ISDIR(info.st_mode) and info.st_uid == uid, f"{root} is {user}'s own directory"
        assert stat.S_IMODE(info.st_mode) == 0o700, f"{root} has mode {stat.S_IMODE(info.st_mode):o}, not 700"
        assert list(root.iterdir()) == [], "no scratch dirs left after success"
