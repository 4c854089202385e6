# Aggregation (fan-in): one table over all samples and a small HTML report.


rule summary_table:
    input:
        summaries=expand(rules.summarize_sample.output.summary, sample=SAMPLE_IDS),
    output:
        table="results/tables/summary.tsv",
    log:
        "logs/summary_table/summary_table.log",
    conda:
        "../envs/base.yaml"
    script:
        "../scripts/summary_table.py"


rule report:
    input:
        table=rules.summary_table.output.table,
    output:
        html=report(
            "results/report.html",
            caption="../report/report.rst",
            category="Summary",
        ),
    log:
        "logs/report/report.log",
    conda:
        "../envs/base.yaml"
    params:
        title=config["report_title"],
    script:
        "../scripts/render_report.py"
