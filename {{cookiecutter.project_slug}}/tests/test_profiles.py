"""Profiles hold policy only (how and where jobs run), never meaning (what they compute).

Every context is a directory under profiles/: a new one is checked as soon as it exists.
"""

import os
from pathlib import Path

import pytest
import yaml
from contract import contexts, load_profile  # workflow/vendor/contract.py

from scratch import POLICY as SCRATCH_SETTINGS  # the policy settings and their values, defined by the mechanism
from shadow_route import POLICY as SHADOW_SETTINGS

POLICY = {**SCRATCH_SETTINGS, **SHADOW_SETTINGS}

REPO = Path(__file__).resolve().parents[1]
CONTEXTS = contexts(REPO)

# Settings that change what a run computes or which files it makes: meaning, never policy.
MEANING_KEYS = {
    "config",
    "configfile",
    "configfiles",
    "config-file",
    "snakefile",
    "s",
    "until",
    "omit-from",
    "forcerun",
    "forceall",
    "forcerun-rules",
    "allowed-rules",
    "target-jobs",
    "directory",
    "d",
    "batch",
    "set-scatter",
    "touch",
    "dry-run",
    "n",
}
SCRATCH_POLICY = ("tmpdir", *POLICY)


def profile(context):
    return load_profile(context, REPO)


def test_there_are_contexts():
    assert CONTEXTS, "profiles/<context>/config.yaml: at least one operating context"


@pytest.mark.parametrize("context", CONTEXTS)
def test_no_profile_sets_meaning(context):
    keys = {key.lstrip("-") for key in profile(context)}
    assert not keys & MEANING_KEYS, f"profiles/{context} sets meaning: {sorted(keys & MEANING_KEYS)}"
    for key in ("set-resources", "set-threads"):
        assert key not in keys, f"profiles/{context}: per-rule {key} belong in workflow/profiles/default/"


@pytest.mark.parametrize("context", CONTEXTS)
def test_every_profile_sets_the_scratch_policy(context):
    resources = profile(context).get("default-resources") or {}
    assert set(SCRATCH_POLICY) <= set(resources), f"profiles/{context} lacks {set(SCRATCH_POLICY) - set(resources)}"
    for setting, values in POLICY.items():
        assert resources[setting].strip("'\"") in values, f"profiles/{context}: {setting}"


@pytest.mark.parametrize("context", CONTEXTS)
def test_every_profile_gives_each_user_a_scratch_root_of_their_own(context, monkeypatch):
    # A node's temp dir is shared: a root one user made cannot be written by the next, so the
    # root's own name carries the uid. Evaluated as Snakemake does, with no node scratch variable.
    monkeypatch.setattr(os, "environ", {})
    root = eval(profile(context)["default-resources"]["tmpdir"], {"system_tmpdir": "/node-tmp"})
    assert os.path.dirname(root) == "/node-tmp", "one path component below the node temp dir"
    assert os.path.basename(root).endswith(f"-{os.getuid()}"), root


def test_the_workflow_profile_sets_only_per_rule_values():
    keys = set(yaml.safe_load((REPO / "workflow/profiles/default/config.yaml").read_text()))
    assert keys <= {"set-threads", "set-resources"}, "a top-level key here would replace the context's whole key"


def test_config_readme_documents_every_key_and_column():
    readme = (REPO / "config/README.md").read_text()
    for schema in ("config.schema.yaml", "samples.schema.yaml"):
        for key in yaml.safe_load((REPO / "workflow/schemas" / schema).read_text())["properties"]:
            assert f"| `{key}` |" in readme, f"{key} from {schema} is not documented in config/README.md"
