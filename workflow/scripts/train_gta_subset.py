"""Rule train_gta_subset: a GTA model fitted on a share of the training genes (gta.train.train_gta).

A variant of the training stage: it calls train_gta, as rule train_gta does, with the
TrainConfig's train_fraction from the rule's `fraction` wildcard.
"""

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
