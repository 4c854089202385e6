"""The workflow's contract with where it runs, for workflow/rules/contract.smk.

``Contract(workflow, config, workflow_file)`` is made once per Snakemake process that parses the
workflow. It holds what contract.smk used to spell out:

* the policy a profile must give (``tmpdir``, ``scratch_staging``, ``scratch_on_failure``,
  ``shadow_route`` under ``default-resources``): without it the workflow still parses, lints and
  dry-runs, and ``check_before_jobs`` refuses to run jobs;
* ``scratch(command)``: a shell command run in the job's node-local scratch (scratch.py), and the
  shadow route for ``shadow: "minimal"`` rules (shadow_route.py);
* the checks made before the first job (every rule writing under results/ takes a route, results/
  gets nothing but the final outputs, shadow jobs can run) and the stale files set aside;
* ``publish(final_outputs, log, sample_files)``: a release of the published final outputs with the
  provenance Snakemake's records give (publish.py, release_crate.py).

From the Snakemake repository template, release {{ cookiecutter._template_version }}.
"""

import datetime
import hashlib
import json
import os
import sys
from pathlib import Path

# The modules of this folder the workflow imports at run time (not the command-line tools).
LIBRARY = (
    "contract",
    "samplesheet",
    "scratch",
    "shadow_route",
    "publish",
    "durable",
    "release_crate",
    "scheduler",
    "jupyter_nbconvert_config",
)
SCRATCH_MARKER = "__SCRATCH_COMMAND__"  # ends the command's here-document; marks a rule as wrapped
SCRATCH_RULE = "--rule {rule}"  # formatted by the job itself; written out per rule by check_routes()
STALE_RESULTS = "work/stale-results"
RUNS_RECORD = Path(".snakemake/contract/runs.jsonl")  # which context each run used, for provenance
FINAL_OUTPUTS_HOME = "FINAL_OUTPUTS in workflow/Snakefile"


# The contexts the template ships, in the order docs list them; a team's own contexts follow, sorted.
SHIPPED_CONTEXTS = ("local", "ci", "slurm", "cluster-sim")


def contexts(repo=".") -> list[str]:
    """Every operating context: a directory with a ``profiles/<name>/config.yaml``, nothing to register."""
    found = {path.parent.name for path in Path(repo, "profiles").glob("*/config.yaml")}
    return [c for c in SHIPPED_CONTEXTS if c in found] + sorted(found - set(SHIPPED_CONTEXTS))


def load_profile(context, repo=".") -> dict:
    import yaml

    return yaml.safe_load(Path(repo, "profiles", context, "config.yaml").read_text(encoding="utf-8")) or {}


def _error(message):
    from snakemake.exceptions import WorkflowError

    return WorkflowError(message)


def _listed(items, limit=3):
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def context_from_argv(argv, environ=os.environ):
    """Name of the profile directory this run was started with (provenance).

    Snakemake does not tell a workflow which profile it read, so the command line is the
    source; the jobs Snakemake spawns inherit it through WORKFLOW_CONTEXT.
    """
    for i, arg in enumerate(argv):
        if arg == "--profile" and i + 1 < len(argv):
            return Path(argv[i + 1]).name
        if arg.startswith("--profile="):
            return Path(arg.split("=", 1)[1]).name
    return environ.get("WORKFLOW_CONTEXT") or Path(environ.get("SNAKEMAKE_PROFILE", "unknown")).name


def _filesystem(path):
    """Device of ``path``, or of its nearest existing parent (it may not exist yet)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return os.stat(path).st_dev


def context_at(moment, runs):
    """The context of the last run that started before ``moment`` (a job's start), or "unknown"."""
    earlier = [run for run in runs if run["started"] <= moment]
    return max(earlier, key=lambda run: run["started"])["context"] if earlier else "unknown"


def locate_library(workflow_file):
    """Make every module of LIBRARY a local file: ``workflow_file(path)`` is Snakemake's
    ``workflow.source_path`` of a path relative to workflow/, which copies a module read from a
    git host into Snakemake's cache (side by side, so they import each other)."""
    for module in LIBRARY:
        workflow_file(f"vendor/{module}.py")


def validate_config(workflow, config, workflow_file):
    """Check ``config`` against the template's keys (vendor/config.schema.yaml) and then the workflow's
    own (schemas/config.schema.yaml), each filling in its defaults: neither schema lists the other's keys."""
    import yaml
    from snakemake.utils import validate

    if workflow.modifier.skip_validation:  # a host's module declaration asked for none
        return
    template_schema = workflow_file("vendor/config.schema.yaml")
    validate(config, template_schema)
    with open(template_schema, encoding="utf-8") as fh:
        template_keys = set(yaml.safe_load(fh)["properties"])
    own = {key: value for key, value in config.items() if key not in template_keys}
    validate(own, workflow_file("schemas/config.schema.yaml"))
    config.update(own)


class Contract:
    def __init__(self, workflow, config, workflow_file):
        self.workflow, self.config = workflow, config
        self.vendor = os.path.dirname(os.path.abspath(__file__))  # this library, where it was imported from
        # This workflow's own source (not the including one's when used as a module): a local
        # folder, or a git repository at a ref (github(...)/gitlab(...), as snakedeploy writes it).
        self.source = workflow.current_basedir
        self.workflow_dir = os.path.dirname(str(self.source.get_path_or_uri(secret_free=True)))
        self.is_local = os.path.isdir(self.workflow_dir)
        # its own Snakefile and CITATION.cff, which a release's RO-Crate describes (a host's are not it)
        if self.is_local:
            self.snakefile = os.path.join(self.workflow_dir, "Snakefile")
            self.citation = os.path.join(os.path.dirname(self.workflow_dir), "CITATION.cff")
        else:
            self.snakefile, self.citation = workflow_file("Snakefile"), workflow_file("../CITATION.cff")
        import scratch
        import shadow_route

        # the scratch wrapper's policy arguments: the root (tmpdir) and the settings scratch.py defines
        self.scratch_policy = ("tmpdir", *scratch.POLICY)

        policy = workflow.resource_settings.default_resources
        self.missing_policy = [
            name for name in (*scratch.POLICY, *shadow_route.POLICY) if policy is None or name not in policy
        ]
        self.no_context = None  # with a profile: the usual case, in every job's parse too
        if self.missing_policy:
            self.no_context = (
                f"No operating context: the scratch policy ({', '.join(self.missing_policy)}) comes from a "
                f"profile. Run with --profile profiles/<context>, one of: {', '.join(contexts())}; "
                "see docs/operations.md."
            )
            print(f"NOTE: {self.no_context} Linting and dry runs need none.", file=sys.stderr)
        self.context = context_from_argv(sys.argv)
        # Set at parse time, so also in every job (a cluster job parses the Snakefile again).
        # A shell rule's recorded command names no place: scratch.py is found through
        # WORKFLOW_SCRATCH_PY, and the cluster-sim profile's commands find the scheduler through
        # WORKFLOW_VENDOR, so moving the checkout or rebuilding the venv reruns nothing.
        # jupyter-nbconvert reads this folder's jupyter_nbconvert_config.py first (a failing
        # notebook's executed cells stay in the rule's log notebook).
        jupyter = os.environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep)
        os.environ.update(
            WORKFLOW_CONTEXT=self.context,
            WORKFLOW_SCRATCH_PY=os.path.join(self.vendor, "scratch.py"),
            WORKFLOW_VENDOR=self.vendor,
            JUPYTER_CONFIG_PATH=os.pathsep.join(dict.fromkeys([self.vendor, *filter(None, jupyter)])),
        )
        # Where shadow: "minimal" jobs work: the profile's shadow_route (shadow_route.py; pinned
        # to one Snakemake version: another stops the run here, before any job).
        try:
            self.shadow_route = shadow_route.chosen(policy)
        except ValueError as exc:
            raise _error(str(exc)) from None
        if self.shadow_route == "scratch":
            shadow_route.install(self.takes_shadow_route)

    # ------------------------------------------------------------------ routes to scratch
    def scratch(self, command):
        """A shell command that runs in the job's node-local scratch dir.

        Inputs are mirrored at their relative paths, outputs are written at their relative
        paths there and brought back atomically; logs go straight to their durable paths.
        ``shell: scratch("sort {input:q} > {output:q} 2> {log:q}")``.
        """
        if SCRATCH_MARKER in command:
            raise _error(f"scratch(): the command may not contain {SCRATCH_MARKER}")
        policy = " ".join(
            f"--{name.replace('_', '-')} "
            + ("'<no profile>'" if name in self.missing_policy else "{resources.NAME:q}".replace("NAME", name))
            for name in self.scratch_policy
        )
        wrapper = (
            f'python3 "$WORKFLOW_SCRATCH_PY" shell {SCRATCH_RULE} '
            + "--wildcards {wildcards:q} "
            + policy
            + " --input {input:q} --output {output:q} --log {log:q}"
        )
        return f"{wrapper} <<'{SCRATCH_MARKER}'\n{command}\n{SCRATCH_MARKER}\n"

    def is_own_rule(self, rule):
        """Whether a rule is in this workflow's own files (not a host's, when used as a module)."""
        return str(rule.snakefile).startswith(str(self.workflow_dir))

    def own_rules(self):
        return [each for each in self.workflow.rules if self.is_own_rule(each)]

    def takes_shadow_route(self, rule):
        return self.shadow_route == "scratch" and rule.shadow_depth == "minimal" and self.is_own_rule(rule)

    def under_results(self, path):
        prefix = getattr(self.workflow.modifier.path_modifier, "prefix", None) or ""
        return str(path).removeprefix(prefix).startswith("results/")

    def _script_text(self, rule):
        with self.workflow.sourcecache.open(rule.basedir.join(rule.script)) as fh:
            return fh.read()

    def route_problem(self, rule):
        """Why ``rule`` could leave a partial file under results/, or None when it takes a route."""
        where = f"{os.path.relpath(rule.snakefile)}:{rule.lineno} (rule {rule.name})"
        shell, script = rule.shellcmd, rule.script
        if rule.shadow_depth:
            return None
        if shell is not None and SCRATCH_MARKER in shell:
            absolute = [f for f in rule.input if isinstance(f, str) and os.path.isabs(f)]
            if absolute:
                return (
                    f"{where}: input {absolute[0]} is an absolute path, which its command would read outside "
                    "scratch; give it relative to the working directory, e.g. os.path.relpath(config[...]) "
                    "(docs/rule-kinds.md#what-the-command-sees)"
                )
            return None
        if script is not None and script.endswith(".py") and "scratch_job(" in self._script_text(rule):
            return None
        if shell is not None:
            how = 'wrap its command in scratch("...")'
        elif script is not None:
            how = 'open `with scratch_job(snakemake) as job:` in its Python script, or add shadow: "minimal"'
        else:
            how = 'add shadow: "minimal"'
        outputs = ", ".join(str(f) for f in rule.output if self.under_results(f))
        return f"{where} writes {outputs} without a route that makes it appear whole: {how} (docs/rule-kinds.md)"

    def check_routes(self):
        """Refuse, before any job and in `snakemake --lint`, rules that write under results/ without a route."""
        for each in self.own_rules():  # the recorded command names its rule, as the job's formatting will
            if each.shellcmd is not None and SCRATCH_MARKER in each.shellcmd:
                each.shellcmd = each.shellcmd.replace(SCRATCH_RULE, f"--rule {each.name}")
        problems = [
            problem
            for each in self.own_rules()
            if any(self.under_results(f) for f in each.output)
            for problem in [self.route_problem(each)]
            if problem
        ]
        if problems:
            raise _error("\n".join(["A file under results/ must appear whole or not at all:", *problems]))

    def check_shadow_filesystem(self):
        """Refuse Snakemake's shadow directory on another filesystem than results/.

        Snakemake moves a shadow job's outputs into results/ with shutil.move: one rename on one
        filesystem, but a copy into the final path across two. The prefix is known once the run starts.
        """
        if not any(each.shadow_depth and not self.takes_shadow_route(each) for each in self.own_rules()):
            return
        root = self.workflow.execution_settings.shadow_prefix or ".snakemake"
        if _filesystem(root) != _filesystem("results"):
            raise _error(
                f"the shadow directory ({os.path.join(root, 'shadow')}) is not on the filesystem of results/: "
                "Snakemake would copy the outputs of shadow rules into results/ instead of renaming them, and a "
                "reader could see a half-written file. Remove shadow-prefix (--shadow-prefix) from the profile "
                "or the command line, or set it to a folder on the filesystem of results/; see docs/rule-kinds.md."
            )

    def check_shadow_inputs(self):
        """Refuse shadow jobs with an input outside the working directory: Snakemake cannot link
        "../" paths into its shadow directory and would stop the run at that job."""
        outside = sorted(
            {
                f"{f} (rule {job.rule.name})"
                for job in self.workflow.dag.jobs
                if job.rule.shadow_depth and not self.takes_shadow_route(job.rule)
                for f in job.input
                if str(f).startswith("../")
            }
        )
        if outside:
            raise _error(
                f"shadow jobs cannot read inputs outside the working directory: {', '.join(outside[:3])}. "
                "Give such an input as an absolute path (os.path.abspath(...)), or copy it under work/ with a "
                "scratch() rule first; see docs/rule-kinds.md#the-shadow-route-shadow-minimal."
            )

    # ------------------------------------------------------------------ results/: the final outputs only
    def check_planned_results(self, final_outputs):
        """Refuse a run whose jobs would write a file under results/ that is not a final output."""
        extra = sorted(
            {
                f"{f} (rule {job.rule.name})"
                for job in self.workflow.dag.jobs
                for f in job.output
                if self.under_results(f) and not is_final(str(f), final_outputs)
            }
        )
        if extra:
            raise _error(
                f"results/ holds only the final outputs, but jobs would write {_listed(extra)}: "
                f"add them to {FINAL_OUTPUTS_HOME} (None: final, not published), or write them as temp() under work/."
            )

    def report_stale_results(self, final_outputs):
        stale = stale_results(final_outputs)
        if stale and self.workflow.is_main_process:
            print(
                f"WARNING: {_listed(stale)} under results/ {'are' if len(stale) > 1 else 'is'} no final output "
                f"(FINAL_OUTPUTS); never published, and moved to {STALE_RESULTS}/ when jobs next run.",
                file=sys.stderr,
            )

    def check_before_jobs(self, final_outputs):
        """Everything checked once the run starts (onstart), before the first job."""
        if self.missing_policy:
            raise _error(self.no_context)
        self.check_routes()
        self.check_shadow_filesystem()
        self.check_planned_results(final_outputs)
        self.check_shadow_inputs()
        set_aside_stale_results(final_outputs)
        RUNS_RECORD.parent.mkdir(parents=True, exist_ok=True)
        run = {"context": self.context, "started": datetime.datetime.now(datetime.UTC).timestamp()}
        with open(RUNS_RECORD, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(run | {"host": os.uname().nodename}) + "\n")

    # ------------------------------------------------------------------ publication
    def published_set(self, final_outputs):
        """{published name: path} of the published final outputs; checks routes and warns of stale files
        (at parse time, for `snakemake --lint` and dry runs; again before the first job)."""
        for path in final_outputs:
            if not str(path).startswith("results/"):
                raise _error(f"final output {path} is not under results/ ({FINAL_OUTPUTS_HOME})")
        self.check_routes()
        self.report_stale_results(final_outputs)
        return {name: str(path) for path, name in final_outputs.items() if name}

    def made_by(self, publish_set):
        """What made each published file, from Snakemake's own records (.snakemake/).

        Without a record the release could not say which computation produced the file (e.g.
        after .snakemake/ was deleted), so publishing is refused.
        """
        from snakemake.io import IOFile

        import publish as publish_mechanism

        runs = []
        if RUNS_RECORD.exists():
            runs = [json.loads(line) for line in RUNS_RECORD.read_text(encoding="utf-8").splitlines() if line]
        records, unknown = {}, []
        for name, source in publish_set.items():
            record = self.workflow.persistence.metadata(IOFile(source))
            if record is None or record.incomplete or record.endtime is None:
                unknown.append(source)
                continue
            records[name] = {
                "rule": record.rule,
                "made_at": publish_mechanism.utc_stamp(datetime.datetime.fromtimestamp(record.endtime, datetime.UTC)),
                "context": context_at(record.starttime or record.endtime, runs),
            }
        if unknown:
            raise _error(
                f"publish refused: Snakemake has no record of how {_listed(unknown)} "
                f"{'were' if len(unknown) > 1 else 'was'} made (was .snakemake/ deleted?), so a release "
                "could not say what produced it. Rebuild with: snakemake --profile profiles/<context> --forceall, "
                "then publish again."
            )
        return records

    def workflow_git(self):
        """git_commit and git_dirty of this workflow's own source: its checkout's work tree, or the
        commit of the ref a github(...)/gitlab(...) module is read at (never dirty)."""
        import publish as publish_mechanism

        if self.is_local:
            return publish_mechanism.git_state(self.workflow_dir)
        try:  # Snakemake's own clone of the module's repository
            commit = publish_mechanism.git_commit_of(self.source.hosted_repo.repo_clone, self.source.ref)
        except (AttributeError, AssertionError):  # another remote source: no git state
            commit = None
        return {"git_commit": commit, "git_dirty": None if commit is None else False}

    def deployment_git(self):
        """git_commit and git_dirty of the working directory when it is not in this workflow's own
        repository (a host using it as a module, a snakedeploy deployment); None when it is."""
        import publish as publish_mechanism

        if self.is_local:
            repository = publish_mechanism.git_toplevel(self.workflow_dir)
            own = Path(repository or os.path.dirname(self.workflow_dir)).resolve()
            if Path.cwd().resolve().is_relative_to(own):
                return None
        return publish_mechanism.git_state(os.getcwd())

    def repository_url(self, release_crate):
        """Where this workflow's repository is: its origin remote, or the git host of a module."""
        if self.is_local:
            return release_crate.git_remote(self.workflow_dir)
        host, repo = (getattr(self.source, key, None) for key in ("host", "repo"))
        return f"https://{host}/{repo}" if host and repo else None

    def version(self):
        """The workflow's version, which each release records: the `version` of its CITATION.cff."""
        import yaml

        with open(self.citation, encoding="utf-8") as fh:
            return str(yaml.safe_load(fh)["version"])

    def publish(self, publish_set, log, sample_files):
        """Publish ``publish_set`` as a new release (or reuse an intact one with the same content)."""
        from snakemake import __version__ as snakemake_version

        import publish as publish_mechanism
        import release_crate  # only when publishing: rocrate takes long to import

        git, deployment = self.workflow_git(), self.deployment_git()
        for where, state, field in (
            ("the workflow's", git, "git_dirty"),
            ("the working directory's", deployment or {}, "deployment.git_dirty"),
        ):
            if state.get("git_dirty"):
                print(
                    f"WARNING: {where} git work tree has uncommitted changes; the release records {field}: true",
                    file=sys.stderr,
                )
        config_json = json.dumps(self.config, sort_keys=True, default=str).encode()
        provenance = {
            "workflow_version": self.version(),
            **git,
            "deployment": deployment,
            "config_sha256": hashlib.sha256(config_json).hexdigest(),
            "snakemake_version": snakemake_version,
            "context": self.context,
            "published_at": publish_mechanism.utc_stamp(datetime.datetime.now(datetime.UTC)),
            "host": os.uname().nodename,
            "made_by": self.made_by(publish_set),
        }
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        try:
            result = publish_mechanism.publish(
                publish_set,
                "results",
                "publish",
                provenance,
                describe=release_crate.describer(
                    snakefile=self.snakefile,
                    citation=self.citation,
                    config_files=self.workflow.configfiles,
                    sample_sheet=self.config["samples"],
                    sheet_max_bytes=self.config["release_sample_sheet_max_bytes"],
                    job_times=release_crate.job_times(self.workflow.persistence, publish_set.values()),
                    repository_url=self.repository_url(release_crate),
                    sample_files=sample_files,
                ),
            )
        except (publish_mechanism.PublishError, release_crate.CrateError) as exc:
            raise _error(f"publish refused: {exc}") from None
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({**result, "provenance": provenance}, sort_keys=True) + "\n")
        print(publish_mechanism.report(result), flush=True)


def is_final(path, final_outputs):
    """Whether ``path`` is a declared final output or lies inside a final directory()."""
    return any(p in final_outputs for p in [path, *map(str, Path(path).parents)])


def stale_results(final_outputs):
    """Files under results/ that are no final output any more (a sample left the sheet, a rule changed)."""
    import scratch as scratch_mechanism

    found = []
    for folder, _, names in os.walk("results"):
        for name in names:
            path = os.path.join(folder, name)
            # a copy-back under way is no stale file
            if scratch_mechanism.PARTIAL_MARK not in name and not is_final(path, final_outputs):
                found.append(path)
    return sorted(found)


def set_aside_stale_results(final_outputs):
    """Move stale files out of results/ (not deleted: they may be worth a look), keeping their paths."""
    stale = stale_results(final_outputs)
    if not stale:
        return
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in stale:
        target = Path(STALE_RESULTS, stamp, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    for folder, dirs, names in sorted(os.walk("results"), reverse=True):
        if folder != "results" and not dirs and not names and not is_final(folder, final_outputs):
            os.rmdir(folder)
    print(f"Moved {len(stale)} stale file(s) from results/ to {STALE_RESULTS}/{stamp}/.", file=sys.stderr)
