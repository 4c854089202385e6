"""The hooks: a bad answer is refused clearly, naming its field, and leaves nothing behind; free-text answers
never become code; the first commit is clean and made as the user."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import TEMPLATE, isolated_env, render_template, run_command, tool

QUESTIONS = json.loads((TEMPLATE / "cookiecutter.json").read_text())
MENUS = {"license": ["MIT", "BSD-3-Clause", "Apache-2.0", "none"], "ci": ["github", "gitlab", "none"]}


def cookiecutter(tmp_path, *args, template=TEMPLATE, out="out", **run):
    """The cookiecutter CLI on `template` into tmp_path/out: (CompletedProcess, output dir)."""
    out = tmp_path / out
    run = {"env": isolated_env(tmp_path), **run}
    proc = subprocess.run(
        [tool("cookiecutter"), str(template), "-o", str(out), *args], capture_output=True, text=True, timeout=120, **run
    )
    return proc, out


def refused(proc, out, *fields):
    """The run failed with ERROR lines naming `fields` in this order, and left no output directory."""
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR: ")]
    assert [e.split("=")[0] for e in errors] == [f"ERROR: {f}" for f in fields], proc.stderr
    assert not out.exists() or not any(out.iterdir()), "a refused answer must leave no output directory"
    return errors


def refused_as_invalid(proc, out, field, value):
    """Refused with one ERROR line for field=value (returned), no Jinja error: the answer was never evaluated."""
    (line,) = refused(proc, out, field)
    assert line.startswith(f"ERROR: {field}={value!r} is not valid; expected"), line
    everything = proc.stdout + proc.stderr
    assert "jinja2" not in everything and "TemplateSyntaxError" not in everything, everything
    return line


# (field, value, what the error line says is allowed). project_name sits in a comment on the Snakefile's
# first line: a newline there starts code. cookiecutter renders answers as Jinja before any hook: an unclosed
# '{{' used to crash with a traceback naming no answer.
BAD_ANSWERS = [
    ("project_slug", "1-starts-with-digit", "starting with a letter"),
    ("project_slug", "Has Spaces", "lowercase letters"),
    ("project_name", "   ", "non-empty name"),
    ("author_email", "not-an-email", "name@example.org"),
    ("author_name", 'Quote "Q"', "without"),
    ("author_name", "Back\\slash", "without"),
    ("author_email", "a\\b@example.org", "name@example.org"),
    ("version", "v1", "X.Y.Z"),
    ("python_version", "3.9", "3.11 or a newer"),
    *[
        (field, f"Wordcount{breaker}import os", "control characters")
        for field in ("project_name", "description", "author_name")
        for breaker in ("\n", "\r", "\t", "\x85", "\u2028", "\u202e")
    ],
    *[
        (field, f"me{markup}x@example.org" if field == "author_email" else f"a {markup} b", "template markup")
        for field in ("project_name", "description", "author_name", "author_email")
        for markup in ("{{", "{%", "{#")
    ],
    ("project_name", "{{ 7*7 }}", "template markup"),
    ("project_name", "x {% endraw %}{{ 7*7 }}", "template markup"),
    ("description", "{{ cookiecutter.author_name }}", "template markup"),
    ("project_slug", "{{ 7*7 }}", "lowercase letters"),
]


@pytest.mark.parametrize("field, value, allowed", BAD_ANSWERS, ids=lambda x: repr(x)[:40])
def test_a_bad_answer_is_refused_naming_field_value_and_what_is_allowed_never_evaluated_leaving_nothing(
    tmp_path, field, value, allowed
):
    proc, out = render_template(tmp_path, init_git="no", **{field: value})
    assert allowed in refused_as_invalid(proc, out, field, value)


def test_every_bad_answer_is_reported_in_one_run_in_question_order(tmp_path):
    bad = {"python_version": "2.7", "version": "x", "author_email": "a{{b@example.org", "description": "one\ntwo"}
    proc, out = render_template(tmp_path, init_git="no", project_name="{{ x", **bad)
    refused(proc, out, "project_name", "description", "author_email", "version", "python_version")


def test_at_most_ten_questions_with_menus_for_the_choices_and_a_yes_no_for_git():
    asked = [key for key in QUESTIONS if not key.startswith("_")]
    assert len(asked) <= 10, asked
    assert {key: QUESTIONS[key] for key in MENUS} == MENUS, "cookiecutter list variables: menus"
    assert QUESTIONS["init_git"] is True, "a cookiecutter boolean variable: a yes/no question"
    site = {"slurm_account", "slurm_partition", "slurm_runtime_minutes", "cluster_latency_wait", "cluster_scratch_env"}
    assert not site & set(asked), "site settings live in profiles/slurm/config.yaml, not in the questions"


def test_an_interactive_run_numbers_ten_questions_asks_a_typo_again_and_prints_the_next_two_commands(tmp_path):
    # Enter keeps a default; GPL-3.0 is no menu entry (asked again, nothing lost), 4 = none, 2 = gitlab, n = no git
    answers = ["", "", "", "", "", "", "GPL-3.0", "4", "", "2", "n"]
    proc, out = cookiecutter(tmp_path, input="\n".join(answers) + "\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    numbered = re.findall(r"\[(\d+)/(\d+)\]", proc.stdout)
    assert sorted({int(n) for n, _ in numbered}) == list(range(1, 11)) and {t for _, t in numbered} == {"10"}
    assert "Please select one of the available options" in proc.stdout, "the typo is answered at once"
    assert "make setup" in proc.stdout and "make run" in proc.stdout, "the post-gen hook names the next commands"
    (repo,) = out.iterdir()
    assert not (repo / "LICENSE").exists() and (repo / ".gitlab-ci.yml").is_file() and not (repo / ".git").exists()


@pytest.mark.parametrize(
    "field, value, allowed",
    [("license", "GPL", MENUS["license"]), ("ci", "jenkins", MENUS["ci"]), ("init_git", "maybe", ["boolean"])],
)
def test_a_value_outside_a_menu_or_not_yes_no_is_refused_by_cookiecutter_before_anything_is_generated(
    tmp_path, field, value, allowed
):
    """cookiecutter checks --no-input values of list and boolean variables itself, before the template's hooks
    or extension run: a traceback whose last line names the value, the question and what is allowed."""
    proc, out = render_template(tmp_path, **{"init_git": "no", field: value})
    refused(proc, out)
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ValueError: {value} provided for ") and f"variable {field}" in last, proc.stderr
    assert all(choice in last for choice in allowed), last


def template_copy(tmp_path):
    """The template's files in a folder of the test's own."""
    template = tmp_path / "template"
    template.mkdir()
    for name in ("cookiecutter.json", "literal_answers.py", "hooks", "{{cookiecutter.project_slug}}"):
        source = Path(TEMPLATE) / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, template / name)
    return template


@pytest.mark.parametrize("ci_menu", [None, ["gitlab", "none"]], ids=["shipped-menus", "edited-menu"])
def test_a_replay_file_with_a_value_outside_a_menu_is_refused_by_the_hook_with_one_line_each(tmp_path, ci_menu):
    """A replay file reaches the hooks unchecked by cookiecutter: the hook names each bad choice, with the
    menus cookiecutter.json has (a template that edits a menu needs no edit of the hook)."""
    template = template_copy(tmp_path)
    questions = json.loads((template / "cookiecutter.json").read_text())
    questions["ci"] = ci_menu or questions["ci"]
    (template / "cookiecutter.json").write_text(json.dumps(questions))
    proc, _ = render_template(tmp_path, template=template, init_git="no", ci="none")
    assert proc.returncode == 0, proc.stderr
    (recorded,) = (tmp_path / "cc-replay").glob("*.json")
    replay = json.loads(recorded.read_text())
    replay["cookiecutter"].update(license="GPL-3.0", ci="GitHub", init_git="y")
    (tmp_path / "edited.json").write_text(json.dumps(replay))
    proc, out = cookiecutter(
        tmp_path, "--replay-file", str(tmp_path / "edited.json"), template=template, out="replayed"
    )
    assert refused(proc, out, "license", "ci", "init_git") == [
        "ERROR: license='GPL-3.0' is not allowed; choose one of: MIT, BSD-3-Clause, Apache-2.0, none",
        f"ERROR: ci='GitHub' is not allowed; choose one of: {', '.join(questions['ci'])}",
        "ERROR: init_git='y' is not allowed; answer yes or no (true or false in a replay file)",
    ]


@pytest.mark.parametrize("name, slug", [("Métagénomique QC", "metagenomique-qc"), ("3D Imaging", "wf-3d-imaging")])
def test_a_non_ascii_or_digit_first_project_name_gives_a_valid_slug(render, name, slug):
    assert render(project_name=name).name == slug


@pytest.mark.parametrize(
    "gitconfig, identity",
    [
        ("[user]\n\tname = Git Person\n\temail = git.person@example.net\n", "Git Person <git.person@example.net>"),
        (None, "Answer Author <answer@example.org>"),
    ],
    ids=["git-identity", "no-git-identity"],
)
def test_init_git_makes_one_clean_commit_as_the_users_git_identity_else_as_the_author_answers(
    tmp_path, gitconfig, identity
):
    """git's only configuration is HOME/.gitconfig (None: no file): no GIT_AUTHOR_*/GIT_COMMITTER_*, no system config."""
    home = tmp_path / "git-home"
    home.mkdir()
    if gitconfig is not None:
        (home / ".gitconfig").write_text(gitconfig)
    env = isolated_env(tmp_path, HOME=str(home), XDG_CONFIG_HOME=str(home / "xdg"), GIT_CONFIG_NOSYSTEM="1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        env.pop(name, None)
    answers = ["--no-input", "init_git=yes", "author_name=Answer Author", "author_email=answer@example.org"]
    proc, out = cookiecutter(tmp_path, *answers, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (repo,) = out.iterdir()
    git = {"cwd": repo, "capture_output": True, "text": True, "env": env}
    log = subprocess.run(["git", "log", "--format=%an <%ae> | %cn <%ce>"], **git)
    assert log.returncode == 0 and log.stdout.splitlines() == [f"{identity} | {identity}"], log
    status = subprocess.run(["git", "status", "--porcelain"], **git)
    assert status.returncode == 0 and status.stdout == "", "everything generated is committed"


def test_tool_caches_in_the_template_checkout_do_not_reach_the_generated_repository(tmp_path):
    template = template_copy(tmp_path)
    planted = ["workflow/scripts/__pycache__/scratch.cpython-311.pyc", ".pytest_cache/README.md"]
    planted += [".ruff_cache/CACHEDIR.TAG", ".snakemake/log/old.snakemake.log", "tests/stray.pyc"]
    for rel in planted:
        path = template / "{{cookiecutter.project_slug}}" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"left by a tool\n")
    proc, out = render_template(tmp_path, template=template, init_git="no")
    assert proc.returncode == 0, proc.stderr
    (repo,) = out.iterdir()
    assert (repo / "workflow/vendor/scratch.py").is_file()
    caches = {"__pycache__", ".pytest_cache", ".ruff_cache", ".snakemake"}
    left = [str(p.relative_to(repo)) for p in repo.rglob("*") if p.name in caches or p.suffix == ".pyc"]
    assert left == [], f"tool caches copied into the new project: {left}"


def test_markup_answer_given_through_cruft_is_refused_by_field(tmp_path):
    # cruft renders the template from its own clone, through cookiecutter's functions
    env = isolated_env(tmp_path)
    template = template_copy(tmp_path)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "template"]):
        assert run_command(["git", "-c", "commit.gpgsign=false", *args], cwd=template, env=env).returncode == 0
    out, value = tmp_path / "projects", "{{ 7*7 }} QC"
    context = json.dumps({"project_name": value, "init_git": "no"})
    args = [tool("cruft"), "create", str(template), "--no-input", "--output-dir", str(out), "--extra-context", context]
    refused_as_invalid(run_command(args, cwd=tmp_path, env=env, timeout=300), out, "project_name", value)


NAME = 'Lab\'s "Métagénomique" QC \\ 🧬'
DESCRIPTION = 'Counts "words" in C:\\data\\ and it\'s # not a comment: {not markup} \\'
AUTHOR = "Seán O'Brien-Ngữ"


def test_quotes_backslashes_and_unicode_in_free_text_are_kept_verbatim_and_the_workflow_runs(render, snakemake):
    repo = render(project_name=NAME, description=DESCRIPTION, author_name=AUTHOR, init_git="yes")
    readme = (repo / "README.md").read_text(encoding="utf-8").splitlines()
    assert readme[0] == f"# {NAME}" and readme[2] == DESCRIPTION
    assert (repo / "workflow/Snakefile").read_text(encoding="utf-8").splitlines()[0].startswith(f"# {NAME}: ")
    assert yaml.safe_load((repo / "config/config.yaml").read_text(encoding="utf-8"))["report_title"] == NAME
    assert f"{AUTHOR}\n" in (repo / "LICENSE").read_text(encoding="utf-8")
    for script in repo.rglob("*.py"):
        compile(script.read_text(encoding="utf-8"), str(script), "exec")  # SyntaxError if an answer broke it
    snakemake(repo, "-n", "--profile", "profiles/local")
    # the title reaches the report's HTML whole (an emoji once arrived as two lone surrogates and the rule failed)
    snakemake(repo, "--profile", "profiles/local", "results/report.html")
    report = (repo / "results/report.html").read_text(encoding="utf-8")
    assert "<title>Lab&#x27;s &quot;Métagénomique&quot; QC \\ 🧬</title>" in report
