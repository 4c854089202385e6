# The declared input surface, read in one place: the config (schema-validated)
# and the sample sheet, checked before any job starts. Rules reach the sheet
# only through sample_file() and sample_column().

import csv
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")

# --------------------------------------------------------------------------
# the sample sheet: validated before any job runs
# --------------------------------------------------------------------------
SAMPLES_SCHEMA = workflow.source_path("../schemas/samples.schema.yaml")
# A sheet column whose schema says "format: input-file" names a file under input_dir
# (the example's "path"; a second read file "fq2", an index...): resolved, checked
# before the run and reached with sample_file("<column>").
INPUT_FILE_FORMAT = "input-file"
# bytes per file or folder name (the sample id's maxLength: samples.schema.yaml)
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


def _row_problem(row, id_max, file_columns):
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
    for column in file_columns:
        for part in Path(row.get(column, "")).parts:
            if len(part.encode()) > NAME_MAX_BYTES:
                return (
                    f"the name {_shown(part)} in {column} is {len(part.encode())} bytes long; "
                    f"file systems allow at most {NAME_MAX_BYTES} bytes per file or folder name"
                )
    return None


def input_file_columns(schema):
    """The sheet's file columns: "path", which every sheet has, and those the schema marks."""
    marked = [
        name
        for name, spec in schema["properties"].items()
        if spec.get("format") == INPUT_FILE_FORMAT
    ]
    return list(dict.fromkeys(["path", *marked]))


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
    base_real = base.resolve()  # once, not per row
    records = _read_sheet(sheet)
    problems, samples = [], {}
    schema = _SHEET_SCHEMA
    check_row = _row_checker(schema)
    id_max = schema["properties"]["sample"]["maxLength"]
    file_columns = input_file_columns(schema)
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
        problem = _row_problem(row, id_max, file_columns)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        problem = check_row(row)
        if problem:
            problems.append(
                f"{where}: does not match workflow/schemas/samples.schema.yaml: {problem}"
            )
            continue
        if sample in samples:
            problems.append(f"{where}: duplicate sample id")
            continue
        files, file_problems = {}, []
        for column in file_columns:
            if not row.get(column):  # an optional file column left empty: no such file
                continue
            rel = Path(row[column])
            full = base / rel
            if rel.is_absolute() or ".." in rel.parts:
                file_problems.append(
                    f"{column} {row[column]!r} must be relative to {base}/ without '..'"
                )
            elif not full.resolve().is_relative_to(base_real):
                file_problems.append(
                    f"{column} {row[column]!r} leaves {base}/ through a symlink"
                )
            elif not full.is_file():
                file_problems.append(f"input file {full} ({column}) does not exist")
            files[column] = str(full)
        if file_problems:
            problems += [f"{where}: {problem}" for problem in file_problems]
            continue
        samples[sample] = {**row, "files": files}
    if problems:
        listing = "\n  - ".join(problems)
        raise WorkflowError(
            f"The sample sheet has problems (nothing was run):\n  - {listing}"
        )
    return samples


# read once, for the loader and the wildcard constraint below
_SHEET_SCHEMA = _load_schema(SAMPLES_SCHEMA)
SAMPLES = load_samples(config["samples"], config["input_dir"])
SAMPLE_IDS = sorted(SAMPLES)
SAMPLE_FILE_COLUMNS = input_file_columns(_SHEET_SCHEMA)
SAMPLE_ID_PATTERN = _SHEET_SCHEMA["properties"]["sample"].get("pattern", "")
if not SAMPLE_ID_PATTERN.startswith("^") or not SAMPLE_ID_PATTERN.endswith("$"):
    raise WorkflowError(
        "workflow/schemas/samples.schema.yaml: give the sample column a whole-value pattern "
        '("^...$"): it is also the sample wildcard\'s constraint'
    )


# The schema's pattern for an id, not the list of ids: Snakemake copies a constraint
# into every file pattern it formats, so an alternation of 10,000 ids made the DAG
# quadratic. An id that is not in the sheet is refused by sample_file().
wildcard_constraints:
    sample=SAMPLE_ID_PATTERN[1:-1],


def _sample_row(wildcards):
    try:
        return SAMPLES[wildcards.sample]
    except KeyError:
        raise WorkflowError(
            f"sample {wildcards.sample!r} is not in the sample sheet {config['samples']}"
        ) from None


def sample_file(*columns):
    """The job's sample's input file(s): ``input: sample_file`` for the "path" column,
    ``sample_file("<column>")`` for another input-file column (left empty: no file), and
    ``sample_file("path", "fq2")`` for several as one list (a read pair for a wrapper).
    """
    # used itself as the input function: the path column
    if len(columns) == 1 and not isinstance(columns[0], str):
        return _sample_row(columns[0])["files"]["path"]
    for column in columns:
        if column not in SAMPLE_FILE_COLUMNS:
            raise WorkflowError(
                f"sample_file({column!r}): the column is not declared with format: {INPUT_FILE_FORMAT} "
                "in workflow/schemas/samples.schema.yaml"
            )

    def files(wildcards):
        found = _sample_row(wildcards)["files"]
        listed = [found[column] for column in columns if column in found]
        return listed[0] if len(columns) == 1 and listed else listed

    return files


def sample_column(column):
    """An input or params function: one column of the sample sheet for the job's sample."""
    return lambda wildcards: _sample_row(wildcards)[column]
