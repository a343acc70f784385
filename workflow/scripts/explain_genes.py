"""Rule explain_genes: per-bin explanations of explain.genes' predictions (gta.explain.explain_genes)."""

from gta.explain import explain_genes
from gta.rule import run

run(
    snakemake,
    explain_genes,
    model=snakemake.input.model,
    features=snakemake.input.features,
    prompts=snakemake.input.prompts,
    genes=snakemake.params.genes,
    out_dir=snakemake.output[0],
    backbone=snakemake.params.backbone,
    device=snakemake.params.device,
    threads=snakemake.threads,
    label=snakemake.params.label,
)
