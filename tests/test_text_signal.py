"""The simulation's text signal (expression.text_signal): a share of the target variance from the text family
of each gene's MANE name, measured back by regressing the simulated values on family indicators."""

import numpy as np
import pandas as pd
import pytest

from gta import GTAError
from gta.demo.simulation import OTHER_FAMILY, simulate, text_families
from gta.tss import resolve_mane


@pytest.fixture(scope="module")
def mane_genes():
    """The packaged MANE v1.5 Select genes: GeneID, symbol, name."""
    df = pd.read_csv(resolve_mane("packaged"), sep="\t", dtype=str)
    df = df[df["MANE_status"] == "MANE Select"]
    return df["#NCBI_GeneID"].str.removeprefix("GeneID:").astype(int).to_numpy(), df["symbol"], df["name"]


def family_r2(y, families):
    """R^2 of y on one indicator per family (least squares): the share of var(y) between families."""
    names, codes = np.unique(families, return_inverse=True)
    x = np.eye(len(names))[codes]
    fit = x @ np.linalg.lstsq(x, y, rcond=None)[0]
    return 1 - np.sum((y - fit) ** 2) / np.sum((y - y.mean()) ** 2), len(names)


def test_text_families_of_real_names():
    cases = {
        ("RPL13", "ribosomal protein L13"): "ribosomal protein",
        ("ZNF180", "zinc finger protein 180"): "zinc finger",
        ("OR1A1", "olfactory receptor family 1 subfamily A member 1"): "olfactory receptor",
        ("SLC2A1", "solute carrier family 2 member 1"): "solute carrier",
        ("H2AC1", "H2A clustered histone 1"): "histone",
        ("MAPK1", "mitogen-activated protein kinase 1"): "kinase",
        ("IGFBP1", "insulin like growth factor binding protein 1"): OTHER_FAMILY,  # not a G protein
        ("A1BG", "alpha-1-B glycoprotein"): OTHER_FAMILY,
    }
    got = text_families([s for s, _ in cases], [n for _, n in cases])
    assert list(got) == list(cases.values())


@pytest.mark.parametrize("text_signal", [0.0, 0.2, 0.5])
def test_text_share_of_variance_is_as_configured(mane_genes, text_signal):
    ids, symbols, names = mane_genes
    families = text_families(symbols, names)
    n = len(ids)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(n, 5, 5))  # the grammar part: independent of the names
    observed, signal = simulate(scores, ids, 2, 0.8, seed=3, text_signal=text_signal, families=families)
    r2, k = family_r2(observed, families)
    # the families' share of var(y): text_signal, plus what the rest shares between k groups by chance
    # ((k - 1) / n of it) and a sampling term of SD ~ 2 sqrt(t (1 - t) / n) < 0.01
    expected = text_signal + (1 - text_signal) * (k - 1) / n
    assert abs(r2 - expected) < 0.02, (r2, expected)
    assert np.var(observed) == pytest.approx(1.0, abs=0.05)
    # the noiseless signal holds the text part: the families explain the same share of it, over var(signal)
    r2_signal, _ = family_r2(signal, families)
    assert r2_signal * np.var(signal) == pytest.approx(text_signal, abs=0.02)


def test_text_effect_is_seeded_per_family(mane_genes):
    ids, symbols, names = mane_genes
    ids, families = ids[:3000], text_families(symbols[:3000], names[:3000])
    scores = np.zeros((3000, 3, 5))
    a = simulate(scores, ids, 1, 0.0, seed=1, text_signal=1.0, families=families)[0]
    b = simulate(scores, ids, 1, 0.0, seed=1, text_signal=1.0, families=families)[0]
    c = simulate(scores, ids, 1, 0.0, seed=2, text_signal=1.0, families=families)[0]
    assert np.array_equal(a, b) and not np.allclose(a, c)
    for f in set(families):  # text_signal 1: the value is the family's effect alone
        assert np.ptp(a[families == f]) < 1e-12
    with pytest.raises(GTAError, match="at least 2 text families") as e:
        simulate(scores[:5], ids[:5], 1, 0.5, seed=1, text_signal=0.2, families=[OTHER_FAMILY] * 5)
    assert e.value.input == "text_signal"
