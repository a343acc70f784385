"""Rules train_gta, train_control and train_gta_subset: one GTA model, its predictions and history
(gta.train.train_gta).

The three rules are the training stage with different settings: train_control adds its control's
ModelConfig fields (`control`: common.smk, TRAINED_CONTROLS), train_gta_subset a TrainConfig
train_fraction below 1.
"""

from gta.options import ModelConfig, TrainConfig
from gta.rule import keys_from, run
from gta.train import train_gta

params = snakemake.params
run(
    snakemake,
    train_gta,
    config_keys=keys_from(
        snakemake,
        "train",
        "backbone",
        "gta",
        backbone="backbone.model",
        backbone_dtype="backbone.dtype",
        gate="gta.selector_gate",
        n_bins="evaluate.context_bins",
        train_fraction="evaluate.train_fractions",
        features="features.precomputed",
    ),
    mcfg=ModelConfig(**params.model, **params.get("control", {}), backbone=params.backbone, layers=params.layers),
    tcfg=TrainConfig(**params.train, threads=snakemake.threads),
    uses=("model", "control", "backbone", "layers", "train"),  # read above into mcfg and tcfg
)
