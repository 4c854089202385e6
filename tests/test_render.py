"""Render a matrix of option combinations and check what comes out, file by file."""

import hashlib
import json
import py_compile
import re
import sys

import pytest
import yaml
from conftest import TEMPLATE, hand_over, isolated_env, load_json, run_command, tool, workflow_user

FOLDERS = {  # folder: the files every generated repository has in it
    "": ".gitignore .template-answers.json CHANGELOG.md CITATION.cff .pre-commit-config.yaml Makefile README.md"
    " .snakemake-workflow-catalog.yml environment.yaml pyproject.toml requirements.txt",
    "config/": "README.md config.yaml samples.tsv",
    "data/inputs/": "alpha.txt beta.txt gamma.txt",
    "docs/": "customising.md operations.md ownership.md releasing.md rule-kinds.md using-as-a-module.md",
    "profiles/": "ci/config.yaml local/config.yaml slurm/config.yaml cluster-sim/config.yaml cluster-sim/submit"
    " cluster-sim/status cluster-sim/cancel",
    "tests/": "conftest.py test_example.py test_profiles.py test_vendor.py test_workflow.py volatile_outputs.py",
    "workflow/": "Snakefile envs/base.yaml profiles/default/config.yaml report/manifest.rst report/report.rst"
    " schemas/config.schema.yaml schemas/samples.schema.yaml",
    "workflow/rules/": "aggregate.smk common.smk contract.smk helpers.smk process.smk publish.smk",
    "workflow/scripts/": "render_report.py summarize_sample.py summary_table.py",
    "workflow/vendor/": "README.md SHA256SUMS checksums.py config.schema.yaml contract.py durable.py jupyter_nbconvert_config.py"
    " module_profile.py publish.py release_crate.py render_docs.py samplesheet.py scheduler.py scratch.py shadow_route.py",
}
COMMON_FILES = {folder + name for folder, names in FOLDERS.items() for name in names.split()}
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
    {"license": "BSD-3-Clause", "ci": "gitlab", "init_git": "y"},
    {"license": "Apache-2.0", "ci": "none", "project_name": "Métagénomique QC"},
    {"license": "none", "ci": "github", "python_version": "3.12", "init_git": "false"},
]
BOOL = {"yes": True, "y": True, "no": False, "false": False}  # yes/no answers as cookiecutter reads them


def test_the_matrix_uses_every_choice_of_every_menu_and_yes_no_question():
    for key, default in load_json(TEMPLATE / "cookiecutter.json").items():
        if isinstance(default, list):
            assert {answers.get(key, default[0]) for answers in MATRIX} == set(default), key
        elif isinstance(default, bool):  # the render fixture answers no unless told
            assert {BOOL[answers.get(key, "no")] for answers in MATRIX} == {True, False}, key


def generated_files(repo):
    return {
        str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file() and ".git" not in p.relative_to(repo).parts
    }


@pytest.fixture(params=MATRIX, ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()) or "defaults")
def rendered(request, render):
    return request.param, render(**request.param)


def test_exact_set_of_generated_files_no_template_syntax_and_every_yaml_json_and_python_file_parses(rendered, tmp_path):
    answers, repo = rendered
    expected = COMMON_FILES | CI_FILES[answers.get("ci", "github")]
    assert generated_files(repo) == expected | ({"LICENSE"} if answers.get("license") != "none" else set())
    assert (repo / ".git").is_dir() == BOOL[answers.get("init_git", "no")]
    empty = [p for p in repo.rglob("*") if p.is_dir() and ".git" not in p.parts and not any(p.iterdir())]
    assert empty == [], "no empty folder (of an unchosen CI service, say) is left"
    scripts = 0
    for rel in generated_files(repo):
        text = (repo / rel).read_text(encoding="utf-8")
        assert "{{" not in text and "{%" not in text and "{#" not in text, rel
        if rel.endswith((".yaml", ".yml", ".cff")):
            assert yaml.safe_load(text) is not None, rel
        elif rel.endswith(".json"):
            json.loads(text)
        elif rel.endswith(".py") or rel.startswith("profiles/cluster-sim/") and not rel.endswith(".yaml"):
            py_compile.compile(str(repo / rel), cfile=str(tmp_path / "x.pyc"), doraise=True)
            scripts += 1
    assert scripts > 10


def test_every_vendored_file_names_the_template_release_and_its_sha256_is_recorded(rendered):
    _, repo = rendered
    version = load_json(TEMPLATE / "cookiecutter.json")["_template_version"]
    vendor = repo / "workflow/vendor"
    vendored = sorted(p.name for p in vendor.iterdir() if p.name != "SHA256SUMS")
    assert "publish.py" in vendored and "scheduler.py" in vendored
    for name in vendored:
        assert f"From the Snakemake repository template, release {version}." in (vendor / name).read_text(), name
    recorded = {
        name: digest for digest, name in (ln.split("  ", 1) for ln in (vendor / "SHA256SUMS").read_text().splitlines())
    }
    assert recorded == {n: hashlib.sha256((vendor / n).read_bytes()).hexdigest() for n in vendored}


def test_the_answers_file_holds_the_answers(rendered):
    answers, repo = rendered
    recorded = load_json(repo / ".template-answers.json")
    assert sorted(recorded) == sorted(k for k in load_json(TEMPLATE / "cookiecutter.json") if not k.startswith("_"))
    for key, value in answers.items():
        assert recorded[key] == (BOOL[value] if key == "init_git" else value), key


def test_the_ownership_table_covers_every_generated_file_and_names_only_files_that_exist(rendered):
    """A row of docs/ownership.md names paths; paths joined by " or " are alternatives, one of which exists
    (cruft and cookiecutter keep the answers apart)."""
    _, repo = rendered
    rows = []
    for line in (repo / "docs/ownership.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            rows.append(([re.findall(r"`([^`]+)`", each) for each in cells[0].split(" or ")], cells[1]))
    assert {whose for _, whose in rows} == {"yours", "the template's", "yours, template lines"}
    assert [alts for alts, _ in rows if not any(all((repo / p).exists() for p in paths) for paths in alts)] == []
    named = [path for alternatives, _ in rows for paths in alternatives for path in paths]
    existing = [path for path in named if (repo / path).exists()]
    assert [path for path in existing if (repo / path).is_dir() != path.endswith("/")] == [], "a folder's row ends in /"
    folders = [path for path in named if path.endswith("/")]
    assert (
        sorted(f for f in generated_files(repo) if f not in named and not any(f.startswith(d) for d in folders)) == []
    )


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


def make_lint(repo, tmp_path):
    """The generated `make lint` with this suite's tools: a bare `snakemake --lint` (as the workflow catalog and
    the common lint action run it: no profile; any lint fails it), snakefmt, ruff check and ruff format."""
    run = ["make", "lint", f"PYTHON={sys.executable}"]
    run = run_command(run, cwd=repo, env=isolated_env(tmp_path), timeout=300, user=workflow_user())
    assert run.returncode == 0 and "Lints for" not in run.output, repr(run)


def test_make_lint_and_bare_snakemake_lint_as_the_workflow_catalog_runs_it_pass(rendered, tmp_path):
    make_lint(rendered[1], tmp_path)


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
    snakefile.write_text(text.replace('"rules/helpers.smk"\n', '"rules/helpers.smk"\ninclude: "rules/shout.smk"\n'))
    for rel, content in WRAPPER_COPY.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(content)
    hand_over(repo, workflow_user())
    make_lint(repo, tmp_path)
    # a file of the copy named on the command line (editors, pre-commit) is skipped as well
    named = [tool("ruff"), "check", "workflow/wrappers/bio/x/wrapper.py"]
    named = run_command(named, cwd=repo, env=isolated_env(tmp_path), user=workflow_user())
    assert named.returncode == 0, repr(named)
    hooks = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())
    assert all(re.search(hooks["exclude"], rel) for rel in WRAPPER_COPY), "pre-commit skips the copy"
    assert not re.search(hooks["exclude"], "workflow/rules/helpers.smk")
