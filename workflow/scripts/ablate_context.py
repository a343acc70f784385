"""Rule ablate_context: Table 3's context ablation, only the central bins kept (gta.train.ablate_context)."""

from gta.rule import run
from gta.train import ablate_context

run(
    snakemake,
    ablate_context,
    model=snakemake.input.model,
    features=snakemake.input.features,
    targets=snakemake.input.targets,
    prompts=snakemake.input.prompts,
    keep_bins=snakemake.params.keep_bins,
    out=snakemake.output[0],
    backbone=snakemake.params.backbone,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
