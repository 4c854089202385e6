"""Releases in the standard formats others read: an RO-Crate (Workflow Run Crate profile) checked by
roc-validator, a SHA256SUMS that coreutils' sha256sum -c agrees on with publish.py verify, and the
citation metadata (CITATION.cff) checked by cffconvert. Real cookiecutter, real snakemake CLI."""

import email.message
import hashlib
import importlib.resources
import io
import json
import os
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
# RO-Crate 1.0 and RO-Crate 1.1) and the severity at which a crate conforms: its MUST requirements.
PROFILE = "workflow-run-crate-0.5"
SEVERITY = "REQUIRED"
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

    passed, issues = validate_crate(release, monkeypatch)
    assert passed, f"roc-validator -p {PROFILE} -l {SEVERITY}: {issues}"

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
    for name in ("ro-crate-metadata.json", "workflow/Snakefile", "config/samples.tsv"):
        assert sums[name] == sha256(release / name), name

    # docs/releasing.md: a version bump reaches MANIFEST.json and the crate with the next release
    snakefile = repo / "workflow/Snakefile"
    snakefile.write_text(snakefile.read_text().replace('WORKFLOW_VERSION = "1.2.3"', 'WORKFLOW_VERSION = "1.3.0"'))
    snakemake(repo, "--profile", "profiles/local", "--config", "top_words=2")
    snakemake(repo, "--profile", "profiles/local", "publish", "--config", "top_words=2")
    newer = (repo / "publish/current").resolve()
    assert newer != release
    assert load_json(newer / "MANIFEST.json")["provenance"]["workflow_version"] == "1.3.0"
    new_crate = entities(load_json(newer / "ro-crate-metadata.json"))
    assert new_crate[new_crate["./"]["mainEntity"]["@id"]]["version"] == "1.3.0"


def test_sha256sum_and_verify_agree_on_a_good_and_a_tampered_release(render, snakemake, tmp_path):
    repo = render()
    # a sheet larger than the limit (here: any) is recorded by checksum only, not copied
    snakemake(repo, "--profile", "profiles/local", "--config", "release_sample_sheet_max_bytes=0")
    snakemake(repo, "--profile", "profiles/local", "publish", "--config", "release_sample_sheet_max_bytes=0")
    release = (repo / "publish/current").resolve()
    assert not (release / "config/samples.tsv").exists()
    graph = entities(load_json(release / "ro-crate-metadata.json"))
    assert graph["#sample-sheet"]["value"] == sha256(repo / "config/samples.tsv")

    env = isolated_env(tmp_path)

    def both():
        verify = run_command(
            [sys.executable, "workflow/scripts/publish.py", "verify", str(release)], cwd=repo, env=env, timeout=120
        )
        coreutils = run_command(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=release, env=env, timeout=120)
        return verify, coreutils

    verify, coreutils = both()
    assert verify.returncode == 0 and coreutils.returncode == 0, (verify, coreutils)
    listed = coreutils.stdout.splitlines()
    assert "ro-crate-metadata.json: OK" in listed and "MANIFEST.json: OK" in listed and "summary.tsv: OK" in listed

    for target in ("summary.tsv", "ro-crate-metadata.json"):
        victim = release / target
        original = victim.read_bytes()
        os.chmod(release, 0o755)
        os.chmod(victim, 0o644)
        victim.write_bytes(original.replace(b"e", b"E", 1))
        try:
            verify, coreutils = both()
            assert verify.returncode != 0 and target in verify.output, verify
            assert coreutils.returncode != 0 and f"{target}: FAILED" in coreutils.stdout, coreutils
        finally:
            victim.write_bytes(original)
            os.chmod(victim, 0o444)
            os.chmod(release, 0o555)
    verify, coreutils = both()
    assert verify.returncode == 0 and coreutils.returncode == 0, "restored: both agree it is intact again"


# --------------------------------------------------------------------------
# citation metadata
# --------------------------------------------------------------------------
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
    assert "WORKFLOW_VERSION" in releasing and "provenance.workflow_version" in releasing
    # the version a release records is the one CITATION.cff and CHANGELOG.md start at
    assert f'WORKFLOW_VERSION = "{expected["version"]}"' in (repo / "workflow/Snakefile").read_text()
