"""Rule synthetic_genome: the demo's synthetic genome FASTA + index (gta.demo.genome.synthetic_genome)."""

from gta.demo.genome import synthetic_genome
from gta.rule import run

run(
    snakemake,
    synthetic_genome,
    mane=snakemake.input.mane,
    chromosomes=snakemake.params.chromosomes,
    out=snakemake.output.fasta,
    seed=snakemake.params.seed,
)
