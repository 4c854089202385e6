"""Fixtures for the template tests: render with the real cookiecutter, run the real snakemake CLI."""

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import slurm_cluster

TEMPLATE = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT_SLUG = "text-statistics-workflow"

# Users are not root. When the suite runs as root (as CI does), every generated workflow runs as
# this unprivileged user, so permission behaviour is tested as users meet it. A second user shares
# the "node" in the tests of shared scratch roots. Not root: the suite's own user is the workflow user.
TEST_USER = "smk-user"
SECOND_USER = "smk-user2"
IS_ROOT = os.geteuid() == 0
SESSION_TEMP = pytest.StashKey[Path]()


def ensure_user(name):
    """pwd entry of an unprivileged test user (created once per session by pytest_configure)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pytest.fail(f"the unprivileged test user {name} does not exist; run the suite as root to create it")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """As root: create the unprivileged test users once, before any test worker starts (useradd is
    not safe to run concurrently), and give this session a temp root of its own that the workflow
    user can traverse. The shared /tmp/pytest-of-root would not do: every pytest session that starts
    (a nested one, another developer's) resets it to 0700, cutting off commands already running."""
    if not IS_ROOT or hasattr(config, "workerinput"):
        return
    created = False
    for name in (TEST_USER, SECOND_USER):
        try:
            pwd.getpwnam(name)
        except KeyError:
            created = True
            subprocess.run(
                [
                    "useradd",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    "-U",
                    name,
                ],
                check=True,
            )
    if created and shutil.which("scontrol"):
        # a Slurm controller started before the users existed (tests/slurm/up.sh in .ci/run) knows their
        # names without a uid and rejects their jobs ("Invalid account"); reconfiguring makes it look again
        subprocess.run(["scontrol", "reconfigure"], capture_output=True, timeout=60)
    if config.option.basetemp is None:
        root = Path(tempfile.mkdtemp(prefix="template-tests-"))
        os.chmod(root, 0o711)
        config.option.basetemp = str(root / "t")
        config.stash[SESSION_TEMP] = root


def pytest_sessionfinish(session, exitstatus):
    """Remove this session's temp root when every test passed (kept for a look after a failure)."""
    root = session.config.stash.get(SESSION_TEMP, None)
    if root is not None and exitstatus == 0:
        shutil.rmtree(root, ignore_errors=True)


def grant_traverse(path):
    """Let other users reach `path` (o+x on it and every parent), as a shared install would allow."""
    for p in [Path(path), *Path(path).parents]:
        mode = p.stat().st_mode
        if not mode & 0o001:
            os.chmod(p, mode | 0o001)


def missing_in_ci_fails(reason):
    """Skip for a missing system service or tool locally; where CI provides everything (REQUIRE_SLURM=1,
    set by .ci/run) fail instead, so nothing is skipped there."""
    if os.environ.get("REQUIRE_SLURM"):
        pytest.fail(f"REQUIRE_SLURM is set but {reason}")
    pytest.skip(reason)


def other_filesystem_than(path) -> Path:
    """/dev/shm (tmpfs), if it is a filesystem other than the one of ``path``: skipped otherwise locally,
    failed in CI."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == os.stat(path).st_dev:
        missing_in_ci_fails(f"needs /dev/shm on a filesystem other than the one of {path}")
    return shm


def require_root(why):
    """A test that must act as another user: skipped without root locally, failed in CI (which runs as root)."""
    if not IS_ROOT:
        missing_in_ci_fails(f"needs root to {why}")


def require_slurm():
    """A test that needs the real Slurm: skipped without one locally, failed under REQUIRE_SLURM (CI)."""
    if slurm_cluster.unavailable():
        missing_in_ci_fails("no Slurm cluster reachable (start one with: sudo bash tests/slurm/up.sh)")


def workflow_user(name=TEST_USER):
    """Name of the user the generated workflows run as: `name` under root, else None (the suite's own user)."""
    if not IS_ROOT:
        return None
    ensure_user(name)
    # the venv's interpreter, its standard library and the template must be reachable by that user
    for path in (os.path.realpath(sys.executable), sys.base_prefix, BIN, TEMPLATE):
        grant_traverse(path)
    return name


def as_user(user, reach=()):
    """subprocess keyword arguments that drop privileges to `user` (nothing when user is None).

    `reach`: paths the user must be able to traverse to. Granted again on every call, because a
    pytest session starting meanwhile (a nested one, or another developer's) resets its temp root
    to 0700.
    """
    if user is None:
        return {}
    for path in reach:
        grant_traverse(path)
    pw = ensure_user(user)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def hand_over(path, user):
    """Make `path` (a tree) belong to `user`, and reachable by it, as a checkout of their own would be."""
    if user is None:
        return
    pw = ensure_user(user)
    grant_traverse(path)
    for dirpath, dirs, files in os.walk(path):
        os.chown(dirpath, pw.pw_uid, pw.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(dirpath, name), pw.pw_uid, pw.pw_gid)


def tool(name):
    """A console script of this venv (cookiecutter, snakemake, ...), else from PATH."""
    here = BIN / name
    return str(here) if here.exists() else shutil.which(name) or name


def isolated_env(tmp_path, **extra):
    """Environment with caches, home and cookiecutter state inside the test's tmp dir."""
    config = tmp_path / "cookiecutter-config.yaml"
    if not config.exists():
        config.write_text(f"cookiecutters_dir: {tmp_path / 'cc-templates'}\nreplay_dir: {tmp_path / 'cc-replay'}\n")
    for private in ("xdg-cache", "home"):
        if not (tmp_path / private).exists():
            (tmp_path / private).mkdir()
            hand_over(tmp_path / private, workflow_user())
    env = dict(os.environ)
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
        COOKIECUTTER_CONFIG=str(config),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        GIT_AUTHOR_NAME="Template Test",
        GIT_AUTHOR_EMAIL="test@example.org",
        GIT_COMMITTER_NAME="Template Test",
        GIT_COMMITTER_EMAIL="test@example.org",
    )
    env.update(extra)
    return env


def quick_start_commands(readme: Path) -> list[str]:
    """The commands of a README's "Quick start" code block."""
    section = readme.read_text().split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


def render_template(tmp_path, template=TEMPLATE, out=None, **answers):
    """Render with the real cookiecutter CLI; return (CompletedProcess, output dir)."""
    out = Path(out or tmp_path / "out")
    args = [tool("cookiecutter"), str(template), "--no-input", "-o", str(out)]
    args += [f"{k}={v}" for k, v in answers.items()]
    proc = subprocess.run(args, capture_output=True, text=True, env=isolated_env(tmp_path), timeout=120)
    return proc, out


@pytest.fixture
def render(tmp_path):
    """render(**answers) -> path of the generated repository (fails loudly on error)."""

    count = iter(range(1000))

    def _render(**answers):
        answers.setdefault("init_git", "no")
        proc, out = render_template(tmp_path, out=tmp_path / f"out{next(count)}", **answers)
        assert proc.returncode == 0, f"cookiecutter failed:\n{proc.stdout}\n{proc.stderr}"
        (repo,) = [p for p in out.iterdir() if p.is_dir()]
        hand_over(out, workflow_user())  # the user's own checkout
        return repo

    return _render


@pytest.fixture(scope="session")
def local_reference(tmp_path_factory):
    """The example as generated (default answers), built and published with profiles/local once per test
    worker: the reference other contexts must match byte for byte. Read it, never change it."""
    tmp = tmp_path_factory.mktemp("local-reference")
    proc, out = render_template(tmp, out=tmp / "out", init_git="no")
    assert proc.returncode == 0, f"cookiecutter failed:\n{proc.stdout}\n{proc.stderr}"
    repo = out / DEFAULT_SLUG
    hand_over(out, workflow_user())
    for target in ([], ["publish"]):
        run = run_command(
            [tool("snakemake"), "--profile", "profiles/local", *target],
            cwd=repo,
            env=isolated_env(tmp),
            user=workflow_user(),
        )
        assert run.returncode == 0, repr(run)
    return repo


@pytest.fixture
def published_example(local_reference, tmp_path):
    """A copy of local_reference (built and published with profiles/local), its Snakemake records and
    release included, the workflow user's own: for a test that changes, rebuilds or publishes again."""
    repo = tmp_path / "published" / local_reference.name
    shutil.copytree(local_reference, repo, symlinks=True)
    hand_over(repo.parent, workflow_user())
    return repo


def results_bytes(repo):
    """{path: bytes} of every file under a repository's results/."""
    return {str(p.relative_to(repo)): p.read_bytes() for p in sorted((repo / "results").rglob("*")) if p.is_file()}


def manifest_files(repo):
    """(path, sha256) of every file of the current release's MANIFEST.json."""
    manifest = json.loads((repo / "publish/current/MANIFEST.json").read_text())
    return sorted((f["path"], f["sha256"]) for f in manifest["files"])


class Run:
    """Result of a command: returncode, stdout, stderr and both together."""

    def __init__(self, args, returncode, stdout, stderr):
        self.args, self.returncode, self.stdout, self.stderr = args, returncode, stdout, stderr
        self.output = stdout + stderr

    def __repr__(self):
        return f"<Run {' '.join(map(str, self.args))} -> {self.returncode}>\n{self.output[-3000:]}"


def run_command(args, cwd, env, timeout=600, on_timeout=None, user=None):
    """Run a command (as `user`, if given) in its own process group; on timeout kill the group and fail."""
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **as_user(user, reach=[cwd]),
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if on_timeout:
            on_timeout()
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(map(str, args))} timed out after {timeout} s; last output:\n{(out + err)[-3000:]}")
    return Run(args, proc.returncode, out, err)


@pytest.fixture
def snakemake(tmp_path):
    """snakemake(repo, *args, timeout=, check=True, env=, user=) with the real CLI, as the workflow user."""

    def _snakemake(repo, *args, timeout=600, check=True, env=None, on_timeout=None, user=TEST_USER):
        run = run_command(
            [tool("snakemake"), *args],
            cwd=repo,
            env=env or isolated_env(tmp_path),
            timeout=timeout,
            on_timeout=on_timeout,
            user=workflow_user(user),
        )
        if check:
            assert run.returncode == 0, repr(run)
        return run

    return _snakemake


def load_json(path):
    return json.loads(Path(path).read_text())


def pytest_report_header(config):
    """Name the Slurm the slurm-marked tests will use, and the user the workflows run as."""
    who = f"workflows run as the unprivileged user {TEST_USER}" if IS_ROOT else "workflows run as this (non-root) user"
    return [
        f"slurm: {slurm_cluster.version() or 'not installed'}; REQUIRE_SLURM={os.environ.get('REQUIRE_SLURM', '')}",
        who,
    ]


def scratch_records(repo, skip=("slurm",)):
    """The wrapper's `[scratch]` JSON records from the job logs under logs/.

    Slurm job output under logs/slurm/ repeats each job's stderr, records included, so it is skipped.
    """
    records = []
    for log in (Path(repo) / "logs").rglob("*.log"):
        if set(skip) & set(log.relative_to(Path(repo) / "logs").parts):
            continue
        prefix = "[scratch] {"
        records += [json.loads(line[10:]) for line in log.read_text().splitlines() if line.startswith(prefix)]
    return records


def node_tmp(tmp_path, name="node-tmp"):
    """A "node-local" temp dir: world-writable and sticky, like a node's /tmp."""
    node = tmp_path / name
    node.mkdir(exist_ok=True)
    os.chmod(node, 0o1777)
    grant_traverse(node)
    return node


@pytest.fixture
def node_scratch(tmp_path):
    """(dir, env): a "node-local" temp dir and an environment whose TMPDIR points at it."""
    node = node_tmp(tmp_path)
    return node, isolated_env(tmp_path, TMPDIR=str(node))


def start_snakemake(repo, env, *args, log=None, user=TEST_USER):
    """Start the snakemake CLI in its own process group (so a test can kill the whole run).

    Output goes to the file `log` (read it after the run), never to a pipe: a pipe nobody reads
    while the test polls fills up and blocks snakemake.
    """
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below, the child has its copy)
    try:
        return subprocess.Popen(
            [tool("snakemake"), *args],
            cwd=repo,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            **as_user(workflow_user(user), reach=[repo]),
        )
    finally:
        if log:
            out.close()


@pytest.fixture(scope="session")
def mechanism(tmp_path_factory):
    """The vendored library (workflow/vendor/) of one rendered repository, importable by name.

    Their unit and fault tests live here, with the template, not in every generated repository.
    """
    out = tmp_path_factory.mktemp("mechanism")
    proc, _ = render_template(out, out=out / "out", init_git="no")
    assert proc.returncode == 0, proc.stderr
    vendor = out / "out" / DEFAULT_SLUG / "workflow" / "vendor"
    grant_traverse(vendor)
    sys.path.insert(0, str(vendor))
    return vendor
