"""Rule oracle_diagnostics: the grammar oracle per visible context (gta.demo.simulation.oracle_diagnostics)."""

from gta.demo.simulation import oracle_diagnostics
from gta.rule import keys_from, run

run(snakemake, oracle_diagnostics, config_keys=keys_from(snakemake, "expression", features="features.precomputed"))
