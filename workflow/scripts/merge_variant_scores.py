"""Rule merge_variant_scores: the chunks' scores in one table, counts summed (gta.scoring.merge_variant_scores)."""

from gta.rule import run
from gta.scoring import merge_variant_scores

run(
    snakemake,
    merge_variant_scores,
    scores=snakemake.input.scores,
    counts=snakemake.input.counts,
    out=snakemake.output.scores,
    out_counts=snakemake.output.counts,
)
