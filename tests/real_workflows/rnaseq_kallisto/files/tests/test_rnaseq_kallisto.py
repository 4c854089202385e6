"""What this workflow computes: every sample's reads are trimmed and quantified against every transcript of
the transcriptome; the estimated counts account for the read pairs; the count matrix holds each sample's
table; MultiQC reports on every sample; a rebuild gives the published tables the same bytes."""

import base64
import csv
import gzip
import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def samples():
    with open(REPO / "config/samples.tsv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def transcript_ids(repo):
    config = yaml.safe_load((repo / "config/config.yaml").read_text())
    text = (repo / config["transcriptome"]).read_text()
    return [line[1:].split()[0] for line in text.splitlines() if line.startswith(">")]


def read_pairs(path):
    with gzip.open(path, "rt") as fh:
        return sum(1 for _ in fh) // 4


def table(path):
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_each_sample_is_quantified_against_every_transcript_and_its_counts_account_for_its_pairs(built_in):
    build = built_in("local")
    transcripts = transcript_ids(build)
    matrix = {row["target_id"]: row for row in table(build / "results/est_counts.tsv")}
    assert sorted(matrix) == sorted(transcripts)
    for s in samples():
        pairs = read_pairs(build / "data/inputs" / s["path"])
        assert read_pairs(build / "data/inputs" / s["fq2"]) == pairs, "R1 and R2 hold the same pairs"

        fastp = json.loads((build / f"results/qc/fastp/{s['sample']}.fastp.json").read_text())
        assert fastp["summary"]["before_filtering"]["total_reads"] == 2 * pairs
        kept = fastp["summary"]["after_filtering"]["total_reads"] // 2
        assert 0.9 * pairs <= kept <= pairs, f"{s['sample']}: fastp kept {kept} of {pairs} pairs"
        assert fastp["adapter_cutting"]["adapter_trimmed_reads"] > 0, "short fragments read into the adapter"

        rows = table(build / f"results/abundance/{s['sample']}.tsv")
        assert [r["target_id"] for r in rows] == transcripts, "every transcript, in the transcriptome's order"
        assert (build / f"results/kallisto/{s['sample']}/abundance.tsv").read_bytes() == (
            build / f"results/abundance/{s['sample']}.tsv"
        ).read_bytes()
        counts = sum(float(r["est_counts"]) for r in rows)
        assert 0.9 * kept <= counts <= kept + 0.5, f"{s['sample']}: {counts} estimated of {kept} trimmed pairs"
        assert abs(sum(float(r["tpm"]) for r in rows) - 1e6) < 10
        run_info = json.loads((build / f"results/kallisto/{s['sample']}/run_info.json").read_text())
        assert run_info["n_processed"] == kept
        for r in rows:
            assert matrix[r["target_id"]][s["sample"]] == r["est_counts"]

    report = (build / "results/qc/multiqc.html").read_text()
    for module in ("fastp", "kallisto"):
        assert f'id="mqc-module-section-{module}"' in report, f"MultiQC found no {module} results"
    # one row per sample: kallisto's figures carry the sample id, not the name of its R1 file
    plots = json.loads(gzip.decompress(base64.b64decode(plot_data(report))))
    assert sorted(plots["kallisto_alignment"]["datasets"][0]["samples"]) == sorted(s["sample"] for s in samples())


def plot_data(report):
    """The plot data MultiQC 1.35 embeds in its report (gzipped JSON, base64)."""
    found = re.search(r'<script type="text/plain" id="mqc_compressed_plotdata">([^<]+)</script>', report)
    assert found, "MultiQC's report holds its plot data"
    return found.group(1)
