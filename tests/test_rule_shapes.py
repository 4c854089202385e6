"""The shapes of rules users write, through the contract, with the real snakemake CLI as the workflow user: each
works in node-local scratch (every path its command sees exists there, outputs come back whole) or is refused before
any job, naming the rule and what to do. Then what results/ may hold: only final outputs (stale ones are set aside),
on another filesystem too, several files per sample."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import hand_over, other_filesystem_than, scratch_records, workflow_user
from test_rule_kinds import use_snakemakes_shadow

# A shared reference outside the checkout, with the companion files a tool finds beside it.
REFERENCE = {"genome.fa": ">chr1\nACGTACGT\n", "genome.fa.fai": "chr1\t8\t6\t8\t9\n"}

# The same two rules, shell and Python script alike: only each rule's action differs.
RULES = """
rule per_sample:
    input: text=sample_file, ref=multiext("../shared/genome.fa", "", ".fai")
    output: stats=multiext("results/shapes/{{sample}}", ".words", ".lines"), tmp=temp("work/shapes/{{sample}}.tmp")
    log: "logs/per_sample/{{sample}}.log"
{per_sample}


rule fan_in:
    input: words=expand("results/shapes/{{sample}}.words", sample=SAMPLE_IDS), ref="../shared/genome.fa"
    output: table=protected("results/shapes/all.tsv"), folder=directory("results/shapes/by_sample")
    log: "logs/fan_in.log"
{fan_in}
"""
SHELL_RULES = RULES.format(
    per_sample="""    params: ref_prefix=lambda wildcards, input: input.ref[0].removesuffix(".fa")
    threads: 2
    shell:
        scratch(
            "exec 2> {log:q}; test -s {params.ref_prefix:q}.fa.fai; "
            "sort --parallel={threads} -T \\"$TMPDIR\\" {input.text:q} > {output.tmp:q}; "
            "wc -w < {output.tmp:q} > {output.stats[0]:q}; wc -l < {input.text:q} > {output.stats[1]:q}"
        )""",
    fan_in="""    shell:
        scratch(
            "exec 2> {log:q}; mkdir -p {output.folder:q}; head -c 5 {input.ref:q} > {output.table:q}; "
            "for f in {input.words:q}; do cp \\"$f\\" {output.folder:q}/; cat \\"$f\\" >> {output.table:q}; done; "
            "pwd > {output.folder:q}/where; echo \\"$TMPDIR\\" >> {output.folder:q}/where"
        )""",
)
SCRIPT_RULES = RULES.format(
    per_sample='    threads: 2\n    script: "../scripts/per_sample.py"', fan_in='    script: "../scripts/fan_in.py"'
)

PER_SAMPLE_SCRIPT = """import os
import tempfile
from pathlib import Path

from scratch import scratch_job

with scratch_job(snakemake) as job:  # noqa: F821
    assert os.path.getsize(job.input.ref[1]) > 0
    with tempfile.NamedTemporaryFile("w", delete=False) as spare:  # in $TMPDIR, inside scratch
        assert spare.name.startswith(job.dir)
    text = open(job.input.text).read()
    Path(job.output.tmp).write_text("\\n".join(sorted(text.split())))
    Path(job.output.stats[0]).write_text(f"{len(text.split())}\\n")
    Path(job.output.stats[1]).write_text(f"{text.count(chr(10))}\\n")
"""

FAN_IN_SCRIPT = """import os
import shutil

from scratch import scratch_job

with scratch_job(snakemake) as job:  # noqa: F821
    os.mkdir(job.output.folder)
    with open(job.output.table, "w") as table:
        table.write(open(job.input.ref).read()[:5])
        for path in job.input.words:
            shutil.copy(path, job.output.folder)
            table.write(open(path).read())
    with open(os.path.join(job.output.folder, "where"), "w") as fh:
        fh.write(f"{job.dir}\\n{os.environ['TMPDIR']}\\n")
"""

SHAPES_FINAL = """
FINAL_OUTPUTS.update(dict.fromkeys(expand("results/shapes/{sample}.{kind}", sample=SAMPLE_IDS, kind=["words", "lines"])))
FINAL_OUTPUTS.update({"results/shapes/all.tsv": "shapes/all.tsv", "results/shapes/by_sample": "shapes/by_sample"})
"""


def add_to_snakefile(repo, rules, final=SHAPES_FINAL):
    """Rules in their own file, included after helpers.smk, and their outputs declared final."""
    (repo / "workflow/rules/shapes.smk").write_text(rules)
    snakefile = repo / "workflow/Snakefile"
    text = snakefile.read_text()
    text = text.replace('include: "rules/helpers.smk"\n', 'include: "rules/helpers.smk"\ninclude: "rules/shapes.smk"\n')
    snakefile.write_text(text.replace("\n\nrule all:", final + "\n\nrule all:"))


def shared_reference(repo):
    shared = repo.parent / "shared"
    shared.mkdir(exist_ok=True)
    for name, text in REFERENCE.items():
        (shared / name).write_text(text)
    hand_over(shared, workflow_user())


def releases(repo):  # the releases under publish/, and the one publish/current points at
    return sorted(os.listdir(repo / "publish/releases")), os.readlink(repo / "publish/current")


@pytest.fixture
def shapes_repo(render):
    def make(kind, results=None):
        repo = render()
        shared_reference(repo)
        if results:  # results/ elsewhere, as a symlink
            (repo / "results").symlink_to(results, target_is_directory=True)
        add_to_snakefile(repo, SHELL_RULES if kind == "shell" else SCRIPT_RULES)
        if kind != "shell":
            (repo / "workflow/scripts/per_sample.py").write_text(PER_SAMPLE_SCRIPT)
            (repo / "workflow/scripts/fan_in.py").write_text(FAN_IN_SCRIPT)
        hand_over(repo, workflow_user())
        return repo

    return make


@pytest.fixture
def other_filesystem(tmp_path):
    """A directory of the workflow user on another filesystem than tmp_path (tmpfs /dev/shm), removed after."""
    path = Path(tempfile.mkdtemp(dir=other_filesystem_than(tmp_path), prefix="results-"))
    hand_over(path, workflow_user())
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("context", ["local", "ci"])
@pytest.mark.parametrize("kind", ["shell", "python-script"])
def test_every_rule_shape_works_in_node_local_scratch_reaches_results_whole_and_a_rerun_makes_no_new_release(
    kind, context, shapes_repo, snakemake, node_scratch, request
):
    """The fan-in records its directory and $TMPDIR: the job's directory is named after the job, so a rerun
    writes the same bytes. Under ci, results/ is on another filesystem (no rule uses shadow)."""
    repo = shapes_repo(kind, request.getfixturevalue("other_filesystem") if context == "ci" else None)
    node, env = node_scratch
    profile = ["--profile", f"profiles/{context}"]
    snakemake(repo, *profile, env=env)
    texts = {p.stem: p.read_text() for p in (repo / "data/inputs").glob("*.txt")}
    for sample, text in texts.items():
        assert int((repo / f"results/shapes/{sample}.words").read_text()) == len(text.split())
        assert int((repo / f"results/shapes/{sample}.lines").read_text()) == text.count("\n")
        assert not (repo / f"work/shapes/{sample}.tmp").exists(), "temp() output removed after use"
    table = repo / "results/shapes/all.tsv"
    assert table.read_text() == ">chr1" + "".join(f"{len(texts[s].split())}\n" for s in sorted(texts))
    assert not table.stat().st_mode & 0o222, "protected() output is read-only"
    folder = repo / "results/shapes/by_sample"
    assert {p.name for p in folder.iterdir()} == {".snakemake_timestamp", "where", *(f"{s}.words" for s in texts)}
    where, tmpdir = (folder / "where").read_text().split()
    (fan_in,) = [r for r in scratch_records(repo) if r["rule"] == "fan_in"]
    assert Path(fan_in["dir"]).is_relative_to(node), "the job worked in node-local scratch"
    # a shell command runs one level below its job dir for its ../ input; a script reports job.dir
    assert Path(where) == (Path(fan_in["dir"]) / "_wd" if kind == "shell" else Path(fan_in["dir"]))
    assert tmpdir == f"{fan_in['dir']}/.tmp" and fan_in["wildcards"] == "" and fan_in["status"] == "ok"
    snakemake(repo, *profile, "publish", env=env)  # the directory's files, not Snakemake's marker
    published = {e["path"] for e in json.loads((repo / "publish/current/MANIFEST.json").read_text())["files"]}
    assert "shapes/by_sample/where" in published and not any(".snakemake_timestamp" in p for p in published)
    first, release = (folder / "where").read_bytes(), releases(repo)
    table.unlink()  # protected(): Snakemake reruns it only once it is gone
    snakemake(repo, *profile, "--forceall", "results/shapes/all.tsv", env=env)
    snakemake(repo, *profile, "publish", env=env)
    assert (folder / "where").read_bytes() == first and releases(repo) == release, "the same bytes: no new release"
    assert subprocess.run([sys.executable, "workflow/vendor/publish.py", "verify"], cwd=repo).returncode == 0


def rule(name, action, source='"config/config.yaml"'):
    return f'\nrule {name}:\n    input:\n        {source},\n    output:\n        "results/{name}.txt",\n    {action}\n'


OUTSIDE = "../shared/genome.fa"
SCRATCH = 'shell:\n        scratch("cp {input:q} {output:q}")'
SHADOW_CP = 'shadow:\n        "minimal"\n    shell:\n        "cp {input:q} {output:q}"'
NO_ROUTE = ["workflow/rules/shapes.smk", "results/plain.txt", "docs/rule-kinds.md"]  # where, what, what to read
REFUSED = {  # case: (rule, its output declared final, refused by --lint too, what the line naming the rule says)
    "shell-without-route": (rule("plain", 'shell:\n        "cp {input:q} {output:q}"'), True, True, NO_ROUTE),
    "script-without-route": (rule("plain", 'script:\n        "../scripts/plain.py"'), True, True, NO_ROUTE),
    "run-without-route": (rule("plain", 'run:\n        shell("cp {input:q} {output:q}")'), True, True, NO_ROUTE),
    "absolute-input": (rule("absolute", SCRATCH, 'ref="{abs}"'), True, True, ["{abs}", "os.path.relpath"]),
    "not-final": (rule("extra", SCRATCH), False, False, ["results/extra.txt", "FINAL_OUTPUTS", "temp() under work/"]),
    # with Snakemake's own shadow (the fallback); the route stages such an input (tests/test_rule_kinds.py)
    "shadow-outside": (rule("shadowed", SHADOW_CP, f'ref="{OUTSIDE}"'), True, False, [OUTSIDE, "os.path.abspath"]),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_rule_the_contract_cannot_keep_whole_is_refused_before_any_job_naming_it_and_the_fix(case, render, snakemake):
    text, final, lint, says = REFUSED[case]
    name = re.search(r"rule (\w+):", text)[1]
    repo = render()
    shared_reference(repo)
    absolute = str((repo.parent / "shared/genome.fa").resolve())
    (repo / "workflow/scripts/plain.py").write_text("import shutil\nshutil.copy(*snakemake.input, *snakemake.output)\n")
    if case == "shadow-outside":
        use_snakemakes_shadow(repo)
    add_to_snakefile(repo, text.replace("{abs}", absolute), f'\nFINAL_OUTPUTS["results/{name}.txt"] = None\n' * final)
    hand_over(repo, workflow_user())
    for args in [["--profile", "profiles/local", f"results/{name}.txt"]] + [["--lint"]] * lint:
        run = snakemake(repo, *args, check=False)
        assert run.returncode != 0, run
        line = next(x for x in run.output.splitlines() if f"(rule {name})" in x)
        assert all(part.replace("{abs}", absolute) in line for part in says), line
    assert not (repo / "results").exists(), "no job ran"


def test_a_result_that_is_no_final_output_any_more_is_reported_never_published_and_set_aside(render, snakemake):
    repo = render()
    snakemake(repo, "--profile", "profiles/local")
    sheet = repo / "config/samples.tsv"
    sheet.write_text("".join(line for line in sheet.read_text().splitlines(True) if not line.startswith("gamma")))
    dry = snakemake(repo, "--profile", "profiles/local", "-n")
    assert "results/samples/gamma.summary.json under results/ is no final output" in dry.output
    assert (repo / "results/samples/gamma.summary.json").exists(), "a dry run moves nothing"
    snakemake(repo, "--profile", "profiles/local", "publish")
    manifest = json.loads((repo / "publish/current/MANIFEST.json").read_text())
    assert "samples/gamma.summary.json" not in {e["path"] for e in manifest["files"]}
    assert not (repo / "results/samples/gamma.summary.json").exists()
    (aside,) = (repo / "work/stale-results").glob("*/results/samples/gamma.summary.json")
    assert json.loads(aside.read_text())["sample"] == "gamma"


PAIRED_SCHEMA_COLUMN = (
    '  fq2: {type: string, format: input-file, default: "", description: "Second read file (empty: single-end)"}\n'
)
PAIRED_RULE = """
rule pair:
    input: r1=sample_file, r2=sample_file("fq2"), pair=sample_file("path", "fq2")
    output: both="results/pairs/{sample}.txt"
    shell: scratch("cat {input.r1:q} {input.r2:q} | wc -l > {output.both:q}; echo {input.pair:q} >> {output.both:q}")
"""
PAIRED_FINAL = '\nFINAL_OUTPUTS.update(dict.fromkeys(expand("results/pairs/{sample}.txt", sample=SAMPLE_IDS)))\n'


def test_a_second_file_column_is_resolved_checked_before_the_run_and_staged(render, snakemake):
    repo = render()
    schema = repo / "workflow/schemas/samples.schema.yaml"
    schema.write_text(schema.read_text().replace("  group:\n", PAIRED_SCHEMA_COLUMN + "  group:\n"))
    (repo / "data/inputs/alpha_2.txt").write_text("one\ntwo\n")
    sheet = repo / "config/samples.tsv"
    sheet.write_text("sample\tpath\tfq2\tgroup\nalpha\talpha.txt\talpha_2.txt\tprose\nbeta\tbeta.txt\t\tprose\n")
    add_to_snakefile(repo, PAIRED_RULE, final=PAIRED_FINAL)
    hand_over(repo, workflow_user())
    snakemake(repo, "--profile", "profiles/ci", "results/pairs/alpha.txt", "results/pairs/beta.txt")
    lines = {s: (repo / f"data/inputs/{s}.txt").read_text().count("\n") for s in ("alpha", "beta")}
    count, pair = (repo / "results/pairs/alpha.txt").read_text().splitlines()
    assert int(count) == lines["alpha"] + 2 and pair == "data/inputs/alpha.txt data/inputs/alpha_2.txt"
    count, pair = (repo / "results/pairs/beta.txt").read_text().splitlines()
    assert int(count) == lines["beta"] and pair == "data/inputs/beta.txt", "an empty optional file column: no file"
    sheet.write_text("sample\tpath\tfq2\tgroup\nalpha\talpha.txt\tmissing_2.txt\tprose\nbeta\tbeta.txt\t../x\tprose\n")
    run = snakemake(repo, "--profile", "profiles/ci", "-n", check=False)
    assert run.returncode != 0
    assert "line 2 (sample 'alpha'): input file data/inputs/missing_2.txt (fq2) does not exist" in run.output
    assert "line 3 (sample 'beta'): fq2 '../x' must be relative to data/inputs/" in run.output
