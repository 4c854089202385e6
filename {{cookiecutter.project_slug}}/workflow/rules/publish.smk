# Publishing is a deliberate, separate target that writes a verifiable release of the
# published final outputs (FINAL_OUTPUTS in workflow/Snakefile) under publish/:
#   snakemake --profile profiles/<context> publish


PUBLISH_SET = CONTRACT.published_set(FINAL_OUTPUTS)


rule publish:
    # No output on purpose: the rule runs whenever it is asked for, and a release
    # with the same content is reused, so unchanged results create no new release.
    # Nothing inside publish/ is declared (Snakemake deletes outputs before a job).
    input:
        list(PUBLISH_SET.values()),
    log:
        "logs/publish/publish.log",
    # on the machine Snakemake runs on, next to .snakemake/ and publish/; declared in
    # the rule (not localrules:) so that it holds under a module's rule prefix too
    localrule: True
    run:
        CONTRACT.publish(PUBLISH_SET, log[0], SHEET.files_by_sample())


# The current release's manifest, for the Snakemake report. Run after publish:
# snakemake --profile profiles/local --report report.zip all release_manifest
# It copies into logs/, never into results/ or publish/, so it changes no contract.
rule release_manifest:
    input:
        "publish/current/MANIFEST.json",
    output:
        report(
            "logs/publish/MANIFEST.json",
            caption="../report/manifest.rst",
            category="Release",
        ),
    log:
        "logs/publish/release_manifest.log",
    localrule: True
    conda:
        "../envs/base.yaml"
    shell:
        "cp {input:q} {output:q} 2> {log:q}"
