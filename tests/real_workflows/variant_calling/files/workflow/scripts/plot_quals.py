"""A histogram of the quality (QUAL) of the variant calls, as an SVG that is the same bytes on every run."""

from scratch import scratch_job


def qualities(path):
    """The QUAL column of a plain-text VCF (missing values '.' are skipped)."""
    with open(path, encoding="utf-8") as fh:
        rows = (line.split("\t") for line in fh if not line.startswith("#"))
        return [float(row[5]) for row in rows if row[5] != "."]


def plot(quals, path):
    import matplotlib

    matplotlib.use("Agg")  # no display on a cluster node
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "plot_quals"  # fixed ids in the SVG instead of random ones
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.hist(quals, bins=20)
    ax.set_xlabel("QUAL")
    ax.set_ylabel("variants")
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})  # no time stamp
    plt.close(fig)


def main(smk) -> None:
    with scratch_job(smk) as job:
        quals = qualities(job.input.calls)
        plot(quals, job.output.plot)
        with open(job.log[0], "a", encoding="utf-8") as log:
            log.write(f"{len(quals)} variant qualities plotted\n")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake's script:
