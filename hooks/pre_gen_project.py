"""Validate every cookiecutter answer before anything is generated.

A bad answer exits non-zero with one line naming the field, the value and what
is allowed. Cookiecutter removes the half-made output directory when this hook
fails, so nothing is left behind (a template test checks that).
"""

import json
import re
import sys

ANSWERS = json.loads({{cookiecutter | tojson | tojson}})

CHOICES = {
    "license": ("MIT", "BSD-3-Clause", "Apache-2.0", "none"),
    "ci": ("github", "gitlab", "none"),
    "init_git": ("yes", "no"),
}

# field -> (regular expression the whole value must match, what is allowed)
PATTERNS = {
    "project_name": (r"(?s)\S.{0,99}", "a non-empty name of at most 100 characters"),
    "project_slug": (
        r"[a-z][a-z0-9_-]{0,63}",
        "lowercase letters, digits, '-' and '_', starting with a letter, at most 64 characters",
    ),
    "description": (r"[^\n\r]*", "a single line of text"),
    "author_name": (r"[^\n\r\"\\]+", "a non-empty single line without '\"' or '\\'"),
    "author_email": (r"[^@\s\"']+@[^@\s\"']+\.[^@\s\"']+", "an address like name@example.org"),
    "version": (r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?", "a version like 0.1.0 (X.Y.Z)"),
    "python_version": (r"3\.(?:1[1-9]|[2-9][0-9])", "3.11 or a newer 3.x such as 3.12"),
    "slurm_account": (r"[A-Za-z0-9_.-]*", "empty or letters, digits, '_', '.' and '-'"),
    "slurm_partition": (r"[A-Za-z0-9_.,-]*", "empty or letters, digits, '_', '.', ',' and '-'"),
    "slurm_runtime_minutes": (r"[1-9][0-9]{0,5}", "a whole number of minutes, at least 1"),
    "cluster_latency_wait": (r"[0-9]{1,4}", "a whole number of seconds, 0 or more (at most 9999)"),
    "cluster_scratch_env": (
        r"[A-Za-z_][A-Za-z0-9_]{0,63}",
        "an environment variable name such as SLURM_TMPDIR (letters, digits, '_'; not starting with a digit)",
    ),
}


# the order cookiecutter.json asks the questions in (tojson sorts the answers)
QUESTIONS = [
    "project_name",
    "project_slug",
    "description",
    "author_name",
    "author_email",
    "version",
    "license",
    "python_version",
    "ci",
    "slurm_account",
    "slurm_partition",
    "slurm_runtime_minutes",
    "cluster_latency_wait",
    "cluster_scratch_env",
    "init_git",
]


def problems(answers):
    """Yield one message per invalid answer, in question order."""
    for field in QUESTIONS:
        value = str(answers.get(field, ""))
        if field in CHOICES and value not in CHOICES[field]:
            allowed = ", ".join(CHOICES[field])
            yield f"{field}={value!r} is not allowed; choose one of: {allowed}"
        elif field in PATTERNS and not re.fullmatch(PATTERNS[field][0], value):
            yield f"{field}={value!r} is not valid; expected {PATTERNS[field][1]}"


def main():
    errors = list(problems(ANSWERS))
    for message in errors:
        print(f"ERROR: {message}", file=sys.stderr)
    if errors:
        print(
            "Nothing was generated. Re-run cookiecutter with corrected answers, "
            "e.g. cookiecutter <template> --no-input field=value.",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
