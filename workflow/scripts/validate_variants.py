"""Rule validate_variants: predicted against true variant effects on the demo (gta.demo.variants.validate_variants)."""

from gta.demo.variants import validate_variants
from gta.rule import run

run(
    snakemake,
    validate_variants,
    scores=snakemake.input.scores,
    features=snakemake.input.features,
    tss=snakemake.input.tss,
    fasta=snakemake.input.fasta,
    sei=snakemake.params.sei,
    out=snakemake.output.table,
    grammar=snakemake.params.grammar,
    signal_fraction=snakemake.params.signal_fraction,
    out_pairs=snakemake.output.pairs,
)
