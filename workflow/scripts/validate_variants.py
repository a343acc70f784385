"""Rule validate_variants: predicted against true variant effects on the demo (gta.demo.variants.validate_variants)."""

from gta.demo.variants import validate_variants
from gta.rule import keys_from, run

run(
    snakemake,
    validate_variants,
    config_keys=keys_from(
        snakemake, "expression", settings=("sei",), features="features.precomputed", fasta="genome.fasta"
    ),
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
