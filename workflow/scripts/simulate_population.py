"""Rule simulate_population: the demo's phased population and its true personal expression (gta.demo.population)."""

from gta.demo.population import simulate_population
from gta.rule import keys_from, run

run(
    snakemake,
    simulate_population,
    config_keys=keys_from(
        snakemake, "personal", "expression", settings=("sei",), features="features.precomputed", fasta="genome.fasta"
    ),
    uses=("checkpoint", "projection", "fai", "index"),  # Sei's files, the FASTA index, the VCF's index (an output)
)
