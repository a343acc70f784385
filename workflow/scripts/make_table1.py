"""Rule make_table1: Table 1, bootstrap Spearman of every model on the test genes (gta.evaluate.make_table1)."""

from gta.evaluate import make_table1
from gta.rule import keys_from, run

run(
    snakemake,
    make_table1,
    config_keys=keys_from(snakemake, "evaluate", features="features.precomputed"),
    rows=snakemake.params.rows,
    targets=snakemake.input.targets,
    features=snakemake.input.features,
    out=snakemake.output[0],
    simulation=snakemake.params.simulation,
    n_boot=snakemake.params.n_boot,
    seed=snakemake.params.seed,
    imported=snakemake.params.imported,
)
