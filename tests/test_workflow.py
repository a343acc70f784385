"""The tiny config end to end, and what a rerun does after a config change (dry runs)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import run_snakemake

pytestmark = pytest.mark.workflow  # the session's tiny run: about 4 minutes on 2 cores


def planned(workdir, config, *args) -> dict[str, int]:
    """Jobs a dry run would execute: {rule: count} (empty when there is nothing to do)."""
    r = run_snakemake(workdir, "-n", "--quiet", "rules", *args, config=config)
    assert r.returncode == 0, r.stdout[-3000:]
    if "Nothing to be done" in r.stdout:
        return {}
    table = re.search(r"job\s+count\n[-\s]+\n(.*?)\n\s*total", r.stdout, re.S)
    assert table, r.stdout[-3000:]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+(\d+)$", table.group(1), re.M)}


def edited(tmp_path, config, **changes):
    """A copy of `config` with dotted keys changed."""
    cfg = yaml.safe_load(config.read_text())
    for key, value in changes.items():
        section, name = key.split("__")
        cfg[section][name] = value
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_table1_has_every_row(tiny_run, tiny_config):
    cfg = yaml.safe_load(tiny_config.read_text())
    t1 = pd.read_csv(tiny_run / "results/table1.tsv", sep="\t")
    columns = ["model", "n_bins", "context_bp", "spearman", "ci", "n_genes", "spearman_plus", "spearman_minus"]
    assert list(t1.columns) == columns
    by_strand = t1.loc[t1["model"] != "noise ceiling", ["spearman_plus", "spearman_minus"]]
    assert by_strand.notna().all().all() and by_strand.abs().le(1).all().all()
    expected = [
        "Xpresso",
        "Enformer",
        "Basenji2",
        "ExPecto",
        "TSS ridge",
        "ExPecto-style",
        "GTA",
        "GTA",
        "noise ceiling",
    ]
    assert sorted(t1["model"]) == sorted(expected)
    gta = t1[t1["model"] == "GTA"]
    assert sorted(gta["n_bins"]) == sorted(cfg["evaluate"]["context_bins"])
    assert (gta["context_bp"] == gta["n_bins"] * cfg["window"]["bin_size"]).all()
    targets = pd.read_csv(tiny_run / "results/expression/targets.tsv", sep="\t")
    n_test = int((targets["split"] == "test").sum())
    assert (t1["n_genes"] == n_test).all()  # the imported predictions cover every tiny gene
    assert t1["spearman"].between(-1, 1).all() and (t1["ci"] > 0).all()
    t2 = pd.read_csv(tiny_run / "results/table2.tsv", sep="\t")
    assert sorted(t2["layers"]) == sorted(cfg["evaluate"]["ablation_layers"])
    # the Table 2 row at backbone.layers is the same model as Table 1's largest N
    same = t2.loc[t2["layers"] == cfg["backbone"]["layers"], "spearman"].item()
    assert same == gta.loc[gta["n_bins"] == max(cfg["evaluate"]["context_bins"]), "spearman"].item()


def test_table3_and_diagnostics(tiny_run, tiny_config):
    cfg = yaml.safe_load(tiny_config.read_text())
    e = cfg["evaluate"]
    n, layers = max(e["context_bins"]), cfg["backbone"]["layers"]
    t1 = pd.read_csv(tiny_run / "results/table1.tsv", sep="\t")
    t3 = pd.read_csv(tiny_run / "results/table3.tsv", sep="\t")
    assert list(t3.columns) == ["model", "description", "spearman", "ci", "n_genes"]
    assert list(t3["model"]) == ["GTA", *e["controls"]]
    assert t3["description"].str.len().gt(0).all() and t3["spearman"].between(-1, 1).all()
    gta = t1[(t1["model"] == "GTA") & (t1["n_bins"] == n)]
    # the GTA row is Table 1's largest-N model, same test genes and bootstrap
    assert t3.loc[0, ["spearman", "ci", "n_genes"]].tolist() == gta[["spearman", "ci", "n_genes"]].iloc[0].tolist()
    assert (t3["n_genes"] == gta["n_genes"].item()).all()
    for c in ["no_backbone", "random_backbone", "attention_layer", "no_prompt"]:
        history = pd.read_csv(tiny_run / f"results/models/control_{c}_n{n}_l{layers}/history.tsv", sep="\t")
        assert list(history["epoch"]) == list(range(1, len(history) + 1)) and len(history) >= 1
    history = pd.read_csv(tiny_run / f"results/models/gta_n{n}_l{layers}/history.tsv", sep="\t")
    assert {"epoch", "train_loss", "val_spearman"} <= set(history.columns)
    oracle = pd.read_csv(tiny_run / "results/diagnostics/oracle.tsv", sep="\t")
    assert list(oracle["visible_bins"]) == sorted({1, *e["context_bins"], cfg["window"]["n_bins"]})
    ts = pd.read_csv(tiny_run / "results/diagnostics/train_size.tsv", sep="\t")
    assert list(ts.columns) == ["model", "train_fraction", "n_train", "spearman", "ci", "n_genes"]
    assert len(ts) == 3 * len(e["train_fractions"])
    # fraction 1 reuses the normal models: the same numbers as Table 1
    full = ts[ts["train_fraction"] == 1.0].set_index("model")
    for model in ["TSS ridge", "ExPecto-style"]:
        assert full.loc[model, "spearman"] == t1.loc[t1["model"] == model, "spearman"].item()
    assert full.loc["GTA", "spearman"] == gta["spearman"].item()
    half = ts[ts["train_fraction"] == 0.5]
    assert (half["n_train"] < full["n_train"].iloc[0]).all()
    for name in ["learning_curves.png", "train_size.png"]:
        with Image.open(tiny_run / "results/figures" / name) as im:
            assert im.format == "PNG" and min(im.size) > 100


def test_predictions_and_figures(tiny_run):
    targets = pd.read_csv(tiny_run / "results/expression/targets.tsv", sep="\t")
    for name in ["gta_n5_l2", "gta_n11_l2", "gta_n11_l1", "tss_ridge", "expecto_style"]:
        pred = pd.read_csv(tiny_run / f"results/predictions/{name}.tsv", sep="\t")
        assert list(pred.columns) == ["gene_id", "symbol", "split", "observed", "predicted"]
        merged = pred.merge(targets, on="gene_id")
        assert len(merged) == len(targets)
        np.testing.assert_allclose(merged["observed"], merged["value"], rtol=1e-5)
        assert (merged["split_x"] == merged["split_y"]).all()
    figures = sorted((tiny_run / "results/figures").glob("fig*.png"))
    assert [f.name.split("_")[0] for f in figures] == ["fig10", "fig5", "fig6", "fig7", "fig8", "fig9"]
    for f in figures:
        with Image.open(f) as im:
            assert im.format == "PNG" and min(im.size) > 100


def test_using_the_trained_model(tiny_run, tiny_config):
    cfg = yaml.safe_load(tiny_config.read_text())
    model = pd.read_csv(tiny_run / "results/predictions/gta_n11_l2.tsv", sep="\t").set_index("symbol")
    pred = pd.read_csv(tiny_run / "results/predict/predictions.tsv", sep="\t")
    assert list(pred["symbol"]) == cfg["predict"]["genes"]  # the genes asked for, in that order
    for sym, value in zip(pred["symbol"], pred["predicted"], strict=False):  # bins reused: the training run's numbers
        assert value == pytest.approx(model.loc[sym, "predicted"], rel=1e-4, abs=1e-6)
    (gene,) = cfg["explain"]["genes"]
    table = pd.read_csv(tiny_run / f"results/explain/{gene}.tsv", sep="\t")
    assert len(table) == 11 and list(table["offset"]) == list(range(-5, 6))
    assert (tiny_run / f"results/explain/{gene}.png").stat().st_size > 1000
    scores = pd.read_parquet(tiny_run / "results/variants/scores.parquet")
    counts = pd.read_csv(tiny_run / "results/variants/counts.tsv", sep="\t").set_index("what")["n"]
    vcf = [
        line.split("\t")
        for line in (tiny_run / "results/variants/demo.vcf").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert len(vcf) >= 10 and len(vcf) % 2 == 0  # a deletion and an SNV per site, at most 2 sites per role
    assert counts["records"] == counts["variants"] == counts["chunk_variants"] == len(vcf)
    assert counts["scored_pairs"] == len(scores) and scores["id"].nunique() + counts["outside_windows"] == len(vcf)
    np.testing.assert_allclose(scores["delta"], scores["alt_prediction"] - scores["ref_prediction"])
    ref = scores.drop_duplicates("gene_id").set_index("symbol")["ref_prediction"]
    for sym, value in ref.items():  # REF predictions are the model's own
        assert value == pytest.approx(model.loc[sym, "predicted"], rel=1e-4, abs=1e-6)
    validation = pd.read_csv(tiny_run / "results/diagnostics/variant_validation.tsv", sep="\t")
    assert validation.iloc[0][["class", "kind"]].tolist() == ["all", "all"]
    assert validation.iloc[0]["n_pairs"] == len(scores)


def test_rerun_semantics(tiny_run, tiny_config, tmp_path):
    # nothing changed: nothing to do
    assert planned(tiny_run, tiny_config) == {}
    # a train.* key: training and what follows only
    jobs = planned(tiny_run, edited(tmp_path, tiny_config, train__lr=0.002))
    assert set(jobs) == {
        "train_gta",
        "make_table1",
        "make_table2",
        "make_figures",
        "all",
        "train_control",
        "ablate_context",
        "make_table3",
        "train_gta_subset",
        "make_train_size",
        "plot_learning_curves",
        # the trained model's uses (tiny_config turns them on)
        "predict_genes",
        "explain_genes",
        "score_variants",
        "merge_variant_scores",
        "validate_variants",
    }
    assert jobs["train_gta"] == 3  # N=5 and N=11 at 2 blocks, N=11 at 1 block
    assert jobs["train_control"] == 4 and jobs["train_gta_subset"] == 1  # the baselines' subsets do not rerun
    # one more context length: only the new model (and the tables/figures that list it)
    cfg = yaml.safe_load(tiny_config.read_text())
    jobs = planned(
        tiny_run, edited(tmp_path, tiny_config, evaluate__context_bins=cfg["evaluate"]["context_bins"] + [7])
    )
    assert jobs.get("train_gta") == 1 and "predict_sei" not in jobs
    assert set(jobs) <= {
        "train_gta",
        "make_table1",
        "make_table2",
        "make_figures",
        "all",
        "plot_learning_curves",
        "oracle_diagnostics",
    }
    # window.n_bins: Sei reruns, and everything downstream of the features
    jobs = planned(tiny_run, edited(tmp_path, tiny_config, window__n_bins=13))
    assert jobs["predict_sei"] == cfg["sei"]["shards"] and "merge_features" in jobs and "train_gta" in jobs
    assert "mane_tss" not in jobs and "convert_backbone" not in jobs and "synthetic_genome" not in jobs
    # -R predict_sei: what depends on it, nothing upstream
    jobs = planned(tiny_run, tiny_config, "-R", "predict_sei")
    assert {"predict_sei", "merge_features", "make_targets", "fit_baseline", "train_gta"} <= set(jobs)
    assert not {"mane_tss", "synthetic_genome", "make_demo_sei", "convert_backbone", "fetch_annotations"} & set(jobs)


def test_same_config_gives_byte_identical_tables(tiny_run, tiny_config, tmp_path):
    """Table 1 and Table 2 rebuilt from the same inputs, in a copy of the tiny run, are the same bytes.
    (No golden copy: the numbers differ between CPU kinds.)"""
    tables = ["results/table1.tsv", "results/table2.tsv"]
    first = {t: (tiny_run / t).read_bytes() for t in tables}
    copy = tmp_path / "rerun"
    shutil.copytree(tiny_run, copy, symlinks=True)  # copy2: mtimes kept, so nothing upstream reruns
    for t in tables:  # the tables only: their rules rerun, on the first run's inputs
        (copy / t).unlink()
    r = run_snakemake(copy, *tables, "--cores", "2", config=tiny_config)
    assert r.returncode == 0, r.stdout[-3000:]
    ran = set(re.findall(r"^(?:local)?rule (\w+):$", r.stdout, re.M))
    assert ran == {"make_table1", "make_table2"}, r.stdout[-3000:]
    for t in tables:
        assert (copy / t).read_bytes() == first[t], f"{t} differs when rebuilt from the same config"
