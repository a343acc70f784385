"""Rule extract_windows: each gene's window as BED12 (gta.genome.extract_windows)."""

from gta.genome import extract_windows
from gta.rule import run

run(
    snakemake,
    extract_windows,
    tss=snakemake.input.tss,
    fasta=snakemake.input.fasta,
    out=snakemake.output[0],
    n_bins=snakemake.params.n_bins,
    bin_size=snakemake.params.bin_size,
    grid=snakemake.params.grid,
)
