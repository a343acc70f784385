"""Rule ablate_context: Table 3's context ablation, only the central bins kept (gta.train.ablate_context)."""

from gta.rule import keys_from, run
from gta.train import ablate_context

run(
    snakemake,
    ablate_context,
    config_keys=keys_from(
        snakemake,
        device="train.device",
        keep_bins="evaluate.ablation_keep_bins",
        backbone="backbone.model",
        features="features.precomputed",
    ),
)
