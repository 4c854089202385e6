# Quantification of paired-end RNA-seq reads, after snakemake-workflows/rna-seq-kallisto-sleuth:
# fastp trims each sample's read pairs, kallisto indexes the site's shared transcriptome once (config key
# "transcriptome", outside this checkout) and quantifies each sample into a directory, and MultiQC reports
# over all samples. The tools run through wrappers (shadow route, docs/rule-kinds.md), looked up under
# the wrapper-prefix of each context's profile (the site's mirror of snakemake-wrappers). Each sample's
# abundance table and the matrix of estimated counts over all samples are copied out of kallisto's
# directories: they are what a release publishes, since run_info.json in those directories records the
# time and command line of each run.


rule fastp_pe:
    input:
        sample=read_pair,
    output:
        trimmed=[
            temp("work/trimmed/{sample}_R1.fastq.gz"),
            temp("work/trimmed/{sample}_R2.fastq.gz"),
        ],
        html="results/qc/fastp/{sample}.html",
        json="results/qc/fastp/{sample}.fastp.json",
    log:
        "logs/fastp_pe/{sample}.log",
    shadow:
        "minimal"
    params:
        extra=config["fastp_extra"],
    wrapper:
        "v5.0.0/bio/fastp"


rule kallisto_index:
    input:
        fasta=TRANSCRIPTOME,
    output:
        index=temp("work/kallisto/transcripts.idx"),
    log:
        "logs/kallisto_index/kallisto_index.log",
    shadow:
        "minimal"
    params:
        extra=config["kallisto_index_extra"],
    wrapper:
        "v5.0.0/bio/kallisto/index"


rule kallisto_quant:
    input:
        fastq=rules.fastp_pe.output.trimmed,
        index=rules.kallisto_index.output.index,
    output:
        quant=directory("results/kallisto/{sample}"),
    log:
        "logs/kallisto_quant/{sample}.log",
    shadow:
        "minimal"
    params:
        extra=config["kallisto_quant_extra"],
    wrapper:
        "v5.0.0/bio/kallisto/quant"


rule abundance_table:
    input:
        quant=rules.kallisto_quant.output.quant,
    output:
        table="results/abundance/{sample}.tsv",
    log:
        "logs/abundance_table/{sample}.log",
    conda:
        "../envs/base.yaml"
    shell:
        scratch("exec 2> {log:q}; cp {input.quant:q}/abundance.tsv {output.table:q}")


rule count_matrix:
    input:
        quant=expand(rules.kallisto_quant.output.quant, sample=SAMPLE_IDS),
    output:
        counts="results/est_counts.tsv",
    log:
        "logs/count_matrix/count_matrix.log",
    conda:
        "../envs/base.yaml"
    params:
        samples=SAMPLE_IDS,
    script:
        "../scripts/count_matrix.py"


rule multiqc:
    input:
        expand(rules.fastp_pe.output.json, sample=SAMPLE_IDS),
        # MultiQC reads kallisto's figures from its log
        expand(rules.kallisto_quant.log[0], sample=SAMPLE_IDS),
    output:
        html="results/qc/multiqc.html",
    log:
        "logs/multiqc/multiqc.log",
    shadow:
        "minimal"
    params:
        extra=config["multiqc_extra"],
    wrapper:
        "v5.0.0/bio/multiqc"
