"""Describe a release as an RO-Crate (Workflow Run Crate profile) for archives and registries.

Called by ``publish.publish(..., describe=...)`` while the release is being staged: it writes
``ro-crate-metadata.json`` (and copies of the main workflow file and, if small enough and allowed,
the sample sheet) into the staging directory, so SHA256SUMS, the release name and
``publish.py verify`` cover them like every other file. MANIFEST.json stays the release's own
contract; the crate restates it in the vocabulary that WorkflowHub, Zenodo and RO-Crate tools read.

Conforms to RO-Crate 1.1 and the Workflow Run Crate profile 0.5 (which includes the Process Run
Crate 0.5 and Workflow RO-Crate 1.0 profiles). Uses the ``rocrate`` library, so it runs in
Snakemake's environment (requirements.txt), not as a stdlib mechanism.
"""

import datetime as _dt
import hashlib
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

import yaml
from rocrate.rocrate import ROCrate

CRATE_VERSION = "1.1"
METADATA = "ro-crate-metadata.json"
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": ("Process Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/workflow/0.5": ("Workflow Run Crate", "0.5"),
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": ("Workflow RO-Crate", "1.0"),
}
# sha256 is not a term of the RO-Crate 1.1 context; later RO-Crate contexts map it to schema.org
EXTRA_TERMS = {"sha256": "http://schema.org/sha256"}
SPDX = "https://spdx.org/licenses/"
BIOSCHEMAS_WORKFLOW = "https://bioschemas.org/profiles/ComputationalWorkflow/1.0-RELEASE"
# where the copies the crate needs sit inside the release (their paths in the repository)
SNAKEFILE_IN_RELEASE = "workflow/Snakefile"
MEDIA_TYPES = {
    ".tsv": "text/tab-separated-values",
    ".csv": "text/csv",
    ".json": "application/json",
    ".html": "text/html",
    ".txt": "text/plain",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
}


class CrateError(RuntimeError):
    """The crate cannot be written as asked; the message says what to change."""


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def public_url(url):
    """An http(s) repository URL without credentials, or None (ssh remotes, local paths, tokens)."""
    if not url:
        return None
    url = url.strip()
    scp = re.fullmatch(r"[\w.-]+@([\w.-]+):(.+)", url)  # git@host:owner/repo.git
    if scp:
        url = f"https://{scp[1]}/{scp[2]}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ssh") or not parts.hostname:
        return None
    netloc = parts.hostname + (f":{parts.port}" if parts.port and parts.scheme != "ssh" else "")
    path = parts.path[:-4] if parts.path.endswith(".git") else parts.path
    return urlunsplit(("https", netloc, path, "", ""))


def git_remote(cwd):
    """The URL of the git remote "origin" of the repository holding ``cwd``, or None."""
    try:
        proc = subprocess.run(
            ["git", "config", "--get", "remote.origin.url"], cwd=cwd, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def read_citation(path) -> dict:
    """title, authors, license and repository from CITATION.cff (empty when there is none)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CrateError(f"{path} cannot be read as YAML ({exc}); fix it or delete it, then publish again") from None
    return data if isinstance(data, dict) else {}


def job_times(persistence, sources):
    """(earliest start, latest end) of the Snakemake jobs that made ``sources``, as UTC datetimes.

    From Snakemake's records in .snakemake/ (the same records publish.smk reads for made_by).
    Jobs whose outputs are not published are not seen, so the start is the start of the first
    job that made a published file, not necessarily of the whole run.
    """
    from snakemake.io import IOFile

    starts, ends = [], []
    for source in sources:
        record = persistence.metadata(IOFile(source))
        if record is None:
            continue
        if record.starttime is not None:
            starts.append(record.starttime)
        if record.endtime is not None:
            ends.append(record.endtime)

    def utc(stamps, pick):
        return _dt.datetime.fromtimestamp(pick(stamps), _dt.UTC) if stamps else None

    return utc(starts, min), utc(ends, max)


def single(values):
    """One value as itself, several as a list (RO-Crate 1.1 prefers no singleton arrays)."""
    return values[0] if len(values) == 1 else values


def iso(moment):
    return moment.astimezone(_dt.UTC).isoformat(timespec="seconds") if moment else None


def sheet_name_in_release(sheet):
    """The sheet's path in the repository (config/samples.tsv), or inputs/<name> for a path outside it."""
    if sheet.is_absolute() or ".." in sheet.parts:
        return f"inputs/{sheet.name}"
    return sheet.as_posix()


def media_type(name):
    return MEDIA_TYPES.get(PurePosixPath(name).suffix.lower(), "application/octet-stream")


def build_crate(
    manifest: dict,
    snakefile,
    citation=None,
    config_files=(),
    sample_sheet=None,
    sheet_max_bytes=0,
    job_times=(None, None),
    repository_url=None,
):
    """The crate (an rocrate.ROCrate) of one release; ``manifest`` is its MANIFEST.json content.

    Returns (crate, copies): copies maps a path inside the release to the repository file that
    must be copied there (the main workflow file, the sample sheet when included).
    """
    provenance = manifest.get("provenance", {})
    cite = read_citation(citation) if citation else {}
    published = {e["path"] for e in manifest["files"]}
    copies = {SNAKEFILE_IN_RELEASE: Path(snakefile)}
    sheet = Path(sample_sheet) if sample_sheet else None
    include_sheet = sheet is not None and sheet.is_file() and sheet.stat().st_size <= sheet_max_bytes
    if include_sheet:
        copies[sheet_name_in_release(sheet)] = sheet
    clash = sorted(set(copies) & (published | {METADATA}))
    if clash:
        raise CrateError(
            f"the release crate needs {', '.join(clash)} for its own copy, but the publish set publishes a file "
            "under that name; rename it in PUBLISH_SET (workflow/rules/publish.smk)"
        )
    name = str(cite.get("title") or Path(snakefile).resolve().parent.parent.name)
    version = str(provenance.get("workflow_version") or cite.get("version") or "unknown")
    repository = public_url(cite.get("repository-code")) or public_url(repository_url)

    crate = ROCrate(version=CRATE_VERSION)
    crate.metadata.extra_terms.update(EXTRA_TERMS)
    root = crate.root_dataset
    root["name"] = f"{name} {version}: published results"
    root["description"] = (
        f"Release of the results of {name} version {version}, published by its publish step. "
        "MANIFEST.json lists the same files with their provenance; SHA256SUMS checks them with sha256sum -c."
    )
    root["datePublished"] = manifest.get("created") or provenance.get("published_at")
    licence = cite.get("license")
    if licence:
        root["license"] = crate.add_jsonld(
            {"@id": SPDX + str(licence), "@type": "CreativeWork", "name": str(licence), "identifier": str(licence)}
        )
    else:
        # Workflow RO-Crate requires a license statement; the project chose none.
        root["license"] = "No license: all rights reserved by the authors"
    authors = [_person(crate, i, a) for i, a in enumerate(cite.get("authors") or [], start=1)]
    if authors:
        root["author"] = single(authors)
    for url, (label, ver) in PROFILES.items():
        root.append_to(
            "conformsTo", crate.add_jsonld({"@id": url, "@type": "CreativeWork", "name": label, "version": ver})
        )

    workflow = crate.add_workflow(
        source=str(copies[SNAKEFILE_IN_RELEASE]),
        dest_path=SNAKEFILE_IN_RELEASE,
        main=True,
        lang="snakemake",
        lang_version=provenance.get("snakemake_version"),
        properties={"name": name, "version": version, "encodingFormat": "text/x-snakemake"},
    )
    # add_workflow also lists the newest Workflow RO-Crate profile; this crate claims the 1.0 that WRC 0.5 uses
    root["conformsTo"] = [p for p in root["conformsTo"] if p.id in PROFILES]
    _drop_unused_profiles(crate)
    if repository:
        workflow["codeRepository"] = repository
        workflow["url"] = repository
    if provenance.get("git_commit"):
        commit = crate.add_jsonld(
            {
                "@id": "#git-commit",
                "@type": "PropertyValue",
                "propertyID": "git commit",
                "name": "git commit of the workflow",
                "value": provenance["git_commit"],
                "description": "the work tree had uncommitted changes"
                if provenance.get("git_dirty")
                else "the work tree was clean",
            }
        )
        workflow["identifier"] = commit
    if authors:
        workflow["author"] = single(authors)

    # inputs: the configuration (by checksum), its files, the sample sheet
    inputs, values = [], []
    config_value = crate.add_jsonld(
        {
            "@id": "#config",
            "@type": "PropertyValue",
            "name": "config",
            "propertyID": "sha256 of the effective configuration (defaults, files and --config), as sorted JSON",
            "value": provenance.get("config_sha256", ""),
        }
    )
    inputs.append(_parameter(crate, "config", "PropertyValue", config_value, "The workflow configuration."))
    values.append(config_value)
    for number, path in enumerate(config_files, start=1):
        path = Path(path)
        if not path.is_file():
            continue
        entity = crate.add_jsonld(
            {
                "@id": f"#config-file-{number}",
                "@type": "PropertyValue",
                "name": path.as_posix(),
                "propertyID": "sha256",
                "value": sha256_file(path),
                "description": f"config file ({path.stat().st_size} bytes), identified by its sha256",
            }
        )
        values.append(entity)
    if sheet is not None and sheet.is_file():
        digest, size = sha256_file(sheet), sheet.stat().st_size
        if include_sheet:
            entity = crate.add_file(
                source=str(sheet),
                dest_path=sheet_name_in_release(sheet),
                properties={
                    "name": sheet.name,
                    "description": "The sample sheet of this run.",
                    "encodingFormat": media_type(sheet.name),
                    "contentSize": str(size),
                    "sha256": digest,
                },
            )
        else:
            entity = crate.add_jsonld(
                {
                    "@id": "#sample-sheet",
                    "@type": "PropertyValue",
                    "name": sheet.as_posix(),
                    "propertyID": "sha256",
                    "value": digest,
                    "description": f"sample sheet ({size} bytes), not included: larger than "
                    f"release_sample_sheet_max_bytes ({sheet_max_bytes}); identified by its sha256",
                }
            )
        kind = "File" if include_sheet else "PropertyValue"
        inputs.append(_parameter(crate, "samples", kind, entity, "The sample sheet (config key samples)."))
        values.append(entity)

    # outputs: every published file, with its size and sha256
    outputs = []
    for entry in sorted(manifest["files"], key=lambda e: e["path"]):
        properties = {
            "name": entry["path"],
            "encodingFormat": media_type(entry["path"]),
            "contentSize": str(entry["size"]),
            "sha256": entry["sha256"],
        }
        if entry.get("made_at"):
            properties["dateCreated"] = entry["made_at"]
        if entry.get("rule"):
            properties["description"] = f"made by rule {entry['rule']}"
        # no source: publish has already put the file in the release; the crate only describes it
        outputs.append(crate.add_file(dest_path=entry["path"], properties=properties))
    parameter = _parameter(crate, "published files", "File", outputs, "Every file the publish step released.")
    workflow["input"] = single(inputs)
    workflow["output"] = parameter
    workflow["conformsTo"] = crate.add_jsonld(
        {"@id": BIOSCHEMAS_WORKFLOW, "@type": "CreativeWork", "name": "Bioschemas ComputationalWorkflow 1.0"}
    )

    context = provenance.get("context", "unknown")
    host = provenance.get("host", "unknown")
    operating = crate.add_jsonld(
        {
            "@id": "#operating-context",
            "@type": "PropertyValue",
            "name": "operating context",
            "propertyID": "snakemake --profile profiles/<context>",
            "value": context,
            "description": f"profiles/{context} on host {host}, Snakemake {provenance.get('snakemake_version')}",
        }
    )
    action = {
        "@type": "CreateAction",
        "name": f"Run of {name} {version} with profiles/{context}",
        "description": (
            "startTime is the earliest start and endTime the latest end among the Snakemake jobs that made the "
            "published files (from .snakemake/ records); jobs whose outputs are not published are not counted."
        ),
        "actionStatus": "http://schema.org/CompletedActionStatus",  # a plain string, as the profile checks it
    }
    started, ended = job_times
    if started:
        action["startTime"] = iso(started)
    if ended:
        action["endTime"] = iso(ended)
    run = crate.add_action(workflow, identifier="#run", object=[*values, operating], result=outputs, properties=action)
    root["mentions"] = run
    return crate, copies


def _person(crate, number, author):
    author = author if isinstance(author, dict) else {"name": str(author)}
    name = author.get("name") or " ".join(str(author[k]) for k in ("given-names", "family-names") if author.get(k))
    entity = {"@id": f"#author-{number}", "@type": "Person" if "name" not in author else "Organization", "name": name}
    if author.get("email"):
        entity["email"] = str(author["email"])
    return crate.add_jsonld(entity)


def _parameter(crate, name, kind, example, description):
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    parameter = crate.add_formal_parameter(
        name=name, additionalType=kind, identifier=f"#param-{slug}", description=description, valueRequired=True
    )
    parameter["workExample"] = example
    for entity in example if isinstance(example, list) else [example]:
        entity["exampleOfWork"] = parameter
    return parameter


def _drop_unused_profiles(crate):
    for entity in list(crate.contextual_entities):
        if "Profile" in entity.type and entity.id not in PROFILES:
            crate.delete(entity)


def write_crate(release_dir, manifest, **options):
    """Write the crate of ``manifest`` and the copies it needs into ``release_dir``."""
    release_dir = Path(release_dir)
    crate, copies = build_crate(manifest, **options)
    for rel, source in copies.items():
        (release_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, release_dir / rel)
    crate.metadata.write(release_dir)
    return release_dir / METADATA


def describer(**options):
    """A ``describe(staging_dir, manifest)`` callable for ``publish.publish``."""

    def describe(staging_dir, manifest):
        write_crate(staging_dir, manifest, **options)

    return describe
