# Your own helper functions and constants go here: input and params functions,
# lookup tables, anything plain Python that your rules share. Rules go in other
# files of workflow/rules/ (snakemake --lint, run by `make lint`, wants functions
# and rules in separate files). This file is yours: the template ships it empty.
# It is included right after contract.smk, so what common.smk defines (config,
# SAMPLES, SAMPLE_IDS, sample_file, sample_column) can be used here, and what you
# define here can be used by every rule file included after it.
