# Per-sample processing (fan-out): one job per sample, each in node-local scratch.


rule tokenize:
    # shell: rule wrapped by scratch(): the command runs in the job's scratch dir.
    input:
        text=sample_file,
    output:
        tokens=temp("work/tokens/{sample}.tokens"),
    log:
        "logs/tokenize/{sample}.log",
    conda:
        "../envs/base.yaml"
    params:
        min_length=config["min_word_length"],
    shell:
        scratch(
            "exec 2> {log:q}; "
            "LC_ALL=C tr -cs 'A-Za-z0-9' '\\n' < {input.text:q}"
            " | tr 'A-Z' 'a-z'"
            " | awk -v min={params.min_length} 'length($0) >= min'"
            " | LC_ALL=C sort > {output:q}"
        )


rule summarize_sample:
    # script: rule: the script opens scratch_job(snakemake) itself.
    input:
        tokens=rules.tokenize.output.tokens,
        text=sample_file,
    output:
        summary="results/samples/{sample}.summary.json",
    log:
        "logs/summarize_sample/{sample}.log",
    conda:
        "../envs/base.yaml"
    params:
        group=sample_column("group"),
        top_words=config["top_words"],
    script:
        "../scripts/summarize_sample.py"
