"""Rule make_train_size: test Spearman by training-set size, table and figure (gta.evaluate.make_train_size)."""

from gta.evaluate import make_train_size
from gta.rule import keys_from, run

run(
    snakemake,
    make_train_size,
    config_keys=keys_from(snakemake, "evaluate"),
    rows=snakemake.params.rows,
    targets=snakemake.input.targets,
    out_table=snakemake.output.table,
    out_figure=snakemake.output.figure,
    label=snakemake.params.label,
    n_boot=snakemake.params.n_boot,
    seed=snakemake.params.seed,
)
