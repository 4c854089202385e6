"""The generated repository in its ecosystem, through the real tools: template updates with cruft, the
Snakemake workflow catalog, the CI files (their commands are extracted and run), the pre-commit hooks,
the Snakemake report and the pinned dependency files."""

import json
import os
import re
import shlex
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import (
    DEFAULT_SLUG,
    TEMPLATE,
    hand_over,
    isolated_env,
    load_json,
    node_tmp,
    quick_start_commands,
    render_template,
    run_command,
    tool,
    workflow_user,
)

# What CI runs in the generated repository, in order, for every CI service.
CI_COMMANDS = [
    "make setup",
    "make lint",
    "make test",
    ".venv/bin/snakemake --profile profiles/ci",
    ".venv/bin/snakemake --profile profiles/ci publish",
    ".venv/bin/python workflow/vendor/publish.py verify",
]
CI_FILE = {"github": ".github/workflows/ci.yml", "gitlab": ".gitlab-ci.yml"}
# Before those, each CI file installs the Debian/Ubuntu packages named in its SYSTEM_PACKAGES variable, if
# any: GitHub's runner user through sudo, GitLab's python image as root (it has no sudo).
INSTALL = 'if [ -n "$SYSTEM_PACKAGES" ]; then {0}apt-get update && {0}apt-get install -y --no-install-recommends $SYSTEM_PACKAGES; fi'
SYSTEM_PACKAGES_STEP = {"github": INSTALL.format("sudo "), "gitlab": INSTALL.format("")}
# top-level keys of .gitlab-ci.yml that are not jobs (a job may not take one of these names)
GITLAB_GLOBAL = set(
    "default include stages variables workflow image services cache before_script after_script types spec".split()
)


def checkout_env(tmp_path):
    """isolated_env for commands run as root in a checkout render() handed to the workflow user: git
    (and pre-commit, which calls it) refuses a repository owned by another user unless told it is safe."""
    return isolated_env(tmp_path, GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="safe.directory", GIT_CONFIG_VALUE_0="*")


def ok(args, cwd, env, timeout=300, **kwargs):
    """run_command that must succeed."""
    run = run_command(args, cwd=cwd, env=env, timeout=timeout, **kwargs)
    assert run.returncode == 0, repr(run)
    return run


def git(cwd, env, *args):
    return ok(["git", *args], cwd, env, timeout=120).stdout.strip()


def commit_all(cwd, env, message):
    git(cwd, env, "add", "-A")
    git(cwd, env, "-c", "commit.gpgsign=false", "commit", "-q", "-m", message)
    return git(cwd, env, "rev-parse", "HEAD")


def init_repo(cwd, env, message="Initial commit"):
    git(cwd, env, "init", "-q", "-b", "main")
    return commit_all(cwd, env, message)


def append_line(path, line):
    with open(path, "a") as fh:
        fh.write(line)


def template_git_copy(tmp_path, env):
    """The template as a git repository of its own (cruft reads templates from git)."""
    copy = tmp_path / "template"
    ignore = shutil.ignore_patterns(".venv", "build", ".git", "__pycache__", ".pytest_cache", ".ruff_cache")
    shutil.copytree(TEMPLATE, copy, ignore=ignore)
    return copy, init_repo(copy, env, "Template as released")


# updates with cruft
def test_cruft_update_brings_template_changes_and_keeps_local_commits(tmp_path):
    env = isolated_env(tmp_path)
    template, first = template_git_copy(tmp_path, env)
    cruft = tool("cruft")
    create = ok(
        [cruft, "create", str(template), "--no-input", "--output-dir", str(tmp_path / "projects")], tmp_path, env
    )
    repo = tmp_path / "projects" / DEFAULT_SLUG
    state = load_json(repo / ".cruft.json")
    assert state["template"] == str(template) and state["commit"] == first
    assert state["context"]["cookiecutter"]["project_slug"] == DEFAULT_SLUG
    # Under cruft the hook leaves git init to the user, so the first commit can include .cruft.json.
    assert not (repo / ".git").exists(), create.output
    assert not (repo / ".template-answers.json").exists(), ".cruft.json holds the answers"
    init_repo(repo, env, "Created with cruft")

    # a local change, committed in the project; a template change: an edited file and a new one
    append_line(repo / "config/samples.tsv", "delta\tdelta.txt\tnotes\n")
    (repo / "data/inputs/delta.txt").write_text("A fourth sample added by the team.\n")
    commit_all(repo, env, "Add sample delta")
    line = "Template change: operations note added upstream."
    append_line(template / "{{cookiecutter.project_slug}}/docs/operations.md", f"\n{line}\n")
    (template / "{{cookiecutter.project_slug}}/docs/upstream-news.md").write_text("# News from the template\n")
    second = commit_all(template, env, "Template update")

    check = run_command([cruft, "check"], cwd=repo, env=env, timeout=300)
    assert check.returncode != 0 and "out of date" in check.output, repr(check)
    ok([cruft, "update", "--skip-apply-ask", "--allow-untracked-files"], repo, env)
    assert (repo / "docs/operations.md").read_text().rstrip().endswith(line), "the template change arrived"
    assert (repo / "docs/upstream-news.md").read_text() == "# News from the template\n"
    assert (repo / "config/samples.tsv").read_text().endswith("delta\tdelta.txt\tnotes\n"), "local change kept"
    assert (repo / "data/inputs/delta.txt").is_file()
    assert not list(repo.rglob("*.rej")), "the update applied cleanly"
    state = load_json(repo / ".cruft.json")
    assert state["commit"] == second and state["context"]["cookiecutter"]["_commit"] == second
    commit_all(repo, env, "Update from the template")
    assert "up to date" in ok([cruft, "check"], repo, env).output
    assert git(repo, env, "status", "--porcelain") == ""


def test_a_plain_cookiecutter_repo_is_linked_at_its_tagged_release_with_its_own_answers_and_then_updates(tmp_path):
    env = isolated_env(tmp_path)
    template, _ = template_git_copy(tmp_path, env)
    version = load_json(template / "cookiecutter.json")["_template_version"]
    assert f"tagged v{version}" in ok(["make", "tag"], template, env, timeout=60).output
    assert "already names HEAD" in ok(["make", "tag"], template, env, timeout=60).output
    release = git(template, env, "rev-parse", f"v{version}^{{commit}}")

    answers = {"project_name": 'Métagénomique "QC"', "ci": "gitlab", "license": "none", "init_git": "no"}
    proc, out = render_template(tmp_path, template=template, out=tmp_path / "projects", **answers)
    assert proc.returncode == 0, proc.stderr
    (repo,) = out.iterdir()
    init_repo(repo, env, "Made with plain cookiecutter")

    # cruft alone stops with a traceback here; make update says what to do, in one line
    update = run_command(["make", "update"], cwd=repo, env=env, timeout=60)
    assert update.returncode != 0 and "Traceback" not in update.output, repr(update)
    (line,) = [x for x in update.output.splitlines() if "cruft link" in x]
    ok(
        ["bash", "-c", line[line.index("cruft link") :].replace("<template git URL>", shlex.quote(str(template)))],
        repo,
        env,
    )
    state = load_json(repo / ".cruft.json")
    assert state["commit"] == release, "linked to the release the repository was made from"
    given = load_json(repo / ".template-answers.json")
    assert {k: state["context"]["cookiecutter"][k] for k in given} == given
    assert given["project_name"] == answers["project_name"] and given["ci"] == "gitlab"
    (repo / ".template-answers.json").unlink()  # .cruft.json holds the answers from now on
    commit_all(repo, env, "Link to the workflow template")
    diff = ok([tool("cruft"), "diff", "--exit-code"], repo, env)
    assert "diff --git" not in diff.stdout, f"the answers re-render this very repository:\n{diff!r}"

    line = "Template change after the release."
    append_line(template / "{{cookiecutter.project_slug}}/docs/operations.md", f"\n{line}\n")
    commit_all(template, env, "Template update")
    ok(["make", "update"], repo, env)
    assert (repo / "docs/operations.md").read_text().rstrip().endswith(line)
    assert not (repo / ".template-answers.json").exists(), "an update never brings the answers file back"


def test_repo_meets_the_workflow_catalog_standardized_usage_layout(render):
    repo = render()
    for rel in ("workflow/Snakefile", "config/README.md", ".snakemake-workflow-catalog.yml"):
        assert (repo / rel).is_file(), rel
    usage = yaml.safe_load((repo / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    flags = usage["mandatory-flags"]
    assert isinstance(flags["desc"], str) and flags["desc"].strip()
    assert re.fullmatch(r"--profile profiles/[a-z-]+", flags["flags"].strip()), flags["flags"]
    assert (repo / flags["flags"].split()[1] / "config.yaml").is_file(), "the flag names a real profile"
    deployment = usage["software-stack-deployment"]
    assert all(isinstance(deployment[key], bool) for key in ("conda", "apptainer", "apptainer+conda"))
    assert usage["report"] is True


# CI of the generated repository
def ci_jobs(repo, ci):
    """(file's global settings, [job]) of a CI file: GitHub's jobs; GitLab's top-level keys that are jobs."""
    spec = yaml.safe_load((repo / CI_FILE[ci]).read_text())
    if ci == "github":
        return spec.get("env") or {}, list(spec["jobs"].values())
    jobs = []
    for name, job in spec.items():
        if name in GITLAB_GLOBAL:
            assert not (isinstance(job, dict) and "script" in job), f"{name!r} is a GitLab keyword, not a job name"
        elif not name.startswith(".") and isinstance(job, dict):  # hidden jobs (templates) do not run
            jobs.append({**job, "before_script": job.get("before_script", spec.get("before_script", []))})
    return spec.get("variables") or {}, jobs


def ci_commands(repo, ci):
    """The shell commands a CI file runs, in order: GitHub `run:` steps; GitLab before_script + script."""
    if ci == "github":
        return [step["run"].strip() for job in ci_jobs(repo, ci)[1] for step in job["steps"] if "run" in step]
    return [c.strip() for job in ci_jobs(repo, ci)[1] for c in [*job["before_script"], *job["script"]]]


def ci_variables(repo, ci):
    """The variables a CI file sets for its commands: GitHub's workflow and job `env`, GitLab's global and
    job `variables`."""
    found, jobs = ci_jobs(repo, ci)
    for job in jobs:
        found.update(job.get("env" if ci == "github" else "variables") or {})
    return {key: str(value) for key, value in found.items()}


# Stand-ins for apt-get and sudo: each records its name and its arguments (one <...> per argument);
# sudo then runs the command it was given.
FAKE_APT_GET = """#!/bin/sh
{ printf '%s' "${0##*/}"; for arg in "$@"; do printf ' <%s>' "$arg"; done; echo; } >> "$CALLS"
"""
FAKE_SUDO = FAKE_APT_GET + 'exec "$@"\n'


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_ci_runs_the_documented_commands_after_installing_the_packages_of_its_one_variable_and_a_bot_watches_it(
    render, tmp_path, ci
):
    repo = render(ci=ci)
    install = SYSTEM_PACKAGES_STEP[ci]
    assert ci_commands(repo, ci) == [install, *CI_COMMANDS]
    ci_file = repo / CI_FILE[ci]
    text = ci_file.read_text()
    if ci == "github":  # current majors of the actions (the bot keeps them so from here on)
        bot = yaml.safe_load((repo / ".github/dependabot.yml").read_text())
        watched = {(u["package-ecosystem"], u["directory"]) for u in bot["updates"]}
        assert bot["version"] == 2 and watched == {("github-actions", "/"), ("pip", "/")}, bot
        assert all(a in text for a in ("actions/checkout@v6", "actions/setup-python@v6", "actions/upload-artifact@v7"))
    else:
        bot = json.loads((repo / "renovate.json").read_text())
        assert set(bot["enabledManagers"]) == {"pip_requirements", "gitlabci"}, bot
        assert bot["$schema"].endswith("renovate-schema.json")

    marked = r'^ *# Debian/Ubuntu packages your rules call, e.g\. bwa samtools\b.*\n *SYSTEM_PACKAGES: ""$'
    assert len(re.findall(marked, text, re.M)) == 1 and text.count("SYSTEM_PACKAGES:") == 1, text
    guide = " ".join((repo / "docs/customising.md").read_text().split())
    assert f"`SYSTEM_PACKAGES` line of `{CI_FILE[ci]}`" in guide, "the porting steps name the line to edit"
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    for name, script in (("apt-get", FAKE_APT_GET), ("sudo", FAKE_SUDO)):
        (fake / name).write_text(script)
        (fake / name).chmod(0o755)
    # GitHub's default shell for run:; GitLab's script under plain sh (the image decides which shell)
    shell = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"] if ci == "github" else ["sh", "-ec"]

    def install_calls(packages):
        assert ci_variables(repo, ci)["SYSTEM_PACKAGES"] == packages
        calls = tmp_path / f"{packages or 'empty'}.calls"
        env = {**ci_variables(repo, ci), "PATH": f"{fake}{os.pathsep}/usr/bin{os.pathsep}/bin", "CALLS": str(calls)}
        ok([*shell, install], repo, env, timeout=60)
        return calls.read_text().splitlines() if calls.exists() else []

    assert install_calls("") == [], "the empty default installs nothing"
    ci_file.write_text(text.replace('SYSTEM_PACKAGES: ""', 'SYSTEM_PACKAGES: "bwa samtools"'))
    expected = []
    for args in ("<update>", "<install> <-y> <--no-install-recommends> <bwa> <samtools>"):
        # the GitHub runner's user installs through sudo; GitLab's python image runs as root
        expected += [f"sudo <apt-get> {args}", f"apt-get {args}"] if ci == "github" else [f"apt-get {args}"]
    assert install_calls("bwa samtools") == expected


def test_readme_quick_start_then_the_ci_commands_and_the_pre_commit_hooks_pass_as_an_unprivileged_user_in_a_fresh_checkout(
    render, tmp_path
):
    repo = render(ci="github")
    user = workflow_user()
    env = checkout_env(tmp_path)
    init_repo(repo, env, "CI checkout")
    hand_over(repo, user)  # the runner's checkout is the runner user's, .git included
    # Like a CI runner: only the system Python on PATH; everything else comes from the .venv make setup builds.
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != Path(sys.executable).parent)
    env["TMPDIR"] = str(node_tmp(tmp_path))
    # no byte-compiling of every installed module at install time (CPU the suite shares): Python compiles
    # what runs, on first import; what is installed and what runs is the same
    env["PIP_NO_COMPILE"] = "1"
    timeouts = {"make setup": 600, "make test": 900}
    outputs = {}
    quick_start = quick_start_commands(repo / "README.md")
    assert quick_start == ["make setup", "make run"]
    for command in [*quick_start, *ci_commands(repo, "github")]:
        args = ["bash", "-eo", "pipefail", "-c", command]
        outputs[command] = ok(args, repo, env, timeout=timeouts.get(command, 300), user=user).output
        if command == quick_start[-1]:  # the README's two commands build the example, publish nothing
            summaries = sorted(p.name for p in (repo / "results").rglob("*.summary.json"))
            assert summaries == ["alpha.summary.json", "beta.summary.json", "gamma.summary.json"]
            assert not (repo / "publish").exists()
    # the repository's own suite ran whole: nothing skipped (its example, its contexts, its docs)
    tested = outputs["make test"]
    assert re.search(r"\d+ passed", tested) and "skipped" not in tested, tested[-2000:]
    assert (repo / "publish/current/MANIFEST.json").is_file()
    assert (repo / "publish/current/ro-crate-metadata.json").is_file()
    # the hygiene a new user meets after make setup, without activating the venv
    assert (repo / ".git/hooks/pre-commit").is_file(), "make setup installed the git hook"
    ok([".venv/bin/pip", "check"], repo, env, timeout=120, user=user)
    # every hook is local and runs the tool make setup pinned into .venv/, by path (no activation, no download)
    config = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())
    assert {entry["repo"] for entry in config["repos"]} == {"local"}
    hooks = [hook for entry in config["repos"] for hook in entry["hooks"]]
    assert all(hook["language"] == "system" and hook["entry"].startswith(".venv/bin/") for hook in hooks), hooks
    ids = "snakefmt ruff-check ruff-format trailing-whitespace end-of-file-fixer check-yaml"
    assert {hook["id"] for hook in hooks} >= set(ids.split())
    run = ok([".venv/bin/pre-commit", "run", "--all-files"], repo, env, timeout=600, user=user)
    assert "Skipped" not in run.output, f"a hook matches no file\n{run.output}"
    assert git(repo, env, "status", "--porcelain") == "", "the hooks changed nothing"


# Snakemake report
def test_snakemake_report_contains_the_report_tagged_output_and_the_published_manifest(published_example, snakemake):
    repo = published_example
    snakemake(repo, "--profile", "profiles/local", "release_manifest")
    snakemake(repo, "--profile", "profiles/local", "--report", "report.zip", "all", "release_manifest")
    with zipfile.ZipFile(repo / "report.zip") as archive:
        names = archive.namelist()
        for name, source in (
            ("report.html", "results/report.html"),
            ("MANIFEST.json", "publish/current/MANIFEST.json"),
        ):
            items = [n for n in names if re.fullmatch(rf"report/data/raw/[^/]+/{re.escape(name)}", n)]
            assert len(items) == 1 and archive.read(items[0]) == (repo / source).read_bytes(), (name, names)
        main = archive.read("report/report.html").decode()
    caption = (repo / "workflow/report/report.rst").read_text().strip()
    assert caption in main and "Summary" in main, "caption and category of results/report.html are shown"
    assert "Release" in main
    assert not [p for p in (repo / "results").rglob("*MANIFEST*")], "the report copy stays out of results/"


# dependency files
def pins(path, separator):
    """{lowercased package name: version} of the exact pins in a requirements file or a conda env."""
    if path.suffix == ".txt":
        specs = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    else:
        specs = yaml.safe_load(path.read_text())["dependencies"]
    out = {}
    for spec in filter(None, specs):
        name, sep, version = spec.partition(separator)
        assert sep and version and not re.search(r"[=<>!~*]", version), f"{path.name}: {spec!r} is not an exact pin"
        out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


@pytest.mark.parametrize("python_version", ["3.11", "3.12"])
def test_requirements_and_environment_pin_the_same_versions(render, python_version):
    repo = render(python_version=python_version)
    pip = pins(repo / "requirements.txt", "==")
    conda = pins(repo / "environment.yaml", "=")
    assert conda.pop("python") == python_version
    assert pip == conda
    template = pins(TEMPLATE / "requirements.txt", "==")
    shared = set(template) & set(pip)
    assert {"snakemake", "pyyaml", "snakefmt", "ruff"} <= shared
    assert {name: pip[name] for name in shared} == {name: template[name] for name in shared}
