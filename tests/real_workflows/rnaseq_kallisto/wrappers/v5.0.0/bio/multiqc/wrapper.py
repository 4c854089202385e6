"""MultiQC: one HTML report over the QC reports and logs of all samples.

The site mirror's own minimal implementation of the snakemake-wrappers interface: input, any number of
files or directories MultiQC searches; the first output is the HTML report; an optional output ``data``
is the directory of MultiQC's parsed data (else none is written); params ``extra``.
"""

import os
import shlex

from snakemake.shell import shell

smk = snakemake  # noqa: F821 - injected by Snakemake

report = smk.output[0]
outdir, name = os.path.dirname(report) or ".", os.path.basename(report)
data = smk.output.get("data")
if data and os.path.dirname(data) != outdir:
    raise ValueError("multiqc wrapper: output 'data' must lie beside the report")
# MultiQC names the data directory after the report (<name>_data); given another name, rename it after
data_option = "--data-dir" if data else "--no-data-dir"
inputs = shlex.join(dict.fromkeys(smk.input))  # each path once, in the order given
extra = smk.params.get("extra", "")
log = smk.log_fmt_shell(stdout=True, stderr=True)

shell("multiqc {extra} --force {data_option} --outdir {outdir:q} --filename {name:q} {inputs} {log}")
if data:
    made = os.path.join(outdir, os.path.splitext(name)[0] + "_data")
    if made != data:
        os.replace(made, data)
