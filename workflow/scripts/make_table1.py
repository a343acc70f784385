"""Rule make_table1: Table 1, bootstrap Spearman of every model on the test genes (gta.evaluate.make_table1)."""

from gta.evaluate import make_table1
from gta.rule import keys_from, run

run(
    snakemake,
    make_table1,
    config_keys=keys_from(snakemake, "evaluate", features="features.precomputed"),
    uses=("predictions",),  # the files `rows` names: dependencies
)
