"""Rule make_train_size: test Spearman by training-set size, table and figure (gta.evaluate.make_train_size)."""

from gta.evaluate import make_train_size
from gta.rule import keys_from, run

run(
    snakemake,
    make_train_size,
    config_keys=keys_from(snakemake, "evaluate"),
    uses=("predictions",),  # the files `rows` names: dependencies
)
