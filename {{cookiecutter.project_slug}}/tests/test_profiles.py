"""Profiles hold policy only; the workflow holds meaning only; the docs say what the files say."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONTEXTS = ["local", "ci", "slurm", "cluster-sim"]

# Every key a context profile may set: how and where jobs run, never what they compute.
POLICY_KEYS = {
    "executor",
    "jobs",
    "cores",
    "local-cores",
    "latency-wait",
    "rerun-incomplete",
    "keep-going",
    "retries",
    "show-failed-logs",
    "printshellcmds",
    "max-jobs-per-second",
    "max-status-checks-per-second",
    "default-resources",
    "slurm-logdir",
    "slurm-keep-successful-logs",
    "slurm-init-seconds-before-status-checks",
    "slurm-status-command",
    "slurm-requeue",
    "slurm-no-requeue",
    "slurm-jobname-prefix",
    "slurm-qos",
    "cluster-generic-submit-cmd",
    "cluster-generic-status-cmd",
    "cluster-generic-cancel-cmd",
    "cluster-generic-cancel-nargs",
    "seconds-between-status-checks",
    "software-deployment-method",
}
# Keys that would change meaning (samples, outputs, targets) and so never belong in a profile.
MEANING_KEYS = {
    "config",
    "configfile",
    "configfiles",
    "snakefile",
    "until",
    "omit-from",
    "forcerun",
    "allowed-rules",
    "target-jobs",
    "directory",
    "set-scatter",
    "batch",
}
POLICY_RESOURCES = {
    "tmpdir",
    "scratch_staging",
    "scratch_on_failure",
    "slurm_account",
    "slurm_partition",
    "runtime",
    "mem_mb",
    "disk_mb",
}


def profile(context):
    return yaml.safe_load((REPO / "profiles" / context / "config.yaml").read_text())


@pytest.mark.parametrize("context", CONTEXTS)
def test_every_profile_key_is_an_allowed_policy_key(context):
    keys = set(profile(context))
    assert not keys & MEANING_KEYS, f"profiles/{context} sets meaning: {keys & MEANING_KEYS}"
    assert keys <= POLICY_KEYS, f"profiles/{context} sets keys not on the policy allow-list: {keys - POLICY_KEYS}"


@pytest.mark.parametrize("context", CONTEXTS)
def test_every_profile_sets_the_scratch_policy_and_only_policy_resources(context):
    resources = profile(context)["default-resources"]
    assert {"tmpdir", "scratch_staging", "scratch_on_failure"} <= set(resources)
    assert set(resources) <= POLICY_RESOURCES
    assert resources["scratch_staging"].strip("'\"") in {"link", "copy"}
    assert resources["scratch_on_failure"].strip("'\"") in {"keep", "remove"}


@pytest.mark.parametrize("context", CONTEXTS)
def test_every_profile_gives_each_user_a_scratch_root_of_their_own(context, monkeypatch):
    # A node's temp dir is shared: a root that one user made (mode 755) cannot be written by
    # the next, so the root's own name carries the uid. Evaluated as Snakemake does, with
    # no node scratch variable set (the fallback every context may reach).
    monkeypatch.setattr(os, "environ", {})
    root = eval(profile(context)["default-resources"]["tmpdir"], {"system_tmpdir": "/node-tmp"})
    assert os.path.dirname(root) == "/node-tmp", "one path component below the node temp dir"
    assert os.path.basename(root).endswith(f"-{os.getuid()}"), root


@pytest.mark.parametrize("context", CONTEXTS)
def test_every_profile_setting_has_a_reason_comment(context):
    for lineno, line in enumerate((REPO / "profiles" / context / "config.yaml").read_text().splitlines(), 1):
        if re.match(r"^\s*[\w-]+:\s*\S", line):
            assert " # " in line, f"profiles/{context}/config.yaml:{lineno} has no reason comment: {line!r}"


def test_workflow_profile_sets_only_per_rule_values():
    keys = set(yaml.safe_load((REPO / "workflow/profiles/default/config.yaml").read_text()))
    assert keys <= {"set-threads", "set-resources"}, "a top-level key here would replace the context's whole key"


def test_no_profiles_default_folder_that_snakemake_would_load_silently():
    assert not (REPO / "profiles" / "default").exists()
    assert not (REPO / "default").exists()


def test_workflow_hard_codes_no_scratch_path_and_no_latency():
    pattern = re.compile(r"""(?:^|[\s'"=(])/(?:tmp|scratch)\b|\$TMPDIR|SLURM_TMPDIR|latency[-_]wait""", re.I)
    offenders = []
    for path in (REPO / "workflow").rglob("*"):
        if path.is_file() and path.suffix in {".smk", ".py", ""} and "profiles" not in path.parts:
            if path.name in {"scratch.py", "render_docs.py"}:
                continue  # these read the policy (to apply it, to document it); they do not set it
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{lineno}: {line.strip()}")
    assert offenders == []


def test_generated_docs_match_the_files_they_describe():
    proc = subprocess.run(
        [sys.executable, "workflow/scripts/render_docs.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_config_readme_documents_every_key_and_column():
    readme = (REPO / "config/README.md").read_text()
    for schema in ("config.schema.yaml", "samples.schema.yaml"):
        for key in yaml.safe_load((REPO / "workflow/schemas" / schema).read_text())["properties"]:
            assert f"| `{key}` |" in readme, f"{key} from {schema} is not documented in config/README.md"
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    assert set(config) <= set(yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"])
