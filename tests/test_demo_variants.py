"""The demo's variant truth: the planted signal with frozen normalisation, and the roles of bins."""

from __future__ import annotations

import numpy as np
import pytest

from gta.demo.variants import PlantedSignal, site_classes
from gta.demo.simulation import grammar_classes, simulate

TSS_BIN = 5


def population(seed=0, genes=300, bins=11, classes=5):
    rng = np.random.default_rng(seed)
    return rng.gamma(2.0, 1.0, size=(genes, bins, classes)).astype(np.float32)


@pytest.mark.parametrize("name", ["demo", "alternative"])
def test_planted_signal_on_the_population_is_the_simulated_signal(name):
    scores = population(classes=len(grammar_classes(name)))
    _, signal = simulate(scores, np.arange(len(scores)), TSS_BIN, 0.8, seed=0, name=name)
    planted = PlantedSignal(scores, TSS_BIN, name)
    np.testing.assert_allclose(np.sqrt(0.8) * planted(scores), signal, rtol=1e-12, atol=1e-12)
    # one gene on its own gets the same value: the normalisation is the population's, frozen
    np.testing.assert_allclose(planted(scores[7:8]), planted(scores)[7:8], rtol=1e-12)


def test_a_change_outside_every_grammar_term_has_no_true_effect():
    scores = population()
    planted = PlantedSignal(scores, TSS_BIN)
    z = planted.z(scores)
    g = int(np.argmax((z[:, :, 1] < 1.0).all(axis=1)))  # a gene without an active enhancer
    changed = scores[g : g + 1].copy()
    far = 0  # 5 bins from the TSS: beyond polycomb's reach; enhancer class kept below its threshold
    changed[0, far, 0] += 5.0  # the promoter class, away from the TSS bin, is not read
    assert planted(changed)[0] == planted(scores[g : g + 1])[0]
    changed[0, TSS_BIN, 0] += 1.0  # at the TSS bin it is
    assert planted(changed)[0] > planted(scores[g : g + 1])[0]


def test_site_classes_follow_the_grammar():
    z = np.zeros((1, 11, 5))
    z[0, 7, 2] = 3.0  # a strong CTCF 2 bins downstream: insulates what lies beyond
    z[0, 8, 1] = 3.0  # an active enhancer behind it
    z[0, 3, 1] = 3.0  # an active enhancer upstream, open to the TSS
    z[0, 1, 3] = 1.0  # polycomb far away: not neutral, not a grammar role
    roles = site_classes(z, TSS_BIN)[0]
    assert roles[TSS_BIN] == "promoter"
    assert roles[7] == "ctcf" and roles[8] == "insulated" and roles[3] == "enhancer"
    assert roles[1] == "other" and roles[0] == "neutral" and roles[10] == "neutral"
    assert roles[4] == "other" and roles[6] == "other"  # within 2 bins of the TSS: never neutral
