"""Rule evaluate_individuals: individual predictions and an elastic net scored on held-out individuals
(gta.personal_eval.evaluate_individuals)."""

from gta.personal_eval import evaluate_individuals
from gta.rule import keys_from, run

keys = {"n_bins": "personal.window_bins", "expression_noiseless": "personal.expression_noiseless"}
if "vcf" in snakemake.config["personal"]:  # predict_individuals' key: absent = the simulated population
    keys["vcf"] = "personal.vcf"
run(snakemake, evaluate_individuals, config_keys=keys_from(snakemake, "personal", **keys))
