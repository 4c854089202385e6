"""The sample sheet, read and checked before any job, for workflow/rules/common.smk.

``SampleSheet(sheet, input_dir, schema)`` reads a tab-separated sheet and checks each row against
the sample schema (workflow/schemas/samples.schema.yaml, the user's: it says which columns exist,
their patterns, lengths and defaults). The code checks only what a JSON Schema cannot say: a
byte-order mark and CRLF line ends (accepted), control characters, bytes per file name, the
files of a column marked ``format: input-file`` (inside ``input_dir``, existing), duplicate ids.
Every problem is reported at once, naming its line and sample, so one run shows all there is to fix.

From the Snakemake repository template, release {{ cookiecutter._template_version }}.
"""

import csv
import re
from pathlib import Path

# A sheet column whose schema says "format: input-file" names a file under input_dir.
INPUT_FILE_FORMAT = "input-file"
NAME_MAX_BYTES = 255  # per file or folder name, on common file systems
# A line break in a path would end the scratch wrapper's command early (its here-document).
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")
SCHEMA_NAME = "workflow/schemas/samples.schema.yaml"


def _error(message):
    from snakemake.exceptions import WorkflowError

    return WorkflowError(message)


def _shown(value, limit=40):
    """A value short enough to quote in an error message."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}..."


def read_records(sheet):
    """[(line number, fields)] of a tab-separated sheet, header first; blank lines skipped."""
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
        raise _error(
            f"Sample sheet {sheet} is not UTF-8 text (byte {exc.start}); save it as UTF-8 (tab-separated)."
        ) from None


def row_checker(schema):
    """check(row) -> the first schema problem of a row, or None; fills in the schema's defaults.

    Compiled once: snakemake.utils.validate() re-reads the schema on every call (minutes for
    10,000 samples).
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    defaults = {key: spec["default"] for key, spec in schema.get("properties", {}).items() if "default" in spec}

    def check(row):
        for key, value in defaults.items():
            row.setdefault(key, value)
        error = jsonschema.exceptions.best_match(validator.iter_errors(row))
        return None if error is None else error.message

    return check


class SampleSheet:
    def __init__(self, sheet, input_dir, schema_path):
        import yaml

        self.sheet, self.base = Path(sheet), Path(input_dir)
        with open(schema_path, encoding="utf-8") as fh:
            self.schema = yaml.safe_load(fh)
        columns = self.schema["properties"]
        self.file_columns = list(
            dict.fromkeys(
                ["path", *(name for name, spec in columns.items() if spec.get("format") == INPUT_FILE_FORMAT)]
            )
        )
        # The schema's pattern for an id is the sample wildcard's constraint (not the list of ids:
        # Snakemake copies a constraint into every file pattern, and 10,000 alternatives made the DAG quadratic).
        pattern = columns["sample"].get("pattern", "")
        if not (pattern.startswith("^") and pattern.endswith("$")):
            raise _error(
                f'{SCHEMA_NAME}: give the sample column a whole-value pattern ("^...$"): '
                "it is also the sample wildcard's constraint"
            )
        self.id_pattern = pattern[1:-1]
        self.samples = self._load()
        self.ids = sorted(self.samples)

    def _row_problem(self, row):
        for column, value in row.items():
            found = CONTROL_CHARACTER.search(value)
            if found:
                return (
                    f"column {column!r} contains the control character U+{ord(found.group()):04X} "
                    "(a tab, line break or similar); remove it: values must be printable text"
                )
        for column in self.file_columns:
            for part in Path(row.get(column, "")).parts:
                if len(part.encode()) > NAME_MAX_BYTES:
                    return (
                        f"the name {_shown(part)} in {column} is {len(part.encode())} bytes long; "
                        f"file systems allow at most {NAME_MAX_BYTES} bytes per file or folder name"
                    )
        return None

    def _files(self, row):
        """({column: path}, [problems]) of a row's input files."""
        files, problems = {}, []
        for column in self.file_columns:
            if not row.get(column):  # an optional file column left empty: no such file
                continue
            relative, full = Path(row[column]), self.base / row[column]
            if relative.is_absolute() or ".." in relative.parts:
                problems.append(f"{column} {row[column]!r} must be relative to {self.base}/ without '..'")
            elif not full.resolve().is_relative_to(self._base_real):
                problems.append(f"{column} {row[column]!r} leaves {self.base}/ through a symlink")
            elif not full.is_file():
                problems.append(f"input file {full} ({column}) does not exist")
            files[column] = str(full)
        return files, problems

    def _load(self):
        if not self.sheet.is_file():
            raise _error(f"Sample sheet {self.sheet} does not exist (config key 'samples').")
        self._base_real = self.base.resolve()
        records, check_row = read_records(self.sheet), row_checker(self.schema)
        problems, samples = [], {}
        if len(records) < 2:
            problems.append(f"{self.sheet}: no samples (expected a header line and one row per sample)")
        header = [name.strip() for name in records[0][1]] if records else []
        for lineno, fields in records[1:]:
            if len(fields) != len(header):
                problems.append(
                    f"{self.sheet} line {lineno}: wrong number of tab-separated columns"
                    f" ({len(fields)}, the header has {len(header)})"
                )
                continue
            row = {key: value.strip() for key, value in zip(header, fields, strict=True)}
            where = f"{self.sheet} line {lineno} (sample {_shown(row.get('sample', ''))})"
            problem = self._row_problem(row)
            schema_problem = None if problem else check_row(row)
            if problem or schema_problem:
                problems.append(f"{where}: {problem or f'does not match {SCHEMA_NAME}: {schema_problem}'}")
            elif row["sample"] in samples:
                problems.append(f"{where}: duplicate sample id")
            else:
                files, file_problems = self._files(row)
                problems += [f"{where}: {each}" for each in file_problems]
                if not file_problems:
                    samples[row["sample"]] = {**row, "files": files}
        if problems:
            listing = "\n  - ".join(problems)
            raise _error(f"The sample sheet has problems (nothing was run):\n  - {listing}")
        return samples

    def row(self, wildcards):
        try:
            return self.samples[wildcards.sample]
        except KeyError:
            raise _error(f"sample {wildcards.sample!r} is not in the sample sheet {self.sheet}") from None

    def file(self, *columns):
        """The job's sample's input file(s): ``input: sample_file`` for the "path" column,
        ``sample_file("<column>")`` for another input-file column (left empty: no file), and
        ``sample_file("path", "fq2")`` for several as one list (a read pair for a wrapper).
        """
        if len(columns) == 1 and not isinstance(columns[0], str):  # itself the input function
            return self.row(columns[0])["files"]["path"]
        for column in columns:
            if column not in self.file_columns:
                raise _error(
                    f"sample_file({column!r}): the column is not declared with format: {INPUT_FILE_FORMAT} in {SCHEMA_NAME}"
                )

        def files(wildcards):
            found = self.row(wildcards)["files"]
            listed = [found[column] for column in columns if column in found]
            return listed[0] if len(columns) == 1 and listed else listed

        return files

    def column(self, column):
        """An input or params function: one column of the sample sheet for the job's sample."""
        return lambda wildcards: self.row(wildcards)[column]

    def files_by_sample(self):
        """{sample: {column: path}}, which a release's RO-Crate records."""
        return {sample: self.samples[sample]["files"] for sample in self.ids}
