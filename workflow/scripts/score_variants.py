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
    model=snakemake.input.model,
    vcf=snakemake.input.vcf,
    features=snakemake.input.features,
    tss=snakemake.input.tss,
    fasta=snakemake.input.fasta,
    sei=snakemake.params.sei,
    out=snakemake.output.scores,
    prompts=snakemake.input.prompts,
    cell_type=snakemake.params.cell_type,
    chunk=snakemake.wildcards.chunk,
    ref_check=snakemake.params.ref_check,
    backbone=snakemake.params.backbone,
    device=snakemake.params.device,
    threads=snakemake.threads,
    out_counts=snakemake.output.counts,
)
