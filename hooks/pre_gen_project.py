"""Validate every cookiecutter answer before anything is generated.

A bad answer exits non-zero with one line naming the field, the value and what
is allowed. Cookiecutter removes the half-made output directory when this hook
fails, so nothing is left behind (a template test checks that).
"""

import json
import re
import sys
import unicodedata

ANSWERS = json.loads({{cookiecutter | tojson | tojson}})
# cookiecutter.json itself, in its order, as literal_answers.py (the template's Jinja extension) reads it
QUESTIONS_FILE = dict(json.loads({{template_questions | tojson | tojson}}))

# Cookiecutter renders this file with Jinja; the rest of it is plain Python, kept out of
# that rendering (it names Jinja's own markup) by the raw block that ends on the last line.
# {% raw %}

# The order of the questions, cookiecutter.json's menus (list variables) and its yes/no questions (boolean
# variables). Cookiecutter refuses a value outside a menu given on the command line and turns yes/no,
# true/false, y/n, 1/0, on/off into a boolean before this hook runs; an answer from a replay file
# (cookiecutter --replay-file) reaches the hook unchecked, so each is checked again here.
QUESTIONS = [key for key in QUESTIONS_FILE if not key.startswith("_")]
CHOICES = {key: tuple(value) for key, value in QUESTIONS_FILE.items() if isinstance(value, list)}
BOOLEANS = tuple(key for key, value in QUESTIONS_FILE.items() if isinstance(value, bool))

# Free-text answers land in generated code and text: the first line of workflow/Snakefile is
# a comment holding project_name, author_name sits in a Python string in the post-generation
# hook, README.md and LICENSE hold them as text. One line without control characters keeps
# each of them inside its comment, string or line; no Jinja markup keeps them out of any
# later rendering (cruft update replays the answers through Jinja). Quotes and backslashes
# are fine wherever the value is written as text, a comment or a JSON string (report_title).
NOT_CODE = "control characters or template markup ('{{', '{%', '{#')"
TEXT_FIELDS = ("project_name", "description", "author_name", "author_email")
MARKUP = ("{{", "{%", "{#")
# Unicode bidirectional embedding/override/isolate controls can make a line display
# differently from what it is (Trojan Source); they are format characters, not control ones.
BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Cc: C0/C1 controls (newline, tab, NUL, NEL...); Zl, Zp: the Unicode line/paragraph
# separators, which YAML and str.splitlines() treat as line breaks; Cs: lone surrogates
# (undecodable bytes in an argument), which no UTF-8 file can hold.
BREAKING_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}


def is_plain_text(value):
    """True when the value cannot leave the line, comment or string it is written into."""
    if any(mark in value for mark in MARKUP):
        return False
    return not any(unicodedata.category(ch) in BREAKING_CATEGORIES or ch in BIDI_CONTROLS for ch in value)


# field -> (regular expression the whole value must match, what is allowed)
PATTERNS = {
    "project_name": (
        r"(?s)\S.{0,99}",
        f"a non-empty name of at most 100 characters on one line, without {NOT_CODE}",
    ),
    "project_slug": (
        r"[a-z][a-z0-9_-]{0,63}",
        "lowercase letters, digits, '-' and '_', starting with a letter, at most 64 characters",
    ),
    "description": (r"(?s).*", f"text on one line (may be empty), without {NOT_CODE}"),
    "author_name": (r"(?s)[^\"\\]+", f"a non-empty name on one line, without '\"', '\\', {NOT_CODE}"),
    "author_email": (
        r"[^@\s\"'\\<>]+@[^@\s\"'\\<>]+\.[^@\s\"'\\<>]+",
        f"an address like name@example.org, without spaces, quotes, '\\', '<', '>', {NOT_CODE}",
    ),
    "version": (r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?", "a version like 0.1.0 (X.Y.Z)"),
    "python_version": (r"3\.(?:1[1-9]|[2-9][0-9])", "3.11 or a newer 3.x such as 3.12"),
}


def problems(answers):
    """Yield one message per invalid answer, in question order."""
    for field in QUESTIONS:
        if field in BOOLEANS:
            if not isinstance(answers.get(field), bool):
                value = answers.get(field)
                yield f"{field}={value!r} is not allowed; answer yes or no (true or false in a replay file)"
            continue
        value = str(answers.get(field, ""))
        if field in CHOICES and value not in CHOICES[field]:
            allowed = ", ".join(CHOICES[field])
            yield f"{field}={value!r} is not allowed; choose one of: {allowed}"
        elif field in PATTERNS and not (
            re.fullmatch(PATTERNS[field][0], value) and (field not in TEXT_FIELDS or is_plain_text(value))
        ):
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
# {% endraw %}
