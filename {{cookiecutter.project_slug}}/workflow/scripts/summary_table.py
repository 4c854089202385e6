"""Aggregate the per-sample summaries into one tab-separated table."""

import csv
import json

from scratch import scratch_job

COLUMNS = ["sample", "group", "lines", "words", "unique_words", "mean_word_length", "top_word"]


def rows(summaries: list[dict]) -> list[dict]:
    out = []
    for s in sorted(summaries, key=lambda s: s["sample"]):
        top = s["top_words"][0][0] if s["top_words"] else ""
        out.append({**{c: s[c] for c in COLUMNS if c != "top_word"}, "top_word": top})
    return out


def main(smk) -> None:
    with scratch_job(smk) as job:
        summaries = []
        for path in job.input.summaries:
            with open(path, encoding="utf-8") as fh:
                summaries.append(json.load(fh))
        with open(job.output[0], "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows(summaries))
        with open(job.log[0], "a", encoding="utf-8") as log:
            log.write(f"aggregated {len(summaries)} samples\n")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake's script:
