"""What a port does that docs/customising.md of the generated repository says, shared by the ports."""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml


def doc_section(repo, heading):
    text = (repo / "docs/customising.md").read_text()
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def run_removals(repo):
    """The `rm` block of "Replacing the example", as written there."""
    (block,) = re.findall(r"```bash\n(.*?)```", doc_section(repo, "Replacing the example"), re.S)
    subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=repo, check=True)


def edit_yaml(path, change):
    path.write_text(yaml.safe_dump(change(yaml.safe_load(path.read_text())), sort_keys=False))


def set_groups(profile, groups):
    """The groups: of a cluster profile name this workflow's rules (``{rule: group}``) instead of the example's."""
    lines, seen = [], False
    for line in profile.read_text().splitlines(keepends=True):
        if re.match(r"^  \w+: (per_sample|fan_in)\b", line):
            if not seen:
                lines += [f"  {rule}: {group} # seconds per job on the test data\n" for rule, group in groups.items()]
                seen = True
            continue
        lines.append(line)
    assert seen, f"{profile}: no groups: entries of the example to replace"
    profile.write_text("".join(lines))


def add_pin(path, line, after):
    text = path.read_text()
    if line not in text:
        text, n = re.subn(rf"^({re.escape(after)}.*\n)", rf"\1{line}\n", text, count=1, flags=re.M)
        assert n == 1, f"{path}: no {after} line to add {line} after"
        path.write_text(text)


def describe_and_regenerate_docs(repo, what_it_computes, adding_a_sample):
    """Step 6: the prose that described the example (README.md's description line, config/README.md's part
    of adding a sample), then `make docs`."""
    for path, pattern, text in (
        (repo / "README.md", r"\A(# [^\n]*\n\n)[^\n]+", what_it_computes),
        (repo / "config/README.md", r"()\(for the example: [^)]*\)", f"({adding_a_sample})"),
    ):
        new, n = re.subn(pattern, lambda m, text=text: m.group(1) + text, path.read_text(), count=1)
        assert n == 1, f"{path.name}: the example's text to replace"
        path.write_text(new)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    docs = subprocess.run(["make", "docs"], cwd=repo, env=env, capture_output=True, text=True)
    assert docs.returncode == 0, f"make docs failed:\n{docs.stdout}\n{docs.stderr}"


def fit_contexts(repo, groups, system_packages):
    """Step 4: the cluster profiles group this workflow's rules; the CI file installs the tools its rules call."""
    for context in ("slurm", "cluster-sim"):
        set_groups(repo / "profiles" / context / "config.yaml", groups)
    for ci in (repo / ".github/workflows/ci.yml", repo / ".gitlab-ci.yml"):  # the one the ci answer chose
        if ci.exists():
            ci.write_text(ci.read_text().replace('SYSTEM_PACKAGES: ""', f'SYSTEM_PACKAGES: "{system_packages}"'))
