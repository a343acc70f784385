"""Rule predict_sei: one shard of tss.tsv -> Sei class scores per bin (gta.sei.inference.predict_sei)."""

from gta.rule import keys_from, run
from gta.sei.inference import predict_sei

run(
    snakemake,
    predict_sei,
    config_keys=keys_from(snakemake, "window", "sei", fasta="genome.fasta"),
    tss=snakemake.input.tss,
    fasta=snakemake.input.fasta,
    checkpoint=snakemake.input.checkpoint,
    projection=snakemake.input.projection,
    out=snakemake.output[0],
    n_bins=snakemake.params.n_bins,
    bin_size=snakemake.params.bin_size,
    orient=snakemake.params.orient,
    grid=snakemake.params.grid,
    shard=snakemake.wildcards.shard,
    sha256=snakemake.params.sha256,
    reverse_complement=snakemake.params.reverse_complement,
    device=snakemake.params.device,
    dtype=snakemake.params.dtype,
    batch_size=snakemake.params.batch_size,
    threads=snakemake.threads,
)
