#!/usr/bin/env python3
"""Regenerate the parts of the docs that restate facts kept elsewhere.

The docs must not drift from the files they describe, so these sections are
written from those files, between ``<!-- BEGIN GENERATED: name ... -->`` and
``<!-- END GENERATED: name -->`` markers:

* ``docs/operations.md``: ``contexts`` and ``slurm-status-checks`` (from
  ``profiles/*/config.yaml``) and ``rulegraph`` (from ``snakemake --rulegraph
  mermaid-js``);
* ``config/README.md``: ``config-keys`` and ``sample-columns`` (from the JSON
  Schemas in ``workflow/schemas/``).

``python workflow/vendor/render_docs.py`` rewrites them; ``--check`` only
reports what differs (exit 1), as the repository's tests do.

From the Snakemake repository template, release {{ cookiecutter._template_version }}.
"""

import argparse
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml
from contract import contexts, load_profile  # this folder's contract.py: the contexts, found once

REPO = Path(__file__).resolve().parents[2]
MARKER = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+)[^>]*-->\n)(?P<body>.*?)(<!-- END GENERATED: (?P=name) -->)", re.S
)


def _unquote(value) -> str:
    text = str(value).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _log_locations(profile: dict) -> str:
    where = ["`logs/<rule>/` (job logs)", "`.snakemake/log/` (run log)"]
    if profile.get("slurm-logdir"):
        where.insert(1, f"`{profile['slurm-logdir']}/` (Slurm job output)")
    if str(profile.get("cluster-generic-submit-cmd", "")).strip():
        where.insert(1, "`.cluster-sim/` (scheduler records and job output)")
    return "<br>".join(where)


def contexts_table() -> str:
    rows = [
        "| context | executor | jobs | scratch root (`tmpdir`) | staging | scratch on failure | latency-wait (s) "
        "| retries | rerun-incomplete | keep-going | logs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for context in contexts(REPO):
        p = load_profile(context, REPO)
        res = p.get("default-resources", {}) or {}
        jobs = p.get("jobs", p.get("cores", ""))
        rows.append(
            f"| `{context}` | {p.get('executor', 'local')} | {jobs} | `{_unquote(res.get('tmpdir', ''))}` "
            f"| {_unquote(res.get('scratch_staging', ''))} | {_unquote(res.get('scratch_on_failure', ''))} "
            f"| {p.get('latency-wait', 5)} | {p.get('retries', 0)} | {str(p.get('rerun-incomplete', False)).lower()} "
            f"| {str(p.get('keep-going', False)).lower()} | {_log_locations(p)} |"
        )
    if "slurm" not in contexts(REPO):
        return "\n".join(rows) + "\n"
    rows += ["", *site_settings_table()]
    return "\n".join(rows) + "\n"


# The Slurm profile's site settings: (what, profile key, where in the profile), in the table's order.
SITE_SETTINGS = (
    ("account", "slurm_account", "default-resources"),
    ("partition", "slurm_partition", "default-resources"),
    ("default runtime (min)", "runtime", "default-resources"),
    ("latency-wait (s)", "latency-wait", None),
    ("scratch root", "tmpdir", "default-resources"),
)


def site_settings_table() -> list[str]:
    """The Slurm profile's site settings as they stand; a commented-out (absent) one reads "not set"."""
    profile = load_profile("slurm", REPO)
    rows = [
        "Site settings of `profiles/slurm/config.yaml` (the lines marked `site setting`; they ship commented out "
        "or with safe defaults: edit them for your cluster, then rerun `python workflow/vendor/render_docs.py`):",
        "",
        "| setting | value |",
        "| --- | --- |",
    ]
    for what, key, section in SITE_SETTINGS:
        values = (profile.get(section) or {}) if section else profile
        value = _unquote(values[key]) if values.get(key) not in (None, "") else ""
        shown = f"`{value}`" if key == "tmpdir" and value else value or "*not set* (the site's default)"
        rows.append(f"| {what} (`{key}`) | {shown} |")
    return rows


def slurm_status_checks() -> str:
    """What the Slurm profile's status-check wait costs short jobs, with the profile's own number."""
    if "slurm" not in contexts(REPO):
        return "This repository has no `profiles/slurm`.\n"
    wait = load_profile("slurm", REPO).get("slurm-init-seconds-before-status-checks")
    setting = (
        f"`profiles/slurm` sets `slurm-init-seconds-before-status-checks: {wait}`, so checks come {wait} s apart"
        if wait is not None
        else "`profiles/slurm` leaves `slurm-init-seconds-before-status-checks` to the plugin's default, the "
        "interval between checks"
    )
    per_step = f"about {wait} s" if wait is not None else "that interval"
    grouping = (
        "So `profiles/slurm` groups short jobs into few scheduler jobs (`groups`, `group-components`; "
        "`--groups none=none` turns that off for one run)."
        if load_profile("slurm", REPO).get("groups")
        else "For such work, group short jobs into few scheduler jobs (`groups` and `group-components` in "
        "`profiles/slurm`)."
    )
    text = (
        "On Slurm, Snakemake learns that a job has ended only at its next status check. "
        f"{setting}, and further apart (up to 3 minutes) after each check that finds nothing finished. "
        f"Jobs that run for minutes hardly notice; a chain of seconds-long jobs pays {per_step} per step. "
        f"{grouping} Lower the wait only if your site accepts the extra `sacct` queries."
    )
    return textwrap.fill(text, width=110, break_long_words=False, break_on_hyphens=False) + "\n"


def rulegraph() -> str:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--profile",
            "profiles/local",
            "--rulegraph",
            "mermaid-js",
            "all",
            "publish",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        reason = snakemake_reason(proc.stderr).rstrip(".")
        raise SystemExit(
            f"render_docs.py: the job graph cannot be built (the rule graph of docs/operations.md needs it): {reason}."
            " Fix the inputs (config/samples.tsv, data/inputs/, the rules' input files), then rerun `make docs`."
        )
    return "```mermaid\n" + canonical_rulegraph(proc.stdout) + "```\n"


# The line that opens Snakemake's report of an error: "MissingInputException in rule x in file ...:",
# "WorkflowError in file ...:", "WorkflowError:".
ERROR_HEADER = re.compile(r"^\w*(?:Error|Exception)\b.*:$")


def snakemake_reason(stderr: str) -> str:
    """The first line of Snakemake's own reason for a failure, on one line with what it names.

    A reason that introduces a list (it ends with ":") keeps its first item, and a missing input
    exception its affected files, so the line names what is missing; Snakemake's traceback lines
    (``File "...", line N``) are left out.
    """
    lines = stderr.splitlines()
    body = []
    for at, line in enumerate(lines):
        if ERROR_HEADER.match(line.strip()):
            for rest in lines[at + 1 :]:
                if not rest.strip() or rest.lstrip().startswith(('File "', "Traceback")):
                    break
                body.append(rest.strip())
            break
    if not body:  # no error report of the usual shape: its last line
        body = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith('File "')][-1:]
    if not body:
        return "Snakemake gave no reason"
    first, details = body[0], body[1:]
    if "affected files:" in details:
        files = details[details.index("affected files:") + 1 :]
        return f"{first} {', '.join(files)}".strip()
    if first.endswith(":") and details:
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        return f"{first} {details[0].removeprefix('- ')}{more}"
    return first


def canonical_rulegraph(mermaid: str) -> str:
    """Snakemake numbers nodes in a varying order; name them by rule and sort, so the text is stable."""
    names = dict(re.findall(r"^\s*(id\d+)\[([^\]]+)\]", mermaid, re.M))
    edges = sorted({(names[a], names[b]) for a, b in re.findall(r"^\s*(id\d+) --> (id\d+)", mermaid, re.M)})
    lines = ["flowchart TB"]
    lines += [f"    {name}[{name}]" for name in sorted(names.values())]
    lines += [f"    {a} --> {b}" for a, b in edges]
    return "\n".join(lines) + "\n"


def _schema(name: str) -> dict:
    """A schema of workflow/schemas/; the config's is preceded by the template's keys (vendor/)."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / name).read_text())
    if name == "config.schema.yaml":
        template = yaml.safe_load((REPO / "workflow" / "vendor" / name).read_text())
        schema["properties"] = template["properties"] | schema["properties"]
        schema["required"] = template.get("required", []) + schema.get("required", [])
    return schema


def _constraints(spec: dict) -> str:
    parts = []
    for key, label in (("minimum", "≥"), ("maximum", "≤"), ("minLength", "length ≥"), ("pattern", "matches")):
        if key in spec:
            value = f"`{spec[key]}`" if key == "pattern" else spec[key]
            parts.append(f"{label} {value}")
    return ", ".join(parts)


def schema_table(name: str, heading: str) -> str:
    schema = _schema(name)
    required = set(schema.get("required", []))
    rows = [
        f"| {heading} | type | required | default | constraints | meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, spec in schema["properties"].items():
        default = f"`{spec['default']}`" if "default" in spec and spec["default"] != "" else ""
        rows.append(
            f"| `{key}` | {spec.get('type', '')} | {'yes' if key in required else 'no'} | {default} "
            f"| {_constraints(spec)} | {spec.get('description', '')} |"
        )
    return "\n".join(rows) + "\n"


SECTIONS = {
    "docs/operations.md": {
        "contexts": contexts_table,
        "slurm-status-checks": slurm_status_checks,
        "rulegraph": rulegraph,
    },
    "config/README.md": {
        "config-keys": lambda: schema_table("config.schema.yaml", "key"),
        "sample-columns": lambda: schema_table("samples.schema.yaml", "column"),
    },
}


def render(path: str, makers: dict) -> tuple[str, str, list[str]]:
    """Return (old text, new text, names of the sections found)."""
    old = (REPO / path).read_text()
    found = []

    def replace(match):
        name = match.group("name")
        if name not in makers:
            return match.group(0)
        found.append(name)
        return match.group(1) + makers[name]() + match.group(4)

    new = MARKER.sub(replace, old)
    missing = set(makers) - set(found)
    if missing:
        raise SystemExit(f"{path}: missing GENERATED markers for {', '.join(sorted(missing))}")
    return old, new, found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report drift instead of rewriting (exit 1 on drift)")
    parser.add_argument("--sections", nargs="*", help="only these sections (default: all)")
    args = parser.parse_args(argv)
    stale = []
    for path, makers in SECTIONS.items():
        if args.sections is not None:
            makers = {name: make for name, make in makers.items() if name in args.sections}
            if not makers:
                continue
        old, new, found = render(path, makers)
        if old != new:
            if args.check:
                stale.append(path)
            else:
                (REPO / path).write_text(new)
                print(f"updated {path} ({', '.join(found)})")
    if stale:
        for path in stale:
            print(f"{path} is out of date with the files it describes", file=sys.stderr)
        print("regenerate with: python workflow/vendor/render_docs.py", file=sys.stderr)
        return 1
    if args.check:
        print("generated docs are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
