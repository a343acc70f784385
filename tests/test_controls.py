"""Table 3 and the diagnostics: training-fraction subsets, history.tsv, the context ablation, Table 3,
the training-size table and the simulation's oracle table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gta import GTAError
from gta.baselines import fit_baseline, fit_ridge
from gta.evaluate import TABLE3_DESCRIPTIONS, evaluate_file, make_table3, make_train_size, read_targets
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
    np.testing.assert_array_equal(x[:, 2], ds.x[:, 2])
    for b in (0, 1, 3, 4):
        np.testing.assert_array_equal(x[:, b], np.broadcast_to(mean, x[:, b].shape))
    assert not np.allclose(ablated["predicted"], full["predicted"])
    with pytest.raises(GTAError, match="keep_bins 4 must be odd") as e:
        predict_with_context(*args, keep_bins=4, tss=d / "tss.tsv")
    assert e.value.input == "keep_bins"


# ----------------------------------------------------------------------------- tables


def test_table3_rows_columns_and_values_equal_evaluate_file(tmp_path):
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
    assert list(back.columns) == ["model", "description", "spearman", "ci", "n_genes"]
    assert list(back["model"]) == [name for name, _ in rows]
    assert back["description"].iloc[-1] == TABLE3_DESCRIPTIONS["context_ablation"].format(keep_bins=5)
    assert "central 5" in back["description"].iloc[-1]
    targets = read_targets(tmp_path / "targets.tsv")
    for k, (_, path) in enumerate(rows):
        rho, ci, n = evaluate_file(path, targets, 200, 3)
        assert back.loc[k, "spearman"] == pytest.approx(rho, abs=5e-5)
        assert back.loc[k, "ci"] == pytest.approx(ci, abs=5e-5)
        assert back.loc[k, "n_genes"] == n == (tgt["split"] == "test").sum()
    with pytest.raises(GTAError, match="unknown variant") as e:
        make_table3([("GTA-XL", rows[0][1])], tmp_path / "targets.tsv", tmp_path / "t.tsv", n_boot=20)
    assert e.value.input == "rows"


def test_train_size_table_counts_the_subset(tmp_path):
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

    plot_train_size(table, tmp_path / "ts.png", "test")
    assert (tmp_path / "ts.png").stat().st_size > 1000


def test_learning_curves_figure(tmp_path):
    from gta.figures import plot_learning_curves
    from gta.train import write_history

    for name in ("a", "b"):
        write_history(
            [
                {"epoch": e, "train_loss": 1.0 / e, "val_spearman": 0.1 * e, "genes_per_s": 5.0, "seconds": 1.0}
                for e in (1, 2, 3)
            ],
            tmp_path / f"{name}.tsv",
        )
    plot_learning_curves([("a", tmp_path / "a.tsv"), ("b", tmp_path / "b.tsv")], tmp_path / "lc.png", "test")
    from PIL import Image

    with Image.open(tmp_path / "lc.png") as im:
        assert im.format == "PNG" and min(im.size) > 100


@pytest.mark.parametrize("grammar", ["demo", "alternative"])
def test_oracle_table_matches_oracle_fit(tmp_path, grammar):
    """Each row equals oracle_fit on the scores of the grammar the targets were simulated with; the
    full window of a noiseless simulation is fitted almost perfectly (the oracle knows the right grammar)."""
    import h5py

    from gta.evaluate import read_targets as rt
    from gta.demo.simulation import GRAMMARS, oracle_diagnostics, oracle_fit, simulate
    from test_evaluate import write_features

    ids = np.arange(1, 121) * 7
    write_features(tmp_path / "f.h5", ids, [f"G{i}" for i in ids], n_bins=11)
    with h5py.File(tmp_path / "f.h5") as f:
        scores = f["features"][:][:, :, GRAMMARS[grammar]].astype(np.float32)
    observed, _ = simulate(scores, ids, 5, 1.0, 0, name=grammar)
    split = np.array(["train", "train", "val", "test"])[np.arange(len(ids)) % 4]
    order = np.random.default_rng(0).permutation(len(ids))  # targets in another order than the features
    pd.DataFrame({"gene_id": ids[order], "symbol": "x", "value": observed[order], "split": split[order]}).to_csv(
        tmp_path / "t.tsv", sep="\t", index=False
    )
    table = oracle_diagnostics(tmp_path / "f.h5", tmp_path / "t.tsv", tmp_path / "oracle.tsv", [5], grammar)
    back = pd.read_csv(tmp_path / "oracle.tsv", sep="\t")
    assert list(back.columns) == ["visible_bins", "context_bp", "spearman"]
    assert list(back["visible_bins"]) == [1, 5, 11] and list(back["context_bp"]) == [4096, 5 * 4096, 11 * 4096]
    t = rt(tmp_path / "t.tsv")
    for k, n in enumerate([1, 5, 11]):
        expect = oracle_fit(scores[order], 5, t["value"].to_numpy(), t["split"].to_numpy(), n, name=grammar)
        assert back.loc[k, "spearman"] == pytest.approx(expect, abs=5e-5)
    assert len(table) == 3 and back["spearman"].iloc[-1] > 0.99
    from gta.cli import GRAMMAR_NAMES

    assert tuple(GRAMMARS) == GRAMMAR_NAMES  # the CLI's choices are the package's grammars
