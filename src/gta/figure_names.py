"""File names of Figures 5-10, in one place. No matplotlib, numpy or torch: the workflow imports this
module when it parses (workflow/rules/common.smk), gta.figures when it draws."""

from __future__ import annotations

FIGURES: dict[int, str] = {
    5: "fig5_predictions.png",
    6: "fig6_head_zscores.png",
    7: "fig7_prototype_attention.png",
    8: "fig8_head_attention.png",
    9: "fig9_selection_frequency.png",
    10: "fig10_all_head_zscores.png",
}
# what make_figures writes, figure 5 first: the make_figures rule's outputs
FIGURE_FILES: list[str] = list(FIGURES.values())
# evaluate_individuals' figure: per-gene correlations across held-out individuals (gta.personal_eval)
PERSONAL_FIGURE = "personal_correlations.png"
