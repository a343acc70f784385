"""Rule oracle_diagnostics: the grammar oracle per visible context (gta.demo.simulation.oracle_diagnostics)."""

from gta.demo.simulation import oracle_diagnostics
from gta.rule import run

run(
    snakemake,
    oracle_diagnostics,
    features=snakemake.input.features,
    targets=snakemake.input.targets,
    out=snakemake.output[0],
    visible_bins=snakemake.params.visible,
    grammar=snakemake.params.grammar,
)
