"""The pre-generation hook rejects bad answers clearly and leaves nothing behind."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import TEMPLATE, isolated_env, render_template, run_command, tool, workflow_user


@pytest.mark.parametrize(
    "answers, field, allowed",
    [
        ({"project_slug": "1-starts-with-digit"}, "project_slug", "starting with a letter"),
        ({"project_slug": "Has Spaces"}, "project_slug", "lowercase letters"),
        ({"project_name": "   "}, "project_name", "non-empty name"),
        ({"author_email": "not-an-email"}, "author_email", "name@example.org"),
        ({"author_name": 'Quote "Q"'}, "author_name", "without"),
        ({"author_name": "Back\\slash"}, "author_name", "without"),
        ({"author_email": "a\\b@example.org"}, "author_email", "name@example.org"),
        ({"version": "v1"}, "version", "X.Y.Z"),
        ({"python_version": "3.9"}, "python_version", "3.11 or a newer"),
    ],
)
def test_bad_answer_exits_nonzero_names_field_and_leaves_no_directory(tmp_path, answers, field, allowed):
    proc, out = render_template(tmp_path, **{"init_git": "no", **answers})
    assert proc.returncode != 0
    value = list(answers.values())[0]
    line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR: ")), "")
    assert line.startswith(f"ERROR: {field}={value!r}"), proc.stderr
    assert allowed in line
    assert not out.exists() or not any(out.iterdir()), "a failed render must leave no output directory"


def test_every_invalid_answer_is_reported_in_one_run(tmp_path):
    proc, out = render_template(tmp_path, python_version="2.7", version="x", init_git="no")
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR: ")]
    assert [e.split("=")[0] for e in errors] == ["ERROR: version", "ERROR: python_version"]
    assert not out.exists() or not any(out.iterdir())


# --------------------------------------------------------------------------
# the questions: ten, with menus for the choices and a yes/no for git
# --------------------------------------------------------------------------
QUESTIONS = json.loads((TEMPLATE / "cookiecutter.json").read_text())
MENUS = {"license": ["MIT", "BSD-3-Clause", "Apache-2.0", "none"], "ci": ["github", "gitlab", "none"]}


def test_at_most_ten_questions_with_menus_for_the_choices_and_a_yes_no_for_git():
    asked = [key for key in QUESTIONS if not key.startswith("_")]
    assert len(asked) <= 10, asked
    assert {key: QUESTIONS[key] for key in MENUS} == MENUS, "cookiecutter list variables: menus"
    assert QUESTIONS["init_git"] is True, "a cookiecutter boolean variable: a yes/no question"
    site_settings = {
        "slurm_account",
        "slurm_partition",
        "slurm_runtime_minutes",
        "cluster_latency_wait",
        "cluster_scratch_env",
    }
    assert not site_settings & set(asked), "site settings live in profiles/slurm/config.yaml, not in the questions"


def test_an_interactive_run_numbers_ten_questions_and_asks_a_typo_at_a_menu_again_at_once(tmp_path):
    # Enter keeps a default; GPL-3.0 is no menu entry (asked again, nothing lost), 4 = none, 2 = gitlab, n = no git
    answers = ["", "", "", "", "", "", "GPL-3.0", "4", "", "2", "n"]
    out = tmp_path / "out"
    proc = subprocess.run(
        [tool("cookiecutter"), str(TEMPLATE), "-o", str(out)],
        input="\n".join(answers) + "\n",
        capture_output=True,
        text=True,
        env=isolated_env(tmp_path),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    numbered = re.findall(r"\[(\d+)/(\d+)\]", proc.stdout)
    assert sorted({int(n) for n, _ in numbered}) == list(range(1, 11)) and {t for _, t in numbered} == {"10"}
    assert "Please select one of the available options" in proc.stdout, "the typo is answered at once"
    (repo,) = out.iterdir()
    assert not (repo / "LICENSE").exists() and (repo / ".gitlab-ci.yml").is_file() and not (repo / ".git").exists()


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("license", "GPL", MENUS["license"]),
        ("ci", "jenkins", MENUS["ci"]),
        ("init_git", "maybe", ["boolean"]),
    ],
)
def test_a_value_outside_a_menu_or_not_yes_no_is_refused_by_cookiecutter_before_anything_is_generated(
    tmp_path, field, value, allowed
):
    """cookiecutter 2.7 checks --no-input values of list and boolean variables itself, before the template's
    hooks or extension run: a traceback whose last line names the value, the question and what is allowed."""
    proc, out = render_template(tmp_path, **{"init_git": "no", field: value})
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ValueError: {value} provided for ") and f"variable {field}" in last, proc.stderr
    assert all(choice in last for choice in allowed), last
    assert not out.exists() or not any(out.iterdir()), "a refused answer must leave no output directory"


@pytest.mark.parametrize("given, made", [("no", False), ("yes", True), ("false", False), ("y", True)])
def test_init_git_takes_yes_or_no_on_the_command_line(render, given, made):
    assert (render(init_git=given) / ".git").is_dir() == made


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
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(replay))
    out = tmp_path / "replayed"
    proc = subprocess.run(
        [tool("cookiecutter"), str(template), "--replay-file", str(edited), "-o", str(out)],
        capture_output=True,
        text=True,
        env=isolated_env(tmp_path),
        timeout=120,
    )
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR: ")]
    assert errors == [
        "ERROR: license='GPL-3.0' is not allowed; choose one of: MIT, BSD-3-Clause, Apache-2.0, none",
        f"ERROR: ci='GitHub' is not allowed; choose one of: {', '.join(questions['ci'])}",
        "ERROR: init_git='y' is not allowed; answer yes or no (true or false in a replay file)",
    ], proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_non_ascii_project_name_gives_a_valid_slug(render):
    repo = render(project_name="Métagénomique QC")
    assert repo.name == "metagenomique-qc"


def test_name_starting_with_digit_gets_a_prefixed_slug(render):
    repo = render(project_name="3D Imaging")
    assert repo.name == "wf-3d-imaging"


def test_post_gen_hook_prints_the_next_two_commands(tmp_path):
    proc, _ = render_template(tmp_path, init_git="no")
    assert proc.returncode == 0
    assert "make setup" in proc.stdout and "make run" in proc.stdout


def test_init_git_yes_makes_one_clean_commit(render, tmp_path):
    repo = render(init_git="yes")
    # as the checkout's owner: git refuses a repository owned by another user
    env, user = isolated_env(tmp_path), workflow_user()
    log = run_command(["git", "log", "--oneline"], cwd=repo, env=env, user=user)
    assert log.returncode == 0 and len(log.stdout.splitlines()) == 1, repr(log)
    status = run_command(["git", "status", "--porcelain"], cwd=repo, env=env, user=user)
    assert status.returncode == 0 and status.stdout == "", "everything generated is committed"


def render_with_git_home(tmp_path, gitconfig):
    """Render with init_git=yes where git's only configuration is HOME/.gitconfig (None: no file); return
    the first commit's "author | committer". No GIT_AUTHOR_*/GIT_COMMITTER_* variables, no system config."""
    home = tmp_path / "git-home"
    home.mkdir()
    if gitconfig is not None:
        (home / ".gitconfig").write_text(gitconfig)
    env = isolated_env(tmp_path, HOME=str(home), XDG_CONFIG_HOME=str(home / "xdg"), GIT_CONFIG_NOSYSTEM="1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        env.pop(name, None)
    out = tmp_path / "out"
    args = [tool("cookiecutter"), str(TEMPLATE), "--no-input", "-o", str(out), "init_git=yes"]
    args += ["author_name=Answer Author", "author_email=answer@example.org"]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (repo,) = out.iterdir()
    log = subprocess.run(
        ["git", "log", "--format=%an <%ae> | %cn <%ce>"], cwd=repo, capture_output=True, text=True, env=env
    )
    assert log.returncode == 0, log.stderr
    return log.stdout.strip()


def test_first_commit_uses_the_users_git_identity_when_git_has_one(tmp_path):
    identity = render_with_git_home(tmp_path, "[user]\n\tname = Git Person\n\temail = git.person@example.net\n")
    assert identity == "Git Person <git.person@example.net> | Git Person <git.person@example.net>"


def test_first_commit_falls_back_to_the_author_answers_when_git_has_no_identity(tmp_path):
    identity = render_with_git_home(tmp_path, None)
    assert identity == "Answer Author <answer@example.org> | Answer Author <answer@example.org>"


def test_tool_caches_in_the_template_checkout_do_not_reach_the_generated_repository(tmp_path):
    template = template_copy(tmp_path)
    project = template / "{{cookiecutter.project_slug}}"
    planted = ["workflow/scripts/__pycache__/scratch.cpython-311.pyc", ".pytest_cache/README.md"]
    planted += [".ruff_cache/CACHEDIR.TAG", ".snakemake/log/old.snakemake.log", "tests/stray.pyc"]
    for rel in planted:
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_bytes(b"left by a tool\n")
    proc, out = render_template(tmp_path, template=template, init_git="no")
    assert proc.returncode == 0, proc.stderr
    (repo,) = out.iterdir()
    assert (repo / "workflow/vendor/scratch.py").is_file()
    caches = {"__pycache__", ".pytest_cache", ".ruff_cache", ".snakemake"}
    left = [str(p.relative_to(repo)) for p in repo.rglob("*") if p.name in caches or p.suffix == ".pyc"]
    assert left == [], f"tool caches copied into the new project: {left}"


# --------------------------------------------------------------------------
# free-text answers can never become code
# --------------------------------------------------------------------------
TEXT_ANSWERS = ("project_name", "description", "author_name", "author_email")


def refusal(proc, out, field, value):
    """The run failed with one ERROR line naming field and value, no Jinja error, nothing left."""
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR: ")]
    assert any(ln.startswith(f"ERROR: {field}={value!r} is not valid; expected") for ln in errors), proc.stderr
    everything = proc.stdout + proc.stderr
    assert "jinja2" not in everything and "TemplateSyntaxError" not in everything, everything
    assert not out.exists() or not any(out.iterdir()), "a refused answer must leave nothing behind"
    return errors


@pytest.mark.parametrize("field", ["project_name", "description", "author_name"])
@pytest.mark.parametrize("breaker", ["\n", "\r", "\t", "\x85", "\u2028", "\u202e"])
def test_line_breaks_and_control_characters_in_free_text_are_refused_by_field(tmp_path, field, breaker):
    # project_name sits in a comment on the Snakefile's first line: a newline there starts code
    value = f"Wordcount{breaker}import os"
    proc, out = render_template(tmp_path, init_git="no", **{field: value})
    refusal(proc, out, field, value)


def email_with(markup):
    return f"me{markup}x@example.org"


@pytest.mark.parametrize("field", TEXT_ANSWERS)
@pytest.mark.parametrize("markup", ["{{", "{%", "{#"])
def test_jinja_markup_in_a_text_answer_reaches_the_hook_literally_and_is_refused(tmp_path, field, markup):
    # cookiecutter renders answers as Jinja before any hook: an unclosed '{{' used to crash
    # with a traceback naming no answer
    value = email_with(markup) if field == "author_email" else f"a {markup} b"
    proc, out = render_template(tmp_path, init_git="no", **{field: value})
    refusal(proc, out, field, value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("project_name", "{{ 7*7 }}"),
        ("project_name", "x {% endraw %}{{ 7*7 }}"),
        ("description", "{{ cookiecutter.author_name }}"),
        ("project_slug", "{{ 7*7 }}"),
    ],
)
def test_a_jinja_expression_answer_is_refused_not_evaluated(tmp_path, field, value):
    proc, out = render_template(tmp_path, init_git="no", **{field: value})
    refusal(proc, out, field, value)


def test_every_bad_text_answer_is_reported_in_question_order(tmp_path):
    proc, out = render_template(
        tmp_path, init_git="no", author_email="a{{b@example.org", description="one\ntwo", project_name="{{ x"
    )
    errors = refusal(proc, out, "project_name", "{{ x")
    assert [e.split("=")[0] for e in errors] == ["ERROR: project_name", "ERROR: description", "ERROR: author_email"]


def test_markup_answer_given_through_cruft_is_refused_by_field(tmp_path):
    # cruft renders the template from its own clone, through cookiecutter's functions
    env = isolated_env(tmp_path)
    template = template_copy(tmp_path)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "template"]):
        assert run_command(["git", "-c", "commit.gpgsign=false", *args], cwd=template, env=env).returncode == 0
    out = tmp_path / "projects"
    value = "{{ 7*7 }} QC"
    run = run_command(
        [
            tool("cruft"),
            "create",
            str(template),
            "--no-input",
            "--output-dir",
            str(out),
            "--extra-context",
            json.dumps({"project_name": value, "init_git": "no"}),
        ],
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    refusal(run, out, "project_name", value)


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
    # the report rule writes the title into HTML: the name must reach it whole (an emoji once
    # arrived as two lone surrogates and the rule failed)
    snakemake(repo, "--profile", "profiles/local", "results/report.html")
    report = (repo / "results/report.html").read_text(encoding="utf-8")
    assert "<title>Lab&#x27;s &quot;Métagénomique&quot; QC \\ 🧬</title>" in report
