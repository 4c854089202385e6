"""The single-node test cluster of tests/slurm/up.sh, as the Slurm tests and benchmark 6 use it.

One definition of the "site" (the site settings a team there fills into `profiles/slurm/config.yaml`),
of the command-line overrides where a one-node test cluster differs from a real site, and of the
questions asked of the cluster, so that the tests and `benchmarks/bench_slurm.py` (which imports this
file) cannot drift apart. Stdlib only.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

# The site settings of the test "site" (up.sh creates account and partition). Its node-local scratch
# variable is TEST_NODE_SCRATCH, exported by the caller and passed into jobs by sbatch (--export=ALL),
# as a site prolog would set it: Slurm does not pass SLURM_* variables into jobs.
SITE = {
    "account": os.environ.get("SLURM_TEST_ACCOUNT", "testacct"),
    "partition": os.environ.get("SLURM_TEST_PARTITION", "debug"),
    "scratch_env": "TEST_NODE_SCRATCH",
}


def _edit(text, pattern, replacement, what):
    """text with the one line matching pattern edited (replacement: a function of the match)."""
    new, count = re.subn(pattern, replacement, text, flags=re.M)
    if count != 1:
        raise AssertionError(f"profiles/slurm/config.yaml: expected one {what} line to edit, found {count}")
    return new


def configure_site(repo, account=None, partition=None, scratch_env=None):
    """Fill in the site settings of a generated repository's `profiles/slurm/config.yaml` as a site's
    admin would by hand: uncomment the account and partition lines with these values, and name the
    site's node-local scratch variable in `tmpdir`. None leaves a setting as generated.

    Rewrites the file in place (its owner stays the repository's owner). The generated docs' site
    settings table then lags until `python workflow/vendor/render_docs.py` runs again.
    """
    profile = Path(repo) / "profiles/slurm/config.yaml"
    text = profile.read_text()
    for key, value in (("slurm_account", account), ("slurm_partition", partition)):
        if value is not None:
            line = f"{key}: \"'{value}'\""
            text = _edit(text, rf"^(\s*)# {key}: \S+", lambda m, line=line: m.group(1) + line, f"commented {key}")
    if scratch_env is not None:
        named = f"environ.get('{scratch_env}')"
        text = _edit(text, r"environ\.get\('SLURM_TMPDIR'\)", lambda m: named, "tmpdir SLURM_TMPDIR")
    profile.write_text(text)


SLOTS = 2  # --jobs: one node with 2 cores
OVERRIDES = [
    *("--slurm-init-seconds-before-status-checks", "2"),  # test jobs take seconds, not the 40 s a site waits
    *("--latency-wait", "10"),  # one local disk, no shared-filesystem lag to absorb
    *("--jobs", str(SLOTS)),
]
START_ONE = "sudo bash tests/slurm/up.sh"


def unavailable():
    """None when `sinfo` shows a usable node, else why no cluster can be used."""
    if not shutil.which("sinfo"):
        return f"no Slurm client (sinfo) on PATH; start a test cluster with: {START_ONE}"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except (subprocess.TimeoutExpired, OSError) as exc:
        return f"sinfo did not answer ({exc}); start a test cluster with: {START_ONE}"
    if proc.returncode != 0 or not any(s.rstrip("*") in {"idle", "mixed", "allocated"} for s in proc.stdout.split()):
        return f"no usable Slurm node (sinfo: {(proc.stdout + proc.stderr).strip() or 'nothing'})"
    return None


def version():
    """`sinfo --version` (e.g. "slurm-wlm 22.05.8"), or "" without a Slurm client."""
    try:
        return subprocess.run(["sinfo", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def jobs_in(repo, running_only=False):
    """Ids of the queued (or only the running) jobs whose working directory is repo: one run's jobs."""
    state = ["-t", "RUNNING"] if running_only else []
    out = subprocess.run(["squeue", "-h", *state, "-o", "%i %Z"], capture_output=True, text=True, timeout=30)
    return [line.split()[0] for line in out.stdout.splitlines() if line.split()[1:] == [str(repo)]]
