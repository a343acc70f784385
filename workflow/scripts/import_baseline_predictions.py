"""Rule import_baseline_predictions: a Huang et al. CSV -> one predictions file per model and their index
(gta.baselines.import_baseline_predictions)."""

from gta.baselines import import_baseline_predictions
from gta.rule import keys_from, run

run(snakemake, import_baseline_predictions, config_keys=keys_from(snakemake, csv="evaluate.baseline_predictions"))
