"""Rule tss_from_features: precomputed features.h5 + MANE -> tss.tsv (gta.sei.features.tss_from_features)."""

from gta.rule import keys_from, run
from gta.sei.features import tss_from_features

run(
    snakemake,
    tss_from_features,
    config_keys=keys_from(
        snakemake,
        features="features.precomputed",
        mane="genes.mane_summary",
        fasta="genome.fasta",
        min_bins="evaluate.context_bins",
    ),
)
