# Variant calling, after the Snakemake tutorial: map each sample's reads to the reference (bwa mem),
# sort and index the alignments (samtools), call variants over all samples at once (bcftools), and
# plot the quality of the calls (matplotlib). The reference lives outside this checkout, in the
# site's shared reference folder (config key "genome", a path relative to the working directory).
# Every tool is told to leave out what changes between runs (versions, command lines, dates), so a
# rebuild gives the same bytes and a publish after it makes no new release.


rule bwa_map:
    input:
        reads=sample_file,
        genome=config["genome"],
        idx=multiext(config["genome"], ".amb", ".ann", ".bwt", ".pac", ".sa"),
    output:
        bam=temp("work/mapped/{sample}.bam"),
    log:
        "logs/bwa_map/{sample}.log",
    conda:
        "../envs/mapping.yaml"
    params:
        read_group=r"@RG\tID:{sample}\tSM:{sample}",
    shell:
        # -K: a fixed batch size, so the alignments do not depend on the number of threads
        scratch(
            "exec 2> {log:q}; "
            "bwa mem -K 100000000 -R {params.read_group:q} -t {threads} {input.genome:q} {input.reads:q}"
            " | samtools view --no-PG -b -o {output.bam:q} -"
        )


rule samtools_sort:
    input:
        bam=rules.bwa_map.output.bam,
    output:
        bam="results/sorted/{sample}.bam",
    log:
        "logs/samtools_sort/{sample}.log",
    conda:
        "../envs/samtools.yaml"
    shell:
        scratch(
            "exec 2> {log:q}; "
            'samtools sort --no-PG -T "$TMPDIR/{wildcards.sample}" -O bam -o {output.bam:q} {input.bam:q}'
        )


rule samtools_index:
    input:
        bam=rules.samtools_sort.output.bam,
    output:
        bai="results/sorted/{sample}.bam.bai",
    log:
        "logs/samtools_index/{sample}.log",
    conda:
        "../envs/samtools.yaml"
    shell:
        scratch("exec 2> {log:q}; samtools index {input.bam:q}")


rule bcftools_call:
    input:
        fa=config["genome"],
        fai=config["genome"] + ".fai",
        bam=expand(rules.samtools_sort.output.bam, sample=SAMPLE_IDS),
        bai=expand(rules.samtools_index.output.bai, sample=SAMPLE_IDS),
    output:
        calls="results/calls/all.vcf",
    log:
        "logs/bcftools_call/all.log",
    conda:
        "../envs/calling.yaml"
    params:
        rate=config["prior_mutation_rate"],
    shell:
        scratch(
            "exec 2> {log:q}; "
            "bcftools mpileup --no-version -f {input.fa:q} {input.bam:q}"
            " | bcftools call --no-version -mv -P {params.rate} -o {output.calls:q}"
        )


rule plot_quals:
    input:
        calls=rules.bcftools_call.output.calls,
    output:
        plot="results/plots/quals.svg",
    log:
        "logs/plot_quals/quals.log",
    conda:
        "../envs/plot.yaml"
    script:
        "../scripts/plot_quals.py"
