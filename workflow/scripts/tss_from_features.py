"""Rule tss_from_features: precomputed features.h5 + MANE -> tss.tsv (gta.sei.features.tss_from_features)."""

from gta.rule import run
from gta.sei.features import tss_from_features

run(
    snakemake,
    tss_from_features,
    features=snakemake.input.features,
    mane=snakemake.input.mane,
    out=snakemake.output[0],
    fasta=snakemake.params.fasta,
    min_bins=snakemake.params.min_bins,
)
