"""Table 3 and the diagnostics: training-fraction subsets, history.tsv, the context ablation, Table 3,
the training-size table and the simulation's oracle table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gta import GTAError
from gta.baselines import fit_baseline, fit_ridge
from gta.evaluate import TABLE3_DESCRIPTIONS, make_table3, make_train_size
from gta.formats import DELTA_COLUMNS, SEED_COLUMNS
from gta.splits import train_subset
from gta.model import GTA
from gta.pretrained import read_config, read_weights
from gta.train import Dataset, load_dataset, predict_with_context, restrict_training
from test_baselines import make_inputs
from test_evaluate import write_pred, write_targets
from test_train import N_GENES, backbone_dir, data_files, run  # noqa: F401 (fixtures)


# ----------------------------------------------------------------------------- training subsets


def test_train_subset_is_seeded_nested_and_whole_at_one():
    ids = np.arange(1000, 1400, 3)
    quarter, half, full = (train_subset(ids, f, seed=0) for f in (0.25, 0.5, 1.0))
    assert quarter.sum() == round(0.25 * len(ids)) and half.sum() == round(0.5 * len(ids))
    assert full.all()
    assert not (quarter & ~half).any()  # nested: the 0.25 subset lies inside the 0.5 subset
    np.testing.assert_array_equal(train_subset(ids, 0.25, seed=0), quarter)  # deterministic
    perm = np.random.default_rng(3).permutation(len(ids))
    assert set(ids[perm][train_subset(ids[perm], 0.25, 0)]) == set(ids[quarter])  # independent of row order
    assert set(ids[train_subset(ids, 0.25, seed=1)]) != set(ids[quarter])  # the seed matters
    assert train_subset(ids[:5], 0.01, 0).sum() == 2  # never fewer than 2 genes to fit
    with pytest.raises(GTAError, match="train_fraction") as e:
        train_subset(ids, 0.0, 0)
    assert e.value.input == "train_fraction"


def test_restrict_training_keeps_validation_and_test(data_files):
    d = data_files[0]
    ds = load_dataset(d / "features.h5", d / "targets.tsv", d / "prompts.jsonl", 5, d / "tss.tsv")
    before = {k: v.copy() for k, v in ds.idx.items()}
    restrict_training(ds, 1.0, 0)
    assert all(np.array_equal(ds.idx[k], before[k]) for k in before)  # 1.0 = today's training set
    restrict_training(ds, 0.5, 0)
    np.testing.assert_array_equal(ds.idx["val"], before["val"])
    np.testing.assert_array_equal(ds.idx["test"], before["test"])
    expect = before["train"][train_subset(ds.gene_id[before["train"]], 0.5, 0)]
    np.testing.assert_array_equal(ds.idx["train"], expect)
    assert isinstance(ds, Dataset) and len(ds.split) == len(ds.gene_id)  # every gene is still predicted


def test_gta_trained_on_a_fraction_standardises_with_that_subset(tmp_path, data_files, backbone_dir):
    d, feats, gene_id, _ = data_files
    model, pred = run(tmp_path, data_files, backbone_dir, epochs=1, train_fraction=0.5)
    config, weights = read_config(model), read_weights(model)
    ds = load_dataset(d / "features.h5", d / "targets.tsv", d / "prompts.jsonl", 5, d / "tss.tsv")
    train = ds.idx["train"][train_subset(ds.gene_id[ds.idx["train"]], 0.5, 0)]
    np.testing.assert_allclose(
        weights["feature_mean"].numpy(), ds.x[train].reshape(-1, ds.x.shape[-1]).mean(0), rtol=1e-5, atol=1e-6
    )
    assert config["target"]["mean"] == pytest.approx(ds.y[train].mean())
    assert config["train"]["train_fraction"] == 0.5
    assert len(pred) == N_GENES - 1  # all genes predicted


def test_baseline_on_a_fraction_fits_the_subset_only(tmp_path):
    y, split = make_inputs(tmp_path, n=200)
    out = fit_baseline(
        "tss_ridge",
        tmp_path / "f.h5",
        tmp_path / "targets.tsv",
        tmp_path / "tss.tsv",
        tmp_path / "p.tsv",
        train_fraction=0.25,
        seed=0,
    )
    ids = np.arange(1, 201)
    train = np.flatnonzero(split == "train")
    fit_split = split.astype(object)
    fit_split[train[~train_subset(ids[train], 0.25, 0)]] = "unused"
    import h5py

    from gta.sei import KEPT

    with h5py.File(tmp_path / "f.h5") as f:
        x = f["features"][:, f.attrs["tss_bin"]][:, KEPT].astype(np.float64)
    np.testing.assert_allclose(out["predicted"], fit_ridge(x, y, fit_split), rtol=1e-6)
    assert list(out["split"]) == list(split)  # written with the real splits
    full = fit_baseline(
        "tss_ridge",
        tmp_path / "f.h5",
        tmp_path / "targets.tsv",
        tmp_path / "tss.tsv",
        tmp_path / "full.tsv",
        train_fraction=1.0,
        seed=0,
    )
    np.testing.assert_allclose(full["predicted"], fit_ridge(x, y, split), rtol=1e-6)


# ----------------------------------------------------------------------------- history.tsv


def test_gta_train_writes_the_history_tsv(tmp_path, data_files, backbone_dir):
    from gta.cli import main

    d = data_files[0]
    out = tmp_path / "m"
    rc = main(
        [
            "train-gta",
            "--features",
            str(d / "features.h5"),
            "--targets",
            str(d / "targets.tsv"),
            "--prompts",
            str(d / "prompts.jsonl"),
            "--tss",
            str(d / "tss.tsv"),
            "--n-bins",
            "3",
            "--backbone",
            str(backbone_dir),
            "--layers",
            "1",
            "--prototypes-vocab",
            "4",
            "--prototypes-classes",
            "4",
            "--heads",
            "2",
            "--d-k",
            "4",
            "--top-k",
            "2",
            "--context",
            "64",
            "--epochs",
            "2",
            "--threads",
            "1",
            "--out-model",
            str(out),
            "--out-predictions",
            str(tmp_path / "pred.tsv"),
            "--out-history",
            str(out / "history.tsv"),
        ]
    )
    assert rc == 0
    history = pd.read_csv(out / "history.tsv", sep="\t")
    stored = pd.DataFrame(read_config(out)["history"])
    assert list(history.columns[:3]) == ["epoch", "train_loss", "val_spearman"]
    assert list(history["epoch"]) == [1, 2]
    np.testing.assert_allclose(history[stored.columns].to_numpy(), stored.to_numpy(), rtol=1e-5)
    assert not list(out.glob(".*tmp*"))  # written atomically, no temporary left


# ----------------------------------------------------------------------------- context ablation


def test_context_ablation_keeps_the_centre_and_sets_the_rest_to_the_feature_mean(
    tmp_path, data_files, backbone_dir, monkeypatch
):
    d = data_files[0]
    model, pred = run(tmp_path, data_files, backbone_dir, epochs=2, autocast="float32")
    args = (model, d / "features.h5", d / "targets.tsv", d / "prompts.jsonl")
    # every bin kept: the model's own predictions
    full = predict_with_context(*args, keep_bins=5, tss=d / "tss.tsv")
    merged = full.merge(pred, on="gene_id")
    assert len(merged) == len(pred)
    np.testing.assert_allclose(merged["predicted_x"], merged["predicted_y"], rtol=1e-4, atol=1e-5)
    assert (merged["split_x"] == merged["split_y"]).all()
    # one bin kept: the model sees the training mean in the four others, the original TSS bin
    seen = []
    original = GTA.forward

    def spy(self, features, *a, **kw):
        seen.append((features.detach().cpu().numpy().copy(), self.feature_mean.cpu().numpy().copy()))
        return original(self, features, *a, **kw)

    monkeypatch.setattr(GTA, "forward", spy)
    ablated = predict_with_context(*args, keep_bins=1, tss=d / "tss.tsv")
    x = np.concatenate([s[0] for s in seen])
    mean = seen[0][1]
    ds = load_dataset(d / "features.h5", d / "targets.tsv", d / "prompts.jsonl", 5, d / "tss.tsv")

    # the model meets the genes in its canonical order (gta.model.canonical_order), not the file's
    def by_rows(a):
        return a[np.lexsort(a.T[::-1])]

    np.testing.assert_array_equal(by_rows(x[:, 2]), by_rows(ds.x[:, 2]))
    for b in (0, 1, 3, 4):
        np.testing.assert_array_equal(x[:, b], np.broadcast_to(mean, x[:, b].shape))
    assert not np.allclose(ablated["predicted"], full["predicted"])
    with pytest.raises(GTAError, match="keep_bins 4 must be odd") as e:
        predict_with_context(*args, keep_bins=4, tss=d / "tss.tsv")
    assert e.value.input == "keep_bins"


# ----------------------------------------------------------------------------- tables


def test_table3_rows_columns_and_values(tmp_path):
    tgt = write_targets(tmp_path / "targets.tsv")
    rng = np.random.default_rng(5)
    rows = []
    for i, name in enumerate(
        ["GTA", "no_backbone", "random_backbone", "attention_layer", "no_prompt", "context_ablation"]
    ):
        write_pred(tmp_path / f"{name}.tsv", tgt, tgt["value"] + (0.2 + i) * rng.normal(size=len(tgt)))
        rows.append((name, str(tmp_path / f"{name}.tsv")))
    make_table3(rows, tmp_path / "targets.tsv", tmp_path / "table3.tsv", n_boot=200, seed=3, keep_bins=5)
    back = pd.read_csv(tmp_path / "table3.tsv", sep="\t")
    assert list(back.columns) == ["model", "description", "spearman", "ci", "n_genes", *SEED_COLUMNS, *DELTA_COLUMNS]
    assert list(back["model"]) == [name for name, _ in rows]
    assert back["description"].iloc[-1] == TABLE3_DESCRIPTIONS["context_ablation"].format(keep_bins=5)
    assert "central 5" in back["description"].iloc[-1]
    test = tgt[tgt["split"] == "test"]
    for k, (_, path) in enumerate(rows):  # scipy's Spearman and a plain bootstrap loop (the documented draws)
        pred = pd.read_csv(path, sep="\t").set_index("gene_id").loc[test["gene_id"], "predicted"].to_numpy()
        obs = test["value"].to_numpy()
        rng = np.random.default_rng(3)
        draws = (rng.integers(0, len(obs), len(obs)) for _ in range(200))
        boot = [stats.spearmanr(obs[i], pred[i]).statistic for i in draws]
        assert back.loc[k, "spearman"] == pytest.approx(stats.spearmanr(obs, pred).statistic, abs=5e-5)
        assert back.loc[k, "ci"] == pytest.approx(2 * np.std(boot), abs=5e-5)
        assert back.loc[k, "n_genes"] == len(test)
    with pytest.raises(GTAError, match="unknown variant") as e:
        make_table3([("GTA-XL", rows[0][1])], tmp_path / "targets.tsv", tmp_path / "t.tsv", n_boot=20)
    assert e.value.input == "rows"


def test_table3_pairs_each_control_with_gta_by_seed(tmp_path):
    """delta_vs_gta, delta_sd and delta_ci against the per-seed differences of scipy's Spearman, written out:
    seeds matched by value (not position), and a control missing a test gene compared on the shared genes."""
    from test_evaluate import loop_bootstrap

    tgt = write_targets(tmp_path / "targets.tsv")
    test = (tgt["split"] == "test").to_numpy()
    rng = np.random.default_rng(8)
    preds, rows = {}, []
    for name, seeds in [("GTA", (0, 1, 2)), ("no_backbone", (2, 0, 1)), ("no_prompt", (0, 1, 2))]:
        for s in seeds:
            p = (tgt["value"] + (0.3 + 0.5 * s + (name != "GTA")) * rng.normal(size=len(tgt))).to_numpy().copy()
            if name == "no_prompt":
                p[np.flatnonzero(test)[0]] = np.nan  # one test gene without a prediction
            preds[name, s] = p
            write_pred(tmp_path / f"{name}_{s}.tsv", tgt, p)
            rows.append((name, str(tmp_path / f"{name}_{s}.tsv"), s))
    n_boot, boot_seed = 120, 3
    make_table3(rows, tmp_path / "targets.tsv", tmp_path / "t3.tsv", n_boot=n_boot, seed=boot_seed)
    back = pd.read_csv(tmp_path / "t3.tsv", sep="\t", keep_default_na=False, dtype=str).set_index("model")
    assert list(back.index) == ["GTA", "no_backbone", "no_prompt"]
    assert (back.loc["GTA", DELTA_COLUMNS] == "").all() and back.loc["GTA", "n_seeds"] == "3"
    for control in ["no_backbone", "no_prompt"]:
        shared = test & np.isfinite(preds[control, 0])
        obs = tgt["value"].to_numpy()[shared]
        diffs = [
            stats.spearmanr(obs, preds[control, s][shared]).statistic
            - stats.spearmanr(obs, preds["GTA", s][shared]).statistic
            for s in (0, 1, 2)
        ]
        row = back.loc[control]
        assert float(row["delta_vs_gta"]) == pytest.approx(np.mean(diffs), abs=5e-5)
        assert float(row["delta_sd"]) == pytest.approx(np.std(diffs, ddof=1), abs=5e-5)
        boots = np.mean(
            [
                loop_bootstrap(obs, preds[control, s][shared], n_boot, boot_seed)
                - loop_bootstrap(obs, preds["GTA", s][shared], n_boot, boot_seed)
                for s in (0, 1, 2)
            ],
            axis=0,
        )
        assert float(row["delta_ci"]) == pytest.approx(2 * np.std(boots[np.isfinite(boots)]), abs=5e-5)
    assert back.loc["no_prompt", "n_genes"] == str(test.sum() - 1)
    # a control trained with other seeds than GTA cannot be paired
    with pytest.raises(GTAError, match="no_backbone was trained with seeds 2, 0 but GTA with 0, 1, 2") as e:
        make_table3(rows[:5], tmp_path / "targets.tsv", tmp_path / "bad.tsv", n_boot=20)
    assert e.value.input == "rows" and not (tmp_path / "bad.tsv").exists()


def test_table3_pairs_a_baseline_fitted_once_with_every_gta_seed(tmp_path):
    """A text baseline (no seed) against GTA's seeds: its one Spearman minus each seed's, by scipy and a loop."""
    from test_evaluate import loop_bootstrap

    tgt = write_targets(tmp_path / "targets.tsv")
    test = (tgt["split"] == "test").to_numpy()
    obs = tgt["value"].to_numpy()[test]
    rng = np.random.default_rng(9)
    preds, rows = {}, []
    for s in (0, 1, 2):
        preds[s] = (tgt["value"] + (0.3 + 0.4 * s) * rng.normal(size=len(tgt))).to_numpy()
        write_pred(tmp_path / f"gta_{s}.tsv", tgt, preds[s])
        rows.append(("GTA", str(tmp_path / f"gta_{s}.tsv"), s))
    text = (tgt["value"] + rng.normal(size=len(tgt))).to_numpy()
    write_pred(tmp_path / "text.tsv", tgt, text)
    rows.append(("text_ridge", str(tmp_path / "text.tsv")))
    make_table3(rows, tmp_path / "targets.tsv", tmp_path / "t3.tsv", n_boot=100, seed=4)
    row = (
        pd.read_csv(tmp_path / "t3.tsv", sep="\t", keep_default_na=False, dtype=str)
        .set_index("model")
        .loc["text_ridge"]
    )
    diffs = [
        stats.spearmanr(obs, text[test]).statistic - stats.spearmanr(obs, preds[s][test]).statistic for s in (0, 1, 2)
    ]
    assert row["n_seeds"] == "" and row["description"] == TABLE3_DESCRIPTIONS["text_ridge"]
    assert float(row["delta_vs_gta"]) == pytest.approx(np.mean(diffs), abs=5e-5)
    assert float(row["delta_sd"]) == pytest.approx(np.std(diffs, ddof=1), abs=5e-5)
    boots = loop_bootstrap(obs, text[test], 100, 4) - np.mean(
        [loop_bootstrap(obs, preds[s][test], 100, 4) for s in (0, 1, 2)], axis=0
    )
    assert float(row["delta_ci"]) == pytest.approx(2 * np.std(boots), abs=5e-5)


def test_train_size_table_counts_the_subset(tmp_path, monkeypatch):
    tgt = write_targets(tmp_path / "targets.tsv", n=80)
    write_pred(tmp_path / "a.tsv", tgt, tgt["value"] * 2)
    write_pred(tmp_path / "b.tsv", tgt, -tgt["value"])
    table = make_train_size(
        [("GTA", 0.25, tmp_path / "a.tsv"), ("GTA", 1.0, tmp_path / "b.tsv")],
        tmp_path / "targets.tsv",
        tmp_path / "ts.tsv",
        n_boot=50,
        seed=0,
    )
    back = pd.read_csv(tmp_path / "ts.tsv", sep="\t")
    assert list(back.columns) == ["model", "train_fraction", "n_train", "spearman", "ci", "n_genes"]
    n_train = int((tgt["split"] == "train").sum())
    assert list(back["n_train"]) == [round(0.25 * n_train), n_train]
    assert list(back["spearman"]) == [1.0, -1.0] and list(back["train_fraction"]) == [0.25, 1.0]
    from gta.figures import plot_train_size

    figs = saved_figures(monkeypatch)
    plot_train_size(table, tmp_path / "ts.png", "test")
    ((fig, path),) = figs
    (bars,) = fig.axes[0].containers  # one model: one error-bar line, points in n_train order
    assert bars.get_label() == "GTA" and path == tmp_path / "ts.png" and path.stat().st_size > 1000
    assert list(bars.lines[0].get_xdata()) == [round(0.25 * n_train), n_train]
    assert list(bars.lines[0].get_ydata()) == [1.0, -1.0]
    (segments,) = [c.get_segments() for c in bars.lines[2]]
    np.testing.assert_allclose([seg[1][1] - seg[0][1] for seg in segments], 2 * back["ci"].to_numpy(), rtol=1e-6)


def saved_figures(monkeypatch):
    """Figures gta.figures saves, as (figure, path) pairs, kept open for a look at what they plot."""
    import gta.figures

    figs = []
    real = gta.figures._save
    monkeypatch.setattr(gta.figures, "_save", lambda fig, path: (figs.append((fig, path)), real(fig, path)))
    return figs


def test_learning_curves_figure(tmp_path, monkeypatch):
    from gta.figures import plot_learning_curves
    from gta.train import write_history

    curves = {"a": (1.0, 0.1), "b": (3.0, -0.2)}  # train loss scale / e, validation Spearman slope * e
    for name, (loss, slope) in curves.items():
        write_history(
            [
                {"epoch": e, "train_loss": loss / e, "val_spearman": slope * e, "genes_per_s": 5.0, "seconds": 1.0}
                for e in (1, 2, 3)
            ],
            tmp_path / f"{name}.tsv",
        )
    figs = saved_figures(monkeypatch)
    plot_learning_curves([("a", tmp_path / "a.tsv"), ("b", tmp_path / "b.tsv")], tmp_path / "lc.png", "test")
    ((fig, path),) = figs
    assert path == tmp_path / "lc.png" and path.stat().st_size > 1000
    loss_ax, val_ax = fig.axes
    for ax, column in ((loss_ax, 0), (val_ax, 1)):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert sorted(lines) == ["a", "b"]
        for name, (loss, slope) in curves.items():
            expect = [loss / e for e in (1, 2, 3)] if column == 0 else [slope * e for e in (1, 2, 3)]
            assert list(lines[name].get_xdata()) == [1, 2, 3]
            np.testing.assert_allclose(lines[name].get_ydata(), expect, rtol=1e-6)
    assert lines["a"].get_color() != lines["b"].get_color()


@pytest.mark.parametrize("grammar", ["demo", "alternative"])
def test_oracle_table_matches_oracle_fit(tmp_path, grammar):
    """The oracle table, recomputed here. Full window: the noiseless simulation is a linear function of the
    grammar's terms, so least squares on the training genes fits the test genes exactly (Spearman 1). TSS bin
    only: by hand from the grammar's definitions, the enhancer term is 0 (no bin but the TSS bin is seen, and
    the TSS bin has weight 0); the demo's terms are the Promoter score and the polycomb mean of the positive
    parts at the TSS bin, the alternative's the activator (TF1) score; fitted with scipy's least squares on
    scores standardised with scipy's normal-scaled MAD."""
    import h5py
    from scipy import linalg

    from gta.demo.simulation import GRAMMARS, oracle_diagnostics, simulate
    from test_evaluate import write_features

    ids = np.arange(1, 121) * 7
    write_features(tmp_path / "f.h5", ids, [f"G{i}" for i in ids], n_bins=11)
    with h5py.File(tmp_path / "f.h5") as f:
        scores = f["features"][:][:, :, GRAMMARS[grammar]].astype(np.float64)
    observed, _ = simulate(scores, ids, 5, 1.0, 0, name=grammar)
    split = np.array(["train", "train", "val", "test"])[np.arange(len(ids)) % 4]
    order = np.random.default_rng(0).permutation(len(ids))  # targets in another order than the features
    pd.DataFrame({"gene_id": ids[order], "symbol": "x", "value": observed[order], "split": split[order]}).to_csv(
        tmp_path / "t.tsv", sep="\t", index=False
    )
    table = oracle_diagnostics(tmp_path / "f.h5", tmp_path / "t.tsv", tmp_path / "oracle.tsv", [5], grammar)
    back = pd.read_csv(tmp_path / "oracle.tsv", sep="\t")
    assert list(back.columns) == ["visible_bins", "context_bp", "spearman"] and len(table) == 3
    assert list(back["visible_bins"]) == [1, 5, 11] and list(back["context_bp"]) == [4096, 5 * 4096, 11 * 4096]
    assert back["spearman"].iloc[-1] == pytest.approx(1.0, abs=1e-4)
    flat = scores.reshape(-1, scores.shape[-1])
    z = np.clip((scores - np.median(flat, axis=0)) / stats.median_abs_deviation(flat, axis=0, scale="normal"), -4, 4)
    tss = z[:, 5]
    if grammar == "demo":
        terms = [tss[:, 0], 0.5 * (np.maximum(tss[:, 3], 0) + np.maximum(tss[:, 4], 0))]
    else:
        terms = [tss[:, 0]]
    x = np.column_stack([*terms, np.ones(len(ids))])
    train, test = split == "train", split == "test"  # split and observed are in feature order here
    coef = linalg.lstsq(x[train], observed[train])[0]
    expect = stats.spearmanr(x[test] @ coef, observed[test]).statistic
    assert back["spearman"].iloc[0] == pytest.approx(expect, abs=5e-5)
    assert back["spearman"].iloc[0] < 0.9  # one bin cannot reach the planted signal
    from gta.cli import GRAMMAR_NAMES

    assert tuple(GRAMMARS) == GRAMMAR_NAMES  # the CLI's choices are the package's grammars
