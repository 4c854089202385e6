"""Render a matrix of option combinations and check what comes out, file by file."""

import hashlib
import json
import py_compile
import re
import sys

import pytest
import yaml
from conftest import TEMPLATE, hand_over, isolated_env, load_json, run_command, tool, workflow_user
from slurm_cluster import configure_site

COMMON_FILES = {
    ".gitignore",
    ".template-answers.json",
    "CHANGELOG.md",
    "CITATION.cff",
    ".pre-commit-config.yaml",
    ".snakemake-workflow-catalog.yml",
    "Makefile",
    "README.md",
    "environment.yaml",
    "pyproject.toml",
    "requirements.txt",
    "config/README.md",
    "config/config.yaml",
    "config/samples.tsv",
    "data/inputs/alpha.txt",
    "data/inputs/beta.txt",
    "data/inputs/gamma.txt",
    "docs/customising.md",
    "docs/operations.md",
    "docs/ownership.md",
    "docs/releasing.md",
    "docs/rule-kinds.md",
    "docs/using-as-a-module.md",
    "profiles/ci/config.yaml",
    "profiles/local/config.yaml",
    "profiles/slurm/config.yaml",
    "profiles/cluster-sim/config.yaml",
    "profiles/cluster-sim/submit",
    "profiles/cluster-sim/status",
    "profiles/cluster-sim/cancel",
    "tests/conftest.py",
    "tests/test_example.py",
    "tests/test_profiles.py",
    "tests/test_vendor.py",
    "tests/test_workflow.py",
    "tests/volatile_outputs.py",
    "workflow/Snakefile",
    "workflow/envs/base.yaml",
    "workflow/profiles/default/config.yaml",
    "workflow/report/manifest.rst",
    "workflow/report/report.rst",
    "workflow/rules/aggregate.smk",
    "workflow/rules/common.smk",
    "workflow/rules/contract.smk",
    "workflow/rules/helpers.smk",
    "workflow/rules/process.smk",
    "workflow/rules/publish.smk",
    "workflow/schemas/config.schema.yaml",
    "workflow/schemas/samples.schema.yaml",
    "workflow/scripts/render_report.py",
    "workflow/scripts/summarize_sample.py",
    "workflow/scripts/summary_table.py",
    "workflow/vendor/README.md",
    "workflow/vendor/SHA256SUMS",
    "workflow/vendor/checksums.py",
    "workflow/vendor/contract.py",
    "workflow/vendor/durable.py",
    "workflow/vendor/jupyter_nbconvert_config.py",
    "workflow/vendor/module_profile.py",
    "workflow/vendor/publish.py",
    "workflow/vendor/release_crate.py",
    "workflow/vendor/render_docs.py",
    "workflow/vendor/samplesheet.py",
    "workflow/vendor/scheduler.py",
    "workflow/vendor/scratch.py",
    "workflow/vendor/shadow_route.py",
}
# each CI service with the bot that keeps its actions/image and the pins current
CI_FILES = {
    "github": {".github/workflows/ci.yml", ".github/dependabot.yml"},
    "gitlab": {".gitlab-ci.yml", "renovate.json"},
    "none": set(),
}
LICENSE_FIRST_LINE = {"MIT": "MIT License", "BSD-3-Clause": "BSD 3-Clause License", "Apache-2.0": "Apache License"}

# Every choice of every option appears at least once (a test checks that against cookiecutter.json);
# no combination is invalid.
MATRIX = [
    {},
    {"license": "BSD-3-Clause", "ci": "gitlab", "init_git": "yes"},
    {"license": "Apache-2.0", "ci": "none", "project_name": "Métagénomique QC"},
    {"license": "none", "ci": "github", "python_version": "3.12", "init_git": "no"},
]


def test_the_matrix_uses_every_choice_of_every_menu_and_yes_no_question():
    questions = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    for key, default in questions.items():
        if isinstance(default, list):
            assert {answers.get(key, default[0]) for answers in MATRIX} == set(default), key
        elif isinstance(default, bool):  # the render fixture answers no unless told
            assert {answers.get(key, "no") for answers in MATRIX} == {"yes", "no"}, key


def expected_files(answers):
    files = set(COMMON_FILES) | CI_FILES[answers.get("ci", "github")]
    if answers.get("license", "MIT") != "none":
        files.add("LICENSE")
    return files


def generated_files(repo):
    return {
        str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file() and ".git" not in p.relative_to(repo).parts
    }


@pytest.fixture(params=MATRIX, ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()) or "defaults")
def rendered(request, render):
    return request.param, render(**request.param)


def test_exact_set_of_generated_files(rendered):
    answers, repo = rendered
    assert generated_files(repo) == expected_files(answers)
    assert (repo / ".git").is_dir() == (answers.get("init_git") == "yes")


def test_no_template_syntax_survives(rendered):
    _, repo = rendered
    for rel in generated_files(repo):
        text = (repo / rel).read_text(encoding="utf-8")
        assert "{{" not in text and "{%" not in text and "{#" not in text, rel


def test_every_vendored_file_names_the_template_release_and_its_sha256_is_recorded(rendered):
    answers, repo = rendered
    version = load_json(TEMPLATE / "cookiecutter.json")["_template_version"]
    vendored = sorted(p.name for p in (repo / "workflow/vendor").iterdir() if p.name != "SHA256SUMS")
    assert "publish.py" in vendored and "scheduler.py" in vendored
    for name in vendored:
        text = (repo / "workflow/vendor" / name).read_text()
        assert f"From the Snakemake repository template, release {version}." in text, name
    sums = (repo / "workflow/vendor/SHA256SUMS").read_text().splitlines()
    recorded = {name: digest for digest, name in (line.split("  ", 1) for line in sums)}
    assert recorded == {n: hashlib.sha256((repo / "workflow/vendor" / n).read_bytes()).hexdigest() for n in vendored}


def test_the_answers_file_holds_the_answers(rendered):
    answers, repo = rendered
    recorded = load_json(repo / ".template-answers.json")
    asked = [k for k in load_json(TEMPLATE / "cookiecutter.json") if not k.startswith("_")]
    assert sorted(recorded) == sorted(asked)
    for key, value in answers.items():
        assert recorded[key] == ({"yes": True, "no": False}[value] if key == "init_git" else value), key


def ownership_rows(repo):
    """[(alternatives, whose)] of the table in the generated docs/ownership.md. A row names paths; paths
    joined by " or " are alternatives, one of which exists (cruft and cookiecutter keep the answers apart)."""
    rows = []
    for line in (repo / "docs/ownership.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            rows.append(([re.findall(r"`([^`]+)`", each) for each in cells[0].split(" or ")], cells[1]))
    return rows


def test_the_ownership_table_covers_every_generated_file_and_names_only_files_that_exist(rendered):
    _, repo = rendered
    rows = ownership_rows(repo)
    assert {whose for _, whose in rows} == {"yours", "the template's", "yours, template lines"}
    missing = [
        alternatives
        for alternatives, _ in rows
        if not any(all((repo / p).exists() for p in paths) for paths in alternatives)
    ]
    assert missing == []
    named = [path for alternatives, _ in rows for paths in alternatives for path in paths]
    existing = [path for path in named if (repo / path).exists()]
    assert [path for path in existing if (repo / path).is_dir() != path.endswith("/")] == [], "a folder's row ends in /"
    folders = [path for path in named if path.endswith("/")]
    uncovered = [f for f in generated_files(repo) if f not in named and not any(f.startswith(d) for d in folders)]
    assert sorted(uncovered) == []


def test_every_yaml_and_json_file_parses(rendered):
    _, repo = rendered
    for rel in generated_files(repo):
        if rel.endswith((".yaml", ".yml", ".cff")):
            assert yaml.safe_load((repo / rel).read_text()) is not None, rel
        elif rel.endswith(".json"):
            json.loads((repo / rel).read_text())


def test_every_python_file_compiles(rendered, tmp_path):
    _, repo = rendered
    scripts = [r for r in generated_files(repo) if r.endswith(".py") or r.startswith("profiles/cluster-sim/")]
    scripts = [r for r in scripts if not r.endswith(".yaml")]
    assert len(scripts) > 10
    for rel in scripts:
        py_compile.compile(str(repo / rel), cfile=str(tmp_path / "x.pyc"), doraise=True)


def test_license_follows_the_answer_and_slurm_site_settings_ship_commented_or_with_safe_defaults(rendered):
    answers, repo = rendered
    choice = answers.get("license", "MIT")
    if choice != "none":
        assert (repo / "LICENSE").read_text().lstrip().startswith(LICENSE_FIRST_LINE[choice])
    text = (repo / "profiles/slurm/config.yaml").read_text()
    slurm = yaml.safe_load(text)
    res = slurm["default-resources"]
    assert slurm["latency-wait"] == 60 and res["runtime"] == 30
    assert "environ.get('SLURM_TMPDIR')" in res["tmpdir"]
    for key in ("slurm_account", "slurm_partition"):
        assert key not in res, f"{key}: no site default exists, so none is set"
        assert re.search(rf"^  # {key}: .*# site setting: ", text, re.M), f"{key}: a commented line to fill in"
    catalog = yaml.safe_load((repo / ".snakemake-workflow-catalog.yml").read_text())
    assert "--profile profiles/" in catalog["usage"]["mandatory-flags"]["flags"]


def test_bare_snakemake_lint_as_the_workflow_catalog_runs_it_finds_nothing_and_snakefmt_passes(rendered, tmp_path):
    _, repo = rendered
    env = isolated_env(tmp_path)
    # exactly what the workflow catalog's crawler and the common lint CI action run: no profile
    lint = run_command([tool("snakemake"), "--lint"], cwd=repo, env=env, timeout=300)
    assert lint.returncode == 0 and "Lints for" not in lint.output, repr(lint)
    assert "your workflow is in a good condition" in lint.output, repr(lint)
    fmt = run_command([tool("snakefmt"), "--check", "workflow"], cwd=repo, env=env, timeout=300)
    assert fmt.returncode == 0, repr(fmt)
    ruff = run_command([tool("ruff"), "check", "workflow", "tests", "profiles"], cwd=repo, env=env, timeout=300)
    assert ruff.returncode == 0, repr(ruff)


# A helper of the user's own (helpers.smk) and a rule file of theirs that uses it (rules only).
USER_HELPERS = """

SHOUT_MARK = "!"


def shout_mark(wildcards):
    return SHOUT_MARK * len(wildcards.sample)
"""
USER_RULES = """rule shout:
    input:
        text=sample_file,
    output:
        shout="results/shout/{sample}.txt",
    log:
        "logs/shout/{sample}.log",
    conda:
        "../envs/base.yaml"
    params:
        mark=shout_mark,
    shell:
        scratch(
            "exec 2> {log:q}; tr a-z A-Z < {input.text:q} > {output.shout:q};"
            " echo {params.mark:q} >> {output.shout:q}"
        )
"""
# Third-party code as a local copy of snakemake-wrappers brings it: `snakemake` is injected (F821 to ruff),
# and its test Snakefile is not formatted as snakefmt would.
WRAPPER_COPY = {
    "workflow/wrappers/bio/x/wrapper.py": 'shell("echo {snakemake.input}")\n',
    "workflow/wrappers/bio/x/test/Snakefile": 'rule test_x:\n  input: "a"\n  output: "b"\n  wrapper: "master/bio/x"\n',
}


def test_user_helpers_go_in_helpers_smk_and_lint_skips_a_local_wrapper_copy(render, tmp_path):
    repo = render()
    helpers = (repo / "workflow/rules/helpers.smk").read_text()
    assert not re.search(r"^\s*rule\b", helpers, re.M), "helpers.smk ships without rules"
    snakefile = repo / "workflow/Snakefile"
    text = snakefile.read_text()
    assert 'include: "rules/contract.smk"\ninclude: "rules/helpers.smk"\n' in text
    (repo / "workflow/rules/helpers.smk").write_text(helpers + USER_HELPERS)
    (repo / "workflow/rules/shout.smk").write_text(USER_RULES)
    snakefile.write_text(
        text.replace('include: "rules/helpers.smk"\n', 'include: "rules/helpers.smk"\ninclude: "rules/shout.smk"\n')
    )
    for rel, content in WRAPPER_COPY.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(content)
    hand_over(repo, workflow_user())
    env = isolated_env(tmp_path)
    user = workflow_user()

    lint = run_command([tool("snakemake"), "--lint"], cwd=repo, env=env, timeout=300, user=user)
    assert lint.returncode == 0 and "Lints for" not in lint.output, repr(lint)
    assert "your workflow is in a good condition" in lint.output, repr(lint)
    ruff = run_command([tool("ruff"), "check", "workflow", "tests", "profiles"], cwd=repo, env=env, user=user)
    assert ruff.returncode == 0, repr(ruff)
    # the whole lint target as generated (snakefmt and ruff format too), with this suite's tools
    make = run_command(["make", "lint", f"PYTHON={sys.executable}"], cwd=repo, env=env, timeout=300, user=user)
    assert make.returncode == 0, repr(make)
    # a file of the copy named on the command line (editors, pre-commit) is skipped as well
    wrapper = "workflow/wrappers/bio/x/wrapper.py"
    named = run_command([tool("ruff"), "check", wrapper], cwd=repo, env=env, user=user)
    assert named.returncode == 0, repr(named)
    hooks = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())
    assert all(re.search(hooks["exclude"], rel) for rel in WRAPPER_COPY), "pre-commit skips the copy"
    assert not re.search(hooks["exclude"], "workflow/rules/helpers.smk")


def test_ci_answer_none_leaves_no_ci_configuration(render):
    repo = render(ci="none")
    assert not (repo / ".github").exists() and not (repo / ".gitlab-ci.yml").exists()


def test_generated_docs_show_the_slurm_site_settings_as_generated_and_as_a_site_fills_them_in(render, tmp_path):
    repo = render()
    ops = (repo / "docs/operations.md").read_text()
    assert "| account (`slurm_account`) | *not set* (the site's default) |" in ops
    assert "| partition (`slurm_partition`) | *not set* (the site's default) |" in ops
    assert "| latency-wait (s) (`latency-wait`) | 60 |" in ops
    configure_site(repo, account="proj42", partition="gpu", scratch_env="LOCAL_SCRATCH")
    profile = repo / "profiles/slurm/config.yaml"
    profile.write_text(profile.read_text().replace("\nlatency-wait: 60 ", "\nlatency-wait: 90 "))
    env = isolated_env(tmp_path)
    run = run_command([sys.executable, "workflow/vendor/render_docs.py"], cwd=repo, env=env, user=workflow_user())
    assert run.returncode == 0, repr(run)
    ops = (repo / "docs/operations.md").read_text()
    assert "| account (`slurm_account`) | proj42 |" in ops
    assert "| partition (`slurm_partition`) | gpu |" in ops
    assert "| latency-wait (s) (`latency-wait`) | 90 |" in ops
    assert re.search(r"\| `slurm` \| slurm \| 100 \| .*? \| 90 \|", ops)
    assert re.search(r"\| scratch root \(`tmpdir`\) \| `\(__import__\('os'\)\.environ\.get\('LOCAL_SCRATCH'\)", ops)


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_dependency_bot_config_watches_the_ci_and_the_pins(render, ci):
    repo = render(ci=ci)
    if ci == "github":
        bot = yaml.safe_load((repo / ".github/dependabot.yml").read_text())
        assert bot["version"] == 2
        assert {(u["package-ecosystem"], u["directory"]) for u in bot["updates"]} == {
            ("github-actions", "/"),
            ("pip", "/"),
        }
        workflow = (repo / ".github/workflows/ci.yml").read_text()
        # current majors (the bot keeps them so from here on)
        for action in ("actions/checkout@v6", "actions/setup-python@v6", "actions/upload-artifact@v7"):
            assert action in workflow, action
    else:
        bot = json.loads((repo / "renovate.json").read_text())
        assert set(bot["enabledManagers"]) == {"pip_requirements", "gitlabci"}
        assert bot["$schema"].endswith("renovate-schema.json")
