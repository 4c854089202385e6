"""fastp: trim adapters and low-quality ends of single- or paired-end reads; HTML and JSON reports.

The site mirror's own minimal implementation of the snakemake-wrappers interface: input ``sample``
(one FASTQ file, or two for paired-end reads), output ``trimmed`` (as many files; optional), ``html``
and ``json``; params ``extra`` (further fastp options); ``threads``.
"""

import shlex

from snakemake.shell import shell

smk = snakemake  # noqa: F821 - injected by Snakemake


def as_list(value):
    return [value] if isinstance(value, str) else list(value)


reads = as_list(smk.input.sample)
trimmed = as_list(smk.output.get("trimmed", []))
if len(reads) not in (1, 2):
    raise ValueError(f"fastp wrapper: input 'sample' takes one or two FASTQ files, not {len(reads)}")
if trimmed and len(trimmed) != len(reads):
    raise ValueError("fastp wrapper: output 'trimmed' needs one file per input file")

args = []
for n, path in enumerate(reads, start=1):
    args += [f"--in{n}", path]
for n, path in enumerate(trimmed, start=1):
    args += [f"--out{n}", path]
args += ["--html", smk.output.html, "--json", smk.output.json]
io = shlex.join(args)
extra = smk.params.get("extra", "")
log = smk.log_fmt_shell(stdout=True, stderr=True)

shell("fastp --thread {smk.threads} {extra} {io} {log}")
