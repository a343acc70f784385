"""Rule merge_variant_scores: the chunks' scores in one table, counts summed (gta.scoring.merge_variant_scores)."""

from gta.rule import run
from gta.scoring import merge_variant_scores

run(snakemake, merge_variant_scores)
