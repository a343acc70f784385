"""Rule merge_features: Sei shards -> features.h5 in tss.tsv gene order (gta.sei.features.merge_features)."""

from gta.rule import run
from gta.sei.features import merge_features

run(
    snakemake,
    merge_features,
    tss=snakemake.input.tss,
    shards=snakemake.input.shards,
    out=snakemake.output[0],
    max_mostly_n_fraction=snakemake.params.max_mostly_n,
)
