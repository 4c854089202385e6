# Your own helper functions and constants go here: input and params functions,
# lookup tables, anything plain Python that your rules share. Rules go in other
# files of workflow/rules/ (snakemake --lint, run by `make lint`, wants functions
# and rules in separate files). This file is yours: the template ships it empty.
# It is included right after contract.smk, so what common.smk defines (config,
# SAMPLES, SAMPLE_IDS, sample_file, sample_column) can be used here, and what you
# define here can be used by every rule file included after it.


def read_pair(wildcards):
    """The job's sample's read pair [R1, R2] as one list, as the fastp wrapper takes it (input "sample").

    Snakemake calls an input function given alone, not one inside a list, so the two input functions
    sample_file and sample_file("fq2") are combined here."""
    return [sample_file(wildcards), sample_file("fq2")(wildcards)]


# The site's transcriptome by absolute path, resolved here from config's path relative to the working
# directory: a shadow rule (kallisto_index, a wrapper) refuses an input above the working directory
# ("../site/..."), and Snakemake's message says to give it by absolute path instead.
TRANSCRIPTOME = os.path.abspath(config["transcriptome"])
