# How this workflow meets its contract: policy comes from a profile, jobs of every
# rule kind run in node-local scratch, final outputs live under results/, and publishing
# records what made each file. The mechanism itself is the template's library in
# workflow/vendor/ (scratch.py, shadow_route.py, publish.py, durable.py, ...: leave it as shipped).

import datetime
import hashlib
import json
import os
import sys
from pathlib import Path

import yaml

from snakemake import __version__ as SNAKEMAKE_VERSION
from snakemake.exceptions import WorkflowError
from snakemake.io import IOFile

# The vendored library, as local files also when this workflow is used as a module
# from elsewhere (Snakemake then caches them side by side in one folder).
VENDOR = os.path.dirname(workflow.source_path("../vendor/scratch.py"))
# This workflow's own source (not the including one's when used as a module): a local
# folder, or a git repository at a ref when the module is declared with github(...) or
# gitlab(...), as snakedeploy writes it. A release records its git commit.
WORKFLOW_SOURCE = workflow.current_basedir
WORKFLOW_DIR = os.path.dirname(str(WORKFLOW_SOURCE.get_path_or_uri(secret_free=True)))
WORKFLOW_IS_LOCAL = os.path.isdir(WORKFLOW_DIR)  # else read from a git host
# Its own Snakefile and CITATION.cff, which a release's RO-Crate describes (a host's are not it).
if WORKFLOW_IS_LOCAL:
    WORKFLOW_SNAKEFILE = os.path.join(WORKFLOW_DIR, "Snakefile")
    WORKFLOW_CITATION = os.path.join(os.path.dirname(WORKFLOW_DIR), "CITATION.cff")
else:  # read from a git host: Snakemake's cached copies
    WORKFLOW_SNAKEFILE = workflow.source_path("../Snakefile")
    WORKFLOW_CITATION = workflow.source_path("../../CITATION.cff")
# The workflow's version, which each release records: the `version` of its CITATION.cff.
with open(WORKFLOW_CITATION, encoding="utf-8") as _fh:
    WORKFLOW_VERSION = str(yaml.safe_load(_fh)["version"])
for _module in (
    "durable",
    "jupyter_nbconvert_config",
    "publish",
    "release_crate",
    "scheduler",
    "scratch",
    "shadow_route",
):
    workflow.source_path(f"../vendor/{_module}.py")
sys.path.insert(0, VENDOR)
import publish as publish_mechanism  # noqa: E402
import scratch as scratch_mechanism  # noqa: E402
import shadow_route  # noqa: E402

# --------------------------------------------------------------------------
# operating context: policy must come from a profile
# --------------------------------------------------------------------------
SCRATCH_POLICY = ("tmpdir", "scratch_staging", "scratch_on_failure")
CONTEXTS = sorted(p.parent.name for p in Path("profiles").glob("*/config.yaml"))
_policy = workflow.resource_settings.default_resources
MISSING_POLICY = [
    name
    for name in (*SCRATCH_POLICY[1:], *shadow_route.POLICY)
    if _policy is None or name not in _policy
]


NO_CONTEXT = (
    f"No operating context: the scratch policy ({', '.join(MISSING_POLICY)}) comes from a profile. "
    f"Run with --profile profiles/<context>, one of: {', '.join(CONTEXTS)}; see docs/operations.md."
)
# Without a profile the workflow still parses, lints and dry-runs (the plan shows
# "<no profile>" where the policy goes), so this is only a note here; executing jobs
# is refused in onstart, before the first job starts. (A workflow has one onstart
# handler, this one: another would replace it and its checks; docs/ownership.md.)
if MISSING_POLICY:
    print(f"NOTE: {NO_CONTEXT} Linting and dry runs need none.", file=sys.stderr)


onstart:
    if MISSING_POLICY:
        raise WorkflowError(NO_CONTEXT)
    check_routes()
    check_shadow_filesystem()
    check_planned_results()
    check_shadow_inputs()
    set_aside_stale_results()
    record_run_context()


def _context_from_argv(argv):
    """Name of the profile directory this run was started with (provenance).

    Snakemake does not tell a workflow which profile it read, so the command line
    is the source; the jobs Snakemake spawns (run: rules) inherit it below.
    """
    for i, arg in enumerate(argv):
        if arg == "--profile" and i + 1 < len(argv):
            return Path(argv[i + 1]).name
        if arg.startswith("--profile="):
            return Path(arg.split("=", 1)[1]).name
    inherited = os.environ.get("WORKFLOW_CONTEXT")
    return inherited or Path(os.environ.get("SNAKEMAKE_PROFILE", "unknown")).name


CONTEXT = _context_from_argv(sys.argv)
os.environ.update(WORKFLOW_CONTEXT=CONTEXT)
CONFIG_SHA256 = hashlib.sha256(
    json.dumps(config, sort_keys=True, default=str).encode()
).hexdigest()

# --------------------------------------------------------------------------
# shell rules in scratch
# --------------------------------------------------------------------------
# The wrapped command is what Snakemake records as a shell rule's code, so it names
# no place: scratch.py is found through this variable (set at parse time, so also in
# every cluster job, which parses the Snakefile again) and run by the python3 on the
# job's PATH. Moving the checkout or rebuilding the venv reruns nothing. The
# cluster-sim profile's commands find the simulated scheduler the same way.
os.environ.update(
    WORKFLOW_SCRATCH_PY=os.path.join(VENDOR, "scratch.py"), WORKFLOW_VENDOR=VENDOR
)
# ends the command's here-document; marks a rule as wrapped
SCRATCH_MARKER = "__SCRATCH_COMMAND__"
# formatted by the job itself; check_routes() writes it out in each rule's recorded command
SCRATCH_RULE = "--rule {rule}"

# --------------------------------------------------------------------------
# notebook rules: jupyter-nbconvert reads workflow/vendor/ (docs/rule-kinds.md)
# --------------------------------------------------------------------------
# Its jupyter_nbconvert_config.py keeps a failing notebook's executed cells in the
# rule's log notebook. Set at parse time as above, so also in every job; an absolute
# path, so also in a shadow directory; first on the path, before any the user has.
_jupyter_paths = os.environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep)
os.environ.update(
    JUPYTER_CONFIG_PATH=os.pathsep.join(
        dict.fromkeys([VENDOR, *filter(None, _jupyter_paths)])
    )
)


def scratch(command):
    """A shell command that runs in the job's node-local scratch dir.

    Inputs are mirrored at their relative paths, outputs are written at their
    relative paths there and brought back atomically; logs go straight to
    their durable paths. Use it as the shell command itself:
    ``shell: scratch("sort {input:q} > {output:q} 2> {log:q}")``.
    """
    marker = SCRATCH_MARKER
    if marker in command:
        raise WorkflowError(f"scratch(): the command may not contain {marker}")
    policy = " ".join(
        "--%s %s"
        % (
            name.replace("_", "-"),
            "'<no profile>'" if name in MISSING_POLICY else "{resources.%s:q}" % name,
        )
        for name in SCRATCH_POLICY
    )
    wrapper = (
        'python3 "$WORKFLOW_SCRATCH_PY" shell %s --wildcards {wildcards:q} %s'
        " --input {input:q} --output {output:q} --log {log:q}" % (SCRATCH_RULE, policy)
    )
    return f"{wrapper} <<'{marker}'\n{command}\n{marker}\n"


# --------------------------------------------------------------------------
# rules Snakemake stages itself: shadow: "minimal" (docs/rule-kinds.md)
# --------------------------------------------------------------------------
def _filesystem(path):
    """Device of ``path``, or of its nearest existing parent (it may not exist yet)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return os.stat(path).st_dev


# Where the jobs of this workflow's shadow: "minimal" rules (R scripts, notebooks, wrappers, containers)
# work: the profile's shadow_route. "scratch": in the job's node-local scratch directory, as scratch()
# jobs do (workflow/vendor/shadow_route.py, installed here at parse time, so in every process that runs
# a job; pinned to one Snakemake version: another one stops the run here, before any job). "snakemake":
# Snakemake's own shadow directory under .snakemake/. None: no profile (lint, dry run).
try:
    SHADOW_ROUTE = shadow_route.chosen(_policy)
except ValueError as _exc:
    raise WorkflowError(str(_exc)) from None


def takes_shadow_route(job_rule):
    return (
        SHADOW_ROUTE == "scratch"
        and job_rule.shadow_depth == "minimal"
        and is_own_rule(job_rule)
    )


if SHADOW_ROUTE == "scratch":
    shadow_route.install(takes_shadow_route)


def check_shadow_filesystem():
    """Refuse a shadow directory on another filesystem than results/ when a rule uses shadow.

    Snakemake moves a shadow job's outputs into results/ with shutil.move: one rename
    on one filesystem, but a copy into the final path across two. Called in onstart:
    the shadow prefix is known only once the run starts.
    """
    if not any(
        each.shadow_depth and not takes_shadow_route(each) for each in own_rules()
    ):
        return
    root = workflow.execution_settings.shadow_prefix or ".snakemake"
    if _filesystem(root) != _filesystem("results"):
        raise WorkflowError(
            f"the shadow directory ({os.path.join(root, 'shadow')}) is not on the filesystem of results/: "
            "Snakemake would copy the outputs of shadow rules into results/ instead of renaming them, and a "
            "reader could see a half-written file. Remove shadow-prefix (--shadow-prefix) from the profile "
            "or the command line, or set it to a folder on the filesystem of results/; see docs/rule-kinds.md."
        )


# --------------------------------------------------------------------------
# every rule that writes under results/ takes a route (docs/rule-kinds.md)
# --------------------------------------------------------------------------
def is_own_rule(job_rule):
    """Whether a rule is in this workflow's own files (not a host's, when used as a module)."""
    return str(job_rule.snakefile).startswith(str(WORKFLOW_DIR))


def own_rules():
    return [each for each in workflow.rules if is_own_rule(each)]


def under_results(path):
    prefix = getattr(workflow.modifier.path_modifier, "prefix", None) or ""
    return str(path).removeprefix(prefix).startswith("results/")


def _script_text(job_rule):
    with workflow.sourcecache.open(job_rule.basedir.join(job_rule.script)) as fh:
        return fh.read()


def route_problem(job_rule):
    """Why ``job_rule`` could leave a partial file under results/, or None when it takes a route."""
    where = f"{os.path.relpath(job_rule.snakefile)}:{job_rule.lineno} (rule {job_rule.name})"
    shell, script = job_rule.shellcmd, job_rule.script
    if job_rule.shadow_depth:
        return None
    if shell is not None and SCRATCH_MARKER in shell:
        absolute = [
            f for f in job_rule.input if isinstance(f, str) and os.path.isabs(f)
        ]
        if absolute:
            return (
                f"{where}: input {absolute[0]} is an absolute path, which its command would read outside "
                "scratch; give it relative to the working directory, e.g. os.path.relpath(config[...]) "
                "(docs/rule-kinds.md#what-the-command-sees)"
            )
        return None
    if (
        script is not None
        and script.endswith(".py")
        and "scratch_job(" in _script_text(job_rule)
    ):
        return None
    if shell is not None:
        how = 'wrap its command in scratch("...")'
    elif script is not None:
        how = 'open `with scratch_job(snakemake) as job:` in its Python script, or add shadow: "minimal"'
    else:
        how = 'add shadow: "minimal"'
    outputs = ", ".join(str(f) for f in job_rule.output if under_results(f))
    return f"{where} writes {outputs} without a route that makes it appear whole: {how} (docs/rule-kinds.md)"


def check_routes():
    """Refuse, before any job and in `snakemake --lint`, rules that write under results/ without a route."""
    # the recorded command names its rule, as the job's own formatting of it will
    for each in own_rules():
        if each.shellcmd is not None and SCRATCH_MARKER in each.shellcmd:
            each.shellcmd = each.shellcmd.replace(SCRATCH_RULE, f"--rule {each.name}")
    problems = [
        problem
        for each in own_rules()
        if any(under_results(f) for f in each.output)
        for problem in [route_problem(each)]
        if problem
    ]
    if problems:
        raise WorkflowError(
            "\n".join(
                ["A file under results/ must appear whole or not at all:", *problems]
            )
        )


# --------------------------------------------------------------------------
# results/ holds the declared final outputs and nothing else
# --------------------------------------------------------------------------
STALE_RESULTS = "work/stale-results"


def is_final(path):
    """Whether ``path`` is a declared final output or lies inside a final directory()."""
    return any(p in FINAL_OUTPUTS for p in [path, *map(str, Path(path).parents)])


def check_shadow_inputs():
    """Refuse, before any job, shadow jobs with an input outside the working directory: Snakemake
    cannot link "../" paths into a shadow directory and would stop the run at that job.
    """
    outside = sorted(
        {
            f"{f} (rule {job.rule.name})"
            for job in workflow.dag.jobs
            if job.rule.shadow_depth and not takes_shadow_route(job.rule)
            for f in job.input
            if str(f).startswith("../")
        }
    )
    if outside:
        raise WorkflowError(
            f"shadow jobs cannot read inputs outside the working directory: {', '.join(outside[:3])}. "
            "Give such an input as an absolute path (os.path.abspath(...)), or copy it under work/ with a "
            "scratch() rule first; see docs/rule-kinds.md#the-shadow-route-shadow-minimal."
        )


def check_planned_results():
    """Refuse a run whose jobs would write a file under results/ that is not a final output."""
    extra = sorted(
        {
            f"{f} (rule {job.rule.name})"
            for job in workflow.dag.jobs
            for f in job.output
            if under_results(f) and not is_final(str(f))
        }
    )
    if extra:
        raise WorkflowError(
            f"results/ holds only the final outputs, but jobs would write {', '.join(extra[:3])}"
            f"{' and others' if len(extra) > 3 else ''}: add them to FINAL_OUTPUTS in workflow/Snakefile "
            "(None: final, not published), or write them as temp() under work/."
        )


def stale_results():
    """Files under results/ that are no final output any more (a sample left the sheet, a rule changed)."""
    found = []
    for folder, _, names in os.walk("results"):
        for name in names:
            path = os.path.join(folder, name)
            if scratch_mechanism.PARTIAL_MARK in name or is_final(
                path
            ):  # a copy-back under way
                continue
            found.append(path)
    return sorted(found)


def report_stale_results():
    stale = stale_results()
    if stale and workflow.is_main_process:
        listed = ", ".join(stale[:3]) + (
            f" and {len(stale) - 3} more" if len(stale) > 3 else ""
        )
        print(
            f"WARNING: {listed} under results/ {'are' if len(stale) > 1 else 'is'} no final output "
            f"(FINAL_OUTPUTS); never published, and moved to {STALE_RESULTS}/ when jobs next run.",
            file=sys.stderr,
        )


def set_aside_stale_results():
    """Move stale files out of results/ (not deleted: they may be worth a look), keeping their paths."""
    stale = stale_results()
    if not stale:
        return
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in stale:
        target = Path(STALE_RESULTS, stamp, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    for folder, dirs, names in sorted(os.walk("results"), reverse=True):
        if folder != "results" and not dirs and not names and not is_final(folder):
            os.rmdir(folder)
    print(
        f"Moved {len(stale)} stale file(s) from results/ to {STALE_RESULTS}/{stamp}/.",
        file=sys.stderr,
    )


# --------------------------------------------------------------------------
# final outputs and publication
# --------------------------------------------------------------------------
RUNS_RECORD = Path(
    ".snakemake/contract/runs.jsonl"
)  # which context each run used, for provenance


def record_run_context():
    RUNS_RECORD.parent.mkdir(parents=True, exist_ok=True)
    run = {
        "context": CONTEXT,
        "started": datetime.datetime.now(datetime.UTC).timestamp(),
    }
    with open(RUNS_RECORD, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(run | {"host": os.uname().nodename}) + "\n")


def context_at(moment, runs):
    """The context of the last run that started before ``moment`` (a job's start), or "unknown"."""
    earlier = [run for run in runs if run["started"] <= moment]
    return (
        max(earlier, key=lambda run: run["started"])["context"]
        if earlier
        else "unknown"
    )


def published_set(final_outputs):
    """{published name: path} of the final outputs that are published.

    Every final output must be under results/, the only place they appear.
    """
    for path in final_outputs:
        if not str(path).startswith("results/"):
            raise WorkflowError(
                f"final output {path} is not under results/ (FINAL_OUTPUTS in workflow/Snakefile)"
            )
    return {name: str(path) for path, name in final_outputs.items() if name}


def made_by(publish_set):
    """What made each published file, from Snakemake's own records (.snakemake/).

    Without a record the release could not say which computation produced the
    file (e.g. after .snakemake/ was deleted), so publishing is refused.
    """
    records, unknown = {}, []
    runs = []
    if RUNS_RECORD.exists():
        runs = [
            json.loads(line)
            for line in RUNS_RECORD.read_text(encoding="utf-8").splitlines()
            if line
        ]
    for name, source in publish_set.items():
        record = workflow.persistence.metadata(IOFile(source))
        if record is None or record.incomplete or record.endtime is None:
            unknown.append(source)
            continue
        records[name] = {
            "rule": record.rule,
            "made_at": publish_mechanism.utc_stamp(
                datetime.datetime.fromtimestamp(record.endtime, datetime.UTC)
            ),
            "context": context_at(record.starttime or record.endtime, runs),
        }
    if unknown:
        listed = ", ".join(unknown[:3]) + (" and others" if len(unknown) > 3 else "")
        raise WorkflowError(
            f"publish refused: Snakemake has no record of how {listed} "
            f"{'were' if len(unknown) > 1 else 'was'} made (was .snakemake/ deleted?), so a release "
            "could not say what produced it. Rebuild with: snakemake --profile profiles/<context> --forceall, "
            "then publish again."
        )
    return records


def workflow_git():
    """git_commit and git_dirty of this workflow's own source: its checkout's work tree, or
    the commit of the ref a github(...)/gitlab(...) module is read at (never dirty)."""
    if WORKFLOW_IS_LOCAL:
        return publish_mechanism.git_state(WORKFLOW_DIR)
    try:  # Snakemake's own clone of the module's repository
        clone = WORKFLOW_SOURCE.hosted_repo.repo_clone
        commit = publish_mechanism.git_commit_of(clone, WORKFLOW_SOURCE.ref)
    except (AttributeError, AssertionError):  # another remote source: no git state
        commit = None
    return {"git_commit": commit, "git_dirty": None if commit is None else False}


def deployment_git():
    """git_commit and git_dirty of the run's working directory when it is not in this
    workflow's own repository (a host using it as a module, a snakedeploy deployment);
    None when it is."""
    if WORKFLOW_IS_LOCAL:
        repository = publish_mechanism.git_toplevel(WORKFLOW_DIR)
        own = Path(repository or os.path.dirname(WORKFLOW_DIR)).resolve()
        if Path.cwd().resolve().is_relative_to(own):
            return None
    return publish_mechanism.git_state(os.getcwd())


def workflow_repository_url(release_crate):
    """Where this workflow's repository is: its origin remote, or the git host of a module."""
    if WORKFLOW_IS_LOCAL:
        return release_crate.git_remote(WORKFLOW_DIR)
    host, repo = (getattr(WORKFLOW_SOURCE, key, None) for key in ("host", "repo"))
    return f"https://{host}/{repo}" if host and repo else None


def publish_release(publish_set, log):
    """Publish ``publish_set`` as a new release (or reuse an intact one with the same content)."""
    import release_crate  # only when publishing: rocrate takes long to import for every job

    git, deployment = workflow_git(), deployment_git()
    for where, state, field in (
        ("the workflow's", git, "git_dirty"),
        ("the working directory's", deployment or {}, "deployment.git_dirty"),
    ):
        if state.get("git_dirty"):
            print(
                f"WARNING: {where} git work tree has uncommitted changes; the release records {field}: true",
                file=sys.stderr,
            )
    provenance = {
        "workflow_version": WORKFLOW_VERSION,
        **git,
        "deployment": deployment,
        "config_sha256": CONFIG_SHA256,
        "snakemake_version": SNAKEMAKE_VERSION,
        "context": CONTEXT,
        "published_at": publish_mechanism.utc_stamp(
            datetime.datetime.now(datetime.UTC)
        ),
        "host": os.uname().nodename,
        "made_by": made_by(publish_set),
    }
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    try:
        result = publish_mechanism.publish(
            publish_set,
            "results",
            "publish",
            provenance,
            describe=release_crate.describer(
                snakefile=WORKFLOW_SNAKEFILE,
                citation=WORKFLOW_CITATION,
                config_files=workflow.configfiles,
                sample_sheet=config["samples"],
                sheet_max_bytes=config["release_sample_sheet_max_bytes"],
                job_times=release_crate.job_times(
                    workflow.persistence, publish_set.values()
                ),
                repository_url=workflow_repository_url(release_crate),
                sample_files={
                    sample: SAMPLES[sample]["files"] for sample in SAMPLE_IDS
                },
            ),
        )
    except (publish_mechanism.PublishError, release_crate.CrateError) as exc:
        raise WorkflowError(f"publish refused: {exc}") from None
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(
            json.dumps({**result, "provenance": provenance}, sort_keys=True) + "\n"
        )
    print(publish_mechanism.report(result), flush=True)
