"""Rule make_targets: expression targets with their splits, observed or simulated (gta.expression.make_targets)."""

from gta.expression import make_targets
from gta.rule import keys_from, run

run(snakemake, make_targets, config_keys=keys_from(snakemake, "genes", "expression", features="features.precomputed"))
