"""Rule make_table1: Table 1, bootstrap Spearman of every model on the test genes (gta.evaluate.make_table1)."""

from gta.evaluate import make_table1
from gta.rule import run

run(
    snakemake,
    make_table1,
    rows=snakemake.params.rows,
    targets=snakemake.input.targets,
    features=snakemake.input.features,
    out=snakemake.output[0],
    simulation=snakemake.params.simulation,
    n_boot=snakemake.params.n_boot,
    seed=snakemake.params.seed,
    imported=snakemake.params.imported,
)
