"""kallisto quant: quantify transcript abundances of one sample into an output directory.

The site mirror's own minimal implementation of the snakemake-wrappers interface: input ``fastq`` (two
files of a paired-end sample, or one with ``--single -l .. -s ..`` in ``extra``) and ``index``; the first
output is the directory kallisto writes (abundance.tsv, run_info.json); params ``extra``; ``threads``.
"""

import shlex

from snakemake.shell import shell

smk = snakemake  # noqa: F821 - injected by Snakemake

reads = [smk.input.fastq] if isinstance(smk.input.fastq, str) else list(smk.input.fastq)
extra = smk.params.get("extra", "")
if len(reads) == 1 and "--single" not in extra:
    raise ValueError("kallisto quant wrapper: one FASTQ file needs '--single -l <mean> -s <sd>' in params extra")
fastq = shlex.join(reads)
log = smk.log_fmt_shell(stdout=True, stderr=True)

shell(
    "kallisto quant {extra} --threads {smk.threads} --index {smk.input.index:q}"
    " --output-dir {smk.output[0]:q} {fastq} {log}"
)
