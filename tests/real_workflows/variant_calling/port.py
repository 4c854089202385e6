"""The Snakemake tutorial's variant-calling workflow, ported into a generated repository by following its docs.

bwa mem -> samtools sort -> samtools index per sample, then bcftools mpileup | bcftools call over all
samples (a rule without wildcards), then a histogram of the calls' quality with matplotlib. The reference
genome is the site's, outside the checkout (`site/ref/genome.fa`, indexed there as a site's shared
reference is); the reads are made here from it, with SNPs planted per sample, from a fixed seed.

`apply` does what docs/customising.md says, in its order: the removals of "Replacing the example", then
inputs and sample sheet, configuration, rules, per-rule resources and groups, tests, docs.
"""

import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from customising import add_pin, describe_and_regenerate_docs, edit_yaml, fit_contexts, run_removals  # noqa: E402 (tests/real_workflows/)

TOOLS = ["bwa", "samtools", "bcftools"]
SYSTEM_PACKAGES = "bwa samtools bcftools"
PUBLISHED = ["calls/all.vcf", "plots/quals.svg"]

FILES = Path(__file__).parent / "files"
MATPLOTLIB = "3.11.2"  # the template venv's pin (requirements.txt of the template)
SEED = 20240611
CHROM, GENOME_LENGTH = "chr1", 5000
SAMPLES = ("A", "B", "C")
READS_PER_SAMPLE, READ_LENGTH, ERROR_RATE = 600, 100, 0.001
# alt copies (0, 1, 2) of each planted SNP in samples A, B, C
GENOTYPES = [(2, 0, 0), (0, 2, 0), (0, 0, 2), (2, 2, 2), (1, 0, 2), (0, 1, 1), (2, 0, 2), (1, 1, 0)]
KEPT_CONFIG_KEYS = ("samples", "input_dir", "release_sample_sheet_max_bytes")
CONFIG_SCHEMA = {
    "genome": {
        "type": "string",
        "minLength": 1,
        "description": (
            "Reference genome (FASTA), relative to the working directory; bwa's index files (.amb .ann .bwt "
            ".pac .sa) and samtools' .fai must lie beside it."
        ),
    },
    "prior_mutation_rate": {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 1,
        "description": "bcftools call -P: the expected substitution rate (prior).",
        "default": 0.001,
    },
}
CONDA_ENVS = {  # workflow/envs/<name>.yaml: the versions of Debian 12's packages
    "mapping": ["bwa=0.7.17", "samtools=1.16.1"],
    "samtools": ["samtools=1.16.1"],
    "calling": ["bcftools=1.16"],
    "plot": [f"matplotlib-base={MATPLOTLIB}"],
}
GROUPS = {  # rule: group, in profiles/slurm and profiles/cluster-sim
    "bwa_map": "per_sample",
    "samtools_sort": "per_sample",
    "samtools_index": "per_sample",
    "bcftools_call": "fan_in",
    "plot_quals": "fan_in",
}
FINAL_OUTPUTS = """FINAL_OUTPUTS = {
    **dict.fromkeys(expand(rules.samtools_sort.output.bam, sample=SAMPLE_IDS)),
    **dict.fromkeys(expand(rules.samtools_index.output.bai, sample=SAMPLE_IDS)),
    rules.bcftools_call.output.calls: "calls/all.vcf",
    rules.plot_quals.output.plot: "plots/quals.svg",
}
"""


# ---------------------------------------------------------------------------------------------------------
# test data: a random reference, three samples' reads with SNPs planted at known genotypes
# ---------------------------------------------------------------------------------------------------------
COMPLEMENT = str.maketrans("ACGT", "TGCA")


def make_data(rng):
    """(reference sequence, [planted SNP rows], {sample: FASTQ text})."""
    genome = "".join(rng.choice("ACGT") for _ in range(GENOME_LENGTH))
    spacing = (GENOME_LENGTH - 2 * READ_LENGTH) // len(GENOTYPES)
    snps = []
    for i, copies in enumerate(GENOTYPES):
        pos = READ_LENGTH + i * spacing + rng.randrange(spacing // 4, 3 * spacing // 4)  # 0-based
        ref = genome[pos]
        alt = rng.choice([b for b in "ACGT" if b != ref])
        snps.append({"pos": pos, "ref": ref, "alt": alt, "copies": dict(zip(SAMPLES, copies, strict=True))})
    fastq = {}
    for sample in SAMPLES:
        haplotypes = []
        for h in range(2):  # hom-alt: both haplotypes, het: the first
            seq = list(genome)
            for snp in snps:
                if snp["copies"][sample] > h:
                    seq[snp["pos"]] = snp["alt"]
            haplotypes.append("".join(seq))
        records = []
        for n in range(READS_PER_SAMPLE):
            hap = haplotypes[rng.randrange(2)]
            start = rng.randrange(GENOME_LENGTH - READ_LENGTH + 1)
            read = list(hap[start : start + READ_LENGTH])
            for j in range(READ_LENGTH):
                if rng.random() < ERROR_RATE:
                    read[j] = rng.choice([b for b in "ACGT" if b != read[j]])
            read = "".join(read)
            if rng.random() < 0.5:
                read = read.translate(COMPLEMENT)[::-1]
            records.append(f"@{sample}_{n}\n{read}\n+\n{'I' * READ_LENGTH}\n")
        fastq[sample] = "".join(records)
    return genome, snps, fastq


def write_site_reference(site, genome):
    """The site's shared reference: FASTA, bwa index and .fai, made once by whoever looks after it."""
    ref = site / "ref"
    ref.mkdir(parents=True, exist_ok=True)
    fasta = ref / "genome.fa"
    fasta.write_text(f">{CHROM}\n" + "".join(genome[i : i + 60] + "\n" for i in range(0, len(genome), 60)))
    for args in (["bwa", "index", fasta.name], ["samtools", "faidx", fasta.name]):
        subprocess.run(args, cwd=ref, check=True, capture_output=True)
    return fasta


# ---------------------------------------------------------------------------------------------------------
# following docs/customising.md
# ---------------------------------------------------------------------------------------------------------
def apply(repo: Path, site: Path) -> None:
    repo, site = Path(repo), Path(site)
    rng = random.Random(SEED)
    genome, snps, fastq = make_data(rng)
    fasta = write_site_reference(site, genome)

    run_removals(repo)
    # our own files: rules, the plot script, per-rule resources, the sample sheet's schema, our tests
    shutil.copytree(FILES, repo, dirs_exist_ok=True)

    # 1. inputs and samples
    for sample, text in fastq.items():
        (repo / f"data/inputs/{sample}.fastq").write_text(text)
    (repo / "config/samples.tsv").write_text("sample\tpath\n" + "".join(f"{s}\t{s}.fastq\n" for s in SAMPLES))
    header = "chrom\tpos\tref\talt\t" + "\t".join(SAMPLES) + "\n"
    rows = [
        f"{CHROM}\t{s['pos'] + 1}\t{s['ref']}\t{s['alt']}\t" + "\t".join(str(s["copies"][x]) for x in SAMPLES) + "\n"
        for s in snps
    ]
    (repo / "tests/variant_calling_truth.tsv").write_text(header + "".join(rows))

    # 2. configuration: the template's keys kept, ours added
    genome_path = os.path.relpath(fasta, repo)

    def config_schema(schema):
        schema["properties"] = CONFIG_SCHEMA  # the template's keys have their own schema (workflow/vendor/)
        schema["required"] = ["genome"]
        return schema

    edit_yaml(repo / "workflow/schemas/config.schema.yaml", config_schema)
    edit_yaml(
        repo / "config/config.yaml",
        lambda c: {k: c[k] for k in KEPT_CONFIG_KEYS if k in c} | {"genome": genome_path, "prior_mutation_rate": 0.001},
    )

    # 3. rules: included instead of the example's, and FINAL_OUTPUTS
    snakefile = repo / "workflow/Snakefile"
    text = snakefile.read_text()
    text, n = re.subn(
        r'include: "rules/process.smk"\ninclude: "rules/aggregate.smk"\n',
        'include: "rules/variant_calling.smk"\n',
        text,
    )
    assert n == 1, "workflow/Snakefile: the example's includes"
    text, n = re.subn(r"^FINAL_OUTPUTS = \{\n.*?^\}\n", FINAL_OUTPUTS, text, flags=re.M | re.S)
    assert n == 1, "workflow/Snakefile: FINAL_OUTPUTS"
    snakefile.write_text(text)
    # `make lint` (snakemake --lint) wants a conda environment for each rule, as the example's rules have
    # (workflow/envs/base.yaml): the same tool versions as the Debian packages the tests run, and the
    # Python that the scratch wrapper of a shell rule needs inside the environment
    python = re.search(r"^  - python=(\S+)$", (repo / "environment.yaml").read_text(), re.M).group(1)
    for env, tools in CONDA_ENVS.items():
        (repo / f"workflow/envs/{env}.yaml").write_text(
            "# Software of the rules that use it, pinned exactly (conda-forge, bioconda).\n"
            "channels:\n  - conda-forge\n  - bioconda\n  - nodefaults\ndependencies:\n"
            + "".join(f"  - {spec}\n" for spec in [f"python={python}", *tools])
        )
    # the plot's Python package, pinned as requirements.txt and environment.yaml pin everything
    add_pin(repo / "requirements.txt", f"matplotlib=={MATPLOTLIB}", "PyYAML==")
    add_pin(repo / "environment.yaml", f"  - matplotlib={MATPLOTLIB}", "  - pyyaml=")

    # 4. per-rule resources (copied above), the cluster profiles' groups, the CI file's system packages
    fit_contexts(repo, GROUPS, SYSTEM_PACKAGES)
    # 5. tests (copied above): the generated tests copy the checkout beside links to its neighbours, so
    # ../site/ resolves in the copies too
    assert site.parent == repo.parent, "the site is expected beside the checkout (../site)"

    # 6. docs: regenerate, then the prose that described the example
    describe_and_regenerate_docs(
        repo,
        "bwa mem, samtools sort and index per sample, bcftools over all samples "
        "(`workflow/rules/variant_calling.smk`), and the plot of the calls' quality (`workflow/scripts/plot_quals.py`).",
        "its alignments, then the calls over all samples and the plot",
    )
