# Glue between Snakemake and the release mechanism (workflow/scripts/publish.py):
# what made each published file, from Snakemake's own records, and the provenance
# a release carries. The publish set itself (meaning) is in rules/publish.smk.
import datetime
import importlib.util

from snakemake.io import IOFile

_spec = importlib.util.spec_from_file_location(
    "publish", workflow.source_path("../scripts/publish.py")
)
publish_mechanism = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(publish_mechanism)
# The release's RO-Crate (ro-crate-metadata.json), written through publish(describe=...)
_spec = importlib.util.spec_from_file_location(
    "release_crate", workflow.source_path("../scripts/release_crate.py")
)
release_crate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(release_crate)


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
        "published_at": publish_mechanism.utc_stamp(
            datetime.datetime.now(datetime.UTC)
        ),
        "host": os.uname().nodename,
        "made_by": made_by(),
    }
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    try:
        result = publish_mechanism.publish(
            PUBLISH_SET,
            "results",
            "publish",
            provenance,
            describe=release_crate.describer(
                snakefile=workflow.main_snakefile,
                citation="CITATION.cff",
                config_files=workflow.configfiles,
                sample_sheet=config["samples"],
                sheet_max_bytes=config["release_sample_sheet_max_bytes"],
                job_times=release_crate.job_times(
                    workflow.persistence, PUBLISH_SET.values()
                ),
                repository_url=release_crate.git_remote(workflow.basedir),
            ),
        )
    except (publish_mechanism.PublishError, release_crate.CrateError) as exc:
        raise WorkflowError(f"publish refused: {exc}") from None
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(
            json.dumps({**result, "provenance": provenance}, sort_keys=True) + "\n"
        )
    print(publish_mechanism.report(result), flush=True)
