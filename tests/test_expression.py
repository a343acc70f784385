"""Expression tables, identifier matching, deterministic splits and the planted simulation grammar."""

import gzip
import logging

import h5py
import numpy as np
import pandas as pd
import pytest

from gta import GTAError
from gta.demo.simulation import (
    GRAMMAR_CLASSES,
    Grammar,
    combine_terms,
    gene_noise,
    grammar_terms,
    open_to_tss,
    oracle_fit,
    simulate,
    standardise_classes,
)
from gta.expression import make_targets, read_expression_table
from gta.identifiers import match_identifiers
from gta.splits import assign_splits
from gta.sei import CLASS_LABELS

TSS = pd.DataFrame(
    {
        "gene_id": [1, 2, 9, 10, 12, 100],
        "symbol": ["A1BG", "A2M", "NAT1", "NAT2", "SERPINA3", "ADA"],
        "ensembl_gene": [
            "ENSG00000121410",
            "ENSG00000175899",
            "ENSG00000171428",
            "ENSG00000156006",
            "ENSG00000196136",
            "ENSG00000196839",
        ],
        "name": ["a", "b", "c", "d", "e", "f"],
        "chrom": ["19", "12", "8", "8", "14", "20"],
        "tss": [58353491, 9115918, 18210108, 18391281, 94612390, 44651741],
        "strand": ["-", "-", "+", "+", "+", "-"],
    }
)


# ----------------------------------------------------------------------------- tables and matching


def test_wide_table_gives_per_gene_medians(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.lognormal(size=(7, 4))
    values[2, 1] = np.nan  # an empty cell is skipped, not a zero
    df = pd.DataFrame(values, columns=["a1bg", "ENSG00000175899.14", "9", "GeneID:10"])
    df.insert(0, "sample", [f"HG{i:05d}" for i in range(7)])
    df.to_csv(tmp_path / "wide.csv", index=False)
    got = read_expression_table(tmp_path / "wide.csv")
    assert list(got.index) == ["a1bg", "ENSG00000175899.14", "9", "GeneID:10"]
    assert np.allclose(got.to_numpy(), np.nanmedian(values, axis=0))
    # the same table tab-separated and gzipped
    with gzip.open(tmp_path / "wide.tsv.gz", "wt") as fh:
        df.to_csv(fh, sep="\t", index=False)
    assert np.allclose(read_expression_table(tmp_path / "wide.tsv.gz").to_numpy(), got.to_numpy())


def test_long_table(tmp_path):
    (tmp_path / "long.tsv").write_text("gene\tvalue\nA2M\t3.5\nnat1\t0\n\t1\n")
    got = read_expression_table(tmp_path / "long.tsv")
    assert got.to_dict() == {"A2M": 3.5, "nat1": 0.0}


def test_non_numeric_cell_is_an_error(tmp_path):
    (tmp_path / "bad.tsv").write_text("gene\tvalue\nA2M\thigh\n")
    with pytest.raises(GTAError, match="non-numeric"):
        read_expression_table(tmp_path / "bad.tsv")


def test_centred_table_warns(tmp_path, caplog):
    rng = np.random.default_rng(1)
    values = rng.normal(size=(50, 20))
    values -= np.median(values, axis=0)  # per-gene levels removed, e.g. by a normalisation
    values += rng.normal(scale=1e-3, size=20)
    pd.DataFrame(values, columns=[f"g{i}" for i in range(20)]).rename_axis("sample").to_csv(tmp_path / "c.csv")
    with caplog.at_level(logging.WARNING, logger="gta.expression"):
        read_expression_table(tmp_path / "c.csv")
    assert "per-gene levels" in caplog.text


def test_identifier_matching(caplog):
    ids = [
        "a1bg",
        "ENSG00000175899.14",
        "ensg00000171428",
        "10",
        "GeneID:12",
        "NOPE",
        "ENSG00000000001",
        "ADA",
        "100",
        "999999",
    ]
    with caplog.at_level(logging.INFO, logger="gta.identifiers"):
        got = match_identifiers(ids, TSS, "test table")
    # ADA and 100 name the same gene: both are ambiguous and dropped
    assert list(got) == [1, 2, 9, 10, 12, -1, -1, -1, -1, -1]
    assert "3 unmatched, 2 ambiguous" in caplog.text


def test_identifier_naming_two_genes_is_ambiguous():
    tss = pd.concat([TSS, TSS.iloc[[0]].assign(gene_id=77, ensembl_gene="ENSG00000999999")])
    assert list(match_identifiers(["A1BG", "ENSG00000999999"], tss, "x")) == [-1, 77]


# ----------------------------------------------------------------------------- splits


def test_splits_are_deterministic_exact_and_order_free():
    ids = np.arange(1000, 1500)
    split = assign_splits(ids, None, 0.2, 0.25, seed=3)
    counts = pd.Series(split).value_counts()
    assert counts["test"] == 100 and counts["val"] == 100 and counts["train"] == 300
    perm = np.random.default_rng(0).permutation(len(ids))
    again = assign_splits(ids[perm], None, 0.2, 0.25, seed=3)
    assert np.array_equal(again, split[perm])
    other = assign_splits(ids, None, 0.2, 0.25, seed=4)
    assert (other != split).sum() > 100


def test_listed_test_genes_are_the_test_split():
    ids = np.arange(1, 101)
    split = assign_splits(ids, {5, 6, 7, 500}, 0.2, 0.2, seed=0)
    assert set(ids[split == "test"]) == {5, 6, 7}
    assert (split == "val").sum() == round(0.2 * 97)


# ----------------------------------------------------------------------------- the planted grammar


def z_background(genes=6, bins=21, seed=0):
    """Scores in grammar order (P, E5, CTCF, PC1, PC3): flat background of zeros."""
    return np.zeros((genes, bins, len(GRAMMAR_CLASSES)))


P, E, C, PC1, PC3 = range(5)


def test_grammar_classes_are_the_named_ones():
    assert [CLASS_LABELS[i] for i in GRAMMAR_CLASSES] == ["P", "E5", "CTCF", "PC1", "PC3"]


def test_enhancer_behind_strong_ctcf_adds_nothing():
    z = z_background(4)
    t = 10
    z[:, t - 4, E] = 3.0  # every gene: an enhancer 4 bins upstream
    z[1, t - 2, C] = 3.0  # gene 1: a strong CTCF between it and the TSS
    z[2, t - 6, C] = 3.0  # gene 2: CTCF beyond the enhancer (does not block)
    z[3, t - 2, C] = 1.5  # gene 3: a weak CTCF (does not block)
    e = grammar_terms(z, t)["enhancer"]
    assert e[1] == 0.0
    assert e[0] > 0 and e[2] == e[0] and e[3] == e[0]
    # the blocked gene gets the same signal as a gene without the enhancer
    z2 = z.copy()
    z2[1, t - 4, E] = 0.0
    assert grammar_terms(z2, t)["enhancer"][1] == 0.0


def test_nearer_enhancer_adds_more_and_both_sides_count():
    z = z_background(3)
    t = 10
    z[0, t + 2, E] = 3.0
    z[1, t + 8, E] = 3.0
    z[2, t - 2, E] = 3.0
    e = grammar_terms(z, t)["enhancer"]
    assert e[0] > e[1] > 0
    assert e[2] == pytest.approx(e[0])
    g = Grammar()
    assert e[0] == pytest.approx((3.0 - g.enhancer_threshold) / (1 + 2 / g.contact_bins))  # above the threshold
    relative = Grammar(enhancer_threshold=None)
    act = 3.0 - 3.0 / z.shape[1]  # above the window's mean
    assert grammar_terms(z, t, relative)["enhancer"][0] == pytest.approx(act / (1 + 2 / relative.contact_bins))


def test_enhancer_activity_is_relative_to_the_window_background():
    z = z_background(2)
    t = 10
    z[:, :, E] = 2.0  # gene 0: uniformly high, no peak
    z[1, t + 3, E] = 5.0  # gene 1: a peak on the same background
    e = grammar_terms(z, t, Grammar(enhancer_threshold=None))["enhancer"]
    assert e[0] == 0.0 and e[1] > 0
    # with the demo's fixed threshold (z > 2) only the peak counts, whatever the background
    z[0, :, E] = 2.5
    e = grammar_terms(z, t)["enhancer"]
    assert e[0] > 0 and e[1] > 0


def test_alternative_grammar_needs_both_enhancer_classes_and_silences_them():
    from gta.demo.simulation import alternative_terms

    z = np.zeros((4, 21, 4))
    t = 10
    z[:, t + 3, 1] = 2.0  # E7 high in every gene
    z[1, t + 3, 2] = 2.0  # gene 1: TF2 too -> an enhancer (decay exp(-3/8))
    z[2, t + 3, 2] = 2.0
    z[2, t - 1 : t + 2, 3] = 2.0  # gene 2: the same, with a heterochromatic promoter
    z[3, t, 0] = 1.5  # gene 3: the activator at the TSS
    terms = alternative_terms(z, t)
    e = terms["enhancer"]
    assert e[0] == 0.0 and e[3] == 0.0
    assert e[1] == pytest.approx(1.5 * np.exp(-3 / 8))
    assert e[2] == pytest.approx(0.25 * e[1])
    assert terms["activator"][3] == pytest.approx(0.5) and terms["activator"][0] == 0.0


def test_promoter_raises_and_polycomb_lowers_expression():
    z = z_background(4)
    t = 10
    z[1, t, P] = 2.0
    z[2, t + 1, PC1] = 3.0
    z[3, t - 2, PC3] = 3.0
    z[3, t + 5, PC3] = 9.0  # outside the polycomb reach: ignored
    terms = grammar_terms(z, t)
    assert terms["polycomb"][2] == pytest.approx(1.5 / 5)
    assert terms["polycomb"][3] == pytest.approx(1.5 / 5)
    s = combine_terms(terms)
    assert s[1] > s[0] > s[2]
    assert s[2] == pytest.approx(s[3])


def test_open_to_tss_matches_a_direct_walk():
    rng = np.random.default_rng(0)
    strong = rng.random((40, 15)) < 0.2
    t = 7
    ref = np.ones_like(strong)
    for g in range(strong.shape[0]):
        for b in range(strong.shape[1]):
            lo, hi = sorted((b, t))
            ref[g, b] = not strong[g, lo + 1 : hi].any()
    assert np.array_equal(open_to_tss(strong, t), ref)


def test_standardise_is_robust_to_gap_bins():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, size=(200, 30, 3))
    x[:, :2, :] = 1000.0  # identical all-N bins far from the bulk
    z = standardise_classes(x)
    assert z.max() <= Grammar.clip and z.min() >= -Grammar.clip
    bulk = z[:, 2:, :].reshape(-1, 3)
    # the bulk keeps unit scale (a mean/SD standardisation would squash it to SD ~0.01)
    assert np.allclose(np.median(bulk, 0), 0, atol=0.15) and np.allclose(bulk.std(0), 1, atol=0.15)


def test_simulation_signal_fraction_and_gene_order():
    rng = np.random.default_rng(0)
    genes, bins = 3000, 21
    scores = rng.normal(size=(genes, bins, 5))
    ids = np.arange(genes) + 10
    obs, sig = simulate(scores, ids, bins // 2, 0.6, seed=1)
    assert sig.var() == pytest.approx(0.6)
    noise = obs - sig
    assert np.allclose(noise / np.sqrt(0.4), gene_noise(ids, 1))
    assert noise.var() == pytest.approx(0.4, rel=0.1)
    perm = rng.permutation(genes)
    obs2, sig2 = simulate(scores[perm], ids[perm], bins // 2, 0.6, seed=1)
    assert np.allclose(obs2, obs[perm]) and np.allclose(sig2, sig[perm])
    assert not np.allclose(simulate(scores, ids, bins // 2, 0.6, seed=2)[0], obs)


def test_distal_bins_carry_signal():
    """On spatially correlated random features, the TSS bin alone explains far less than the window."""
    from scipy import stats

    rng = np.random.default_rng(5)
    genes, bins = 2000, 41
    raw = rng.normal(size=(genes, bins, 5))
    for b in range(1, bins):  # AR(1) along the window, like neighbouring bins
        raw[:, b] = 0.6 * raw[:, b - 1] + 0.8 * raw[:, b]
    t = bins // 2
    _, signal = simulate(raw, np.arange(genes), t, 1.0, seed=0)
    x = np.c_[raw[:, t, :], np.ones(genes)]
    tss_fit = x @ np.linalg.lstsq(x, signal, rcond=None)[0]
    assert stats.spearmanr(tss_fit, signal).statistic < 0.75


def test_oracle_fits_widen_with_the_visible_window():
    rng = np.random.default_rng(2)
    genes, bins = 1500, 31
    scores = rng.normal(size=(genes, bins, 5))
    obs, _ = simulate(scores, np.arange(genes), bins // 2, 1.0, seed=0)
    split = np.array(["train", "train", "val", "test"])[np.arange(genes) % 4]
    fits = [oracle_fit(scores, bins // 2, obs, split, n) for n in (1, 11, 31)]
    assert fits[2] == pytest.approx(1.0)  # the full window: the grammar's own terms, no noise
    assert fits[0] < fits[1] < fits[2] and fits[0] < 0.8
    with pytest.raises(GTAError):
        oracle_fit(scores, bins // 2, obs, split, 4)


# ----------------------------------------------------------------------------- the stage


def write_features(path, gene_ids, n_bins=11, seed=0):
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f["features"] = rng.normal(size=(len(gene_ids), n_bins, 40)).astype(np.float16)
        f["gene_id"] = np.asarray(gene_ids, np.int64)
        f.create_dataset("symbol", data=[str(g) for g in gene_ids], dtype=h5py.string_dtype())
        f.attrs.update(bin_size=4096, n_bins=n_bins, tss_bin=n_bins // 2, orient="reference", grid="tss")


def test_make_targets_from_a_wide_table_with_test_genes(tmp_path):
    TSS.to_csv(tmp_path / "tss.tsv", sep="\t", index=False)
    write_features(tmp_path / "f.h5", [1, 2, 9, 10, 12])  # ADA (100) has no features
    values = np.arange(1.0, 31.0).reshape(5, 6)
    df = pd.DataFrame(values, columns=["a1bg", "A2M", "ENSG00000171428", "10", "serpina3", "ADA"])
    df.insert(0, "id", list("abcde"))
    df.to_csv(tmp_path / "wide.csv", index=False)
    (tmp_path / "test.txt").write_text("# held out\nA2M\nENSG00000156006.3,extra\nunknown\n12\n")
    out = make_targets(
        tmp_path / "tss.tsv",
        tmp_path / "f.h5",
        str(tmp_path / "wide.csv"),
        tmp_path / "t.tsv",
        test_genes=tmp_path / "test.txt",
        log_transform=True,
        val_fraction=0.5,
    )
    back = pd.read_csv(tmp_path / "t.tsv", sep="\t")
    assert list(back.columns) == ["gene_id", "symbol", "value", "split"]
    assert list(back["gene_id"]) == [1, 2, 9, 10, 12]
    assert np.allclose(back["value"], np.log1p(np.median(values, axis=0)[:5]))
    assert set(back.loc[back["split"] == "test", "gene_id"]) == {2, 10, 12}
    assert sorted(back.loc[back["split"] != "test", "split"]) == ["train", "val"]
    assert len(out) == 5


def test_make_targets_simulated_writes_the_signal(tmp_path):
    ids = np.arange(1, 41)
    tss = pd.DataFrame(
        {
            "gene_id": ids,
            "symbol": [f"S{i}" for i in ids],
            "ensembl_gene": "",
            "name": "",
            "chrom": "1",
            "tss": ids * 10_000,  # windows apart: TSSs within a bin would share one split as a group
            "strand": "+",
        }
    )
    tss.to_csv(tmp_path / "tss.tsv", sep="\t", index=False)
    write_features(tmp_path / "f.h5", ids[::-1])  # features in another order than tss.tsv
    make_targets(
        tmp_path / "tss.tsv",
        tmp_path / "f.h5",
        "simulated",
        tmp_path / "t.tsv",
        tmp_path / "s.tsv",
        test_fraction=0.25,
        signal_fraction=1.0,
        seed=2,
    )
    t = pd.read_csv(tmp_path / "t.tsv", sep="\t")
    s = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert list(t["gene_id"]) == list(ids) and list(s["gene_id"]) == list(ids)
    assert np.allclose(t["value"], s["signal"], atol=1e-6)  # signal fraction 1: no noise
    assert (t["split"] == "test").sum() == 10
    with h5py.File(tmp_path / "f.h5") as f:
        scores = f["features"][:][:, :, GRAMMAR_CLASSES].astype(np.float32)
    _, sig = simulate(scores[::-1], ids, 5, 1.0, 2)
    assert np.allclose(s["signal"], sig, atol=1e-6)


def test_make_targets_rejects_negative_values_for_log(tmp_path):
    TSS.to_csv(tmp_path / "tss.tsv", sep="\t", index=False)
    write_features(tmp_path / "f.h5", [1, 2, 9, 10, 12])
    (tmp_path / "long.tsv").write_text("gene\tvalue\nA1BG\t-1\nA2M\t2\nNAT1\t3\nNAT2\t4\n")
    with pytest.raises(GTAError, match="log_transform") as e:
        make_targets(
            tmp_path / "tss.tsv", tmp_path / "f.h5", str(tmp_path / "long.tsv"), tmp_path / "t.tsv", log_transform=True
        )
    assert e.value.inputs == ("log_transform", "table")
    assert not (tmp_path / "t.tsv").exists()


def test_make_targets_errors_name_the_stage_inputs(tmp_path):
    TSS.to_csv(tmp_path / "tss.tsv", sep="\t", index=False)
    write_features(tmp_path / "f.h5", [1, 2, 9, 10, 12])
    args = (tmp_path / "tss.tsv", tmp_path / "f.h5")
    (tmp_path / "same.tsv").write_text("gene\tvalue\nA1BG\t2\nA2M\t2\nNAT1\t2\nNAT2\t2\n")
    with pytest.raises(GTAError, match="have the same value") as e:
        make_targets(*args, str(tmp_path / "same.tsv"), tmp_path / "t.tsv")
    assert e.value.input == "table" and "expression.table" not in str(e.value)
    with pytest.raises(GTAError, match="expression table not found") as e:
        make_targets(*args, str(tmp_path / "missing.tsv"), tmp_path / "t.tsv")
    assert e.value.input == "table"
    (tmp_path / "all.txt").write_text("A1BG\nA2M\nNAT1\nNAT2\nSERPINA3\n")
    with pytest.raises(GTAError, match=r"in the test gene list .*all\.txt and only 0 are left") as e:
        make_targets(*args, "simulated", tmp_path / "t.tsv", tmp_path / "s.tsv", test_genes=tmp_path / "all.txt")
    assert e.value.inputs == ("test_genes", "table") and "genes." not in str(e.value)
    with pytest.raises(GTAError, match="signal_fraction must be in") as e:
        make_targets(*args, "simulated", tmp_path / "t.tsv", tmp_path / "s.tsv", signal_fraction=2.0)
    assert e.value.input == "signal_fraction"
    with pytest.raises(GTAError, match="grammar 'none' is not one of") as e:
        make_targets(*args, "simulated", tmp_path / "t.tsv", tmp_path / "s.tsv", grammar="none")
    assert e.value.input == "grammar"
    assert not (tmp_path / "t.tsv").exists()
