"""Rule make_figures: figures 5-10 of the paper from the largest-context model (gta.figures.make_figures)."""

from gta.figures import make_figures
from gta.rule import keys_from, run

run(
    snakemake,
    make_figures,
    config_keys=keys_from(
        snakemake, "evaluate", device="train.device", backbone="backbone.model", features="features.precomputed"
    ),
)
