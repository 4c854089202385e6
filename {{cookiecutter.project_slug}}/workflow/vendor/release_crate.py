"""Describe a release as an RO-Crate, the metadata WorkflowHub, Zenodo and RO-Crate tools read.

``publish.publish(describe=describer(...))`` calls ``write_crate`` while a release is staged: it
writes ``ro-crate-metadata.json`` and copies of the main workflow file and (if small enough) the
sample sheet and a README.md about the release, so SHA256SUMS and ``publish.py verify`` cover them
too. The crate records the workflow (name, version, git commit, authors, license, repository: from
CITATION.cff), the run that made the release (configuration, sample sheet, the sample files it names
with their size and sha256, operating context, time span, the git identity that ran it) and every
published file with its size, sha256 and format. MANIFEST.json stays the release's own
contract; the crate restates it as RO-Crate 1.1 following Workflow Run Crate 0.5 (with Process Run
Crate 0.5, Workflow RO-Crate 1.0).
Unlike the other mechanism modules it needs libraries (requirements.txt): ``rocrate``, and
``edam-ontology`` for the EDAM formats of bioinformatics files (VCF, BAM, FASTQ), which have no
registered media type.

From the Snakemake repository template, release {{ cookiecutter._template_version }}.
"""

import csv
import dataclasses
import datetime
import functools
import mimetypes
import os
import re
import shutil
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

import yaml
from rocrate.rocrate import ROCrate

from publish import git_output, sha256_file

METADATA = "ro-crate-metadata.json"
README = "README.md"  # written for the release: Workflow RO-Crate asks for a README.md about the crate
SNAKEFILE_IN_RELEASE = "workflow/Snakefile"  # the copy's path in the release: its path in the repository
# Sample files (the sheet's input-file columns) up to this size are described with their sha256;
# larger ones by path and size only: hashing reads every byte, and a run's reads or alignments
# (tens of GB each, hundreds of them) would make every publish read them all again.
INPUT_SHA256_MAX_BYTES = 1 << 30  # 1 GiB
EDAM = "http://edamontology.org/"  # the EDAM ontology: its format_NNNN terms name data formats
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": ("Process Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/workflow/0.5": ("Workflow Run Crate", "0.5"),
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": ("Workflow RO-Crate", "1.0"),
}
BIOSCHEMAS_WORKFLOW = "https://bioschemas.org/profiles/ComputationalWorkflow/1.0-RELEASE"


class CrateError(RuntimeError):
    """The crate cannot be written as asked; the message says what to change."""


def describer(**options):
    """The ``describe(staging_dir, manifest)`` that ``publish.publish`` calls: ``write_crate`` with ``options``."""
    return functools.partial(write_crate, **options)


def write_crate(
    release_dir,
    manifest,
    snakefile,
    citation,
    config_files,
    sample_sheet,
    sheet_max_bytes,
    job_times,
    repository_url,
    sample_files=None,
):
    """Write the crate of the release whose MANIFEST.json is ``manifest``, and its copies, into ``release_dir``.

    ``job_times``: (start, end) from ``job_times()``; ``repository_url``: used unless CITATION.cff names one;
    ``sample_files``: {sample: {sheet column: path}}, the input files the sample sheet names.
    """
    sheet = Path(sample_sheet) if sample_sheet and Path(sample_sheet).is_file() else None
    copies = {SNAKEFILE_IN_RELEASE: Path(snakefile)}
    if sheet_copy(sheet, sheet_max_bytes):
        copies[sheet_copy(sheet, sheet_max_bytes)] = sheet
    clash = sorted((set(copies) | {README}) & ({e["path"] for e in manifest["files"]} | {METADATA}))
    if clash:
        raise CrateError(
            f"the release crate needs {', '.join(clash)} for its own copy, but the publish set publishes a file "
            "under that name; give that final output another published name in FINAL_OUTPUTS (workflow/Snakefile)"
        )
    provenance, cite = manifest["provenance"], read_citation(citation)
    name = str(cite.get("title") or Path(snakefile).resolve().parent.parent.name)
    version = str(provenance.get("workflow_version") or cite.get("version") or "unknown")
    crate = ROCrate(version="1.1")
    crate.metadata.extra_terms["sha256"] = "http://schema.org/sha256"  # in later RO-Crate contexts, not in 1.1
    authors = describe_release(crate, manifest, name, version, cite)
    repository = public_url(cite.get("repository-code")) or public_url(repository_url)
    workflow = add_workflow(crate, snakefile, name, version, provenance, repository, authors)
    values = add_inputs(crate, workflow, provenance, config_files, sheet, sheet_max_bytes, sample_files or {})
    outputs = add_outputs(crate, workflow, manifest["files"])
    built_in = sorted({e["context"] for e in manifest["files"] if e.get("context")}) or [provenance.get("context")]
    crate.root_dataset["mentions"] = add_run(crate, workflow, provenance, values, outputs, job_times, built_in)
    for path, source in copies.items():
        (Path(release_dir) / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, Path(release_dir) / path)
    add_readme(crate, release_dir)
    crate.metadata.write(release_dir)


def describe_release(crate, manifest, name, version, cite):
    """The root dataset: what the release is, its date, license, profiles and authors (returned)."""
    root = crate.root_dataset
    root["name"] = f"{name} {version}: published results"
    root["description"] = (
        f"Release of the results of {name} version {version}, published by its publish step. "
        "MANIFEST.json lists the same files with their provenance; SHA256SUMS checks them with sha256sum -c."
    )
    root["datePublished"] = manifest["created"]
    if cite.get("license"):
        licence = str(cite["license"])
        root["license"] = add_work(crate, f"https://spdx.org/licenses/{licence}", licence, identifier=licence)
    else:  # Workflow RO-Crate requires a license statement; the project chose none
        root["license"] = "No license: all rights reserved by the authors"
    authors = [
        add_party(crate, f"#author-{number}", author) for number, author in enumerate(cite.get("authors") or [], 1)
    ]
    if authors:
        root["author"] = single(authors)
    # the publisher: CITATION.cff's first contact that is an organisation (a lab, an institute)
    organisations = [c for c in cite.get("contact") or [] if isinstance(c, dict) and c.get("name")]
    if organisations:
        root["publisher"] = add_party(crate, "#publisher", organisations[0])
    for url, (label, number) in PROFILES.items():
        root.append_to("conformsTo", add_work(crate, url, label, version=number))
    return authors


def add_readme(crate, release_dir):
    """README.md: what the release is and how to check it, written into the release and described as about it."""
    root = crate.root_dataset
    text = (
        f"# {root['name']}\n\n{root['description']}\n\n"
        "- `MANIFEST.json`: every published file with its size, sha256 and provenance.\n"
        "- `SHA256SUMS`: check every file of the release with `sha256sum -c SHA256SUMS`.\n"
        f"- `{METADATA}`: the release as an RO-Crate (Workflow Run Crate 0.5): the workflow, its run and its files.\n"
    )
    (Path(release_dir) / README).write_text(text, encoding="utf-8")
    properties = {"name": README, "about": root, "encodingFormat": "text/markdown"}  # the type the profile asks for
    properties["description"] = "What this release is and how to check it."
    crate.add_file(dest_path=README, properties=properties)


def add_workflow(crate, snakefile, name, version, provenance, repository, authors):
    """The main workflow file (its copy in the release), with its language, git commit, repository and authors."""
    properties = {"name": name, "version": version, "encodingFormat": "text/x-snakemake"}
    language = {"lang": "snakemake", "lang_version": provenance.get("snakemake_version")}
    workflow = crate.add_workflow(str(snakefile), SNAKEFILE_IN_RELEASE, main=True, properties=properties, **language)
    if repository:
        workflow["codeRepository"] = workflow["url"] = repository
    if provenance.get("git_commit"):
        state = "had uncommitted changes" if provenance.get("git_dirty") else "was clean"
        commit = ("#git-commit", "git commit of the workflow", "git commit", provenance["git_commit"])
        workflow["identifier"] = add_value(crate, *commit, f"the work tree {state}")
    if authors:
        workflow["author"] = single(authors)
    return workflow


def add_inputs(crate, workflow, provenance, config_files, sheet, sheet_max_bytes, sample_files):
    """The workflow's inputs (config, samples, sample files) and their values in this run (returned)."""
    purpose = "sha256 of the effective configuration (defaults, files and --config), as sorted JSON"
    values = [add_value(crate, "#config", "config", purpose, provenance.get("config_sha256", ""))]
    inputs = [add_parameter(crate, "config", "PropertyValue", values[0], "The workflow configuration.")]
    for number, path in enumerate(map(Path, config_files), start=1):
        if path.is_file():
            size = f"config file ({path.stat().st_size} bytes), identified by its sha256"
            values.append(
                add_value(crate, f"#config-file-{number}", path.as_posix(), "sha256", sha256_file(path), size)
            )
    if sheet:
        size, digest, copy = sheet.stat().st_size, sha256_file(sheet), sheet_copy(sheet, sheet_max_bytes)
        if copy:
            properties = {"name": sheet.name, "description": "The sample sheet of this run.", "sha256": digest}
            properties |= {"encodingFormat": encoding_format(crate, sheet.name), "contentSize": str(size)}
            values.append(crate.add_file(str(sheet), copy, properties=properties))
        else:
            why = f"larger than release_sample_sheet_max_bytes ({sheet_max_bytes}); identified by its sha256"
            description = f"sample sheet ({size} bytes), not included: {why}"
            values.append(add_value(crate, "#sample-sheet", sheet.as_posix(), "sha256", digest, description))
        kind, purpose = "File" if copy else "PropertyValue", "The sample sheet (config key samples)."
        inputs.append(add_parameter(crate, "samples", kind, values[-1], purpose))
    files = add_sample_files(crate, sample_files)
    if files:
        purpose = "The input files the sample sheet names (its input-file columns)."
        inputs.append(add_parameter(crate, "sample files", "File", files, purpose))
    workflow["input"] = single(inputs)
    return values + files


def add_sample_files(crate, sample_files):
    """Each sample file once (samples may share one), by path, with its size and its sha256 up to a size.

    They are not in the release, so their ids are local (#sample-file-N) and their names their paths.
    """
    uses = {}
    for sample, columns in sorted(sample_files.items()):
        for column, path in columns.items():
            uses.setdefault(str(path), []).append(f"{sample} ({column})")
    files = []
    for number, (path, used_by) in enumerate(sorted(uses.items()), start=1):
        shown = ", ".join(used_by[:3]) + (f" and {len(used_by) - 3} more" if len(used_by) > 3 else "")
        entity = {"@id": f"#sample-file-{number}", "@type": "File", "name": path}
        entity |= {"encodingFormat": encoding_format(crate, path), "description": f"input file of sample {shown}"}
        try:
            size = Path(path).stat().st_size
        except OSError:
            entity["description"] += "; not found when the release was published"
        else:
            entity["contentSize"] = str(size)
            if size <= INPUT_SHA256_MAX_BYTES:
                entity["sha256"] = sha256_file(path)
            else:
                entity["description"] += f"; not hashed: larger than {INPUT_SHA256_MAX_BYTES} bytes"
        files.append(crate.add_jsonld(entity))
    return files


def add_outputs(crate, workflow, files):
    """The published files (already in the release: the crate only describes them), the workflow's output."""
    outputs = []
    for entry in sorted(files, key=lambda e: e["path"]):
        properties = {"name": entry["path"], "encodingFormat": encoding_format(crate, entry["path"])}
        properties |= {"contentSize": str(entry["size"]), "sha256": entry["sha256"]}
        if entry.get("made_at"):
            properties["dateCreated"] = entry["made_at"]
        if entry.get("rule"):
            made_in = f" with profiles/{entry['context']}" if entry.get("context") else ""
            properties["description"] = f"made by rule {entry['rule']}{made_in}"
        outputs.append(crate.add_file(dest_path=entry["path"], properties=properties))
    purpose = "Every file the publish step released."
    workflow["output"] = add_parameter(crate, "published files", "File", outputs, purpose)
    workflow["conformsTo"] = add_work(crate, BIOSCHEMAS_WORKFLOW, "Bioschemas ComputationalWorkflow 1.0")
    return outputs


def add_run(crate, workflow, provenance, values, outputs, job_times, built_in):
    """The CreateAction: the run of ``workflow`` with ``values`` and the operating context(s) whose jobs made
    ``outputs`` (``built_in``; the publish command's own context is in MANIFEST.json)."""
    context, snakemake = " and ".join(map(str, built_in)), provenance.get("snakemake_version")
    where = f"profiles/{context} on host {provenance.get('host', 'unknown')}, Snakemake {snakemake}"
    how = "snakemake --profile profiles/<context>"
    operating = add_value(crate, "#operating-context", "operating context", how, context, where)
    title = f"Run of {workflow['name']} {workflow['version']} with profiles/{context}"
    action = {"@type": "CreateAction", "name": title}
    action["description"] = (
        "startTime is the earliest start and endTime the latest end among the Snakemake jobs that made the "
        "published files (from .snakemake/ records); jobs whose outputs are not published are not counted."
    )
    action["actionStatus"] = "http://schema.org/CompletedActionStatus"  # a plain string, as the profile checks it
    action |= {key: time for key, time in zip(("startTime", "endTime"), job_times, strict=True) if time}
    agent = add_agent(crate)
    if agent:
        action["agent"] = agent
    return crate.add_action(workflow, identifier="#run", object=[*values, operating], result=outputs, properties=action)


def add_agent(crate):
    """Who ran the workflow, as far as the machine knows: the git identity where the release is published
    (GIT_COMMITTER_NAME, else git's user.name; never one git would make up from the host), or None."""
    name = os.environ.get("GIT_COMMITTER_NAME") or git_output(".", "config", "--get", "user.name")
    if not name:
        return None
    about = "the git identity (user.name) of the account that ran the workflow and published this release"
    return crate.add_jsonld({"@id": "#agent", "@type": "Person", "name": name, "description": about})


def add_party(crate, identifier, party):
    """A CITATION.cff author or contact: a Person (given-names, family-names) or an entity (name: a team,
    an institute), which RO-Crate calls an Organization."""
    party = party if isinstance(party, dict) else {"name": str(party)}
    name = party.get("name") or " ".join(str(party[k]) for k in ("given-names", "family-names") if party.get(k))
    entity = {"@id": identifier, "@type": "Organization" if "name" in party else "Person", "name": name}
    entity |= {key: str(party[cff]) for key, cff in (("email", "email"), ("url", "website")) if party.get(cff)}
    return crate.add_jsonld(entity)


def add_parameter(crate, name, kind, examples, description):
    """A FormalParameter of the workflow, linked both ways to its value(s) in this run."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    parameter = crate.add_formal_parameter(
        name=name, additionalType=kind, identifier=f"#param-{slug}", description=description, valueRequired=True
    )
    parameter["workExample"] = examples
    for entity in examples if isinstance(examples, list) else [examples]:
        entity["exampleOfWork"] = parameter
    return parameter


def add_value(crate, identifier, name, property_id, value, description=None):
    entity = {"@id": identifier, "@type": "PropertyValue", "name": name, "propertyID": property_id, "value": value}
    return crate.add_jsonld(entity | ({"description": description} if description else {}))


def add_work(crate, url, name, **properties):
    return crate.add_jsonld({"@id": url, "@type": "CreativeWork", "name": name, **properties})


def single(values):
    """One value as itself, several as a list (RO-Crate 1.1 prefers no singleton arrays)."""
    return values[0] if len(values) == 1 else values


def encoding_format(crate, name):
    """The encodingFormat of a file by its name: its registered media type, and the EDAM format of its
    extension where EDAM knows one, as a reference to a WebSite entity (RO-Crate 1.1's form for a format
    described by a web page, which roc-validator checks). A compressed file (x.fastq.gz) is of its
    compression's media type and the EDAM format of the file inside: EDAM has no compressed variants,
    and the two say how to read the bytes and what they hold."""
    edam = edam_format(name)
    kind = media_type(name, edam)
    if not edam:
        return kind
    if not crate.get(edam.iri):
        crate.add_jsonld({"@id": edam.iri, "@type": "WebSite", "name": edam.label})
    return [kind, {"@id": edam.iri}]


def media_type(name, edam=None):
    """The registered media type of a file by its name, from Python's mimetypes: the system's list where
    there is one (/etc/mime.types, Debian's media-types), else Python's own; application/octet-stream
    where none is registered. A compressed file is of its compression's type (x.fastq.gz:
    application/gzip). A type registered for another format under the EDAM format's extension is not
    this file's: .vcf is vCard's (text/vcard), .bed RealVNC's, .sam Lotus WordPro's."""
    kind, compression = mimetypes.guess_type(name)
    if compression:
        kind = mimetypes.types_map.get({code: ext for ext, code in mimetypes.encodings_map.items()}[compression])
    elif kind and edam and not edam.has_media_type(kind):
        kind = None
    return kind or "application/octet-stream"


@dataclasses.dataclass(frozen=True)
class EdamFormat:
    """An EDAM format: its IRI, label, names (label and exact synonyms, lower case) and the media types
    EDAM records for it."""

    iri: str
    label: str
    names: frozenset
    media_types: frozenset

    def has_media_type(self, kind):
        """Whether ``kind`` is this format's: EDAM records it, or its subtype is one of the format's names
        (image/svg+xml: SVG, application/x-tar: tar, application/vnd.loom: Loom; text/vcard is not VCF)."""
        subtype = kind.partition("/")[2].partition("+")[0].removeprefix("x-").removeprefix("vnd.")
        return kind in self.media_types or subtype.lower() in self.names


def edam_format(name):
    """The EDAM format of a file by its extension (of the file inside, for a compressed one), or None.

    An extension that is one of a format's names in EDAM is that format: bioinformatics names its
    formats by their extensions (.vcf VCF, .bam BAM, .fq FASTQ). An extension EDAM only lists for a
    format counts where no media type is registered for it: EDAM lists common ones for specialised
    formats (.xlsx for ObjTables, .tex for a 3D texture format).
    """
    if mimetypes.guess_type(name)[1]:
        name = PurePosixPath(name).stem
    extension = PurePosixPath(name).suffix.lower().removeprefix(".")
    named, listed = edam_formats()
    if extension in named:
        return named[extension]
    if extension in listed and not mimetypes.guess_type(name)[0]:
        return listed[extension]
    return None


@functools.cache
def edam_formats():
    """({extension: EdamFormat} by the formats' names, {extension: EdamFormat} by EDAM's file-extension
    annotations), from the EDAM release that the edam-ontology package ships (read once per publish).

    Names are the one-word labels and exact synonyms of formats in use (not obsolete). Lower-case
    one-word labels are left out: they are mostly EMBOSS's names for sequence formats (raw, dat, match,
    pair), not file extensions. An extension naming or listed for several formats names none.
    """
    from edam_ontology.streams import tabular_stream  # only when publishing: a 2 MB table

    named, listed = {}, {}
    with tabular_stream() as stream:
        rows = csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE)
        columns = {title: number for number, title in enumerate(next(rows))}
        iri, label, obsolete = columns["Class ID"], columns["Preferred Label"], columns["Obsolete"]
        synonyms = columns["http://www.geneontology.org/formats/oboInOwl#hasExactSynonym"]
        extensions, media_types = columns["File extension"], columns["Media type"]
        for row in rows:
            if not row[iri].startswith(f"{EDAM}format_") or row[obsolete] == "TRUE":
                continue
            names = frozenset(name.lower() for name in [row[label], *row[synonyms].split("|")] if name)
            one_word = {name for name in names if re.fullmatch(r"[a-z0-9]+", name)}
            if row[label].islower():
                one_word.discard(row[label])
            kinds = frozenset(kind.rpartition("media-types/")[2] for kind in row[media_types].split("|") if kind)
            edam = EdamFormat(row[iri], row[label], names, kinds)
            for by_extension, extensions_of_format in (
                (named, one_word),
                (listed, {extension.lower() for extension in row[extensions].split("|") if extension}),
            ):
                for extension in extensions_of_format:
                    # None marks an extension of several formats
                    by_extension[extension] = None if extension in by_extension else edam
    return (
        {ext: edam for ext, edam in named.items() if edam},
        {ext: edam for ext, edam in listed.items() if edam},
    )


def sheet_copy(sheet, max_bytes):
    """The path of the sample sheet's copy in the release (its path in the repository, else inputs/<name>),
    or None when there is no sheet or it is larger than ``max_bytes``."""
    if not sheet or sheet.stat().st_size > max_bytes:
        return None
    return f"inputs/{sheet.name}" if sheet.is_absolute() or ".." in sheet.parts else sheet.as_posix()


def read_citation(path):
    """CITATION.cff as a dict (empty when there is none)."""
    if not path or not Path(path).is_file():
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CrateError(f"{path} cannot be read as YAML ({exc}); fix it or delete it, then publish again") from None
    return data if isinstance(data, dict) else {}


def public_url(url):
    """An https URL of the repository without credentials, or None (a local path, another scheme)."""
    url = (url or "").strip()
    scp = re.fullmatch(r"[\w.-]+@([\w.-]+):(.+)", url)  # git@host:owner/repo.git
    parts = urlsplit(f"https://{scp[1]}/{scp[2]}" if scp else url)
    if parts.scheme not in ("http", "https", "ssh") or not parts.hostname:
        return None
    netloc = parts.hostname + (f":{parts.port}" if parts.port and parts.scheme != "ssh" else "")
    return urlunsplit(("https", netloc, parts.path.removesuffix(".git"), "", ""))


def git_remote(cwd):
    """The URL of the git remote "origin" of the repository holding ``cwd``, or None."""
    return git_output(cwd, "config", "--get", "remote.origin.url") or None


def job_times(persistence, sources):
    """(earliest start, latest end) of the Snakemake jobs that made ``sources``, as ISO 8601 UTC (or None).

    From Snakemake's records in .snakemake/: jobs whose outputs are not published are not seen.
    """
    from snakemake.io import IOFile

    records = [record for record in map(persistence.metadata, map(IOFile, sources)) if record is not None]
    starts = [r.starttime for r in records if r.starttime is not None]
    ends = [r.endtime for r in records if r.endtime is not None]
    return (iso(min(starts)) if starts else None), (iso(max(ends)) if ends else None)


def iso(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")
