"""The quantification part of snakemake-workflows/rna-seq-kallisto-sleuth, ported into a generated repository
by following its docs.

fastp trims each sample's read pairs, kallisto indexes the site's shared transcriptome (a rule without
wildcards; the FASTA lies outside the checkout, `site/ref/transcripts.fa`) and quantifies each sample into
a directory, MultiQC reports over all samples. As in the public workflow the tools run through wrappers
(`wrapper: "v5.0.0/bio/fastp"` and so on), here from the site's local mirror of snakemake-wrappers
(`site/wrappers/`, this port's own minimal wrappers laid out as the real repository is), which each
context's profile names as its `wrapper-prefix`. The reads are made here from the transcriptome, from a
fixed seed: a few hundred gzipped read pairs per sample, each sample with its own transcript abundances.

`apply` does what docs/customising.md says, in its order: the removals of "Replacing the example", then
inputs and sample sheet, configuration, rules, per-rule resources and groups, tests, docs.
"""

import gzip
import io
import os
import random
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from customising import add_pin, describe_and_regenerate_docs, edit_yaml, fit_contexts, run_removals  # noqa: E402 (tests/real_workflows/)

TOOLS = ["fastp", "kallisto", "multiqc"]
SYSTEM_PACKAGES = "fastp kallisto"  # MultiQC comes from PyPI (requirements.txt)
SAMPLES = ("A", "B")  # several samples (MultiQC over all, a matrix of both), as few as that takes
PUBLISHED = [*(f"abundance/{s}.tsv" for s in SAMPLES), "est_counts.tsv"]

HERE = Path(__file__).parent
FILES = HERE / "files"  # copied into the repository
WRAPPERS = HERE / "wrappers"  # the site's mirror of snakemake-wrappers
MULTIQC = "1.35"  # the template venv's pin (requirements.txt of the template)
SEED = 20251202
TRANSCRIPT_LENGTHS = (320, 450, 560, 380, 640)
# relative abundance of each transcript (molecules, not reads) in each sample
ABUNDANCE = {"A": (8, 4, 2, 1, 1), "B": (1, 1, 4, 8, 2)}
READ_PAIRS, READ_LENGTH = 400, 75
FRAGMENT_MEAN, FRAGMENT_SD, FRAGMENT_MIN = 150, 40, 60
ERROR_RATE, LOW_QUALITY_TAILS = 0.002, 0.15
# Illumina TruSeq adapters, read through when a fragment is shorter than a read
ADAPTER_R1 = "AGATCGGAAGAGCACACGTCTGAACTCCAGTCAC"
ADAPTER_R2 = "AGATCGGAAGAGCGTCGTGTAGGGAAAGAGTGTA"
KEPT_CONFIG_KEYS = ("samples", "input_dir", "release_sample_sheet_max_bytes")
CONFIG_SCHEMA = {
    "transcriptome": {
        "type": "string",
        "minLength": 1,
        "description": (
            "The transcript sequences (FASTA) kallisto indexes and quantifies against, relative to the working "
            "directory (the site's shared reference, outside this checkout)."
        ),
    },
    "fastp_extra": {
        "type": "string",
        "description": "Further fastp options (adapters are detected from the read pairs' overlap).",
        "default": "--cut_tail --length_required 31",
    },
    "kallisto_index_extra": {
        "type": "string",
        "description": "Further options of kallisto index (e.g. --kmer-size).",
        "default": "",
    },
    "kallisto_quant_extra": {
        "type": "string",
        "description": "Further options of kallisto quant (e.g. --bootstrap-samples with --seed).",
        "default": "",
    },
    "multiqc_extra": {
        "type": "string",
        "description": "Further MultiQC options.",
        "default": "",
    },
}
CONFIG = {
    "fastp_extra": "--cut_tail --length_required 31",  # reads shorter than a k-mer cannot pseudoalign
    "kallisto_index_extra": "",
    "kallisto_quant_extra": "",
    # one row per sample in MultiQC's tables: kallisto's figures are named after the R1 file it read
    "multiqc_extra": """--cl-config 'extra_fn_clean_exts: ["_R1"]'""",
}
GROUPS = {  # rule: group, in profiles/slurm and profiles/cluster-sim
    "fastp_pe": "per_sample",
    "kallisto_quant": "per_sample",
    "abundance_table": "per_sample",
    "count_matrix": "fan_in",
    "multiqc": "fan_in",
}
FINAL_OUTPUTS = """FINAL_OUTPUTS = {
    **dict.fromkeys(expand(rules.fastp_pe.output.html, sample=SAMPLE_IDS)),
    **dict.fromkeys(expand(rules.fastp_pe.output.json, sample=SAMPLE_IDS)),
    **dict.fromkeys(expand(rules.kallisto_quant.output.quant, sample=SAMPLE_IDS)),
    **{
        path: f"abundance/{Path(path).name}"
        for path in expand(rules.abundance_table.output.table, sample=SAMPLE_IDS)
    },
    rules.count_matrix.output.counts: "est_counts.tsv",
    rules.multiqc.output.html: None,
}
"""


# ---------------------------------------------------------------------------------------------------------
# test data: a random transcriptome, and each sample's read pairs drawn from it
# ---------------------------------------------------------------------------------------------------------
COMPLEMENT = str.maketrans("ACGT", "TGCA")


def reverse_complement(seq):
    return seq.translate(COMPLEMENT)[::-1]


def make_transcripts(rng):
    return {f"tx{i}": "".join(rng.choice("ACGT") for _ in range(n)) for i, n in enumerate(TRANSCRIPT_LENGTHS, 1)}


def sequenced(rng, fragment, adapter):
    """One read of a fragment: read-through into the adapter (then random bases) when it is short,
    sequencing errors, and a low-quality tail on some reads."""
    read = (fragment + adapter + "".join(rng.choice("ACGT") for _ in range(READ_LENGTH)))[:READ_LENGTH]
    bases = [rng.choice([b for b in "ACGT" if b != c]) if rng.random() < ERROR_RATE else c for c in read]
    quality = ["I"] * READ_LENGTH
    if rng.random() < LOW_QUALITY_TAILS:
        for i in range(READ_LENGTH - rng.randint(5, 20), READ_LENGTH):
            quality[i] = "#"
            bases[i] = rng.choice("ACGT")
    return "".join(bases), "".join(quality)


def make_reads(rng, transcripts, weights):
    """(R1 FASTQ text, R2 FASTQ text) of READ_PAIRS fragments, drawn in proportion to weight x length."""
    names = list(transcripts)
    per_fragment = [w * len(transcripts[n]) for n, w in zip(names, weights, strict=True)]
    r1, r2 = io.StringIO(), io.StringIO()
    for n in range(READ_PAIRS):
        seq = transcripts[rng.choices(names, per_fragment)[0]]
        length = min(len(seq), max(FRAGMENT_MIN, round(rng.gauss(FRAGMENT_MEAN, FRAGMENT_SD))))
        start = rng.randrange(len(seq) - length + 1)
        fragment = seq[start : start + length]
        if rng.random() < 0.5:  # either strand of the cDNA
            fragment = reverse_complement(fragment)
        for out, read, adapter, mate in (
            (r1, fragment, ADAPTER_R1, 1),
            (r2, reverse_complement(fragment), ADAPTER_R2, 2),
        ):
            bases, quality = sequenced(rng, read, adapter)
            out.write(f"@pair{n} {mate}:N:0:1\n{bases}\n+\n{quality}\n")
    return r1.getvalue(), r2.getvalue()


def write_gzip(path, text):
    """gzip without a name or time in its header, so the same reads give the same bytes."""
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(text.encode())


def write_site(site, transcripts):
    """The site's shared files: the transcriptome, and its mirror of snakemake-wrappers."""
    ref = site / "ref"
    ref.mkdir(parents=True, exist_ok=True)
    fasta = ref / "transcripts.fa"
    fasta.write_text(
        "".join(
            f">{name}\n" + "".join(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
            for name, seq in transcripts.items()
        )
    )
    shutil.copytree(WRAPPERS, site / "wrappers", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return fasta


# ---------------------------------------------------------------------------------------------------------
# following docs/customising.md
# ---------------------------------------------------------------------------------------------------------
def set_wrapper_prefix(profile, prefix):
    """The site setting docs/rule-kinds.md ("A wrapper: shadow") puts in each context's profile."""
    text = profile.read_text()
    line = f'wrapper-prefix: "{prefix}" # site setting: the site\'s mirror of snakemake-wrappers (no internet)\n'
    text, n = re.subn(r"^(latency-wait: .*\n)", lambda m: m.group(1) + line, text, count=1, flags=re.M)
    assert n == 1, f"{profile}: no latency-wait line to add the wrapper-prefix after"
    profile.write_text(text)


def apply(repo: Path, site: Path) -> None:
    repo, site = Path(repo), Path(site)
    rng = random.Random(SEED)
    transcripts = make_transcripts(rng)
    reads = {sample: make_reads(rng, transcripts, ABUNDANCE[sample]) for sample in SAMPLES}
    fasta = write_site(site, transcripts)

    run_removals(repo)
    # our own files: rules, the count-matrix script, per-rule resources, the sheet's schema, our tests
    shutil.copytree(FILES, repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))

    # 1. inputs and samples: gzipped read pairs under data/inputs/, R1 in path and R2 in fq2
    for sample, (r1, r2) in reads.items():
        write_gzip(repo / f"data/inputs/{sample}_R1.fastq.gz", r1)
        write_gzip(repo / f"data/inputs/{sample}_R2.fastq.gz", r2)
    (repo / "config/samples.tsv").write_text(
        "sample\tpath\tfq2\n" + "".join(f"{s}\t{s}_R1.fastq.gz\t{s}_R2.fastq.gz\n" for s in SAMPLES)
    )

    # 2. configuration: the template's keys kept, ours added; the transcriptome by its path relative to the checkout
    def config_schema(schema):
        schema["properties"] = CONFIG_SCHEMA  # the template's keys have their own schema (workflow/vendor/)
        schema["required"] = ["transcriptome"]
        return schema

    edit_yaml(repo / "workflow/schemas/config.schema.yaml", config_schema)
    edit_yaml(
        repo / "config/config.yaml",
        lambda c: (
            {k: c[k] for k in KEPT_CONFIG_KEYS if k in c} | {"transcriptome": os.path.relpath(fasta, repo)} | CONFIG
        ),
    )

    # 3. rules: included instead of the example's, and FINAL_OUTPUTS
    snakefile = repo / "workflow/Snakefile"
    text = snakefile.read_text()
    text, n = re.subn(
        r'include: "rules/process.smk"\ninclude: "rules/aggregate.smk"\n', 'include: "rules/quant.smk"\n', text
    )
    assert n == 1, "workflow/Snakefile: the example's includes"
    text, n = re.subn(r"^FINAL_OUTPUTS = \{\n.*?^\}\n", FINAL_OUTPUTS, text, flags=re.M | re.S)
    assert n == 1, "workflow/Snakefile: FINAL_OUTPUTS"
    snakefile.write_text(text)
    # MultiQC's Python package, pinned as requirements.txt and environment.yaml pin everything
    add_pin(repo / "requirements.txt", f"multiqc=={MULTIQC}", "PyYAML==")
    add_pin(repo / "environment.yaml", f"  - multiqc={MULTIQC}", "  - pyyaml=")
    # the site's wrapper mirror, a site setting of every context (an absolute URL: jobs run elsewhere)
    for profile in sorted((repo / "profiles").glob("*/config.yaml")):
        set_wrapper_prefix(profile, (site / "wrappers").resolve().as_uri() + "/")

    # 4. per-rule resources (copied above), the cluster profiles' groups, the CI file's system packages
    fit_contexts(repo, GROUPS, SYSTEM_PACKAGES)
    # 5. tests (copied above): the generated tests copy the checkout beside links to its neighbours, so
    # ../site/ resolves in the copies too
    assert site.parent == repo.parent, "the site is expected beside the checkout (../site)"

    # 6. docs: regenerate, then the prose that described the example
    describe_and_regenerate_docs(
        repo,
        "fastp trimming and kallisto quantification per sample against the site's transcriptome "
        "(`workflow/rules/quant.smk`), the abundance tables, the count matrix (`workflow/scripts/count_matrix.py`) "
        "and a MultiQC report over all samples.",
        "its trimming and quantification, then the count matrix and the MultiQC report",
    )
