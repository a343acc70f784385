"""Rule predict_genes: a trained model's predictions for predict.genes (gta.predict.predict_genes)."""

from gta.predict import predict_genes
from gta.rule import run

run(
    snakemake,
    predict_genes,
    model=snakemake.input.model,
    genes=snakemake.params.genes,
    fasta=snakemake.input.fasta,
    out=snakemake.output[0],
    mane=snakemake.input.mane,
    sei=snakemake.params.sei,
    features=snakemake.input.get("features"),
    tss=snakemake.input.get("tss"),
    prompts=snakemake.input.prompts,
    cell_type=snakemake.params.cell_type,
    backbone=snakemake.params.backbone,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
