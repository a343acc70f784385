"""Rule extract_windows: each gene's window as BED12 (gta.genome.extract_windows)."""

from gta.genome import extract_windows
from gta.rule import keys_from, run

run(
    snakemake,
    extract_windows,
    config_keys=keys_from(snakemake, "window", fasta="genome.fasta"),
    uses=("fai",),  # the FASTA index: a dependency
)
