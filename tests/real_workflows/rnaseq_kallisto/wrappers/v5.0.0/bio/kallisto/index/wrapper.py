"""kallisto index: build the pseudoalignment index of a transcriptome.

The site mirror's own minimal implementation of the snakemake-wrappers interface: input ``fasta`` (one
or more FASTA files), output ``index``; params ``extra`` (further options, e.g. ``--kmer-size``).
"""

import shlex

from snakemake.shell import shell

smk = snakemake  # noqa: F821 - injected by Snakemake

fasta = shlex.join([smk.input.fasta] if isinstance(smk.input.fasta, str) else list(smk.input.fasta))
extra = smk.params.get("extra", "")
log = smk.log_fmt_shell(stdout=True, stderr=True)

shell("kallisto index {extra} --index {smk.output.index:q} {fasta} {log}")
