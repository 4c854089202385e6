"""Shape the generated repository to the chosen options.

Removes the files of options that were not selected, sets run bits, fills the generated doc
tables, records the sha256 of each vendored file, optionally makes the first git commit, and
prints the next two commands.
"""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

LICENSE = "{{ cookiecutter.license }}"
CI = "{{ cookiecutter.ci }}"
# a yes/no question: cookiecutter hands the hook a boolean
INIT_GIT = "{{ cookiecutter.init_git }}" == "True"
SLUG = "{{ cookiecutter.project_slug }}"
# cruft (create, update, diff) adds _commit to the context. It writes .cruft.json after this hook and
# renders throwaway copies to diff, so a git repository made here would miss .cruft.json (create) or
# put .git/ into the diff and break the update (update): under cruft, git init is left to the user.
UNDER_CRUFT = "{{ cookiecutter._commit | default('') }}" != ""

# option value -> paths that only belong to that value
CI_FILES = {
    "github": [".github"],
    "gitlab": [".gitlab-ci.yml", "renovate.json"],  # .github/ holds GitHub's CI and Dependabot
}
EXECUTABLES = [
    "profiles/cluster-sim/submit",
    "profiles/cluster-sim/status",
    "profiles/cluster-sim/cancel",
    "workflow/vendor/scratch.py",
    "workflow/vendor/publish.py",
    "workflow/vendor/render_docs.py",
    "workflow/vendor/checksums.py",
]


def remove(path):
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def prune_unselected():
    if LICENSE == "none":
        remove("LICENSE")
    for choice, paths in CI_FILES.items():
        if choice != CI:
            for path in paths:
                remove(path)


def set_run_bits():
    for name in EXECUTABLES:
        path = Path(name)
        if path.exists():
            mode = path.stat().st_mode
            path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


# Caches that tools leave in a template checkout (someone ran pytest, ruff or snakemake inside the
# template's project folder) and that render_docs() below may create: never part of a new project.
TOOL_CACHES = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".snakemake"}


def remove_tool_caches():
    for folder, dirs, files in os.walk("."):
        for name in TOOL_CACHES.intersection(dirs):
            shutil.rmtree(os.path.join(folder, name))
            dirs.remove(name)  # do not walk into what is gone
        for name in files:
            if name.endswith(".pyc"):
                os.remove(os.path.join(folder, name))


# the answers, for the first commit where git has no identity of its own
AUTHOR = {"user.name": "{{ cookiecutter.author_name }}", "user.email": "{{ cookiecutter.author_email }}"}


def git_identity():
    """-c options naming the first commit's author: git's own identity, else the author answers.

    `git config` is asked inside the new repository, so system, global (~/.gitconfig or
    $XDG_CONFIG_HOME/git/config) and GIT_CONFIG_* settings all count, as for any commit the user makes.
    A setting git lacks (never configured, or a CI runner) falls back to the answer, so the commit
    never fails for want of an identity. GIT_AUTHOR_*/GIT_COMMITTER_* variables still win, as always.
    """
    options = []
    for key, answer in AUTHOR.items():
        own = subprocess.run(["git", "config", key], capture_output=True, text=True)
        if own.returncode != 0 or not own.stdout.strip():
            options += ["-c", f"{key}={answer}"]
    return options


def init_git():
    if shutil.which("git") is None:
        print("WARNING: init_git=yes but git is not installed; skipped git init.", file=sys.stderr)
        return
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["git", "checkout", "-q", "-b", "main"], check=True)
    subprocess.run(["git", "add", "-A"], check=True)
    message = "Initial commit from the Snakemake repository template"
    subprocess.run(["git", *git_identity(), "-c", "commit.gpgsign=false", "commit", "-q", "-m", message], check=True)


def render_docs():
    """Fill the generated doc tables from the profiles and schemas just rendered."""
    subprocess.run(
        [sys.executable, "workflow/vendor/render_docs.py", "--sections", "contexts", "slurm-status-checks", "config-keys", "sample-columns"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def record_vendor_sums():
    """workflow/vendor/SHA256SUMS of the files as rendered (they carry the release and the answers)."""
    subprocess.run([sys.executable, "workflow/vendor/checksums.py", "record"], check=True, stdout=subprocess.DEVNULL)


def main():
    prune_unselected()
    set_run_bits()
    render_docs()
    remove_tool_caches()
    record_vendor_sums()
    if UNDER_CRUFT:
        remove(".template-answers.json")  # cruft keeps the answers in .cruft.json
    if INIT_GIT and UNDER_CRUFT:
        print("cruft: skipped git init; run git init and commit everything, .cruft.json included.")
    elif INIT_GIT:
        init_git()
    print(f"\nCreated {SLUG}. Next:\n")
    print(f"  cd {SLUG}")
    print("  make setup    # create .venv from the pinned requirements.txt")
    print("  make run      # run the example workflow with profiles/local\n")


if __name__ == "__main__":
    main()
