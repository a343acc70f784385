"""The statistics behind Figures 6, 9 and 10 (top_bins, head_zscores, selection_frequency) against values
worked out by hand on tiny arrays, and what draw_figures plots."""

from __future__ import annotations

import numpy as np
import pytest

from gta.figure_names import FIGURE_FILES, FIGURES
from gta.figures import attention_entropy, gate_weights, head_zscores, selection_frequency, top_bins

# attention (genes=2, heads=2, bins=4, prototypes=3); each bin's row sums to 1 (softmax over prototypes)
ATTENTION = np.array(
    [
        [  # gene 0
            [
                [0.2, 0.5, 0.3],  # head 0: prototype totals 1.2, 1.1, 1.7 -> prototype 2,
                [0.1, 0.1, 0.8],  # whose column 0.3, 0.8, 0.2, 0.4 peaks at bin 1
                [0.6, 0.2, 0.2],
                [0.3, 0.3, 0.4],
            ],
            [
                [0.9, 0.05, 0.05],  # head 1: the largest single weight (0.9) is bin 0 on prototype 0, but the
                [0.0, 0.5, 0.5],  # totals are 1.0, 1.65, 1.35 -> prototype 1, whose column 0.05, 0.5, 0.6, 0.5
                [0.0, 0.6, 0.4],  # peaks at bin 2
                [0.1, 0.5, 0.4],
            ],
        ],
        [  # gene 1 (weights exact in binary, so the ties are exact)
            [
                [0.5, 0.5, 0.0],  # head 0: totals 1.5, 1.5, 1.0: prototypes 0 and 1 tie -> the first, 0; its
                [0.25, 0.25, 0.5],  # column 0.5, 0.25, 0.25, 0.5 ties bins 0 and 3 -> the first, 0
                [0.25, 0.25, 0.5],
                [0.5, 0.5, 0.0],
            ],
            [
                [0.5, 0.25, 0.25],  # head 1: totals 1.25, 1.0, 1.75 -> prototype 2; its column 0.25, 0.75,
                [0.0, 0.25, 0.75],  # 0.75, 0.0 ties bins 1 and 2 -> the first, 1
                [0.25, 0.0, 0.75],
                [0.5, 0.5, 0.0],
            ],
        ],
    ]
)


def test_top_bins_by_hand():
    bins = top_bins(ATTENTION)
    assert bins.shape == (2, 2)
    assert bins.tolist() == [[1, 2], [0, 1]]


def test_top_bins_goes_through_the_top_prototype_not_the_largest_weight():
    # gene 0, head 1 alone: the single largest weight would pick bin 0; the top prototype picks bin 2
    one = ATTENTION[:1, 1:2]
    assert np.unravel_index(one[0, 0].argmax(), one[0, 0].shape) == (0, 0)
    assert top_bins(one).tolist() == [[2]]


def test_top_bins_ties_go_to_the_lowest_index():
    # one gene, one head, 2 bins, 2 prototypes with equal totals (1.0 each): prototype 0 is taken, and
    # its column decides the bin; swapping the prototypes swaps the answer
    tie = np.array([[[[0.75, 0.25], [0.25, 0.75]]]])
    assert top_bins(tie).tolist() == [[0]]
    assert top_bins(tie[..., ::-1]).tolist() == [[1]]
    # bins tied on the top prototype: the first. Gene 1, head 0 with its bins reversed: bins 0 and 3
    # still tie -> bin 0 (was bin 3); gene 1, head 1 reversed: bins 1 and 2 (were 2 and 1) tie -> bin 1
    assert top_bins(ATTENTION[1:, :1, ::-1]).tolist() == [[0]]
    assert top_bins(ATTENTION[1:, 1:, ::-1]).tolist() == [[1]]


# features (genes=2, bins=4, classes=3). Over all 8 bins of both genes:
#   class 0: four 1s and four 3s        -> mean 2, std 1:   1 -> -1, 3 -> +1
#   class 1: six 10s, one 13, one 7     -> mean 10, std sqrt(18/8) = 1.5:  13 -> +2, 7 -> -2, 10 -> 0
#   class 2: constant 5                 -> std 0: z-score 0 (not NaN)
FEATURES = np.array(
    [
        [[1, 10, 5], [3, 13, 5], [1, 10, 5], [3, 10, 5]],
        [[3, 10, 5], [1, 10, 5], [3, 7, 5], [1, 10, 5]],
    ],
    dtype=float,
)


def test_head_zscores_by_hand():
    bins = np.array(
        [
            [1, 1],  # gene 0: both heads chose bin 1 -> z (+1, +2, 0)
            [2, 1],
        ]
    )  # gene 1: head 0 bin 2 -> z (+1, -2, 0); head 1 bin 1 -> z (-1, 0, 0)
    z = head_zscores(FEATURES, bins)
    assert z.shape == (2, 3)  # (heads, classes)
    # head 0: mean of (+1, +2, 0) and (+1, -2, 0); head 1: mean of (+1, +2, 0) and (-1, 0, 0)
    np.testing.assert_allclose(z, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], atol=1e-9)
    assert np.isfinite(z).all()


def test_head_zscores_of_the_attention_fixtures_top_bins():
    # top_bins(ATTENTION) = [[1, 2], [0, 1]]: head 0 takes gene 0 bin 1 (+1, +2, 0) and gene 1 bin 0
    # (+1, 0, 0); head 1 takes gene 0 bin 2 (-1, 0, 0) and gene 1 bin 1 (-1, 0, 0)
    z = head_zscores(FEATURES, top_bins(ATTENTION))
    np.testing.assert_allclose(z, [[1.0, 1.0, 0.0], [-1.0, 0.0, 0.0]], atol=1e-9)


def test_head_zscores_use_the_population_std_over_all_bins_of_all_genes():
    # one gene, one head, one class: values 0, 0, 0, 4 -> mean 1, population std sqrt(3); bin 3 -> 3/sqrt(3)
    features = np.array([[[0.0], [0.0], [0.0], [4.0]]])
    z = head_zscores(features, np.array([[3]]))
    assert z.shape == (1, 1)
    assert z[0, 0] == pytest.approx(np.sqrt(3))


def test_selection_frequency_counts_a_bin_once_per_gene():
    # 3 genes, top 3 each, with repeats: bin 2 is chosen by genes 0 and 1 (twice by gene 0), bin 1
    # three times by gene 2 alone, bin 4 never
    selected = np.array([[0, 2, 2], [2, 3, 3], [1, 1, 1]])
    freq = selection_frequency(selected, n_bins=5)
    assert freq.shape == (5,)
    np.testing.assert_allclose(freq, [1 / 3, 1 / 3, 2 / 3, 1 / 3, 0.0])
    assert (freq <= 1).all()


def test_selection_frequency_every_gene_and_no_gene():
    assert selection_frequency(np.array([[3, 0], [0, 3]]), n_bins=4).tolist() == [1.0, 0.0, 0.0, 1.0]
    assert selection_frequency(np.zeros((0, 2), dtype=int), n_bins=3).tolist() == [0.0, 0.0, 0.0]


def test_gate_weights_by_hand():
    logits = np.array([[0.0, 2.0, -1.0, 1.0], [3.0, 0.0, 0.0, -3.0]])
    selected = np.array([[1, 3], [0, 2]])
    sig = gate_weights(logits, selected, "sigmoid")
    s = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    np.testing.assert_allclose(sig, [[0, s(2.0), 0, s(1.0)], [s(3.0), 0, s(0.0), 0]])
    soft = gate_weights(logits, selected, "softmax")
    e = np.exp(1.0)  # softmax over the kept logits only: (2, 1) -> (e, 1) / (e + 1); (3, 0) -> (e^3, 1) / (e^3 + 1)
    np.testing.assert_allclose(soft, [[0, e / (e + 1), 0, 1 / (e + 1)], [e**3 / (e**3 + 1), 0, 1 / (e**3 + 1), 0]])
    with pytest.raises(Exception, match="gate"):
        gate_weights(logits, selected, "relu")


def test_attention_entropy_by_hand():
    """Two genes, two heads, one bin, four prototypes (the first two 'vocabulary'): head 0 attends
    uniformly (entropy log 4), head 1 puts everything on prototype 2 in gene 0 and splits 1/2, 1/2 over
    prototypes 2 and 3 in gene 1 (entropies 0 and log 2)."""
    att = np.zeros((2, 2, 1, 4))
    att[:, 0, 0] = 0.25
    att[0, 1, 0, 2] = 1.0
    att[1, 1, 0, 2:] = 0.5
    t = attention_entropy(att, n_vocab=2)
    np.testing.assert_allclose(t["entropy"], [np.log(4), np.log(2) / 2])
    np.testing.assert_allclose(t["max_entropy"], np.log(4))
    np.testing.assert_allclose(t["effective_prototypes"], [4, np.sqrt(2)])
    assert list(t["top_prototype"]) == [0, 2]  # head 0: a four-way tie goes to the first
    np.testing.assert_allclose(t["top_share"], [0.25, 0.75])
    np.testing.assert_allclose(t["vocab_share"], [0.5, 0.0])


def test_figure_names_are_light_and_match_the_workflow():
    """The workflow imports gta.figure_names when it parses: no matplotlib, numpy or torch behind it."""
    import subprocess
    import sys

    assert list(FIGURES.values()) == FIGURE_FILES and sorted(FIGURES) == list(range(5, 11))
    assert all(name.startswith(f"fig{n}_") and name.endswith(".png") for n, name in FIGURES.items())
    code = (
        "import sys\nimport gta.figure_names\n"
        "heavy = {'matplotlib', 'numpy', 'torch'} & set(sys.modules)\nassert not heavy, heavy\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_draw_figures_plot_the_data_given(tmp_path, monkeypatch):
    """Figures 5, 7, 8 and 9 read back from the matplotlib figures draw_figures saves: the scatter is the
    (observed, predicted) pairs, Figure 7 the head-mean attention, Figure 8 each head's top-prototype column
    (worked out by hand in the fixture's comments) and Figure 9 the hand-counted selection frequencies."""
    import pandas as pd

    import gta.figures
    from gta.figures import draw_figures

    saved = {}
    real = gta.figures._save
    monkeypatch.setattr(gta.figures, "_save", lambda fig, path: (saved.update({path.name[:4]: fig}), real(fig, path)))
    preds = pd.DataFrame({"observed": [0.5, 2.0, -1.0], "predicted": [0.4, 1.0, 3.0], "symbol": ["A", "B", "C"]})
    features = np.random.default_rng(0).normal(size=(3, 4, 33))
    selected = np.array([[0, 2, 2], [2, 3, 3], [1, 1, 1]])
    paths = draw_figures(tmp_path, preds, features, np.zeros((3, 2), int), ATTENTION[0], ATTENTION[1], selected, "x")
    assert [p.name for p in paths] == FIGURE_FILES and all(p.stat().st_size > 1000 for p in paths)
    np.testing.assert_array_equal(
        saved["fig5"].axes[0].collections[0].get_offsets(), [[0.5, 0.4], [2.0, 1.0], [-1.0, 3.0]]
    )
    best, worst = saved["fig7"].axes[:2]  # gene A has the smallest residual, C the largest
    assert best.get_title().endswith(": A") and worst.get_title().endswith(": C")
    np.testing.assert_allclose(best.images[0].get_array(), ATTENTION[0].mean(axis=0).T)
    np.testing.assert_allclose(worst.images[0].get_array(), ATTENTION[1].mean(axis=0).T)
    head_lines = [ax.get_lines()[0].get_ydata() for ax in saved["fig8"].axes]
    np.testing.assert_allclose(head_lines, [[0.3, 0.8, 0.2, 0.4], [0.05, 0.5, 0.6, 0.5]])
    bars = saved["fig9"].axes[0].patches
    np.testing.assert_allclose([b.get_height() for b in bars], [1 / 3, 1 / 3, 2 / 3, 1 / 3])
    np.testing.assert_allclose([b.get_x() + b.get_width() / 2 for b in bars], [-2, -1, 0, 1])  # bins from the TSS bin
    assert len(saved["fig9"].axes) == 1  # no gates given: the selection frequency alone

    # with the gates: under the frequency panel, their mean per bin; when every bin is kept for every
    # gene (top_k >= N: a flat frequency of 1), the gate panel alone
    gates = np.array([[0.5, 0.0, 0.25, 0.0], [0.0, 0.0, 1.0, 0.5], [0.0, 1.0, 0.0, 0.0]])
    for sel, panels in [(selected, 2), (np.tile(np.arange(4), (3, 1)), 1)]:
        saved.clear()
        draw_figures(
            tmp_path, preds, features, np.zeros((3, 2), int), ATTENTION[0], ATTENTION[1], sel, "x", gates=gates
        )
        assert len(saved["fig9"].axes) == panels
        bars = saved["fig9"].axes[-1].patches
        np.testing.assert_allclose([b.get_height() for b in bars], [0.5 / 3, 1 / 3, 1.25 / 3, 0.5 / 3])
    # and the bin-ablation effects: their mean absolute value per bin, in the last panel
    effects = np.array([[0.2, -0.4, 0.0, 1.0], [-0.2, 0.0, 0.5, -1.0]])
    saved.clear()
    draw_figures(
        tmp_path, preds, features, np.zeros((3, 2), int), *ATTENTION, selected, "x", gates=gates, effects=effects
    )
    assert len(saved["fig9"].axes) == 3
    bars = saved["fig9"].axes[-1].patches
    np.testing.assert_allclose([b.get_height() for b in bars], [0.2, 0.2, 0.25, 1.0])
