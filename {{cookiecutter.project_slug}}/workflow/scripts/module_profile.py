#!/usr/bin/env python3
"""A profile of this workflow for a host workflow that uses it as a module with a rule prefix.

Snakemake reads the workflow profile of the Snakefile it was started with
(``workflow/profiles/default/`` next to it), never a module's, and a host that
writes ``use rule * from wf as wf_*`` names every rule ``wf_<rule>``. This
prints a copy of a profile with the rule names prefixed under the keys that
take rule names (``set-threads``, ``set-resources``, ``groups``), every comment
kept::

    python <this repository>/workflow/scripts/module_profile.py --prefix wf_ \\
        <this repository>/workflow/profiles/default/config.yaml \\
        > workflow/profiles/default/config.yaml

It reads the layout this repository's profiles are written in: a rule name is
a key indented by two spaces under one of those keys. Stdlib only.

From the Snakemake repository template, release {{ cookiecutter._template_version }}.
"""

import argparse
import re
import sys

RULE_KEYS = ("set-threads", "set-resources", "groups")
TOP_LEVEL_KEY = re.compile(r"^([A-Za-z][\w-]*):")
RULE_NAME_KEY = re.compile(r"^  ([A-Za-z_]\w*):")
PREFIX = re.compile(r"[A-Za-z_]\w*")


def prefixed(text: str, prefix: str) -> str:
    """``text`` (a profile) with ``prefix`` before every rule name under RULE_KEYS."""
    lines, section = [], None
    for line in text.splitlines(keepends=True):
        top = TOP_LEVEL_KEY.match(line)
        if top:
            section = top.group(1)
        elif section in RULE_KEYS:
            line = RULE_NAME_KEY.sub(lambda m: f"  {prefix}{m.group(1)}:", line, count=1)
        lines.append(line)
    return "".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", required=True, help="the host's rule prefix, e.g. wf_ for `as wf_*`")
    parser.add_argument("profile", help="a profile config.yaml of this workflow")
    args = parser.parse_args(argv)
    if not PREFIX.fullmatch(args.prefix):
        parser.error(f"--prefix {args.prefix!r} cannot start a rule name (letters, digits, _; not a digit first)")
    with open(args.profile, encoding="utf-8") as fh:
        sys.stdout.write(prefixed(fh.read(), args.prefix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
