"""Jinja extension that makes cookiecutter treat every answer as plain text.

Cookiecutter renders each answer as a Jinja template before any hook runs: an answer
given on the command line, in a user config's default_context or replayed by cruft
from `.cruft.json` is rendered like the expressions of cookiecutter.json itself. So
`project_name='{{ 7*7 }}'` silently became `49` and `project_name='a {{ b'` crashed
with a Jinja traceback that names no answer. With this extension (listed in
cookiecutter.json `_extensions`; cookiecutter and cruft put the template directory on
sys.path), an answer that is not one of cookiecutter.json's own expressions renders to
exactly itself, so hooks/pre_gen_project.py sees it unchanged and can refuse it by name.

Which sources are answers is decided from the template alone, through cookiecutter's public
interfaces: a source rendered from a string (a template file's contents are loaded by name, and
are not touched) is the template's own when it is one of cookiecutter.json's strings, a hook script, or a path of
the template folder that holds markup (the `{{cookiecutter.project_slug}}` folder); any other
source renders to exactly itself.
"""

import json
from pathlib import Path

from jinja2.ext import Extension

HERE = Path(__file__).resolve().parent  # absolute: cookiecutter changes directory while it renders
QUESTIONS_FILE = HERE / "cookiecutter.json"
MARKUP = ("{{", "{%", "{#")


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


def own_sources():
    """Every source string of this template that cookiecutter renders from a string."""
    own = set(template_strings(json.loads(QUESTIONS_FILE.read_text(encoding="utf-8"))))
    own.update(hook.read_text(encoding="utf-8") for hook in (HERE / "hooks").iterdir() if hook.is_file())
    project = next(p for p in HERE.iterdir() if p.is_dir() and p.name.startswith("{{"))
    own.add(project.name)
    own.update(str(p.relative_to(project)) for p in project.rglob("*") if any(m in p.name for m in MARKUP))
    return own


def is_own(source, own):
    """True for a source of the template: listed, or a path ending in a listed path. Any other source
    renders literally, even without markup: Jinja would turn a carriage return into a newline."""
    if source in own:
        return True
    return any(source.endswith("/" + path) for path in own if "/" in path)


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
        self.own = own_sources()
        # cookiecutter.json's [key, value] pairs in its order (menus included) for hooks/pre_gen_project.py:
        # a replay file or cruft hands the hook the answers only (Jinja's tojson sorts a dict's keys)
        questions = json.loads(QUESTIONS_FILE.read_text(encoding="utf-8"))
        environment.globals["template_questions"] = list(questions.items())

    def preprocess(self, source, name, filename=None):
        if name is None and not is_own(source, self.own):
            return literal(source)
        return source
