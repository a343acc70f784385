"""Rules fit_baseline and fit_baseline_subset: a baseline fitted on (a seeded share of) the training genes
-> predictions (gta.baselines.fit_baseline); fit_baseline_subset passes its train_fraction and seed."""

from gta.baselines import fit_baseline
from gta.rule import keys_from, run

run(
    snakemake,
    fit_baseline,
    config_keys=keys_from(snakemake, features="features.precomputed", train_fraction="evaluate.train_fractions"),
    model=snakemake.wildcards.baseline,
)
