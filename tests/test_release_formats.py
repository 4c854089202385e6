"""Releases in the standard formats others read: an RO-Crate (Workflow Run Crate) that roc-validator accepts,
a SHA256SUMS that coreutils' sha256sum checks, and a CITATION.cff that cffconvert validates."""

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

# roc-validator's profile (with Process Run Crate 0.5, Workflow RO-Crate 1.0, RO-Crate 1.1): its MUSTs and SHOULDs
PROFILE = "workflow-run-crate-0.5"
SEVERITY = "RECOMMENDED"
# SHOULDs met once CITATION.cff has a repository URL, an author's website and a contact organisation (the publisher)
NEEDS_PROJECT_DATA = {
    "process-run-crate-0.5_3.2": "The Application SHOULD have a url",
    "ro-crate-1.1_31.2": "The organization SHOULD have a URL.",
    "ro-crate-1.1_22.3": "The `publisher` property of a `Root Data Entity` SHOULD be an `Organization`",
}
# never met: the main workflow's @id is its copy's path in the release, as Workflow RO-Crate requires, so
# it cannot be the absolute URI Process Run Crate asks for (roc-validator issue 51)
UNMET = {"process-run-crate-0.5_5.1": "The SoftwareApplication id SHOULD be an absolute URI"}
CRATE_CONTEXT = "https://w3id.org/ro/crate/1.1/context"
CFFCONVERT = "cffconvert==2.0.0"


def assert_unmet(release, monkeypatch, expected):
    """roc-validator's issues with ``release`` are exactly the SHOULDs in ``expected``, and no MUST. Offline: the
    crate's @context (fetched by urllib and requests) is the RO-Crate 1.1 context the rocrate package ships."""
    document = importlib.resources.files("rocrate").joinpath("data/ro-crate.jsonld").read_bytes()
    assert json.loads(document)["@id"] == CRATE_CONTEXT, "the pinned rocrate no longer ships the 1.1 context"

    def served(url, refusal):
        if url != CRATE_CONTEXT:
            raise refusal(f"no network in tests: {url}")
        return document

    class LocalContexts(urllib.request.BaseHandler):
        handler_order = 100  # before the network handlers

        def https_open(self, req):
            headers = email.message.Message()
            headers["Content-Type"] = "application/ld+json"
            body = io.BytesIO(served(req.full_url, urllib.error.URLError))
            response = urllib.response.addinfourl(body, headers, req.full_url, 200)
            response.msg = "OK"
            return response

        http_open = https_open

    class LocalContextAdapter(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):
            response = requests.Response()
            response.status_code, response.url = 200, request.url
            response._content = served(request.url, requests.ConnectionError)
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
    issues = {(str(i.severity), i.check.identifier, i.message) for i in services.validate(settings).get_issues()}
    assert issues == {("Severity.RECOMMENDED", *item) for item in expected.items()}, f"{PROFILE} -l {SEVERITY}"


def entities(crate):
    return {e["@id"]: e for e in crate["@graph"]}


def as_list(value):
    return value if isinstance(value, list) else [value]


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def assert_sha256sum_ok(release, names):
    """coreutils' sha256sum -c accepts the release's SHA256SUMS, which covers ``names``."""
    check = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=release, capture_output=True, text=True)
    assert check.returncode == 0 and {f"{n}: OK" for n in names} <= set(check.stdout.splitlines()), check


def test_a_release_records_its_provenance_and_is_a_workflow_run_crate_that_roc_validator_accepts(
    render, snakemake, monkeypatch
):
    """Also: publishing from a git work tree with uncommitted changes is recorded and warned about."""
    repo = render(init_git="yes", project_name='Crate "Check" 🚀', version="1.2.3")
    snakemake(repo, "--profile", "profiles/local")
    assert "uncommitted changes" not in snakemake(repo, "--profile", "profiles/local", "publish").output
    release = (repo / "publish/current").resolve()
    manifest = load_json(release / "MANIFEST.json")
    crate = load_json(release / "ro-crate-metadata.json")
    assert_unmet(release, monkeypatch, NEEDS_PROJECT_DATA | UNMET)  # the defaults: no repository URL, no website
    graph = entities(crate)
    assert crate["@context"][0] == CRATE_CONTEXT
    root = graph["./"]
    profiles = ("ro/wfrun/workflow/0.5", "ro/wfrun/process/0.5", "workflowhub/workflow-ro-crate/1.0")
    assert {p["@id"] for p in as_list(root["conformsTo"])} >= {f"https://w3id.org/{p}" for p in profiles}
    provenance = manifest["provenance"]
    assert provenance["git_dirty"] is False and len(provenance["git_commit"]) == 40 and provenance["context"] == "local"
    assert len(provenance["config_sha256"]) == 64 and provenance["snakemake_version"].startswith("9.")
    workflow = graph[root["mainEntity"]["@id"]]
    assert workflow["name"] == 'Crate "Check" 🚀' and workflow["version"] == "1.2.3" == provenance["workflow_version"]
    assert graph[workflow["identifier"]["@id"]]["value"] == provenance["git_commit"] is not None
    assert graph[workflow["programmingLanguage"]["@id"]]["version"] == provenance["snakemake_version"]
    assert (release / workflow["@id"]).read_bytes() == (repo / "workflow/Snakefile").read_bytes()
    assert graph["https://spdx.org/licenses/MIT"]["identifier"] == "MIT"
    run = graph["#run"]
    assert run["instrument"]["@id"] == workflow["@id"] and run["startTime"] <= run["endTime"]
    made_at = sorted(e["made_at"] for e in manifest["files"])
    assert run["endTime"].replace("+00:00", "Z") == re.sub(r"\.\d+Z$", "Z", made_at[-1])
    objects = [graph[o["@id"]] for o in as_list(run["object"])]
    assert graph["#config"]["value"] == provenance["config_sha256"]
    assert graph["#operating-context"]["value"] == "local"
    sheet = graph["config/samples.tsv"]  # small: included, and listed by checksum
    assert sheet in objects and sheet["sha256"] == sha256(repo / "config/samples.tsv") == sha256(release / sheet["@id"])
    inputs = {o["name"]: o for o in objects if o["@id"].startswith("#sample-file-")}  # the files the sheet names
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
    assert {r["@id"] for r in as_list(run["result"])} == {e["path"] for e in manifest["files"]}
    for entry in manifest["files"]:
        described = graph[entry["path"]]
        assert described["@type"] == "File"
        assert int(described["contentSize"]) == entry["size"] == (release / entry["path"]).stat().st_size
        assert described["sha256"] == entry["sha256"] == sha256(release / entry["path"])
    # SHA256SUMS (so the release name and verify) covers the crate and the copies it holds
    assert_sha256sum_ok(release, ["ro-crate-metadata.json", "README.md", "workflow/Snakefile", "config/samples.tsv"])
    # docs/releasing.md: a version bump, the repository's URL, an author's website and the publishing lab
    # in CITATION.cff (uncommitted) reach the next release; a sample sheet over the size limit is recorded by checksum
    citation = repo / "CITATION.cff"
    text = citation.read_text().replace("version: '1.2.3'", "version: '1.3.0'")
    text = text.replace("    email:", "    website: 'https://lab.example.org'\n    email:", 1)
    text += "repository-code: 'https://git.example.org/lab/crate-check'\n"
    citation.write_text(text + "contact:\n  - name: 'Genomics Lab'\n    website: 'https://lab.example.org'\n")
    config = ("--config", "top_words=2", "release_sample_sheet_max_bytes=0")
    snakemake(repo, "--profile", "profiles/local", *config)
    assert "uncommitted changes" in snakemake(repo, "--profile", "profiles/local", "publish", *config).output
    newer = (repo / "publish/current").resolve()
    assert newer != release
    new_provenance = load_json(newer / "MANIFEST.json")["provenance"]
    assert new_provenance["workflow_version"] == "1.3.0" and new_provenance["git_dirty"] is True
    new_crate = entities(load_json(newer / "ro-crate-metadata.json"))
    new_workflow = new_crate[new_crate["./"]["mainEntity"]["@id"]]
    assert new_workflow["version"] == "1.3.0" and new_workflow["url"] == "https://git.example.org/lab/crate-check"
    assert new_crate["#author-1"]["url"] == "https://lab.example.org"
    publisher = new_crate[new_crate["./"]["publisher"]["@id"]]
    assert publisher["@type"] == "Organization" and publisher["name"] == "Genomics Lab"
    assert not (newer / "config/samples.tsv").exists()
    assert new_crate["#sample-sheet"]["value"] == sha256(repo / "config/samples.tsv")
    assert_sha256sum_ok(newer, ["ro-crate-metadata.json", "MANIFEST.json"])
    assert_unmet(newer, monkeypatch, UNMET)


# encodingFormat by extension: (media type, EDAM format, its name). The media type is Python's mimetypes' (on
# Debian /etc/mime.types), else application/octet-stream: .vcf, .bed and .sam are registered for other formats;
# the EDAM format is the edam-ontology package's for the extension (for .gz, of the file inside; none for .txt).
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
    assert_unmet(release, monkeypatch, NEEDS_PROJECT_DATA | UNMET)


@pytest.fixture(scope="module")
def cffconvert(tmp_path_factory):
    """cffconvert in a venv of its own: it pins jsonschema<4, which the workflows' Snakemake cannot use."""
    venv = tmp_path_factory.mktemp("cffconvert") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", CFFCONVERT]
    install = subprocess.run(pip, capture_output=True, text=True, timeout=600)
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
    assert (cff["title"], cff["authors"][0]["name"], cff["version"]) == tuple(expected.values())
    assert cff.get("license") == (None if answers.get("license") == "none" else "MIT")
    changelog = (repo / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.findall(r"^## (\S+)$", changelog, re.M) == ["Unreleased", expected["version"]]
    releasing = (repo / "docs/releasing.md").read_text(encoding="utf-8")
    assert "`version` in `CITATION.cff`" in releasing and "provenance.workflow_version" in releasing
    assert "WORKFLOW_VERSION" not in (repo / "workflow/Snakefile").read_text(), "the version is written once"
