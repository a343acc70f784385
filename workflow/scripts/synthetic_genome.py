"""Rule synthetic_genome: the demo's synthetic genome FASTA + index (gta.demo.genome.synthetic_genome)."""

from gta.demo.genome import synthetic_genome
from gta.rule import keys_from, run

run(
    snakemake,
    synthetic_genome,
    config_keys=keys_from(snakemake, "genes", mane="genes.mane_summary", seed="genome.synthetic_seed"),
    uses=("fai",),  # the index it writes beside the FASTA
)
