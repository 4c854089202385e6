"""The estimated read counts of every transcript in every sample, one column per sample, from the
abundance.tsv in each sample's kallisto directory."""

import csv
import os

from scratch import scratch_job


def read_counts(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return {row["target_id"]: row["est_counts"] for row in csv.DictReader(fh, delimiter="\t")}


def main(smk) -> None:
    with scratch_job(smk) as job:
        counts = {
            sample: read_counts(os.path.join(quant, "abundance.tsv"))
            for sample, quant in zip(smk.params.samples, job.input.quant, strict=True)
        }
        transcripts = sorted(set().union(*counts.values()))
        with open(job.output.counts, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, delimiter="\t", lineterminator="\n")
            writer.writerow(["target_id", *smk.params.samples])
            for target in transcripts:
                writer.writerow([target, *(counts[sample].get(target, "0") for sample in smk.params.samples)])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake's script:
