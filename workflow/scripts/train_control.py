"""Rule train_control: one Table 3 control, the GTA model with the control's changes (gta.train.train_gta).

A variant of the training stage: it calls train_gta, as rule train_gta does, with the control's
ModelConfig fields (common.smk, TRAINED_CONTROLS) over the GTA model's.
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
    mcfg=ModelConfig(
        **snakemake.params.model,
        **snakemake.params.control,
        backbone=snakemake.params.backbone,
        layers=snakemake.params.layers,
    ),
    tcfg=TrainConfig(**snakemake.params.train, threads=snakemake.threads),
)
