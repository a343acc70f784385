"""Rule explain_genes: per-bin explanations of explain.genes' predictions (gta.explain.explain_genes)."""

from gta.explain import explain_genes
from gta.rule import keys_from, run

run(
    snakemake,
    explain_genes,
    config_keys=keys_from(
        snakemake,
        device="train.device",
        genes="explain.genes",
        model="explain.model",
        backbone="backbone.model",
        features="features.precomputed",
    ),
)
