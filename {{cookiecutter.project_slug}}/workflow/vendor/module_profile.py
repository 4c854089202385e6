#!/usr/bin/env python3
"""A profile of this workflow for a host workflow that uses it as a module with a rule prefix.

Snakemake reads the workflow profile of the Snakefile it was started with
(``workflow/profiles/default/`` next to it), never a module's, and a host that
writes ``use rule * from wf as wf_*`` names every rule ``wf_<rule>``. This
prints a copy of a profile with the rule names prefixed under the keys that
take rule names (``set-threads``, ``set-resources``, ``groups``); the copy is
plain YAML (the reasons for each setting stay in this repository's comments)::

    python <this repository>/workflow/vendor/module_profile.py --prefix wf_ \\
        <this repository>/workflow/profiles/default/config.yaml \\
        > workflow/profiles/default/config.yaml

From the Snakemake repository template, release {{ cookiecutter._template_version }}.
"""

import argparse
import re
import sys

import yaml

RULE_KEYS = ("set-threads", "set-resources", "groups")
PREFIX = re.compile(r"[A-Za-z_]\w*")


def prefixed(profile: dict, prefix: str) -> dict:
    """``profile`` with ``prefix`` before every rule name under RULE_KEYS."""
    return {
        key: {f"{prefix}{rule}": value for rule, value in setting.items()} if key in RULE_KEYS else setting
        for key, setting in profile.items()
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", required=True, help="the host's rule prefix, e.g. wf_ for `as wf_*`")
    parser.add_argument("profile", help="a profile config.yaml of this workflow")
    args = parser.parse_args(argv)
    if not PREFIX.fullmatch(args.prefix):
        parser.error(f"--prefix {args.prefix!r} cannot start a rule name (letters, digits, _; not a digit first)")
    with open(args.profile, encoding="utf-8") as fh:
        profile = yaml.safe_load(fh) or {}
    yaml.safe_dump(prefixed(profile, args.prefix), sys.stdout, sort_keys=False, allow_unicode=True, width=1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
