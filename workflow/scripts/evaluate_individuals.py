"""Rule evaluate_individuals: individual predictions and an elastic net scored on held-out individuals
(gta.personal_eval.evaluate_individuals)."""

from gta.personal_eval import evaluate_individuals
from gta.rule import keys_from, run

# personal.expression, .expression_noiseless, .layout, .test_fraction, ... are named as the stage's parameters
keys = keys_from(snakemake, "personal", n_bins="personal.window_bins", vcf="personal.vcf")
run(snakemake, evaluate_individuals, config_keys=keys)
