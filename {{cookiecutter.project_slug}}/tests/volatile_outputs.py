"""Final outputs whose bytes may differ between two correct runs, and why. Yours to edit.

tests/test_workflow.py compares every other final output byte for byte between operating contexts;
a file matched here (a glob pattern under results/, fnmatch-style: "*" also matches "/") only has to exist. A volatile file changes on
every rerun, and publishing it makes a new release each time: keep it final but unpublished
(None in FINAL_OUTPUTS), or make the tool deterministic (docs/rule-kinds.md, reproducible outputs).
"""

VOLATILE = {
    # "results/qc/multiqc_report.html": "MultiQC writes the date and its working directory into it",
}
