# The declared input surface, read in one place before any job: the config and the
# sample sheet, each checked against its schema by the template's library
# (workflow/vendor/contract.py, samplesheet.py). Rules reach the sheet only through
# sample_file() and sample_column().

import os
import sys


def workflow_file(path):
    """A file of workflow/ as a local path, also when this workflow is a module read from a git host."""
    return workflow.source_path(f"../{path}")


# the template's library
sys.path.insert(0, os.path.dirname(workflow_file("vendor/contract.py")))
import contract

contract.locate_library(workflow_file)
from samplesheet import SampleSheet

# the template's keys (workflow/vendor/config.schema.yaml), then yours (workflow/schemas/)
contract.validate_config(workflow, config, workflow_file)
SHEET = SampleSheet(
    config["samples"],
    config["input_dir"],
    workflow_file("schemas/samples.schema.yaml"),
)
SAMPLES, SAMPLE_IDS = SHEET.samples, SHEET.ids
# input: sample_file (its "path" column), sample_file("<column>"), sample_file("path", "fq2")
sample_file = SHEET.file
# params: sample_column("<column>")
sample_column = SHEET.column


# an id matches the schema's pattern; sample_file() refuses one that is not in the sheet
wildcard_constraints:
    sample=SHEET.id_pattern,
