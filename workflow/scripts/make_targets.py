"""Rule make_targets: expression targets with their splits, observed or simulated (gta.expression.make_targets)."""

from gta.expression import make_targets
from gta.rule import keys_from, run

run(
    snakemake,
    make_targets,
    config_keys=keys_from(snakemake, "genes", "expression", features="features.precomputed"),
    tss=snakemake.input.tss,
    features=snakemake.input.features,
    out=snakemake.output.targets,
    simulation_out=snakemake.output.get("simulation"),
    test_genes=snakemake.input.get("test_genes"),
    seed=snakemake.params.seed,
    **snakemake.params.settings,
)
