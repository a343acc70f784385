"""Rule merge_individual_predictions: the shards' predictions in one table, counts summed (gta.personal)."""

from gta.personal import merge_individual_predictions
from gta.rule import run

run(snakemake, merge_individual_predictions)
