"""Rule score_variants: one chunk of the VCF's variants scored against the genes (gta.scoring.score_variants)."""

from gta.rule import keys_from, run
from gta.scoring import score_variants

run(
    snakemake,
    score_variants,
    config_keys=keys_from(
        snakemake,
        "annotations",
        "variants",
        device="train.device",
        settings=("sei",),
        backbone="backbone.model",
        features="features.precomputed",
        fasta="genome.fasta",
    ),
    uses=("checkpoint", "projection", "fai"),  # Sei's files (in the `sei` dict) and the FASTA index: dependencies
)
