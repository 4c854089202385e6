"""What this workflow computes: the SNPs planted in the test reads are called, with each sample's
genotype; the sorted alignments are indexed; the plot is an SVG; a rebuild gives the same bytes."""

import csv
from pathlib import Path

TRUTH = Path(__file__).with_name("variant_calling_truth.tsv")
# planted alt copies -> genotypes accepted at 12x coverage: a homozygous SNP is called as such, a
# heterozygous one carries the alt allele, a sample without the SNP is never called homozygous for it
GENOTYPE = {"0": {"0/0", "0/1", "./."}, "1": {"0/1", "1/1"}, "2": {"1/1"}}


def planted():
    with open(TRUTH, encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def calls(vcf):
    """{(chrom, pos): (ref, alt, {sample: GT})} of a plain-text VCF."""
    found, samples = {}, []
    for line in vcf.read_text().splitlines():
        if line.startswith("#CHROM"):
            samples = line.split("\t")[9:]
        elif not line.startswith("#"):
            row = line.split("\t")
            genotypes = {s: field.split(":")[0] for s, field in zip(samples, row[9:], strict=True)}
            found[(row[0], row[1])] = (row[3], row[4], genotypes)
    return found


def test_every_planted_snp_is_called_with_each_samples_genotype(built_in):
    build = built_in("local")
    found = calls(build / "results/calls/all.vcf")
    for snp in planted():
        key = (snp["chrom"], snp["pos"])
        assert key in found, f"planted SNP {key} was not called"
        ref, alt, genotypes = found[key]
        assert (ref, alt) == (snp["ref"], snp["alt"])
        for sample, gt in genotypes.items():
            assert gt in GENOTYPE[snp[sample]], f"{key} {sample}: called {gt}, planted {snp[sample]} alt copies"
    for sample in planted()[0].keys() - {"chrom", "pos", "ref", "alt"}:
        bam = build / f"results/sorted/{sample}.bam"
        assert bam.read_bytes()[:4] == b"\x1f\x8b\x08\x04", "a BGZF-compressed BAM"
        assert (build / f"results/sorted/{sample}.bam.bai").read_bytes()[:4] == b"BAI\x01"
    assert b"<svg" in (build / "results/plots/quals.svg").read_bytes()[:1000]
