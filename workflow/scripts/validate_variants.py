"""Rule validate_variants: predicted against true variant effects on the demo (gta.demo.variants.validate_variants)."""

from gta.demo.variants import validate_variants
from gta.rule import keys_from, run

run(
    snakemake,
    validate_variants,
    config_keys=keys_from(
        snakemake, "expression", settings=("sei",), features="features.precomputed", fasta="genome.fasta"
    ),
    uses=("checkpoint", "projection", "fai"),  # Sei's files (in the `sei` dict) and the FASTA index: dependencies
)
