"""Rule fit_baseline_subset: a baseline fitted on a seeded fraction of the training genes (gta.baselines.fit_baseline).

A variant of rule fit_baseline for the training-set-size sweep: the same stage with train_fraction < 1.
"""

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
    train_fraction=snakemake.params.train_fraction,
    seed=snakemake.params.seed,
)
