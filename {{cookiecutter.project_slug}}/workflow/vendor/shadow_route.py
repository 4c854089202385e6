"""Route (b) of issue 21: ``shadow: "minimal"`` jobs work in node-local scratch, through scratch.py.

R scripts, notebooks, ``wrapper:`` and container rules cannot call the scratch wrapper, so they use
``shadow: "minimal"``. Snakemake's shadow directory is created by the process that runs the job
(snakemake/jobs.py ``Job.prepare``), under ``persistence.shadow_path``, and emptied by
``DAG.unshadow_output`` with ``shutil.move``. When the profile says ``shadow_route: 'scratch'``
(``POLICY``), this module replaces those two steps, for the rules ``install()`` is given, by
``scratch.ScratchJob``, in every process that parses the workflow (the main process, the
``python -m snakemake`` Snakemake spawns for each local shadow job, the job's Snakemake on a cluster
node):

* ``Job.prepare`` runs as it is, except its last step (the shadow directory): instead the job gets
  ``ScratchJob.start()`` under the profile's ``tmpdir`` resource, as evaluated by this job process
  (a private 0700 root per user, a directory named after the job, inputs linked or copied by
  ``scratch_staging``, ``../`` inputs at their relative place, logs symlinked to their durable
  paths), and ``Job.shadow_dir`` is set to the directory the command must run in; a container job
  also gets the scratch root bound into its image (``--bind``), where its command runs (``--pwd``);
* ``DAG.unshadow_output`` brings the outputs back with ``ScratchJob.finish()`` (a rename on one
  filesystem; across two a hidden partial copy, fsync, size check, ``os.replace``), or on failure
  calls ``ScratchJob.fail()``, which keeps or removes the directory by ``scratch_on_failure`` and
  writes the host and directory to the job's log; each job writes a ``[scratch]`` record.

It is pinned: ``install()`` refuses to run unless Snakemake is the version and the functions it
relies on have the source it was written against (``PINNED``). Anything else stops the run at parse
time, before a job starts, naming what changed and what to do (docs/rule-kinds.md). Stdlib and
Snakemake only; Snakemake is imported in ``install()``. It sits beside scratch.py, which it imports.

From the Snakemake repository template, release {{ cookiecutter._template_version }}.
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
import os
import shlex

import scratch as scratch_mechanism

# The profile setting (default-resources) that chooses where shadow: "minimal" jobs work, and its values:
# "scratch", in the job's scratch directory under tmpdir, through this module; "snakemake", in Snakemake's
# own shadow directory under .snakemake/ (on the filesystem of results/, not node-local), the fallback for
# a Snakemake this module is not pinned to.
POLICY = {"shadow_route": ("scratch", "snakemake")}
SNAKEMAKE_VERSION = "9.27.1"
# "module:qualified name" -> sha256 of its source (inspect.getsource) in Snakemake 9.27.1. What each
# is relied on for:
PINNED = {
    # calls is_shadow once, in its last step, which only makes the shadow directory
    "snakemake.jobs:Job.prepare": "fd2d6313296170e4e79c48c3d2d213b4d124a4c966760f88005624989b2ff529",
    # the property replaced while prepare runs (a context variable: per job, per thread)
    "snakemake.jobs:Job.is_shadow": "17ab999b9d8da27a2fb69148a634a6300fd4e6b62837857c778bea0f35bdc39c",
    # the job's paths in the shadow dir: os.path.join(shadow_dir, f)
    "snakemake.jobs:Job.shadowed_path": "1c0ab5a3ec01e60bc81c4100a19521675475330f7929ab61adbc505defad25c2",
    # checks outputs at shadowed paths, then calls unshadow_output(job, only_log=error, keep_shadow_dir=...)
    "snakemake.jobs:Job.postprocess": "6c242cdd6b939c33faf82f891294c545da00b84da5b24d68939be42819205200",
    # replaced for the route's jobs
    "snakemake.dag:DAG.unshadow_output": "24eb101d3af72ddae78d9c47773e2fb73ed946539ed3412744a00e640488ae1b",
    # prepare() first, then the job's arguments, shadow_dir among them
    "snakemake.executors.local:Executor.job_args_and_prepare": "1cefb86ecf664f3ccd8a5659d38905095e728ac49ae7481f960f56d1f02ef3d8",
    # a shadow job is spawned into its own snakemake process (prepare and postprocess happen there)
    "snakemake.executors.local:Executor.run_single_job": "7e253527e554c137c76eb98d1b7bd2f030ba70954d8902e73f7650451bb54415",
    # chdir into shadow_dir around the job (or --pwd for a container)
    "snakemake.executors.local:run_wrapper": "d7524ba92fc979f6ac87d792e5b6c4fa237ae73130a6bd0133853b051ec086e7",
    # a container job: --pwd shadow_dir, then the apptainer arguments, --bind among them, before the image
    "snakemake.deployment.singularity:shellcmd": "b3b9bad0542a4c4e3f79129b0c9f692f3959b3b240e3f7769728582113093682",
}

_SKIP_SHADOW_STEP = contextvars.ContextVar("shadow_route_skip", default=None)
_JOBS: dict[int, tuple[object, scratch_mechanism.ScratchJob]] = {}  # id(job) -> (job, its scratch job)


class PinError(RuntimeError):
    """Snakemake is not the one this adaptation was written against."""


def _resolve(name):
    import importlib

    importlib.import_module("snakemake.api")  # loads snakemake.workflow, .dag and .jobs in their order
    module, qualname = name.split(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return getattr(obj, "fget", obj)  # a property: its getter


def source_digest(name) -> str:
    return hashlib.sha256(inspect.getsource(_resolve(name)).encode()).hexdigest()


def pin_problems() -> list[str]:
    """What differs from the Snakemake this was written against (empty: nothing)."""
    from snakemake import __version__

    problems = [] if __version__ == SNAKEMAKE_VERSION else [f"Snakemake is {__version__}, not {SNAKEMAKE_VERSION}"]
    for name, expected in PINNED.items():
        try:
            found = source_digest(name)
        except (AttributeError, ImportError, OSError, TypeError) as exc:
            problems.append(f"{name}: cannot read its source ({exc})")
            continue
        if found != expected:
            problems.append(f"{name}: source changed (sha256 {found[:16]}, pinned {expected[:16]})")
    return problems


def check_pin() -> None:
    problems = pin_problems()
    if problems:
        raise PinError(
            "shadow_route: 'scratch' (the profile's default-resources) runs shadow: \"minimal\" jobs in node-local "
            "scratch through shadow_route.py, which relies on Snakemake internals and is pinned to Snakemake "
            f"{SNAKEMAKE_VERSION}. What differs: " + "; ".join(problems) + ". What to do: run the Snakemake of "
            "requirements.txt (make setup), or take the template release that supports this one (make update); "
            "until then, shadow_route: \"'snakemake'\" in the profile runs those jobs in Snakemake's own shadow "
            "directory on the filesystem of results/ (whole outputs, but not node-local). See docs/rule-kinds.md."
        )


def chosen(default_resources):
    """The profile's ``shadow_route`` (one of ``POLICY``'s values), or None when no profile sets it.

    Read once per Snakemake process, at parse time, from the text of the default resource (a Python
    literal such as ``"'scratch'"``): every process must install the route or none, before any job.
    """
    import ast

    ((name, allowed),) = POLICY.items()
    raw = getattr(default_resources.get(name), "raw", None) if default_resources is not None else None
    if raw is None:
        return None
    try:
        value = ast.literal_eval(raw) if isinstance(raw, str) else raw
    except (ValueError, SyntaxError):
        value = raw
    if value not in allowed:
        raise ValueError(
            f"{name}={raw!r} in the profile's default-resources is not one of "
            + ", ".join(f"\"'{each}'\"" for each in allowed)
        )
    return value


class ShadowScratchJob(scratch_mechanism.ScratchJob):
    """A ScratchJob whose record lines never go into a notebook log (``log: notebook=``), which must stay
    a valid .ipynb; such a job's record goes to its standard error only."""

    def _append_log(self, line: str) -> None:
        text_logs = [log for log in self.logs if not log.endswith(".ipynb")]
        if text_logs:
            with open(text_logs[0], "a", encoding="utf-8") as fh:
                fh.write(line + "\n")


def _policy(job) -> dict:
    return {name: job.resources.get(name) for name in ("tmpdir", *scratch_mechanism.POLICY)}


def _bind(deployment_settings, root) -> None:
    """Bind the scratch root into every image this process starts (one root per node and user: the
    same for each job of this process), so a container job's --pwd and inputs exist in the image."""
    bind = f"--bind {shlex.quote(root)}"
    if bind not in deployment_settings.apptainer_args:
        deployment_settings.apptainer_args = f"{deployment_settings.apptainer_args} {bind}".strip()


def install(takes_route) -> None:
    """Route the shadow jobs of the rules for which ``takes_route(rule)`` is true through scratch.py."""
    from snakemake.dag import DAG
    from snakemake.exceptions import WorkflowError
    from snakemake.jobs import Job

    if getattr(Job.prepare, "shadow_route", False):  # installed already (a module parsed twice)
        return
    try:
        check_pin()
    except PinError as exc:
        raise WorkflowError(str(exc)) from None
    original_prepare, original_is_shadow, original_unshadow = Job.prepare, Job.is_shadow, DAG.unshadow_output

    def is_shadow(self):
        return original_is_shadow.fget(self) and _SKIP_SHADOW_STEP.get() is not self

    async def prepare(self):
        if self.is_norun or not original_is_shadow.fget(self) or not takes_route(self.rule):
            return await original_prepare(self)
        token = _SKIP_SHADOW_STEP.set(self)  # Snakemake's own steps, without its shadow directory
        try:
            await original_prepare(self)
        finally:
            _SKIP_SHADOW_STEP.reset(token)
        wildcards = ",".join(f"{k}={v}" for k, v in self.wildcards_dict.items())
        try:
            job = ShadowScratchJob(
                [f for f in self.input if not os.path.isabs(f)],  # an absolute input is read in place
                list(self.output),
                list(self.log),
                _policy(self),
                rule=self.rule.name,
                wildcards=wildcards,
            ).start()
        except scratch_mechanism.ScratchError as exc:
            raise WorkflowError(f"shadow route: {exc}", rule=self.rule) from None
        _JOBS[id(self)] = (self, job)
        self.shadow_dir = job.cwd
        if self.container_img_url and self.container_img:  # an image sees the host's paths it is given
            _bind(self.dag.workflow.deployment_settings, os.path.dirname(job.dir))

    def unshadow_output(self, job, only_log=False, keep_shadow_dir=False):
        mine = _JOBS.get(id(job))
        if mine is None or mine[0] is not job:
            return original_unshadow(self, job, only_log=only_log, keep_shadow_dir=keep_shadow_dir)
        del _JOBS[id(job)]
        scratch_job = mine[1]
        job.shadow_dir = None  # handled here: a second call (postprocess after an error) has nothing to do
        if only_log:  # the job failed: logs are at their durable paths already
            scratch_job.fail("the job failed (see its log above)")
            return None
        try:
            scratch_job.finish()
        except scratch_mechanism.ScratchError as exc:  # finish() recorded it and kept the dir by policy
            raise WorkflowError(f"shadow route: {exc}", rule=job.rule) from None
        return None

    prepare.shadow_route = True
    Job.prepare = prepare
    Job.is_shadow = property(is_shadow)
    DAG.unshadow_output = unshadow_output
