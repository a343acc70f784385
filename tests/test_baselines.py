"""Baselines: ridge with a validation-chosen penalty, ExPecto-style decay features, orientation, imports."""

import itertools

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gta import GTAError
from gta.formats import read_imported_index
from gta.baselines import (
    EXPECTO_DECAY_BP,
    expecto_features,
    fit_baseline,
    fit_ridge,
    import_baseline_predictions,
    read_baseline_columns,
    ridge_path,
    upstream_sign,
)


def test_ridge_path_solves_the_normal_equations():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)) * [1, 2, 3, 4, 5, 0]  # one constant column
    y = x @ rng.normal(size=6) + rng.normal(size=80)
    mean, scale, intercept, coefs = ridge_path(x, y, [0.1, 10.0])
    a = (x - mean) / scale
    for alpha, beta in zip([0.1, 10.0], coefs, strict=False):
        ref = np.linalg.solve(a.T @ a + alpha * np.eye(6), a.T @ (y - y.mean()))
        assert np.allclose(beta, ref)
    assert intercept == pytest.approx(y.mean()) and np.all(coefs[:, 5] == 0)


def test_fit_ridge_picks_the_penalty_with_the_best_validation_spearman():
    rng = np.random.default_rng(1)
    n = 300
    x = rng.normal(size=(n, 40))
    y = x[:, 0] - 0.5 * x[:, 1] + rng.normal(size=n)
    split = np.array(["train"] * 60 + ["val"] * 120 + ["test"] * 120)
    pred = fit_ridge(x, y, split)
    # independent choice: refit at every penalty, score on validation genes
    mean, scale, intercept, coefs = ridge_path(x[:60], y[:60])
    scores = [stats.spearmanr(((x[60:180] - mean) / scale) @ c + intercept, y[60:180]).statistic for c in coefs]
    best = int(np.argmax(scores))
    assert np.allclose(pred, ((x - mean) / scale) @ coefs[best] + intercept)
    assert stats.spearmanr(pred[180:], y[180:]).statistic > 0.5


def loop_expecto(scores, tss_bin, bin_size, strand, orient):
    """ExPecto-style features written out bin by bin, in transcript coordinates."""
    genes, n, c = scores.shape
    out = np.zeros((genes, c * len(EXPECTO_DECAY_BP) * 2))
    for g in range(genes):
        flip = orient == "reference" and strand[g] == "-"
        for i in range(n):
            d = (tss_bin - i if flip else i - tss_bin) * bin_size
            for j, length in enumerate(EXPECTO_DECAY_BP):
                w = np.exp(-abs(d) / length)
                if d <= 0:
                    out[g, (2 * j) * c : (2 * j + 1) * c] += w * scores[g, i]
                if d >= 0:
                    out[g, (2 * j + 1) * c : (2 * j + 2) * c] += w * scores[g, i]
    return out


@pytest.mark.parametrize("orient", ["reference", "transcript"])
def test_expecto_features_match_a_loop(orient):
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(5, 9, 3))
    strand = np.array(["+", "-", "-", "+", "-"])
    got = expecto_features(scores, 4, 4096, upstream_sign(strand, orient))
    assert np.allclose(got, loop_expecto(scores, 4, 4096, strand, orient))


def test_reference_orientation_minus_strand_upstream_is_to_the_right():
    rng = np.random.default_rng(3)
    window = rng.normal(size=(1, 11, 2))
    plus = expecto_features(window, 5, 4096, upstream_sign(np.array(["+"]), "reference"))
    minus_mirrored = expecto_features(window[:, ::-1], 5, 4096, upstream_sign(np.array(["-"]), "reference"))
    assert np.allclose(plus, minus_mirrored)
    # transcript orientation: the window is already in transcript direction for both strands
    same = expecto_features(window, 5, 4096, upstream_sign(np.array(["-"]), "transcript"))
    assert np.allclose(plus, same)
    with pytest.raises(GTAError):
        upstream_sign(np.array(["+"]), "sideways")


# ----------------------------------------------------------------------------- the stage


def make_inputs(tmp_path, n=400, n_bins=21, orient="reference", seed=0):
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1)
    strand = np.where(rng.random(n) < 0.5, "+", "-")
    feats = rng.normal(size=(n, n_bins, 40)).astype(np.float32)
    t = n_bins // 2
    # planted: the promoter class at the TSS bin, plus class 12 summed over the UPSTREAM bins (transcript
    # direction) with a 16 kb exponential decay, as an ExPecto feature would
    offset = np.arange(n_bins) - t
    flip = (strand == "-") & (orient == "reference")
    d = np.where(flip[:, None], -offset[None, :], offset[None, :]) * 4096
    upstream = (np.exp(-np.abs(d) / 16384.0) * (d < 0) * feats[:, :, 12]).sum(axis=1)
    y = feats[:, t, 25] + upstream / upstream.std() + 0.3 * rng.normal(size=n)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["features"] = feats.astype(np.float16)
        f["gene_id"] = ids
        f.create_dataset("symbol", data=[f"S{i}" for i in ids], dtype=h5py.string_dtype())
        f.attrs.update(bin_size=4096, n_bins=n_bins, tss_bin=t, orient=orient, grid="tss")
    pd.DataFrame(
        {
            "gene_id": ids,
            "symbol": [f"S{i}" for i in ids],
            "ensembl_gene": [f"ENSG{i:011d}" for i in ids],
            "name": "",
            "chrom": "1",
            "tss": ids * 10000,
            "strand": strand,
        }
    ).to_csv(tmp_path / "tss.tsv", sep="\t", index=False)
    split = np.array(["train", "train", "val", "test"])[np.arange(n) % 4]
    pd.DataFrame({"gene_id": ids, "symbol": [f"S{i}" for i in ids], "value": y, "split": split}).to_csv(
        tmp_path / "targets.tsv", sep="\t", index=False
    )
    return y, split


@pytest.mark.parametrize("orient", ["reference", "transcript"])
def test_baselines_recover_planted_signals(tmp_path, orient):
    y, split = make_inputs(tmp_path, orient=orient)
    test = split == "test"
    res = {}
    for model in ("tss_ridge", "expecto_style"):
        out = fit_baseline(
            model, tmp_path / "f.h5", tmp_path / "targets.tsv", tmp_path / "tss.tsv", tmp_path / f"{model}.tsv"
        )
        back = pd.read_csv(tmp_path / f"{model}.tsv", sep="\t")
        assert list(back.columns) == ["gene_id", "symbol", "split", "observed", "predicted"]
        assert len(back) == len(y) and np.allclose(back["observed"], y, atol=1e-5)
        assert np.allclose(back["predicted"], out["predicted"], atol=1e-5)
        res[model] = stats.spearmanr(back.loc[test, "predicted"], y[test]).statistic
    # the TSS bin sees only the promoter half; the decay sums also see the upstream enhancers (and only
    # when upstream is read correctly for minus-strand genes)
    assert 0.4 < res["tss_ridge"] < 0.8
    assert res["expecto_style"] > 0.7 and res["expecto_style"] > res["tss_ridge"] + 0.1  # ~0.4 if read mirrored


def test_boosted_trees_match_a_brute_force_fit(tmp_path, monkeypatch):
    """The stage's boosted trees = features pooled by hand (loop_expecto on the kept classes), then
    HistGradientBoostingRegressor fitted directly at every grid point and every tree count, the best by
    validation Spearman; changing the test genes' targets changes no prediction."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    import gta.baselines as baselines
    from gta.sei import KEPT

    grid = {"learning_rate": (0.1, 0.3), "max_leaf_nodes": (3, 5), "l2_regularization": (0.0,)}
    monkeypatch.setattr(baselines, "BOOSTED_GRID", grid)
    monkeypatch.setattr(baselines, "BOOSTED_MAX_ITER", 8)
    y, split = make_inputs(tmp_path, n=160, n_bins=7)
    out = fit_baseline(
        "boosted_trees", tmp_path / "f.h5", tmp_path / "targets.tsv", tmp_path / "tss.tsv", tmp_path / "b.tsv", seed=3
    )
    with h5py.File(tmp_path / "f.h5") as f:
        feats = f["features"][:].astype(np.float32)[:, :, KEPT]
    strand = pd.read_csv(tmp_path / "tss.tsv", sep="\t")["strand"].to_numpy(str)
    x = loop_expecto(feats.astype(np.float64), 3, 4096, strand, "reference")
    train, val = split == "train", split == "val"
    best, best_pred = -np.inf, None
    for lr, leaves, m in itertools.product(grid["learning_rate"], grid["max_leaf_nodes"], range(1, 9)):
        with threadpool_limits(1, user_api="openmp"):  # (speed only: a tiny fit on many threads spins)
            model = HistGradientBoostingRegressor(
                learning_rate=lr,
                max_leaf_nodes=leaves,
                l2_regularization=0.0,
                min_samples_leaf=min(20, int(train.sum()) // 10),  # scikit-learn's 20, fewer below 200 genes
                max_iter=m,
                early_stopping=False,
                random_state=3,
            ).fit(x[train], y[train])
        pred = model.predict(x)
        score = stats.spearmanr(pred[val], y[val]).statistic
        if score > best:  # ties: the first (grid order, then fewer trees)
            best, best_pred = score, pred
    assert np.allclose(out["predicted"], best_pred, rtol=0, atol=1e-9)
    back = pd.read_csv(tmp_path / "b.tsv", sep="\t")
    assert np.allclose(back["predicted"], best_pred, atol=1e-6)
    test = split == "test"
    assert stats.spearmanr(best_pred[test], y[test]).statistic > 0.3  # it learns the planted signal

    tgt = pd.read_csv(tmp_path / "targets.tsv", sep="\t")
    tgt.loc[test, "value"] = np.random.default_rng(9).normal(size=int(test.sum())) * 100
    tgt.to_csv(tmp_path / "targets.tsv", sep="\t", index=False)
    again = fit_baseline(
        "boosted_trees", tmp_path / "f.h5", tmp_path / "targets.tsv", tmp_path / "tss.tsv", tmp_path / "c.tsv", seed=3
    )
    assert np.array_equal(again["predicted"].to_numpy(), out["predicted"].to_numpy())


def test_import_huang_predictions(tmp_path):
    make_inputs(tmp_path, n=40)
    csv = pd.DataFrame(
        {
            "gene": ["s1", "ENSG00000000002.5", "s3", "nothing", "s4"] + [f"s{i}" for i in range(5, 41)],
            "Xpresso": np.arange(41.0),
            "Enformer": [np.nan] + list(np.arange(40.0)),
        }
    )
    csv.to_csv(tmp_path / "huang.csv", index=False)
    assert read_baseline_columns(tmp_path / "huang.csv") == ["Xpresso", "Enformer"]
    files = import_baseline_predictions(
        tmp_path / "huang.csv", tmp_path / "targets.tsv", tmp_path / "tss.tsv", tmp_path / "p"
    )
    x = pd.read_csv(files["Xpresso"], sep="\t")
    e = pd.read_csv(files["Enformer"], sep="\t")
    assert files["Xpresso"].name == "huang_Xpresso.tsv"
    assert read_imported_index(tmp_path / "p") == [("Xpresso", files["Xpresso"]), ("Enformer", files["Enformer"])]
    assert list(x["gene_id"]) == list(range(1, 41))
    assert list(x["predicted"][:4]) == [0.0, 1.0, 2.0, 4.0]  # 'nothing' (row 3) is unmatched
    assert list(e["gene_id"][:2]) == [2, 3]  # a missing prediction leaves the gene out
    tgt = pd.read_csv(tmp_path / "targets.tsv", sep="\t").set_index("gene_id")
    assert np.allclose(x["observed"], tgt.loc[x["gene_id"], "value"])


def test_bad_huang_header(tmp_path):
    (tmp_path / "h.csv").write_text("name,Xpresso\na,1\n")
    with pytest.raises(GTAError, match="gene"):
        read_baseline_columns(tmp_path / "h.csv")
