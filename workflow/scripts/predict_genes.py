"""Rule predict_genes: a trained model's predictions for predict.genes (gta.predict.predict_genes)."""

from gta.predict import predict_genes
from gta.rule import keys_from, run

run(
    snakemake,
    predict_genes,
    config_keys=keys_from(
        snakemake,
        "annotations",
        device="train.device",
        settings=("sei",),
        genes="predict.genes",
        model="predict.model",
        fasta="predict.fasta" if snakemake.config["predict"]["fasta"] else "genome.fasta",
        mane="genes.mane_summary",
        backbone="backbone.model",
        features="features.precomputed",
    ),
    uses=("checkpoint", "projection"),  # Sei's files, named in the `sei` dict: dependencies
)
