"""Rule mane_tss: MANE Select TSS per gene (gta.tss.mane_tss)."""

from gta.rule import keys_from, run
from gta.tss import mane_tss

run(
    snakemake,
    mane_tss,
    config_keys=keys_from(snakemake, "genes", mane="genes.mane_summary", fasta="genome.fasta"),
    uses=("fai",),  # the FASTA index: a dependency
)
