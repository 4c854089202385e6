"""Releases in the standard formats others read: an RO-Crate (Workflow Run Crate profile) checked by
roc-validator, a SHA256SUMS that coreutils' sha256sum -c agrees on with publish.py verify, and the
citation metadata (CITATION.cff) checked by cffconvert. Real cookiecutter, real snakemake CLI."""

import email.message
import hashlib
import importlib.resources
import io
import json
import re
import subprocess
import sys
import urllib.request
import urllib.response
from pathlib import Path

import pytest
import requests
import requests.adapters
import requests.sessions
import yaml
from conftest import isolated_env, load_json, run_command

# The validator's profile for Workflow Run Crate 0.5 (it includes Process Run Crate 0.5, Workflow
# RO-Crate 1.0 and RO-Crate 1.1) and the severity checked: its MUST and SHOULD requirements.
PROFILE = "workflow-run-crate-0.5"
SEVERITY = "RECOMMENDED"
# SHOULDs a release meets once the project says what the template cannot know, in CITATION.cff: a
# repository URL (repository-code, or the git remote origin) is the workflow's url, an author's website
# that author's url, the first contact organisation the release's publisher.
NEEDS_PROJECT_DATA = {
    "process-run-crate-0.5_3.2": "The Application SHOULD have a url",
    "ro-crate-1.1_31.2": "The organization SHOULD have a URL.",
    "ro-crate-1.1_22.3": "The `publisher` property of a `Root Data Entity` SHOULD be an `Organization`",
}
# The SHOULD no release meets honestly. The main workflow's @id is its copy's path in the release:
# Workflow RO-Crate wants that file in the crate (checked at REQUIRED, by fetching an absolute URL),
# so it cannot also be the absolute URI Process Run Crate asks of SoftwareSourceCode
# (roc-validator issue 51).
UNMET = {
    "process-run-crate-0.5_5.1": "The SoftwareApplication id SHOULD be an absolute URI",
}
CRATE_CONTEXT = "https://w3id.org/ro/crate/1.1/context"
CFFCONVERT = "cffconvert==2.0.0"


# --------------------------------------------------------------------------
# roc-validator, offline
# --------------------------------------------------------------------------
def offline_contexts():
    """The JSON-LD contexts a crate names, served from the installed rocrate package.

    Tests have no network, and roc-validator fetches the crate's @context twice: through rdflib
    (urllib) to read the graph and through requests to check it. rocrate 0.15.1 ships the RO-Crate
    1.1 context document; anything else is refused, so a crate naming another context fails.
    """
    document = importlib.resources.files("rocrate").joinpath("data/ro-crate.jsonld").read_bytes()
    assert json.loads(document)["@id"] == CRATE_CONTEXT, "the pinned rocrate no longer ships the 1.1 context"
    return {CRATE_CONTEXT: document}


def validate_crate(release, monkeypatch):
    """roc-validator's verdict on ``release``: (passed, [(severity, check, message)])."""
    documents = offline_contexts()

    class LocalContexts(urllib.request.BaseHandler):
        handler_order = 100  # before the network handlers

        def https_open(self, req):
            if req.full_url not in documents:
                raise urllib.error.URLError(f"no network in tests: {req.full_url}")
            headers = email.message.Message()
            headers["Content-Type"] = "application/ld+json"
            response = urllib.response.addinfourl(io.BytesIO(documents[req.full_url]), headers, req.full_url, 200)
            response.msg = "OK"
            return response

        http_open = https_open

    class LocalContextAdapter(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):
            if request.url not in documents:
                raise requests.ConnectionError(f"no network in tests: {request.url}")
            response = requests.Response()
            response.status_code, response._content, response.url = 200, documents[request.url], request.url
            response.request = request
            response.headers["Content-Type"] = "application/ld+json"
            return response

    monkeypatch.setattr(urllib.request, "_opener", urllib.request.build_opener(LocalContexts()))
    monkeypatch.setattr(requests.sessions, "HTTPAdapter", LocalContextAdapter)
    from rocrate_validator import models, services

    settings = models.ValidationSettings(
        rocrate_uri=str(release),
        profile_identifier=PROFILE,
        requirement_severity=models.Severity[SEVERITY],
        no_cache=True,
    )
    result = services.validate(settings)
    issues = [(str(i.severity), i.check.identifier, i.message) for i in result.get_issues()]
    return result.passed(), issues


def unmet(issues, expected):
    """Assert that the validator's ``issues`` are exactly the SHOULDs in ``expected``, and no MUST."""
    assert {(severity, check, message) for severity, check, message in issues} == {
        ("Severity.RECOMMENDED", check, message) for check, message in expected.items()
    }, f"roc-validator -p {PROFILE} -l {SEVERITY}: {issues}"


def entities(crate):
    return {e["@id"]: e for e in crate["@graph"]}


def as_list(value):
    return value if isinstance(value, list) else [value]


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------
# the crate of a real release
# --------------------------------------------------------------------------
def test_published_release_is_a_workflow_run_crate_that_roc_validator_accepts(render, snakemake, monkeypatch):
    repo = render(init_git="yes", project_name='Crate "Check" 🚀', version="1.2.3")
    snakemake(repo, "--profile", "profiles/local")
    snakemake(repo, "--profile", "profiles/local", "publish")
    release = (repo / "publish/current").resolve()
    manifest = load_json(release / "MANIFEST.json")
    crate = load_json(release / "ro-crate-metadata.json")
    size = (release / "ro-crate-metadata.json").stat().st_size
    print(f"ro-crate-metadata.json: {size} bytes for {len(manifest['files'])} published files")

    # the template's defaults: no repository URL yet, an author without a website
    unmet(validate_crate(release, monkeypatch)[1], NEEDS_PROJECT_DATA | UNMET)

    graph = entities(crate)
    assert crate["@context"][0] == CRATE_CONTEXT
    root = graph["./"]
    assert {p["@id"] for p in as_list(root["conformsTo"])} >= {
        "https://w3id.org/ro/wfrun/workflow/0.5",
        "https://w3id.org/ro/wfrun/process/0.5",
        "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
    }
    provenance = manifest["provenance"]
    workflow = graph[root["mainEntity"]["@id"]]
    assert workflow["name"] == 'Crate "Check" 🚀' and workflow["version"] == "1.2.3" == provenance["workflow_version"]
    assert graph[workflow["identifier"]["@id"]]["value"] == provenance["git_commit"] is not None
    assert graph[workflow["programmingLanguage"]["@id"]]["version"] == provenance["snakemake_version"]
    assert (release / workflow["@id"]).read_bytes() == (repo / "workflow/Snakefile").read_bytes()
    assert graph["https://spdx.org/licenses/MIT"]["identifier"] == "MIT"

    run = graph["#run"]
    assert run["instrument"]["@id"] == workflow["@id"]
    assert run["startTime"] <= run["endTime"]
    made_at = sorted(e["made_at"] for e in manifest["files"])
    assert run["endTime"].replace("+00:00", "Z") == re.sub(r"\.\d+Z$", "Z", made_at[-1])
    objects = [graph[o["@id"]] for o in as_list(run["object"])]
    assert graph["#config"]["value"] == provenance["config_sha256"]
    assert graph["#operating-context"]["value"] == "local"
    sheet = graph["config/samples.tsv"]  # small: included, and listed by checksum
    assert sheet in objects and sheet["sha256"] == sha256(repo / "config/samples.tsv") == sha256(release / sheet["@id"])
    # the sample files the sheet names: inputs of the run, by path, size and checksum
    inputs = {o["name"]: o for o in objects if o["@id"].startswith("#sample-file-")}
    assert sorted(inputs) == sorted(f"data/inputs/{sample}.txt" for sample in ("alpha", "beta", "gamma"))
    for path, described in inputs.items():
        assert described["@type"] == "File" and described["encodingFormat"] == "text/plain"
        assert described["sha256"] == sha256(repo / path)
        assert int(described["contentSize"]) == (repo / path).stat().st_size
    assert {"@id": "#param-sample-files"} in as_list(workflow["input"])
    # who ran it: the git identity where it was published (conftest's isolated_env)
    assert graph[run["agent"]["@id"]] == graph["#agent"] and graph["#agent"]["name"] == "Template Test"
    readme = graph["README.md"]
    assert readme["about"]["@id"] == "./" and readme["encodingFormat"] == "text/markdown"
    assert "sha256sum -c SHA256SUMS" in (release / "README.md").read_text()
    # every published file is a result, with its size and sha256, and nothing else is
    results = {r["@id"] for r in as_list(run["result"])}
    assert results == {e["path"] for e in manifest["files"]}
    for entry in manifest["files"]:
        described = graph[entry["path"]]
        assert described["@type"] == "File"
        assert int(described["contentSize"]) == entry["size"] == (release / entry["path"]).stat().st_size
        assert described["sha256"] == entry["sha256"] == sha256(release / entry["path"])
    # SHA256SUMS (and so the release name and verify) covers the crate and the copies it holds
    sums = dict(reversed(line.split("  ", 1)) for line in (release / "SHA256SUMS").read_text().splitlines())
    for name in ("ro-crate-metadata.json", "README.md", "workflow/Snakefile", "config/samples.tsv"):
        assert sums[name] == sha256(release / name), name

    # docs/releasing.md: a version bump reaches MANIFEST.json and the crate with the next release
    # and once CITATION.cff says where the repository is, the author's website and the lab that publishes
    # (docs/releasing.md), the crate says so too
    citation = repo / "CITATION.cff"
    text = citation.read_text().replace("version: '1.2.3'", "version: '1.3.0'")
    text = text.replace("    email:", "    website: 'https://lab.example.org'\n    email:", 1)
    text += "repository-code: 'https://git.example.org/lab/crate-check'\n"
    citation.write_text(text + "contact:\n  - name: 'Genomics Lab'\n    website: 'https://lab.example.org'\n")
    snakemake(repo, "--profile", "profiles/local", "--config", "top_words=2")
    snakemake(repo, "--profile", "profiles/local", "publish", "--config", "top_words=2")
    newer = (repo / "publish/current").resolve()
    assert newer != release
    assert load_json(newer / "MANIFEST.json")["provenance"]["workflow_version"] == "1.3.0"
    new_crate = entities(load_json(newer / "ro-crate-metadata.json"))
    new_workflow = new_crate[new_crate["./"]["mainEntity"]["@id"]]
    assert new_workflow["version"] == "1.3.0" and new_workflow["url"] == "https://git.example.org/lab/crate-check"
    assert new_crate["#author-1"]["url"] == "https://lab.example.org"
    publisher = new_crate[new_crate["./"]["publisher"]["@id"]]
    assert publisher["@type"] == "Organization" and publisher["name"] == "Genomics Lab"
    unmet(validate_crate(newer, monkeypatch)[1], UNMET)


# Each file's encodingFormat by its extension: (media type, EDAM format, its name). The media type is
# the one Python's mimetypes has registered (on Debian: /etc/mime.types from media-types), else
# application/octet-stream: VCF, BAM, SAM and BED have none (.vcf, .bed and .sam are registered for
# vCard, RealVNC and Lotus WordPro, not for the EDAM formats of those names). The EDAM format is the one
# the edam-ontology package names by the extension; a .gz file is gzip holding the EDAM format of the
# file inside; EDAM has no format for .txt or .fa.
EDAM = "http://edamontology.org/"
EXPECTED_FORMATS = {
    "calls.vcf": ("application/octet-stream", "format_3016", "VCF"),
    "aligned.bam": ("application/octet-stream", "format_2572", "BAM"),
    "aligned.sam": ("application/octet-stream", "format_2573", "SAM"),
    "peaks.bed": ("application/octet-stream", "format_3003", "BED"),
    "trimmed.fastq.gz": ("application/gzip", "format_1930", "FASTQ"),
    "plot.svg": ("image/svg+xml", "format_3604", "SVG"),
    "plot.png": ("image/png", "format_3603", "PNG"),
    "table.tsv": ("text/tab-separated-values", "format_3475", "TSV"),
    "summary.json": ("application/json", "format_3464", "JSON"),
    "report.html": ("text/html", "format_2331", "HTML"),
    "notes.txt": ("text/plain", None, None),
}


def described_format(graph, entity):
    """(media type, EDAM format id, its name) of ``entity``'s encodingFormat, as EXPECTED_FORMATS has them."""
    kind, *formats = as_list(entity["encodingFormat"])
    if not formats:
        return kind, None, None
    (edam,) = formats
    assert graph[edam["@id"]]["@type"] == "WebSite", graph[edam["@id"]]
    return kind, edam["@id"].removeprefix(EDAM), graph[edam["@id"]]["name"]


def test_a_release_types_its_files_and_lists_the_sample_files_with_checksums_up_to_a_size(
    mechanism, tmp_path, monkeypatch
):
    import publish
    import release_crate

    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    for name in EXPECTED_FORMATS:
        (tmp_path / "results" / name).write_text(f"{name}\n")
    (tmp_path / "data").mkdir()
    reads = {sample: tmp_path / f"data/{sample}.fastq.gz" for sample in ("s1", "s2")}
    for path in reads.values():
        path.write_bytes(b"@r1\nACGT\n+\nIIII\n")
    reference = tmp_path / "data/genome.fa"
    reference.write_bytes(b">chr1\n" + b"ACGT" * 100 + b"\n")
    monkeypatch.setattr(release_crate, "INPUT_SHA256_MAX_BYTES", 100)  # the reference is larger
    repo = mechanism.parent.parent
    describe = release_crate.describer(
        snakefile=repo / "workflow/Snakefile",
        citation=repo / "CITATION.cff",
        config_files=[],
        sample_sheet=None,
        sheet_max_bytes=0,
        job_times=("2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00"),
        repository_url=None,
        sample_files={sample: {"path": str(path), "reference": str(reference)} for sample, path in reads.items()},
    )
    entries = {name: f"results/{name}" for name in EXPECTED_FORMATS}
    release = Path(publish.publish(entries, provenance={"context": "test"}, describe=describe)["release"])

    graph = entities(load_json(release / "ro-crate-metadata.json"))
    assert {name: described_format(graph, graph[name]) for name in EXPECTED_FORMATS} == EXPECTED_FORMATS
    run_inputs = {graph[o["@id"]]["name"]: graph[o["@id"]] for o in as_list(graph["#run"]["object"])}
    for sample, path in reads.items():
        described = run_inputs[str(path)]
        assert described["@type"] == "File"
        assert described_format(graph, described) == EXPECTED_FORMATS["trimmed.fastq.gz"]
        assert described["sha256"] == sha256(path) and described["contentSize"] == str(path.stat().st_size)
        assert described["description"] == f"input file of sample {sample} (path)"
    shared = run_inputs[str(reference)]  # one entity for the file both samples name: by path and size only
    assert "sha256" not in shared and shared["contentSize"] == str(reference.stat().st_size)
    assert shared["encodingFormat"] == "application/octet-stream"  # FASTA's names in EDAM do not include fa
    assert (
        shared["description"]
        == "input file of sample s1 (reference), s2 (reference); not hashed: larger than 100 bytes"
    )
    assert len(run_inputs) == 3 + 2  # and the configuration's two values (#config, #operating-context)
    # the EDAM formats add no issue: RO-Crate 1.1 checks encodingFormat for a media type and a WebSite
    unmet(validate_crate(release, monkeypatch)[1], NEEDS_PROJECT_DATA | UNMET)


def test_a_sheet_over_the_size_limit_is_recorded_by_checksum_and_sha256sum_checks_the_crate(
    render, snakemake, tmp_path
):
    # tampering, for verify and sha256sum alike: test_publish_mechanism.py::test_verify_and_sha256sum_agree
    repo = render()
    snakemake(repo, "--profile", "profiles/local", "--config", "release_sample_sheet_max_bytes=0")
    snakemake(repo, "--profile", "profiles/local", "publish", "--config", "release_sample_sheet_max_bytes=0")
    release = (repo / "publish/current").resolve()
    assert not (release / "config/samples.tsv").exists()
    graph = entities(load_json(release / "ro-crate-metadata.json"))
    assert graph["#sample-sheet"]["value"] == sha256(repo / "config/samples.tsv")
    coreutils = run_command(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=release, env=isolated_env(tmp_path))
    assert coreutils.returncode == 0, coreutils
    assert {"ro-crate-metadata.json: OK", "MANIFEST.json: OK"} <= set(coreutils.stdout.splitlines())


@pytest.fixture(scope="module")
def cffconvert(tmp_path_factory):
    """cffconvert in a venv of its own: it pins jsonschema<4, which the workflows' Snakemake cannot use."""
    venv = tmp_path_factory.mktemp("cffconvert") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", CFFCONVERT],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return str(venv / "bin/cffconvert")


@pytest.mark.parametrize(
    "answers",
    [
        {},
        {
            "project_name": 'L\'analyse "rapide" des données 🧬',
            "author_name": "O'Brien & Ñúñez: lab #1",
            "description": "Counts: words, 'quotes' and \\backslashes\\ — all kept",
            "version": "2.0.1",
            "license": "none",
        },
    ],
    ids=["defaults", "quotes-unicode-no-license"],
)
def test_citation_cff_is_valid_and_holds_the_answers_verbatim(render, tmp_path, cffconvert, answers):
    repo = render(**answers)
    questions = json.loads((Path(__file__).parent.parent / "cookiecutter.json").read_text())
    expected = {key: answers.get(key, questions[key]) for key in ("project_name", "author_name", "version")}
    check = run_command([cffconvert, "--validate"], cwd=repo, env=isolated_env(tmp_path), timeout=120)
    assert check.returncode == 0 and "valid" in check.output.lower(), repr(check)
    cff = yaml.safe_load((repo / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["title"] == expected["project_name"]
    assert cff["authors"][0]["name"] == expected["author_name"]
    assert cff["version"] == expected["version"]
    assert cff.get("license") == (None if answers.get("license") == "none" else "MIT")
    changelog = (repo / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.findall(r"^## (\S+)$", changelog, re.M) == ["Unreleased", expected["version"]]
    releasing = (repo / "docs/releasing.md").read_text(encoding="utf-8")
    assert "`version` in `CITATION.cff`" in releasing and "provenance.workflow_version" in releasing
    assert "WORKFLOW_VERSION" not in (repo / "workflow/Snakefile").read_text(), "the version is written once"
