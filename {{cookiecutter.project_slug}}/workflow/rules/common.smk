# Shared helpers: config and sample-sheet access (in one place), the scratch
# wrapper for shell rules, and the checks that run before any job starts.

import csv
import hashlib
import json
import os
import re
import sys
from pathlib import Path

from snakemake import __version__ as SNAKEMAKE_VERSION
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")

# --------------------------------------------------------------------------
# operating context: policy must come from a profile
# --------------------------------------------------------------------------
# Scratch policy is read from default-resources set by profiles/<context>/.
# Without a profile the jobs would not know where scratch is, so stop here.
SCRATCH_POLICY_RESOURCES = ("tmpdir", "scratch_staging", "scratch_on_failure")


def _default_resource_names():
    resources = workflow.resource_settings.default_resources
    return set(resources.keys()) if resources is not None else set()


_missing_policy = [
    name
    for name in SCRATCH_POLICY_RESOURCES[1:]
    if name not in _default_resource_names()
]
if _missing_policy:
    _names = ", ".join(_missing_policy)
    # every context this repository has, a team's own included
    _contexts = sorted(
        p.parent.name
        for p in (Path(workflow.basedir).parent / "profiles").glob("*/config.yaml")
    )
    raise WorkflowError(
        f"No operating context: the scratch policy ({_names}) comes from a profile. "
        f"Run with --profile profiles/<context>, one of: {', '.join(_contexts)}; "
        "see docs/operations.md."
    )


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
# the sample sheet: validated before any job runs
# --------------------------------------------------------------------------
SAMPLE_ID_REGEX = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
SAMPLE_ID_PATTERN = re.compile(f"^{SAMPLE_ID_REGEX}$")
SAMPLES_SCHEMA = Path(workflow.basedir) / "schemas" / "samples.schema.yaml"
# File systems allow 255 bytes per name. Sample ids become parts of names
# (results/samples/<id>.summary.json, and its hidden partial copy
# .<id>.summary.json.scratch-partial-<pid>-<hex>: 45 bytes more), so the
# schema's maxLength for an id leaves room for those and for names rules add.
NAME_MAX_BYTES = 255
# Tabs, line breaks and other control characters: a line break in a path would
# end the scratch wrapper's command early (its here-document) and split logs.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _load_schema(schema_path):
    import yaml

    with open(schema_path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _row_checker(schema):
    """check(row) -> the first schema problem of a sheet row, or None.

    Fills in the schema's defaults, as snakemake.utils.validate() does. That
    function re-reads and re-compiles the schema on every call (milliseconds
    per row, minutes for 10,000 samples), so the schema is compiled once here.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    defaults = {
        key: spec["default"]
        for key, spec in schema.get("properties", {}).items()
        if "default" in spec
    }

    def check(row):
        for key, value in defaults.items():
            row.setdefault(key, value)
        error = jsonschema.exceptions.best_match(validator.iter_errors(row))
        return None if error is None else error.message

    return check


def _shown(value, limit=40):
    """A value short enough to quote in an error message."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}..."


def _read_sheet(sheet):
    """[(line number, fields)] of a tab-separated sheet, header first.

    A byte-order mark (spreadsheet exports) and CRLF line ends are accepted;
    blank lines are skipped; a record's number is the line it starts on.
    """
    try:
        with open(sheet, newline="", encoding="utf-8-sig") as fh:
            records, line = [], 0
            reader = csv.reader(fh, delimiter="\t")
            for fields in reader:
                if fields:
                    records.append((line + 1, fields))
                line = reader.line_num
            return records
    except UnicodeDecodeError as exc:
        raise WorkflowError(
            f"Sample sheet {sheet} is not UTF-8 text (byte {exc.start}); "
            "save it as UTF-8 (tab-separated)."
        ) from None


def _row_problem(row, id_max):
    """The first problem of a row that the schema cannot say well, or None."""
    for column, value in row.items():
        found = CONTROL_CHARACTER.search(value)
        if found:
            return (
                f"column {column!r} contains the control character "
                f"U+{ord(found.group()):04X} (a tab, line break or similar); "
                "remove it: values must be printable text"
            )
    sample = row.get("sample", "")
    if len(sample) > id_max:
        return (
            f"sample id is {len(sample)} characters long; at most {id_max} are allowed, "
            f"so that every file name made from it stays under the {NAME_MAX_BYTES}-byte "
            "limit of file systems"
        )
    for part in Path(row.get("path", "")).parts:
        if len(part.encode()) > NAME_MAX_BYTES:
            return (
                f"the name {_shown(part)} in path is {len(part.encode())} bytes long; "
                f"file systems allow at most {NAME_MAX_BYTES} bytes per file or folder name"
            )
    return None


def load_samples(sheet_path, input_dir):
    """Read and check the sample sheet; return {sample_id: row}.

    Every problem is collected and reported together, naming the line and the
    sample, so one run shows everything that needs fixing.
    """
    sheet = Path(sheet_path)
    if not sheet.is_file():
        raise WorkflowError(
            f"Sample sheet {sheet} does not exist (config key 'samples')."
        )
    base = Path(input_dir)
    records = _read_sheet(sheet)
    problems, samples = [], {}
    schema = _load_schema(SAMPLES_SCHEMA)
    check_row = _row_checker(schema)
    id_max = schema["properties"]["sample"]["maxLength"]
    if len(records) < 2:
        problems.append(
            f"{sheet}: no samples (expected a header line and one row per sample)"
        )
    header = [name.strip() for name in records[0][1]] if records else []
    for lineno, fields in records[1:]:
        if len(fields) != len(header):
            problems.append(
                f"{sheet} line {lineno}: wrong number of tab-separated columns"
                f" ({len(fields)}, the header has {len(header)})"
            )
            continue
        row = {key: value.strip() for key, value in zip(header, fields)}
        sample = row.get("sample", "")
        where = f"{sheet} line {lineno} (sample {_shown(sample)})"
        problem = _row_problem(row, id_max)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        problem = check_row(row)
        if problem:
            problems.append(
                f"{where}: does not match workflow/schemas/samples.schema.yaml: {problem}"
            )
            continue
        if not SAMPLE_ID_PATTERN.match(sample):
            problems.append(
                f"{where}: sample id must match {SAMPLE_ID_PATTERN.pattern}"
            )
            continue
        if sample in samples:
            problems.append(f"{where}: duplicate sample id")
            continue
        rel = Path(row["path"])
        if rel.is_absolute() or ".." in rel.parts:
            problems.append(
                f"{where}: path {row['path']!r} must be relative to {base}/ without '..'"
            )
            continue
        full = base / rel
        if not full.resolve().is_relative_to(base.resolve()):
            problems.append(
                f"{where}: path {row['path']!r} leaves {base}/ through a symlink"
            )
            continue
        if not full.is_file():
            problems.append(f"{where}: input file {full} does not exist")
            continue
        samples[sample] = {**row, "file": str(full)}
    if problems:
        listing = "\n  - ".join(problems)
        raise WorkflowError(
            f"The sample sheet has problems (nothing was run):\n  - {listing}"
        )
    return samples


SAMPLES = load_samples(config["samples"], config["input_dir"])
SAMPLE_IDS = sorted(SAMPLES)


def _sample_row(wildcards):
    try:
        return SAMPLES[wildcards.sample]
    except KeyError:
        raise WorkflowError(
            f"sample {wildcards.sample!r} is not in the sample sheet {config['samples']}"
        ) from None


def sample_file(wildcards):
    """The input file of one sample (the only way rules reach the sheet)."""
    return _sample_row(wildcards)["file"]


def sample_group(wildcards):
    return _sample_row(wildcards)["group"]


# --------------------------------------------------------------------------
# scratch wrapper for shell rules (mechanism: workflow/scripts/scratch.py)
# --------------------------------------------------------------------------
# The wrapped command is what Snakemake records as a shell rule's code, so it names
# no place: the wrapper is found through this variable (set here at parse time, so
# also in every cluster job, which parses the Snakefile again) and run by the
# python3 on PATH (the job's: a conda env's or a container's). Moving the checkout
# or rebuilding the venv then changes no rule's code and reruns nothing.
SCRATCH_PY_VARIABLE = "WORKFLOW_SCRATCH_PY"
os.environ[SCRATCH_PY_VARIABLE] = str(Path(workflow.basedir) / "scripts" / "scratch.py")


def _calling_rule_name():
    """Name of the rule whose job is formatting its command, else "job".

    Snakemake evaluates a rule's shell: expression again inside the job's run
    function, whose argument ``rule`` is the rule name. (The linter rejects a
    {rule} placeholder, so the name is taken from there instead.)
    """
    name = sys._getframe(2).f_locals.get("rule")
    return name if isinstance(name, str) and re.fullmatch(r"\w+", name) else "job"


def scratch(command):
    """Run a shell command in the job's node-local scratch dir.

    Inputs are mirrored at their relative paths, outputs are written at their
    relative paths there and brought back atomically; logs go straight to
    their durable paths. Use exactly as a normal shell command:
    ``shell: scratch("sort {input:q} > {output:q} 2> {log:q}")``.
    """
    marker = "__SCRATCH_COMMAND__"
    if marker in command:
        raise WorkflowError(f"scratch(): the command may not contain {marker}")
    wrapper = " ".join(
        [
            f'python3 "${SCRATCH_PY_VARIABLE}"',
            " ".join(["shell", "--rule", _calling_rule_name()]),
            "--wildcards {wildcards:q}",
            "--root {resources.tmpdir:q} --staging {resources.scratch_staging:q}",
            "--on-failure {resources.scratch_on_failure:q}",
            "--input {input:q} --output {output:q} --log {log:q}",
        ]
    )
    return f"{wrapper} <<'{marker}'\n{command}\n{marker}\n"


def check_publish_set(publish_set, final_outputs):
    """The publish set may only name declared final outputs under results/."""
    final = set()
    for value in final_outputs.values():
        final.update([value] if isinstance(value, str) else value)
    for name, source in publish_set.items():
        if not str(source).startswith("results/"):
            raise WorkflowError(
                f"publish set: {name!r} -> {source!r} is not under results/"
            )
        if source not in final:
            raise WorkflowError(
                f"publish set: {name!r} -> {source!r} is not a declared final output (FINAL_OUTPUTS in workflow/Snakefile)"
            )
