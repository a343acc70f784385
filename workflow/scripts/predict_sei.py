"""Rule predict_sei: one shard of tss.tsv -> Sei class scores per bin (gta.sei.inference.predict_sei)."""

from gta.rule import keys_from, run
from gta.sei.inference import predict_sei

run(
    snakemake,
    predict_sei,
    config_keys=keys_from(snakemake, "window", "sei", fasta="genome.fasta"),
    uses=("fai",),  # the FASTA index: a dependency
)
