"""The example's own tests: what its rules compute and how it refuses a broken sample sheet.

Replace this file along with the example (docs/customising.md); tests/test_workflow.py and
tests/test_profiles.py hold for any workflow built on this repository's contract.
"""

import csv
import hashlib
import json
import re
from collections import Counter

import pytest


def expected_summary(text: str, min_length: int, top: int) -> dict:
    """Computed independently of the workflow's scripts."""
    words = [w.lower() for w in re.findall(r"[A-Za-z0-9]+", text) if len(w) >= min_length]
    counts = Counter(words)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {
        "lines": len(text.splitlines()),
        "words": len(words),
        "unique_words": len(counts),
        "top_words": [list(kv) for kv in ranked],
    }


def test_local_run_builds_declared_outputs_and_nothing_else(built_in):
    build = built_in("local")
    with open(build / "config/samples.tsv") as fh:
        samples = list(csv.DictReader(fh, delimiter="\t"))
    produced = sorted(str(p.relative_to(build)) for p in (build / "results").rglob("*") if p.is_file())
    assert produced == sorted(
        [f"results/samples/{s['sample']}.summary.json" for s in samples]
        + ["results/tables/summary.tsv", "results/report.html"]
    )
    for s in samples:
        got = json.loads((build / f"results/samples/{s['sample']}.summary.json").read_text())
        want = expected_summary((build / "data/inputs" / s["path"]).read_text(), 3, 5)
        assert {k: got[k] for k in want} == want
    assert not (build / "publish").exists(), "a plain run must not publish"
    assert not (build / "work").exists() or not any((build / "work").rglob("*.tokens")), "temp() removed"


@pytest.mark.parametrize(
    "sheet, message",
    [
        ("sample\tpath\tgroup\nbad id\talpha.txt\tx\n", "sample 'bad id'"),
        ("sample\tpath\tgroup\nalpha\talpha.txt\tx\nalpha\tbeta.txt\tx\n", "duplicate sample id"),
        ("sample\tpath\tgroup\nalpha\t../config/config.yaml\tx\n", "without '..'"),
        ("sample\tpath\tgroup\nalpha\t/etc/hostname\tx\n", "must be relative"),
        ("sample\tpath\tgroup\nalpha\tnope.txt\tx\n", "does not exist"),
    ],
)
def test_broken_sample_sheet_fails_before_any_job_naming_sample(workflow_copy, run_snakemake, sheet, message):
    (workflow_copy / "config/samples.tsv").write_text(sheet)
    proc = run_snakemake(workflow_copy, "--profile", "profiles/local", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (workflow_copy / "results").exists() and not (workflow_copy / "logs").exists()


def test_sheet_with_byte_order_mark_and_crlf_line_ends_runs(workflow_copy, run_snakemake):
    sheet = workflow_copy / "config/samples.tsv"
    rows = list(csv.DictReader(sheet.read_text().splitlines(), delimiter="\t"))
    # as a spreadsheet saves "UTF-8 text": a byte-order mark first, CRLF line ends
    sheet.write_bytes(b"\xef\xbb\xbf" + sheet.read_text().replace("\n", "\r\n").encode())
    run_snakemake(workflow_copy, "--profile", "profiles/local")
    for row in rows:
        got = json.loads((workflow_copy / f"results/samples/{row['sample']}.summary.json").read_text())
        assert (got["sample"], got["group"]) == (row["sample"], row["group"])


def test_sheet_values_no_file_system_or_shell_can_take_are_refused_together_naming_each_line(
    workflow_copy, run_snakemake
):
    long_id = "a" * 300
    sheet = (
        "sample\tpath\tgroup\n"
        "beta\tbeta.txt\tprose\n"  # line 2: fine
        f"{long_id}\talpha.txt\tx\n"  # line 3: an id no file name can hold
        'alpha\t"alpha.txt\n__SCRATCH_COMMAND__\necho injected"\tx\n'  # lines 4-6: a quoted path with line breaks
        'gamma\t"gamma\t.txt"\tnotes\n'  # line 7: a tab inside a quoted path
        f"delta\t{'d' * 256}/gamma.txt\tx\n"  # line 8: a folder name longer than 255 bytes
        "epsilon\tgamma.txt\tnotes\u0007\n"  # line 9: a control character in the group
    )
    (workflow_copy / "config/samples.tsv").write_text(sheet)
    proc = run_snakemake(workflow_copy, "--profile", "profiles/local", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    expected = [
        ("line 3 (sample 'aaaa", "is too long"),
        ("line 4 (sample 'alpha')", "column 'path' contains the control character U+000A"),
        ("line 7 (sample 'gamma')", "column 'path' contains the control character U+0009"),
        ("line 8 (sample 'delta')", "in path is 256 bytes long; file systems allow at most 255 bytes"),
        ("line 9 (sample 'epsilon')", "column 'group' contains the control character U+0007"),
    ]
    for where, message in expected:
        assert re.search(re.escape(where) + r"[^\n]*" + re.escape(message), out), (where, message, out[-3000:])
    assert "samples.tsv line 2 " not in out, "the good row is not named"
    assert not (workflow_copy / "results").exists() and not (workflow_copy / "logs").exists()


def test_the_sample_id_limit_keeps_every_derived_name_within_255_bytes(workflow_copy, run_snakemake):
    longest = hashlib.sha512(b"sample").hexdigest()  # 128 characters, the schema's maxLength
    (workflow_copy / "config/samples.tsv").write_text(f"sample\tpath\tgroup\n{longest}\talpha.txt\tprose\n")
    run_snakemake(workflow_copy, "--profile", "profiles/local")
    assert json.loads((workflow_copy / f"results/samples/{longest}.summary.json").read_text())["sample"] == longest


def test_bad_config_value_is_rejected_with_the_key(workflow_copy, run_snakemake):
    cfg = workflow_copy / "config/config.yaml"
    cfg.write_text(cfg.read_text().replace("top_words: 5", "top_words: 0"))
    proc = run_snakemake(workflow_copy, "--profile", "profiles/local", "-n", check=False)
    assert proc.returncode != 0
    assert "top_words" in proc.stdout + proc.stderr
