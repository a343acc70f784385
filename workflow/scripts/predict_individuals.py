"""Rule predict_individuals: one shard of the genes predicted per sample and haplotype
(gta.personal.predict_individuals)."""

from gta.personal import predict_individuals
from gta.rule import keys_from, run

run(
    snakemake,
    predict_individuals,
    config_keys=keys_from(
        snakemake,
        "annotations",
        "personal",
        device="train.device",
        settings=("sei",),
        backbone="backbone.model",
        features="features.precomputed",
        fasta="genome.fasta",
    ),
    uses=("checkpoint", "projection", "fai"),  # Sei's files (in the `sei` dict) and the FASTA index: dependencies
)
