# The publish set is meaning: which final results downstream users may trust,
# under which published names. Profiles cannot change it. Publishing is a
# deliberate, separate target: snakemake --profile profiles/<context> publish
import datetime
import importlib.util

from snakemake.io import IOFile


PUBLISH_SET = {
    "summary.tsv": "results/tables/summary.tsv",
    "report.html": "results/report.html",
    **{
        f"samples/{sample}.summary.json": f"results/samples/{sample}.summary.json"
        for sample in SAMPLE_IDS
    },
}

_spec = importlib.util.spec_from_file_location(
    "publish", workflow.source_path("../scripts/publish.py")
)
publish_mechanism = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(publish_mechanism)


def made_by():
    """What made each published file, from Snakemake's own records (.snakemake/).

    Without a record the release could not say which computation produced the
    file (e.g. after .snakemake/ was deleted), so publishing is refused.
    """
    records, unknown = {}, []
    for name, source in PUBLISH_SET.items():
        record = workflow.persistence.metadata(IOFile(source))
        if record is None or record.incomplete or record.endtime is None:
            unknown.append(source)
            continue
        records[name] = {
            "rule": record.rule,
            "made_at": publish_mechanism.utc_stamp(
                datetime.datetime.fromtimestamp(record.endtime, datetime.UTC)
            ),
        }
    if unknown:
        listed = ", ".join(unknown[:3]) + (" and others" if len(unknown) > 3 else "")
        raise WorkflowError(
            f"publish refused: Snakemake has no record of how {listed} "
            f"{'were' if len(unknown) > 1 else 'was'} made (was .snakemake/ deleted?), so a release "
            "could not say what produced it. Rebuild with: snakemake --profile profiles/<context> --forceall, "
            "then publish again."
        )
    return records


def publish_release(log):
    """Publish PUBLISH_SET as a new release (or reuse an intact one with the same content)."""
    git = publish_mechanism.git_state(workflow.basedir)
    if git["git_dirty"]:
        print(
            "WARNING: the workflow's git work tree has uncommitted changes; the release records git_dirty: true",
            file=sys.stderr,
        )
    provenance = {
        "workflow_version": WORKFLOW_VERSION,
        **git,
        "config_sha256": CONFIG_SHA256,
        "snakemake_version": SNAKEMAKE_VERSION,
        "context": CONTEXT,
        "published_at": publish_mechanism.utc_stamp(datetime.datetime.now(datetime.UTC)),
        "host": os.uname().nodename,
        "made_by": made_by(),
    }
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    try:
        result = publish_mechanism.publish(PUBLISH_SET, "results", "publish", provenance)
    except publish_mechanism.PublishError as exc:
        raise WorkflowError(f"publish refused: {exc}") from None
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({**result, "provenance": provenance}, sort_keys=True) + "\n")
    print(publish_mechanism.report(result), flush=True)


localrules:
    publish,


rule publish:
    # No output on purpose: the rule runs whenever it is asked for, and a release
    # with the same content is reused, so unchanged results create no new release.
    # Nothing inside publish/ is declared (Snakemake deletes outputs before a job).
    input:
        list(PUBLISH_SET.values()),
    log:
        "logs/publish/publish.log",
    run:
        publish_release(log[0])


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
