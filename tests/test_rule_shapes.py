"""The shapes of rules labs write, through the contract, with the real snakemake CLI as the workflow user.

Each shape either works in node-local scratch (every path the command sees exists there, outputs come back
whole) or is refused before any job with one line naming the rule and what to do. Shapes: no wildcards,
several named inputs and outputs, multiext, directory(), temp(), protected(), an input outside the checkout
and its companion files, params holding paths, threads > 1, $TMPDIR; for shell rules (scratch()) and Python
scripts (scratch_job). Then what results/ may hold: only final outputs; stale ones are set aside; results/
may live on another filesystem; a sample may have several files.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import hand_over, scratch_records, workflow_user

# A shared reference outside the checkout, with the companion files a tool finds beside it.
REFERENCE = {"genome.fa": ">chr1\nACGTACGT\n", "genome.fa.fai": "chr1\t8\t6\t8\t9\n"}

# The same two rules, shell and Python script alike: only each rule's action differs.
RULES = """
rule per_sample:
    input:
        text=sample_file,
        ref=multiext("../shared/genome.fa", "", ".fai"),
    output:
        stats=multiext("results/shapes/{{sample}}", ".words", ".lines"),
        tmp=temp("work/shapes/{{sample}}.tmp"),
    log:
        "logs/per_sample/{{sample}}.log",
{per_sample}


rule fan_in:
    input:
        words=expand("results/shapes/{{sample}}.words", sample=SAMPLE_IDS),
        ref="../shared/genome.fa",
    output:
        table=protected("results/shapes/all.tsv"),
        folder=directory("results/shapes/by_sample"),
    log:
        "logs/fan_in.log",
{fan_in}
"""
SHELL_RULES = RULES.format(
    per_sample="""    params:
        ref_prefix=lambda wildcards, input: input.ref[0].removesuffix(".fa"),
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
    per_sample='    threads: 2\n    script:\n        "../scripts/per_sample.py"',
    fan_in='    script:\n        "../scripts/fan_in.py"',
)

PER_SAMPLE_SCRIPT = """import os
import tempfile

from scratch import scratch_job

with scratch_job(snakemake) as job:  # noqa: F821
    assert os.path.getsize(job.input.ref[1]) > 0
    with tempfile.NamedTemporaryFile("w", delete=False) as spare:  # in $TMPDIR, inside scratch
        assert spare.name.startswith(job.dir)
    text = open(job.input.text).read()
    with open(job.output.tmp, "w") as fh:
        fh.write("\\n".join(sorted(text.split())))
    with open(job.output.stats[0], "w") as fh:
        fh.write(f"{len(text.split())}\\n")
    with open(job.output.stats[1], "w") as fh:
        fh.write(f"{text.count(chr(10))}\\n")
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
FINAL_OUTPUTS.update(
    {
        **dict.fromkeys(expand("results/shapes/{sample}.{kind}", sample=SAMPLE_IDS, kind=["words", "lines"])),
        "results/shapes/all.tsv": "shapes/all.tsv",
        "results/shapes/by_sample": "shapes/by_sample",
    }
)
"""


def add_to_snakefile(repo, rules, final=SHAPES_FINAL):
    """Rules in their own file, included after helpers.smk, and their outputs declared final."""
    (repo / "workflow/rules/shapes.smk").write_text(rules)
    snakefile = repo / "workflow/Snakefile"
    text = snakefile.read_text()
    text = text.replace('include: "rules/helpers.smk"\n', 'include: "rules/helpers.smk"\ninclude: "rules/shapes.smk"\n')
    text = text.replace("\n\nrule all:", final + "\n\nrule all:")
    snakefile.write_text(text)


def shared_reference(repo):
    shared = repo.parent / "shared"
    shared.mkdir(exist_ok=True)
    for name, text in REFERENCE.items():
        (shared / name).write_text(text)
    hand_over(shared, workflow_user())


def words_and_lines(repo):
    texts = {p.stem: p.read_text() for p in (repo / "data/inputs").glob("*.txt")}
    return {s: (len(t.split()), t.count("\n")) for s, t in texts.items()}


@pytest.fixture
def shapes_repo(render):
    def make(kind):
        repo = render()
        shared_reference(repo)
        if kind == "shell":
            add_to_snakefile(repo, SHELL_RULES)
        else:
            add_to_snakefile(repo, SCRIPT_RULES)
            (repo / "workflow/scripts/per_sample.py").write_text(PER_SAMPLE_SCRIPT)
            (repo / "workflow/scripts/fan_in.py").write_text(FAN_IN_SCRIPT)
        hand_over(repo, workflow_user())
        return repo

    return make


@pytest.mark.parametrize("context", ["local", "ci"])
@pytest.mark.parametrize("kind", ["shell", "python-script"])
def test_every_rule_shape_works_in_node_local_scratch_and_reaches_results_whole(
    kind, context, shapes_repo, snakemake, node_scratch
):
    repo = shapes_repo(kind)
    node, env = node_scratch
    snakemake(repo, "--profile", f"profiles/{context}", env=env)
    expected = words_and_lines(repo)
    for sample, (words, lines) in expected.items():
        assert int((repo / f"results/shapes/{sample}.words").read_text()) == words
        assert int((repo / f"results/shapes/{sample}.lines").read_text()) == lines
        assert not (repo / f"work/shapes/{sample}.tmp").exists(), "temp() output removed after use"
    table = repo / "results/shapes/all.tsv"
    assert table.read_text() == ">chr1" + "".join(f"{expected[s][0]}\n" for s in sorted(expected))
    assert not table.stat().st_mode & 0o222, "protected() output is read-only"
    assert sorted(p.name for p in (repo / "results/shapes/by_sample").iterdir()) == sorted(
        [".snakemake_timestamp", "where", *(f"{s}.words" for s in expected)]
    )
    where, tmpdir = (repo / "results/shapes/by_sample/where").read_text().split()
    records = {r["rule"]: r for r in scratch_records(repo) if r["rule"] in ("per_sample", "fan_in")}
    job_dir = Path(records["fan_in"]["dir"])
    assert job_dir.is_relative_to(node), "the job worked in node-local scratch"
    # a shell command runs one level below its job dir for its ../ input; a script reports job.dir
    assert Path(where) == (job_dir / "_wd" if kind == "shell" else job_dir)
    assert tmpdir == f"{records['fan_in']['dir']}/.tmp"
    assert records["fan_in"]["wildcards"] == "" and records["fan_in"]["status"] == "ok"
    # published: the directory's files, not Snakemake's marker
    snakemake(repo, "--profile", f"profiles/{context}", "publish", env=env)
    manifest = json.loads((repo / "publish/current/MANIFEST.json").read_text())
    published = {e["path"] for e in manifest["files"]}
    assert "shapes/by_sample/where" in published and not any(".snakemake_timestamp" in p for p in published)


def test_a_rerun_of_a_command_that_records_its_directory_gives_the_same_bytes_and_no_new_release(
    shapes_repo, snakemake, node_scratch
):
    repo = shapes_repo("shell")
    _, env = node_scratch
    snakemake(repo, "--profile", "profiles/local", "publish", env=env)
    first = (repo / "results/shapes/by_sample/where").read_bytes()
    (repo / "results/shapes/all.tsv").unlink()  # protected(): Snakemake reruns it only once it is gone
    snakemake(repo, "--profile", "profiles/local", "--forceall", env=env)
    assert (repo / "results/shapes/by_sample/where").read_bytes() == first
    again = snakemake(repo, "--profile", "profiles/local", "publish", env=env)
    assert "no new release" in again.output


ABSOLUTE_INPUT = """
rule absolute:
    input:
        ref="REFERENCE",
    output:
        "results/absolute.txt",
    log:
        "logs/absolute.log",
    shell:
        scratch("cp {input.ref:q} {output:q}")
"""

NO_ROUTE = {
    "shell": 'shell:\n        "cp {input:q} {output:q}"',
    "python-script": 'script:\n        "../scripts/plain.py"',
    "run": 'run:\n        shell("cp {input:q} {output:q}")',
}


@pytest.mark.parametrize("how", sorted(NO_ROUTE))
def test_a_rule_writing_results_without_a_route_is_refused_before_any_job_and_by_lint(how, render, snakemake):
    repo = render()
    (repo / "workflow/scripts/plain.py").write_text(
        "import shutil\nshutil.copy(snakemake.input[0], snakemake.output[0])\n"
    )
    rule = f'\nrule plain:\n    input:\n        "config/config.yaml",\n    output:\n        "results/plain.txt",\n    {NO_ROUTE[how]}\n'
    add_to_snakefile(repo, rule, final='\nFINAL_OUTPUTS["results/plain.txt"] = None\n')
    hand_over(repo, workflow_user())
    for args in (["--profile", "profiles/local"], ["--lint"]):
        run = snakemake(repo, *args, check=False)
        assert run.returncode != 0, run
        line = next(x for x in run.output.splitlines() if "(rule plain)" in x)
        assert "workflow/rules/shapes.smk" in line and "results/plain.txt" in line and "docs/rule-kinds.md" in line
    assert not (repo / "results").exists(), "no job ran"


def test_an_absolute_input_of_a_shell_rule_is_refused_at_parse_time_with_the_fix(render, snakemake):
    repo = render()
    shared_reference(repo)
    reference = (repo.parent / "shared/genome.fa").resolve()
    add_to_snakefile(
        repo,
        ABSOLUTE_INPUT.replace("REFERENCE", str(reference)),
        final='\nFINAL_OUTPUTS["results/absolute.txt"] = None\n',
    )
    hand_over(repo, workflow_user())
    run = snakemake(repo, "--profile", "profiles/local", "-n", check=False)
    assert run.returncode != 0
    line = next(x for x in run.output.splitlines() if "(rule absolute)" in x)
    assert str(reference) in line and "os.path.relpath" in line


def test_a_job_output_under_results_that_is_no_final_output_is_refused_before_any_job(render, snakemake):
    repo = render()
    rule = '\nrule extra:\n    input:\n        "config/config.yaml",\n    output:\n        "results/extra.txt",\n    shell:\n        scratch("cp {input:q} {output:q}")\n'
    add_to_snakefile(repo, rule, final="")
    hand_over(repo, workflow_user())
    run = snakemake(repo, "--profile", "profiles/local", "results/extra.txt", check=False)
    assert run.returncode != 0 and "results/extra.txt (rule extra)" in run.output
    assert "FINAL_OUTPUTS" in run.output and "temp() under work/" in run.output
    assert not (repo / "results/extra.txt").exists()


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


def test_results_on_another_filesystem_runs_when_no_rule_uses_shadow(render, snakemake, tmp_path):
    elsewhere = Path(tempfile_in_shm(tmp_path))
    repo = render()
    (repo / "results").symlink_to(elsewhere, target_is_directory=True)
    hand_over(repo, workflow_user())
    hand_over(elsewhere, workflow_user())
    snakemake(repo, "--profile", "profiles/local", "publish")
    assert (elsewhere / "tables/summary.tsv").is_file()
    assert subprocess.run([sys.executable, "workflow/vendor/publish.py", "verify"], cwd=repo).returncode == 0


def tempfile_in_shm(tmp_path):
    """A directory on another filesystem than tmp_path (tmpfs /dev/shm), removed with the test's tmp."""
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem (/dev/shm) here")
    path = Path("/dev/shm") / f"results-{tmp_path.name}-{os.getpid()}"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def _clean_shm(tmp_path):
    yield
    for path in Path("/dev/shm").glob(f"results-{tmp_path.name}-{os.getpid()}"):
        shutil.rmtree(path, ignore_errors=True)


PAIRED_SCHEMA_COLUMN = """  fq2:
    type: string
    format: input-file
    default: ""
    description: Second read file, relative to input_dir; empty for single-end.
"""

PAIRED_RULE = """
rule pair:
    input:
        r1=sample_file,
        r2=sample_file("fq2"),
        pair=sample_file("path", "fq2"),
    output:
        both="results/pairs/{sample}.txt",
    shell:
        scratch("cat {input.r1:q} {input.r2:q} | wc -l > {output.both:q}; echo {input.pair:q} >> {output.both:q}")
"""


def test_a_second_file_column_is_resolved_checked_before_the_run_and_staged(render, snakemake):
    repo = render()
    schema = repo / "workflow/schemas/samples.schema.yaml"
    schema.write_text(schema.read_text().replace("  group:\n", PAIRED_SCHEMA_COLUMN + "  group:\n"))
    (repo / "data/inputs/alpha_2.txt").write_text("one\ntwo\n")
    (repo / "config/samples.tsv").write_text(
        "sample\tpath\tfq2\tgroup\nalpha\talpha.txt\talpha_2.txt\tprose\nbeta\tbeta.txt\t\tprose\n"
    )
    add_to_snakefile(
        repo,
        PAIRED_RULE,
        final='\nFINAL_OUTPUTS.update(dict.fromkeys(expand("results/pairs/{sample}.txt", sample=SAMPLE_IDS)))\n',
    )
    hand_over(repo, workflow_user())
    snakemake(repo, "--profile", "profiles/ci", "results/pairs/alpha.txt", "results/pairs/beta.txt")
    alpha = (repo / "data/inputs/alpha.txt").read_text().count("\n")
    beta = (repo / "data/inputs/beta.txt").read_text().count("\n")
    count, pair = (repo / "results/pairs/alpha.txt").read_text().splitlines()
    assert int(count) == alpha + 2 and pair == "data/inputs/alpha.txt data/inputs/alpha_2.txt"
    count, pair = (repo / "results/pairs/beta.txt").read_text().splitlines()
    assert int(count) == beta and pair == "data/inputs/beta.txt", "an empty optional file column: no file"
    (repo / "config/samples.tsv").write_text(
        "sample\tpath\tfq2\tgroup\nalpha\talpha.txt\tmissing_2.txt\tprose\nbeta\tbeta.txt\t../x\tprose\n"
    )
    run = snakemake(repo, "--profile", "profiles/ci", "-n", check=False)
    assert run.returncode != 0
    assert "line 2 (sample 'alpha'): input file data/inputs/missing_2.txt (fq2) does not exist" in run.output
    assert "line 3 (sample 'beta'): fq2 '../x' must be relative to data/inputs/" in run.output


SHADOW_OUTSIDE = """
rule shadowed:
    input:
        ref="../shared/genome.fa",
    output:
        "results/shadowed.txt",
    shadow:
        "minimal"
    shell:
        "cp {input.ref:q} {output:q}"
"""


def test_a_shadow_rule_with_an_input_outside_the_working_directory_is_refused_before_any_job(render, snakemake):
    """With Snakemake's own shadow (the profile's fallback, shadow_route: 'snakemake'); the route stages such
    an input (tests/test_shadow_route.py)."""
    repo = render()
    profile = repo / "profiles/local/config.yaml"
    profile.write_text(profile.read_text().replace("shadow_route: \"'scratch'\"", "shadow_route: \"'snakemake'\""))
    assert "shadow_route: \"'snakemake'\"" in profile.read_text()
    shared_reference(repo)
    add_to_snakefile(repo, SHADOW_OUTSIDE, final='\nFINAL_OUTPUTS["results/shadowed.txt"] = None\n')
    hand_over(repo, workflow_user())
    run = snakemake(repo, "--profile", "profiles/local", check=False)
    assert run.returncode != 0
    assert "../shared/genome.fa (rule shadowed)" in run.output and "os.path.abspath" in run.output
    assert not (repo / "results").exists(), "refused before any job"
