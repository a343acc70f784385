"""Rule make_table2: Table 2, GTA by backbone depth (gta.evaluate.make_table2)."""

from gta.evaluate import make_table2
from gta.rule import keys_from, run

run(
    snakemake,
    make_table2,
    config_keys=keys_from(snakemake, "evaluate"),
    uses=("predictions",),  # the files `rows` names: dependencies
)
