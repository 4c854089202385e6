"""The single-node test cluster of tests/slurm/up.sh, as the Slurm tests and benchmark 6 use it.

One definition of the "site" (the answers a team there gives), of the command-line overrides where a
one-node test cluster differs from a real site, and of the questions asked of the cluster, so that the
tests and `benchmarks/bench_slurm.py` (which imports this file) cannot drift apart. Stdlib only.
"""

import os
import shutil
import subprocess

# What a team at the test "site" answers (up.sh creates account and partition). The site's node-local
# scratch variable is TEST_NODE_SCRATCH, exported by the caller and passed into jobs by sbatch
# (--export=ALL), as a site prolog would set it: Slurm does not pass SLURM_* variables into jobs.
SITE = {
    "slurm_account": os.environ.get("SLURM_TEST_ACCOUNT", "testacct"),
    "slurm_partition": os.environ.get("SLURM_TEST_PARTITION", "debug"),
    "cluster_scratch_env": "TEST_NODE_SCRATCH",
}
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
