"""The generated repository's docs/customising.md holds: following it, a user replaces the example with a
workflow of their own and the repository's own `make test` passes; a profile directory copied under a new
name is a context everywhere (make help, the generated tests, the docs, the no-profile error, a real run)
with no other edit."""

import json
import re
import sys

import yaml
from conftest import hand_over, isolated_env, node_tmp, run_command, tool, workflow_user


def doc_section(repo, heading):
    text = (repo / "docs/customising.md").read_text()
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def bash_blocks(section):
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def run_as_user(repo, tmp_path, args, timeout=600, **extra_env):
    env = isolated_env(tmp_path, TMPDIR=str(node_tmp(tmp_path)), **extra_env)
    return run_command(args, cwd=repo, env=env, timeout=timeout, user=workflow_user())


# ---------------------------------------------------------------------------------------------------------
# A different workflow: letters per sample (a shell rule through scratch()), then one table over all
# samples (a Python script rule through scratch_job); its own sample sheet columns, config and tests.
# ---------------------------------------------------------------------------------------------------------
INPUTS = {
    "north.txt": "Abba\nbaba cab\n",
    "south.txt": "Zebra zone, 42 zebras!\n",
    "east.txt": "Eel\n\n",
}
SAMPLE_SHEET = (
    "sample\tpath\tcondition\nnorth\tnorth.txt\tcontrol\nsouth\tsouth.txt\ttreated\neast\teast.txt\tcontrol\n"
)
SAMPLES_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "description": "One row of config/samples.tsv: a text file and the condition it was taken under.",
    "type": "object",
    "properties": {
        "sample": {
            "type": "string",
            "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$",
            "maxLength": 128,
            "description": "Unique sample identifier, used in file names.",
        },
        "path": {"type": "string", "minLength": 1, "description": "Text file, relative to input_dir."},
        "condition": {"type": "string", "enum": ["control", "treated"], "description": "control or treated."},
    },
    "required": ["sample", "path", "condition"],
    "additionalProperties": False,
}
KEPT_CONFIG_KEYS = ("samples", "input_dir", "release_sample_sheet_max_bytes")
LETTERS_SHOWN = {
    "type": "integer",
    "minimum": 1,
    "description": "How many of the most frequent letters the table shows.",
    "default": 2,
}

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
RESOURCES = """# Per-rule resources common to every operating context (set-threads, set-resources only).
set-threads:
  count_letters: 1 # one stream of text tools
  letter_table: 1 # reads a few small tables
set-resources:
  count_letters:
    mem_mb: 256 # sort of one sample's letters
    runtime: 5 # minutes
  letter_table:
    mem_mb: 256 # small tables only
    runtime: 5 # minutes
"""
GROUP_RENAMES = {"tokenize": "count_letters", "summary_table": "letter_table", "summarize_sample": None, "report": None}
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


def replace_example(repo, tmp_path):
    """What docs/customising.md "Replacing the example" says, step by step, for the letters workflow."""
    section = doc_section(repo, "Replacing the example")
    (delete,) = bash_blocks(section)
    run = run_as_user(repo, tmp_path, ["bash", "-euo", "pipefail", "-c", delete])
    assert run.returncode == 0, repr(run)
    assert not (repo / "tests/test_example.py").exists() and not list((repo / "data/inputs").iterdir())
    # 1. inputs and samples: keep sample and path, replace the example's group with our column
    for name, text in INPUTS.items():
        (repo / "data/inputs" / name).write_text(text)
    (repo / "config/samples.tsv").write_text(SAMPLE_SHEET)
    old = yaml.safe_load((repo / "workflow/schemas/samples.schema.yaml").read_text())
    assert {"sample", "path", "group"} == set(old["properties"]), "the doc says which columns to keep"
    (repo / "workflow/schemas/samples.schema.yaml").write_text(yaml.safe_dump(SAMPLES_SCHEMA, sort_keys=False))
    # 2. configuration: keep the keys the doc names, replace the example's parameters
    for step in (
        "1. **Inputs and samples.**",
        "2. **Configuration.**",
        "3. **Rules.**",
        "4. **Per-rule",
        "5. **Tests.**",
    ):
        assert step in section, step
    schema_path = repo / "workflow/schemas/config.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    assert all(f"`{key}`" in section for key in KEPT_CONFIG_KEYS)
    schema["properties"] = {k: schema["properties"][k] for k in KEPT_CONFIG_KEYS} | {"letters_shown": LETTERS_SHOWN}
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
    (repo / "workflow/profiles/default/config.yaml").write_text(RESOURCES)
    for context in ("slurm", "cluster-sim"):
        profile = repo / "profiles" / context / "config.yaml"
        lines = []
        for line in profile.read_text().splitlines(keepends=True):
            rule = re.match(r"^  (\w+): (per_sample|fan_in)\b", line)
            if rule and rule.group(1) in GROUP_RENAMES:
                if GROUP_RENAMES[rule.group(1)] is None:
                    continue
                line = line.replace(rule.group(1), GROUP_RENAMES[rule.group(1)], 1)
            lines.append(line)
        profile.write_text("".join(lines))
    # 5. our own tests
    (repo / "tests/test_letters.py").write_text(OWN_TESTS)
    hand_over(repo, workflow_user())


def test_following_customising_md_to_replace_the_example_leaves_make_test_passing(render, tmp_path):
    repo = render()
    replace_example(repo, tmp_path)
    # 6. docs: make docs regenerates the tables and the rule graph from the new files
    docs = run_as_user(repo, tmp_path, ["make", "docs"])
    assert docs.returncode == 0, repr(docs)
    operations = (repo / "docs/operations.md").read_text()
    assert "count_letters --> letter_table" in operations and "tokenize" not in operations.split("## Rule graph")[1]
    assert "| `condition` |" in (repo / "config/README.md").read_text()

    run = run_as_user(repo, tmp_path, ["make", "test"], timeout=1500)
    assert run.returncode == 0, repr(run)
    # pytest's closing line (make may add "Leaving directory" lines after it when run from another make)
    summary = [line for line in run.output.splitlines() if re.search(r"\d+ passed", line)][-1:]
    assert summary and "failed" not in summary[0] and "error" not in summary[0], run.output[-3000:]
    for kept in ("tests/test_letters.py", "tests/test_workflow.py", "tests/test_profiles.py"):
        assert kept in run.output, f"{kept} did not run:\n{run.output[-3000:]}"

    # the declared final outputs are built, and only the one declared with a name is published
    publish = run_as_user(repo, tmp_path, [tool("snakemake"), "--profile", "profiles/local", "publish"])
    assert publish.returncode == 0, repr(publish)
    assert sorted(p.name for p in (repo / "results/letters").iterdir()) == ["east.tsv", "north.tsv", "south.tsv"]
    manifest = json.loads((repo / "publish/current/MANIFEST.json").read_text())
    assert [f["path"] for f in manifest["files"]] == ["letter_table.tsv"]


def test_a_copied_profile_directory_is_a_context_everywhere_without_other_edits(render, tmp_path):
    repo = render()
    (copy,) = bash_blocks(doc_section(repo, "Adding an operating context"))
    run = run_as_user(repo, tmp_path, ["bash", "-euo", "pipefail", "-c", copy])
    assert run.returncode == 0, repr(run)
    assert (repo / "profiles/workstation/config.yaml").read_bytes() == (
        repo / "profiles/local/config.yaml"
    ).read_bytes()

    # make help lists it (a bare make is help)
    help_ = run_as_user(repo, tmp_path, ["make"])
    assert help_.returncode == 0, repr(help_)
    contexts = re.search(r"^Operating contexts[^:]*: (.*)$", help_.stdout, re.M).group(1).split()
    assert contexts == ["ci", "cluster-sim", "local", "slurm", "workstation"], help_.stdout
    assert "make run CONTEXT=<one of: ci cluster-sim local slurm workstation>" in help_.stdout

    # the generated tests run once more, for it
    collect = run_as_user(
        repo, tmp_path, [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"]
    )
    assert collect.returncode == 0, repr(collect)
    ids = re.findall(r"^(tests/\S+)\[workstation\]$", collect.stdout, re.M)
    assert "tests/test_profiles.py::test_no_profile_sets_meaning" in ids, collect.stdout
    assert (
        "tests/test_workflow.py::test_each_local_context_builds_exactly_the_final_outputs_and_publishes_nothing" in ids
    )

    # make docs (run by the doc's block above) gave it a row in the contexts table, and --check agrees
    table = (repo / "docs/operations.md").read_text().split("<!-- BEGIN GENERATED: contexts", 1)[1]
    assert re.search(r"^\| `workstation` \| local \|", table.split("<!-- END GENERATED: contexts -->")[0], re.M)
    check = run_as_user(repo, tmp_path, [sys.executable, "workflow/vendor/render_docs.py", "--check"])
    assert check.returncode == 0, repr(check)

    # running jobs without a profile is refused naming it
    bare = run_as_user(repo, tmp_path, [tool("snakemake"), "--cores", "1"])
    assert bare.returncode != 0 and "No operating context" in bare.output, repr(bare)
    assert "one of: ci, cluster-sim, local, slurm, workstation" in bare.output, bare.output[-2000:]
    assert not (repo / "results").exists()

    # and the example runs with it, recording it as the context of the release
    for args in (["--profile", "profiles/workstation"], ["--profile", "profiles/workstation", "publish"]):
        run = run_as_user(repo, tmp_path, [tool("snakemake"), *args])
        assert run.returncode == 0, repr(run)
    assert sorted(p.name for p in (repo / "results/samples").iterdir()) == [
        "alpha.summary.json",
        "beta.summary.json",
        "gamma.summary.json",
    ]
    manifest = json.loads((repo / "publish/current/MANIFEST.json").read_text())
    assert manifest["provenance"]["context"] == "workstation"


DOC_POINTER = re.compile(r"(?<![\w/.-])((?:\.\./)*(?:docs|config)/[\w.-]+\.md)\b")


def test_no_generated_file_points_at_a_document_the_generated_repository_lacks(render):
    repo = render()
    missing = []
    for path in sorted(p for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            where = f"{path.relative_to(repo)}:{lineno}"
            if re.search(r"template's (?:docs|documentation)", line):
                missing.append(f"{where}: points at the template's docs: {line.strip()}")
            for target in DOC_POINTER.findall(line):
                if not ((path.parent / target).exists() or (repo / target.lstrip("./")).exists()):
                    missing.append(f"{where}: {target} does not exist in the generated repository")
    assert missing == []
    assert (repo / "docs/customising.md").is_file()
