"""Rule make_table3: Table 3, GTA and its controls (gta.evaluate.make_table3)."""

from gta.evaluate import make_table3
from gta.rule import keys_from, run

run(
    snakemake,
    make_table3,
    config_keys=keys_from(snakemake, "evaluate", keep_bins="evaluate.ablation_keep_bins"),
    uses=("predictions",),  # the files `rows` names: dependencies
)
