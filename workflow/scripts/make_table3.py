"""Rule make_table3: Table 3, GTA and its controls (gta.evaluate.make_table3)."""

from gta.evaluate import make_table3
from gta.rule import keys_from, run

run(
    snakemake,
    make_table3,
    config_keys=keys_from(snakemake, "evaluate", keep_bins="evaluate.ablation_keep_bins"),
    rows=snakemake.params.rows,
    targets=snakemake.input.targets,
    out=snakemake.output[0],
    n_boot=snakemake.params.n_boot,
    seed=snakemake.params.seed,
    keep_bins=snakemake.params.keep_bins,
)
