"""Summarise one sample: line and word counts and its most frequent words.

Runs as a Snakemake ``script:``; works in scratch through ``scratch_job``.
"""

import json
from collections import Counter

from scratch import scratch_job


def summarize(text: str, tokens: list[str], sample: str, group: str, top: int) -> dict:
    counts = Counter(tokens)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {
        "sample": sample,
        "group": group,
        "lines": len(text.splitlines()),
        "words": len(tokens),
        "unique_words": len(counts),
        "mean_word_length": round(sum(map(len, tokens)) / len(tokens), 3) if tokens else 0.0,
        "top_words": [[word, n] for word, n in ranked[:top]],
    }


def main(smk) -> None:
    with scratch_job(smk) as job:
        with open(job.input.text, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        with open(job.input.tokens, encoding="utf-8") as fh:
            tokens = [line for line in fh.read().splitlines() if line]
        summary = summarize(text, tokens, smk.wildcards.sample, smk.params.group, int(smk.params.top_words))
        with open(job.output[0], "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2, sort_keys=True)
            fh.write("\n")
        with open(job.log[0], "a", encoding="utf-8") as log:
            log.write(f"{summary['sample']}: {summary['words']} words, {summary['unique_words']} unique\n")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake's script:
