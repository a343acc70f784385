"""Rule train_gta: one GTA model (N bins, L backbone blocks), its predictions and history (gta.train.train_gta)."""

from gta.options import ModelConfig, TrainConfig
from gta.rule import run
from gta.train import train_gta

run(
    snakemake,
    train_gta,
    features=snakemake.input.features,
    targets=snakemake.input.targets,
    prompts=snakemake.input.prompts,
    out_model=snakemake.params.model_dir,
    out_predictions=snakemake.output.predictions,
    out_history=snakemake.output.history,
    n_bins=snakemake.params.n_bins,
    mcfg=ModelConfig(**snakemake.params.model, backbone=snakemake.params.backbone, layers=snakemake.params.layers),
    tcfg=TrainConfig(**snakemake.params.train, threads=snakemake.threads),
)
