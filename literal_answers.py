"""Jinja extension that makes cookiecutter treat every answer as plain text.

Cookiecutter renders each answer as a Jinja template before any hook runs: an answer
given on the command line, in a user config's default_context or replayed by cruft
from `.cruft.json` is rendered like the expressions of cookiecutter.json itself. So
`project_name='{{ 7*7 }}'` silently became `49` and `project_name='a {{ b'` crashed
with a Jinja traceback that names no answer. With this extension (listed in
cookiecutter.json `_extensions`; cookiecutter and cruft put the template directory on
sys.path), an answer that is not one of cookiecutter.json's own expressions renders to
exactly itself, so hooks/pre_gen_project.py sees it unchanged and can refuse it by name.

Only sources that cookiecutter renders as answers are touched (found by the caller,
cookiecutter.prompt.render_variable): file names, file contents and hook scripts of the
template render as before.
"""

import json
import sys
from pathlib import Path

from jinja2.ext import Extension

# the function through which cookiecutter renders each answer (and each default)
ANSWER_RENDERER = ("cookiecutter.prompt", "render_variable")
# how many frames up from preprocess() that function may be (Jinja's own frames between)
SEARCH_DEPTH = 12
# this template's questions (absolute: cookiecutter changes directory while it renders)
QUESTIONS_FILE = Path(__file__).resolve().with_name("cookiecutter.json")


def template_strings(value):
    """Every string in cookiecutter.json (keys and values, nested): the template's own."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from template_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from template_strings(item)


def rendered_as_answer():
    """True when Jinja is compiling a source for cookiecutter's render_variable."""
    frame = sys._getframe(1)
    for _ in range(SEARCH_DEPTH):
        if frame is None:
            return False
        if (frame.f_globals.get("__name__"), frame.f_code.co_name) == ANSWER_RENDERER:
            return True
        frame = frame.f_back
    return False


def literal(text):
    """A Jinja template that renders to exactly `text`: one string-literal expression.

    Jinja decodes string literals with unicode-escape, so that escaping round-trips any
    text (quotes, backslashes, newlines, `{% endraw %}`, non-ASCII); a {% raw %} block
    would not survive an answer containing `{% endraw %}`.
    """
    escaped = text.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return '{{ "' + escaped + '" }}'


class LiteralAnswers(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        # read on every new environment (not at import): cruft update renders two commits of
        # the template from one checkout in one process, and the module is imported once
        self.own = set(template_strings(json.loads(QUESTIONS_FILE.read_text(encoding="utf-8"))))

    def preprocess(self, source, name, filename=None):
        if name is None and source not in self.own and rendered_as_answer():
            return literal(source)
        return source
