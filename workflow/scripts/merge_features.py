"""Rule merge_features: Sei shards -> features.h5 in tss.tsv gene order (gta.sei.features.merge_features)."""

from gta.rule import keys_from, run
from gta.sei.features import merge_features

run(snakemake, merge_features, config_keys=keys_from(snakemake, max_mostly_n_fraction="window.max_mostly_n_fraction"))
