"""Rules fit_text_baseline and fit_text_baseline_text_signal: a ridge on the gene prompts' TF-IDF, alone or
beside the ExPecto-style features -> predictions (gta.baselines.fit_text_baseline); the model is the
{model} wildcard."""

from gta.baselines import fit_text_baseline
from gta.rule import keys_from, run

run(snakemake, fit_text_baseline, config_keys=keys_from(snakemake, features="features.precomputed"))
