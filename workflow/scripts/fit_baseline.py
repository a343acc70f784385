"""Rule fit_baseline: a baseline fitted on the training genes -> predictions (gta.baselines.fit_baseline)."""

from gta.baselines import fit_baseline
from gta.rule import run

run(
    snakemake,
    fit_baseline,
    model=snakemake.wildcards.baseline,
    features=snakemake.input.features,
    targets=snakemake.input.targets,
    tss=snakemake.input.tss,
    out=snakemake.output[0],
)
