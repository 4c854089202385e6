"""Render the aggregate table as a small self-contained HTML report."""

import csv
import html

from scratch import scratch_job


def render(title: str, rows: list[dict]) -> str:
    header = list(rows[0]) if rows else []
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in header) + "</tr>" for r in rows)
    total = sum(int(r["words"]) for r in rows)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        f"<p>{len(rows)} samples, {total} words in total.</p>\n"
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n"
        "</body>\n</html>\n"
    )


def main(smk) -> None:
    with scratch_job(smk) as job:
        with open(job.input.table, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        with open(job.output[0], "w", encoding="utf-8") as fh:
            fh.write(render(smk.params.title, rows))


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake's script:
