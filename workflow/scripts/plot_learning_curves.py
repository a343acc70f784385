"""Rule plot_learning_curves: every trained model's training histories -> one figure
(gta.figures.plot_learning_curves)."""

from gta.figures import plot_learning_curves
from gta.rule import run

run(snakemake, plot_learning_curves)
