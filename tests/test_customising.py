"""The generated docs/customising.md holds: following it, a user replaces the example with a workflow of their
own and the repository's own `make test` passes; a copied profile directory is a context everywhere (make help,
the generated tests, the docs' contexts table, the no-profile error, a real run) with no other edit."""

import json
import re
import shutil
import sys

import yaml
from conftest import hand_over, isolated_env, node_tmp, run_command, tool, workflow_user

SAMPLES = ("alpha", "beta", "gamma")  # the example's
WORKFLOW_TEST = "test_workflow.py::test_each_local_context_builds_exactly_the_final_outputs_and_publishes_nothing"


def doc_section(repo, heading):
    text = (repo / "docs/customising.md").read_text()
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def bash_blocks(section):
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def run_as_user(repo, tmp_path, args, timeout=600, check=True):
    """Run as the workflow user, with a node-like TMPDIR; with check, it must succeed."""
    env = isolated_env(tmp_path, TMPDIR=str(node_tmp(tmp_path)))
    run = run_command(args, cwd=repo, env=env, timeout=timeout, user=workflow_user())
    assert not check or run.returncode == 0, repr(run)
    return run


# A different workflow: letters per sample (a shell rule through scratch()), then one table over all
# samples (a Python script rule through scratch_job); its own sample sheet columns, config and tests.
INPUTS = {"north.txt": "Abba\nbaba cab\n", "south.txt": "Zebra zone, 42 zebras!\n", "east.txt": "Eel\n\n"}
SAMPLE_SHEET = (
    "sample\tpath\tcondition\nnorth\tnorth.txt\tcontrol\nsouth\tsouth.txt\ttreated\neast\teast.txt\tcontrol\n"
)
KEPT_CONFIG_KEYS = ("samples", "input_dir", "release_sample_sheet_max_bytes")
# what "Replacing the example" names (in backticks) for the steps below to edit or keep
DOC_NAMES = [*KEPT_CONFIG_KEYS, "sample", "path", "group", "process.smk", "aggregate.smk", "FINAL_OUTPUTS"]
DOC_NAMES += """config/samples.tsv workflow/schemas/samples.schema.yaml config/config.yaml workflow/schemas/config.schema.yaml
    workflow/Snakefile workflow/profiles/default/config.yaml profiles/slurm/config.yaml profiles/cluster-sim/config.yaml
    tests/test_workflow.py tests/test_profiles.py""".split()
LETTERS_SHOWN = {"type": "integer", "minimum": 1, "default": 2, "description": "How many top letters the table shows."}

RULES = r"""# Letters per sample (fan-out), then one table over all samples (fan-in).


rule count_letters:
    input:
        text=sample_file,
    output:
        counts="results/letters/{sample}.tsv",
    log:
        "logs/count_letters/{sample}.log",
    shell:
        scratch(
            "exec 2> {log:q}; "
            "LC_ALL=C tr -cd 'A-Za-z' < {input.text:q} | fold -w1 | LC_ALL=C sort | uniq -c"
            " | awk -v OFS='\\t' '{{print $2, $1}}' > {output.counts:q}"
        )


rule letter_table:
    input:
        counts=expand(rules.count_letters.output.counts, sample=SAMPLE_IDS),
    output:
        table="results/letter_table.tsv",
    log:
        "logs/letter_table/letter_table.log",
    params:
        samples=SAMPLE_IDS,
        conditions=[SAMPLES[s]["condition"] for s in SAMPLE_IDS],
        shown=config["letters_shown"],
    script:
        "../scripts/letter_table.py"
"""
SCRIPT = '''"""One row per sample: its condition, how many letters it has and its most frequent ones."""

from scratch import scratch_job


def main(smk) -> None:
    with scratch_job(smk) as job:
        rows = ["sample\\tcondition\\tletters\\ttop\\n"]
        for sample, condition, path in zip(smk.params.samples, smk.params.conditions, job.input.counts, strict=True):
            with open(path, encoding="utf-8") as fh:
                counts = {letter: int(n) for letter, n in (line.split() for line in fh)}
            top = sorted(counts, key=lambda letter: (-counts[letter], letter))[: smk.params.shown]
            rows.append(f"{sample}\\t{condition}\\t{sum(counts.values())}\\t{''.join(top)}\\n")
        with open(job.output.table, "w", encoding="utf-8") as out:
            out.writelines(rows)
        with open(job.log[0], "a", encoding="utf-8") as log:
            log.write(f"{len(rows) - 1} samples\\n")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake's script:
'''
FINAL_OUTPUTS = """FINAL_OUTPUTS = {
    **dict.fromkeys(expand(rules.count_letters.output.counts, sample=SAMPLE_IDS)),
    rules.letter_table.output.table: "letter_table.tsv",
}
"""
RULE_RENAMES = {"tokenize": "count_letters", "summary_table": "letter_table", "summarize_sample": None, "report": None}
OWN_TESTS = '''"""What this workflow computes, checked against counts made here."""

import csv
from collections import Counter


def expected_letters(text):
    return Counter(c for c in text if c.isascii() and c.isalpha())


def test_letters_and_table_match_counts_made_here(built_in):
    build = built_in("local")
    with open(build / "config/samples.tsv") as fh:
        samples = list(csv.DictReader(fh, delimiter="\\t"))
    with open(build / "results/letter_table.tsv") as fh:
        table = {row["sample"]: row for row in csv.DictReader(fh, delimiter="\\t")}
    assert sorted(table) == sorted(s["sample"] for s in samples)
    for s in samples:
        want = expected_letters((build / "data/inputs" / s["path"]).read_text())
        lines = (build / f"results/letters/{s['sample']}.tsv").read_text().splitlines()
        assert {a: int(n) for a, n in (line.split("\\t") for line in lines)} == dict(want)
        top = "".join(sorted(want, key=lambda c: (-want[c], c))[:2])
        assert table[s["sample"]] == {
            "sample": s["sample"], "condition": s["condition"], "letters": str(sum(want.values())), "top": top
        }


def test_a_condition_outside_the_schema_is_refused_before_any_job(workflow_copy, run_snakemake):
    sheet = workflow_copy / "config/samples.tsv"
    sheet.write_text(sheet.read_text().replace("treated", "boiled"))
    proc = run_snakemake(workflow_copy, "--profile", "profiles/local", check=False)
    assert proc.returncode != 0 and "boiled" in proc.stdout + proc.stderr
    assert not (workflow_copy / "results").exists()
'''


def rename_rules(profile):
    """The example's rules in a profile's per-rule entries renamed to ours (RULE_RENAMES), or dropped (None)."""
    lines, dropping = [], False
    for line in profile.read_text().splitlines(keepends=True):
        if entry := re.match(r"^  (\w+):", line):
            rule = entry.group(1)
            dropping = rule in RULE_RENAMES and RULE_RENAMES[rule] is None
            line = line.replace(rule, RULE_RENAMES.get(rule) or rule, 1)
        elif not line.startswith("    "):
            dropping = False
        lines += [] if dropping else [line]
    profile.write_text("".join(lines))


def replace_example(repo, tmp_path):
    """What docs/customising.md "Replacing the example" says, step by step, for the letters workflow."""
    section = doc_section(repo, "Replacing the example")
    # the doc names every file and key the steps below edit or keep
    assert [name for name in DOC_NAMES if f"`{name}`" not in section] == []
    (delete,) = bash_blocks(section)
    run_as_user(repo, tmp_path, ["bash", "-euo", "pipefail", "-c", delete])
    assert not (repo / "tests/test_example.py").exists() and not list((repo / "data/inputs").iterdir())
    # 1. inputs and samples: keep sample and path, replace the example's group with our column
    for name, text in INPUTS.items():
        (repo / "data/inputs" / name).write_text(text)
    (repo / "config/samples.tsv").write_text(SAMPLE_SHEET)
    schema = yaml.safe_load((repo / "workflow/schemas/samples.schema.yaml").read_text())
    assert {"sample", "path", "group"} == set(schema["properties"]), "the doc says which columns to keep"
    del schema["properties"]["group"]
    schema["properties"]["condition"] = {"type": "string", "enum": ["control", "treated"], "description": "condition"}
    schema["required"] = ["sample", "path", "condition"]
    (repo / "workflow/schemas/samples.schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    # 2. configuration: keep the template's keys the doc names, replace the example's parameters (the
    # schema of workflow/schemas/ lists only the workflow's own keys)
    schema_path = repo / "workflow/schemas/config.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    assert not set(KEPT_CONFIG_KEYS) & set(schema["properties"]), "the template's keys have their own schema"
    schema["properties"] = {"letters_shown": LETTERS_SHOWN}
    schema_path.write_text(yaml.safe_dump(schema, sort_keys=False))
    config = yaml.safe_load((repo / "config/config.yaml").read_text())
    config = {k: config[k] for k in KEPT_CONFIG_KEYS if k in config} | {"letters_shown": 2}
    (repo / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # 3. rules: a file of our own, included instead of the example's; FINAL_OUTPUTS set
    (repo / "workflow/rules/letters.smk").write_text(RULES)
    (repo / "workflow/scripts/letter_table.py").write_text(SCRIPT)
    snakefile = repo / "workflow/Snakefile"
    text = snakefile.read_text()
    text, n = re.subn(
        r'include: "rules/process.smk"\ninclude: "rules/aggregate.smk"\n', 'include: "rules/letters.smk"\n', text
    )
    assert n == 1, text
    text, n = re.subn(r"^FINAL_OUTPUTS = \{\n.*?^\}\n", FINAL_OUTPUTS, text, flags=re.M | re.S)
    assert n == 1, text
    snakefile.write_text(text)
    # 4. per-rule resources and the profiles' groups name our rules
    for profile in ("workflow/profiles/default", "profiles/slurm", "profiles/cluster-sim"):
        rename_rules(repo / profile / "config.yaml")
    # 5. our own tests
    (repo / "tests/test_letters.py").write_text(OWN_TESTS)
    hand_over(repo, workflow_user())


def test_following_customising_md_to_replace_the_example_leaves_make_test_passing(render, tmp_path):
    repo = render()
    replace_example(repo, tmp_path)
    # 6. docs: make docs regenerates the tables and the rule graph from the new files
    run_as_user(repo, tmp_path, ["make", "docs"])
    operations = (repo / "docs/operations.md").read_text()
    assert "count_letters --> letter_table" in operations and "tokenize" not in operations.split("## Rule graph")[1]
    assert "| `condition` |" in (repo / "config/README.md").read_text()

    run = run_as_user(repo, tmp_path, ["make", "test"], timeout=1500)
    # pytest's closing line (make may add "Leaving directory" lines after it when run from another make)
    summary = [line for line in run.output.splitlines() if re.search(r"\d+ passed", line)][-1:]
    assert summary and "failed" not in summary[0] and "error" not in summary[0], run.output[-3000:]
    for kept in ("tests/test_letters.py", "tests/test_workflow.py", "tests/test_profiles.py"):
        assert kept in run.output, f"{kept} did not run:\n{run.output[-3000:]}"

    # the declared final outputs are built, and only the one declared with a name is published
    run_as_user(repo, tmp_path, [tool("snakemake"), "--profile", "profiles/local", "publish"])
    assert sorted(p.name for p in (repo / "results/letters").iterdir()) == ["east.tsv", "north.tsv", "south.tsv"]
    manifest = json.loads((repo / "publish/current/MANIFEST.json").read_text())
    assert [f["path"] for f in manifest["files"]] == ["letter_table.tsv"]


def test_a_copied_profile_directory_is_a_context_everywhere_without_other_edits(render, tmp_path):
    """The doc's block copies profiles/local to workstation and runs make docs. A second copy, aa-site, with a
    value edited and only the contexts section regenerated, shows the table's order (the shipped contexts, then
    the others sorted) and its values."""
    repo = render()
    (block,) = bash_blocks(doc_section(repo, "Adding an operating context"))
    run_as_user(repo, tmp_path, ["bash", "-euo", "pipefail", "-c", block])
    profiles = repo / "profiles"
    assert (profiles / "workstation/config.yaml").read_bytes() == (profiles / "local/config.yaml").read_bytes()
    render_docs = [sys.executable, "workflow/vendor/render_docs.py"]
    run_as_user(repo, tmp_path, [*render_docs, "--check"])  # make docs (in the block) regenerated the docs
    shutil.copytree(profiles / "local", profiles / "aa-site")
    text = (profiles / "aa-site/config.yaml").read_text()
    (profiles / "aa-site/config.yaml").write_text(re.sub(r"^latency-wait: *\S+", "latency-wait: 41", text, flags=re.M))
    hand_over(profiles, workflow_user())
    assert run_as_user(repo, tmp_path, [*render_docs, "--check", "--sections", "contexts"], check=False).returncode == 1
    run_as_user(repo, tmp_path, [*render_docs, "--sections", "contexts"])
    table = (repo / "docs/operations.md").read_text().split("<!-- BEGIN GENERATED: contexts", 1)[1]
    table = table.split("<!-- END GENERATED: contexts -->", 1)[0]
    rows = re.findall(r"^\| `([\w-]+)` \|", table, re.M)
    assert rows == ["local", "ci", "slurm", "cluster-sim", "aa-site", "workstation"], table
    assert re.search(r"^\| `aa-site` \|(?:[^|]*\|){5} 41 \|", table, re.M), table
    run_as_user(repo, tmp_path, [*render_docs, "--check"])  # the contexts section was all that changed

    # make help lists it (a bare make is help)
    help_ = run_as_user(repo, tmp_path, ["make"])
    contexts = re.search(r"^Operating contexts[^:]*: (.*)$", help_.stdout, re.M).group(1).split()
    assert contexts == ["aa-site", "ci", "cluster-sim", "local", "slurm", "workstation"], help_.stdout
    assert f"make run CONTEXT=<one of: {' '.join(contexts)}>" in help_.stdout

    # the generated tests run once more, for it
    collect = run_as_user(
        repo, tmp_path, [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"]
    )
    ids = re.findall(r"^(tests/\S+)\[workstation\]$", collect.stdout, re.M)
    for test in ("test_profiles.py::test_no_profile_sets_meaning", WORKFLOW_TEST):
        assert f"tests/{test}" in ids, collect.stdout

    # running jobs without a profile is refused naming it
    bare = run_as_user(repo, tmp_path, [tool("snakemake"), "--cores", "1"], check=False)
    assert bare.returncode != 0 and "No operating context" in bare.output, repr(bare)
    named = re.search(r"one of: ([\w, -]+);", bare.output)
    assert named and sorted(named.group(1).split(", ")) == contexts, bare.output[-2000:]
    assert not (repo / "results").exists()

    # and the example runs with it, recording it as the context of the release
    for args in (["--profile", "profiles/workstation"], ["--profile", "profiles/workstation", "publish"]):
        run_as_user(repo, tmp_path, [tool("snakemake"), *args])
    assert sorted(p.name for p in (repo / "results/samples").iterdir()) == [f"{s}.summary.json" for s in SAMPLES]
    manifest = json.loads((repo / "publish/current/MANIFEST.json").read_text())
    assert manifest["provenance"]["context"] == "workstation"
