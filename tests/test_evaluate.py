"""Bootstrap Spearman (vs scipy and an independent resampling loop) and Table 1 / Table 2 assembly."""

import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gta import GTAError
from gta.sei import CLASS_LABELS
from gta.evaluate import (
    bootstrap_resamples,
    bootstrap_spearman,
    evaluate_file,
    make_table1,
    make_table2,
    read_targets,
    score_seeds,
)
from gta.formats import SEED_COLUMNS

from conftest import run_snakemake


def loop_bootstrap(x, y, n_boot, seed):
    """The definition, written out: resample genes with replacement, scipy Spearman of each resample."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant resamples: scipy warns and returns NaN
            out.append(stats.spearmanr(x[idx], y[idx]).statistic)
    return np.array(out, dtype=float)


@pytest.mark.parametrize("n,ties", [(50, False), (200, True), (7, True)])
def test_bootstrap_resamples_equal_an_independent_loop(n, ties):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    y = x + rng.normal(size=n)
    if ties:  # ties inside the data, on top of the ties resampling creates
        x = np.round(x * 2) / 2
        y[: n // 3] = y[0]
    got = bootstrap_resamples(x, y, n_boot=300, seed=11)
    ref = loop_bootstrap(x, y, 300, 11)
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    ok = np.isfinite(ref)
    assert np.allclose(got[ok], ref[ok], atol=1e-12)


def test_bootstrap_spearman_matches_scipy_and_twice_the_sd():
    rng = np.random.default_rng(3)
    x = rng.lognormal(size=500)
    y = np.log(x) + rng.normal(size=500)
    rho, ci = bootstrap_spearman(x, y, n_boot=400, seed=5)
    assert rho == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert ci == pytest.approx(2 * np.std(loop_bootstrap(x, y, 400, 5)), rel=1e-10)
    # chunked drawing gives the same stream as one draw per resample (many chunks here)
    import gta.evaluate as ev

    old = ev._CHUNK_ELEMENTS
    try:
        ev._CHUNK_ELEMENTS = 1000
        assert bootstrap_spearman(x, y, n_boot=400, seed=5) == (rho, ci)
    finally:
        ev._CHUNK_ELEMENTS = old


def test_bootstrap_is_seeded_and_defaults_to_5000():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=100), rng.normal(size=100)
    assert bootstrap_spearman(x, y) == bootstrap_spearman(x, y, 5000, 0)
    assert bootstrap_spearman(x, y, 200, 1) != bootstrap_spearman(x, y, 200, 2)


def test_degenerate_resamples_are_left_out():
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([1.0, 3.0, 2.0])
    boots = bootstrap_resamples(x, y, 500, 0)
    ref = loop_bootstrap(x, y, 500, 0)
    assert np.isnan(boots).any()  # e.g. a resample drawing one gene three times
    assert np.array_equal(np.isnan(boots), np.isnan(ref))
    _, ci = bootstrap_spearman(x, y, 500, 0)
    assert ci == pytest.approx(2 * np.nanstd(ref))


@pytest.mark.parametrize("x,y", [([1, 2], [1, 2]), ([1, 2, 3], [1, 2]), ([1, 2, np.nan], [1, 2, 3])])
def test_bootstrap_rejects_bad_input(x, y):
    with pytest.raises(GTAError):
        bootstrap_spearman(x, y)


# ----------------------------------------------------------------------------- tables


def write_targets(path, n=60, seed=0):
    rng = np.random.default_rng(seed)
    split = np.array(["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4))
    df = pd.DataFrame(
        {
            "gene_id": np.arange(1, n + 1) * 10,
            "symbol": [f"G{i}" for i in range(n)],
            "value": rng.normal(size=n).round(6),
            "split": split,
        }
    )
    df.to_csv(path, sep="\t", index=False)
    return df


def write_pred(path, targets, predicted):
    df = targets.rename(columns={"value": "observed"}).assign(predicted=predicted)
    df[["gene_id", "symbol", "split", "observed", "predicted"]].to_csv(path, sep="\t", index=False)


def write_features_attrs(path, n_bins, bin_size):
    with h5py.File(path, "w") as f:
        f.attrs.update(n_bins=n_bins, bin_size=bin_size, tss_bin=n_bins // 2)
    return path


def test_table1_rows_use_test_genes_only(tmp_path):
    tgt = write_targets(tmp_path / "targets.tsv")
    rng = np.random.default_rng(1)
    good = tgt["value"] + 0.3 * rng.normal(size=len(tgt))
    noisy = tgt["value"] + 2.0 * rng.normal(size=len(tgt))
    write_pred(tmp_path / "good.tsv", tgt, good)
    write_pred(tmp_path / "noisy.tsv", tgt, noisy)
    part = tgt.iloc[::2]  # an imported model covering only some genes
    write_pred(tmp_path / "part.tsv", part, part["value"] * -1.0)
    sim = pd.DataFrame({"gene_id": tgt["gene_id"], "signal": tgt["value"] * 0.5 + 1})
    sim.to_csv(tmp_path / "sim.tsv", sep="\t", index=False)
    write_features_attrs(tmp_path / "features.h5", 51, 4096)
    rows = [
        ["Xpresso", None, tmp_path / "part.tsv"],
        ["TSS ridge", 1, tmp_path / "noisy.tsv"],
        ["GTA", "all", tmp_path / "good.tsv"],
    ]
    table = make_table1(
        rows,
        tmp_path / "targets.tsv",
        tmp_path / "features.h5",
        tmp_path / "table1.tsv",
        tmp_path / "sim.tsv",
        n_boot=300,
        seed=0,
    )
    back = pd.read_csv(tmp_path / "table1.tsv", sep="\t", keep_default_na=False)
    assert list(back.columns) == ["model", "n_bins", "context_bp", "spearman", "ci", "n_genes", *SEED_COLUMNS]
    assert (back[SEED_COLUMNS] == "").all().all()  # rows given without a seed
    assert list(back["model"]) == ["Xpresso", "TSS ridge", "GTA", "noise ceiling"]
    assert list(back["n_bins"].astype(str)) == ["", "1", "51", ""]
    assert list(back["context_bp"].astype(str)) == ["", "4096", str(51 * 4096), ""]
    test = tgt["split"] == "test"
    exp_good = bootstrap_spearman(tgt.loc[test, "value"], good[test], 300, 0)
    assert back.loc[2, "spearman"] == pytest.approx(exp_good[0], abs=5e-5)
    assert back.loc[2, "ci"] == pytest.approx(exp_good[1], abs=5e-5)
    assert back.loc[2, "n_genes"] == test.sum()
    ptest = part["split"] == "test"
    assert back.loc[0, "n_genes"] == ptest.sum()
    assert back.loc[0, "spearman"] == pytest.approx(-1.0)
    assert back.loc[3, "spearman"] == pytest.approx(1.0)  # monotone noiseless signal
    assert len(table) == 4


def test_table1_averages_seeds_as_scipy_and_numpy_do(tmp_path):
    """A GTA row given once per seed: spearman = numpy's mean of scipy's per-seed Spearman, spearman_sd their
    SD (ddof=1), ci = 2 x SD of the seed-mean over resamples drawn as bootstrap_resamples documents."""
    tgt = write_targets(tmp_path / "targets.tsv")
    rng = np.random.default_rng(7)
    test = (tgt["split"] == "test").to_numpy()
    obs = tgt.loc[test, "value"].to_numpy()
    write_pred(tmp_path / "ridge.tsv", tgt, tgt["value"] + rng.normal(size=len(tgt)))
    rows, preds = [["TSS ridge", 1, tmp_path / "ridge.tsv"]], {}
    for s in (2, 0, 1):  # listed seeds keep their order
        preds[s] = (tgt["value"] + (0.5 + 0.4 * s) * rng.normal(size=len(tgt))).to_numpy()
        write_pred(tmp_path / f"gta_s{s}.tsv", tgt, preds[s])
        rows.append(["GTA", 11, tmp_path / f"gta_s{s}.tsv", s])
    rows.append(["GTA", 5, tmp_path / "gta_s0.tsv", "0"])  # one seed (as the command line gives it)
    n_boot = 150
    make_table1(
        rows,
        tmp_path / "targets.tsv",
        write_features_attrs(tmp_path / "f.h5", 51, 4096),
        tmp_path / "t1.tsv",
        n_boot=n_boot,
        seed=4,
    )
    back = pd.read_csv(tmp_path / "t1.tsv", sep="\t", keep_default_na=False, dtype=str)
    assert list(back["model"]) == ["TSS ridge", "GTA", "GTA"] and list(back["n_bins"]) == ["1", "11", "5"]
    per_seed = {s: stats.spearmanr(obs, p[test]).statistic for s, p in preds.items()}
    values = np.array(list(per_seed.values()))
    three = back.iloc[1]
    assert float(three["spearman"]) == pytest.approx(np.mean(values), abs=5e-5)
    assert float(three["spearman_sd"]) == pytest.approx(np.std(values, ddof=1), abs=5e-5)
    assert three["n_seeds"] == "3"
    assert three["seed_spearman"] == ";".join(f"{s}:{v:.4f}" for s, v in per_seed.items())
    # the same resampled genes for every seed, then the mean over seeds
    boots = np.mean([loop_bootstrap(obs, p[test], n_boot, 4) for p in preds.values()], axis=0)
    assert float(three["ci"]) == pytest.approx(2 * np.std(boots[np.isfinite(boots)]), abs=5e-5)
    assert float(three["n_genes"]) == test.sum()
    # one seed: today's numbers, and no spread
    one = back.iloc[2]
    rho, ci = bootstrap_spearman(obs, preds[0][test], n_boot, 4)
    assert (float(one["spearman"]), float(one["ci"])) == pytest.approx((rho, ci), abs=5e-5)
    assert one["spearman_sd"] == "" and one["n_seeds"] == "1" and one["seed_spearman"] == f"0:{rho:.4f}"
    assert (back.loc[0, SEED_COLUMNS] == "").all()  # a baseline has no seeds


def test_one_seed_scores_exactly_as_bootstrap_spearman(tmp_path):
    tgt = write_targets(tmp_path / "targets.tsv", n=90)
    pred = tgt["value"] + np.random.default_rng(2).normal(size=len(tgt))
    write_pred(tmp_path / "p.tsv", tgt, pred)
    test = tgt["split"] == "test"
    want = bootstrap_spearman(tgt.loc[test, "value"], pred[test], 300, 9)
    scores = score_seeds({0: tmp_path / "p.tsv"}, read_targets(tmp_path / "targets.tsv"), 300, 9, "GTA")
    assert (scores.mean, scores.ci) == want  # exactly
    assert evaluate_file(tmp_path / "p.tsv", read_targets(tmp_path / "targets.tsv"), 300, 9) == (*want, test.sum())


def test_table1_seed_errors(tmp_path):
    tgt = write_targets(tmp_path / "targets.tsv")
    write_pred(tmp_path / "p.tsv", tgt, tgt["value"])
    features = write_features_attrs(tmp_path / "f.h5", 51, 4096)
    for rows, message in [
        ([["GTA", 11, tmp_path / "p.tsv", 0], ["GTA", 11, tmp_path / "p.tsv", 0]], "seed 0 is given twice"),
        ([["GTA", 11, tmp_path / "p.tsv", "first"]], "seed 'first' is not a non-negative integer"),
        ([["GTA", 11, tmp_path / "p.tsv", 0, 1]], "has 5 values"),
    ]:
        with pytest.raises(GTAError, match=message) as e:
            make_table1(rows, tmp_path / "targets.tsv", features, tmp_path / "t.tsv", n_boot=20)
        assert e.value.input == "rows" and not (tmp_path / "t.tsv").exists()


def test_table1_rejects_stale_predictions(tmp_path):
    tgt = write_targets(tmp_path / "targets.tsv")
    stale = tgt.assign(value=tgt["value"] + 1.0)
    write_pred(tmp_path / "stale.tsv", stale, stale["value"])
    with pytest.raises(GTAError, match="stale, rerun the stage that wrote it") as e:
        make_table1(
            [["GTA", 11, tmp_path / "stale.tsv"]],
            tmp_path / "targets.tsv",
            write_features_attrs(tmp_path / "features.h5", 51, 4096),
            tmp_path / "t.tsv",
            n_boot=50,
        )
    assert e.value.input == "rows"
    assert not (tmp_path / "t.tsv").exists()
    with pytest.raises(GTAError, match="Table 1 row 'GTA' has bins 'some'") as e:
        make_table1(
            [["GTA", "some", tmp_path / "stale.tsv"]],
            tmp_path / "targets.tsv",
            tmp_path / "features.h5",
            tmp_path / "t.tsv",
            n_boot=50,
        )
    assert e.value.input == "rows"


def test_table2(tmp_path):
    tgt = write_targets(tmp_path / "targets.tsv")
    for layers, scale in [(2, 3.0), (8, 0.1)]:
        rng = np.random.default_rng(layers)
        write_pred(tmp_path / f"l{layers}.tsv", tgt, tgt["value"] + scale * rng.normal(size=len(tgt)))
    make_table2(
        [(2, tmp_path / "l2.tsv"), (8, tmp_path / "l8.tsv")],
        tmp_path / "targets.tsv",
        tmp_path / "table2.tsv",
        n_boot=100,
    )
    back = pd.read_csv(tmp_path / "table2.tsv", sep="\t")
    assert list(back.columns) == ["layers", "spearman", "ci", "n_genes"]
    assert list(back["layers"]) == [2, 8]
    assert back.loc[1, "spearman"] > back.loc[0, "spearman"]
    assert (back["n_genes"] == (tgt["split"] == "test").sum()).all()


# ----------------------------------------------------------------------------- the rules


def write_features(path, gene_ids, symbols, n_bins=11, seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(len(gene_ids), n_bins, 40)).astype(np.float16)
    with h5py.File(path, "w") as f:
        f["features"] = feats
        f["gene_id"] = np.asarray(gene_ids, np.int64)
        f.create_dataset("symbol", data=list(symbols), dtype=h5py.string_dtype())
        f.create_dataset("class_names", data=CLASS_LABELS, dtype=h5py.string_dtype())
        f.attrs.update(bin_size=4096, n_bins=n_bins, tss_bin=n_bins // 2, orient="reference", grid="tss")


# one core, and only the evaluation rules (train_gta is replaced by stand-in predictions)
EVALUATION_ONLY = (
    "--cores",
    "1",
    "--allowed-rules",
    "tss_from_features",
    "make_targets",
    "fit_baseline",
    "import_baseline_predictions",
    "make_table1",
    "make_table2",
)


@pytest.mark.workflow
def test_evaluation_rules_end_to_end(tmp_path):
    """make_targets, both baselines, imported predictions, Table 1 and 2 from precomputed features and
    stand-in GTA predictions (train_gta left out); a rerun does nothing; n_boot reruns the tables only.
    About 30 s."""
    from gta.tss import mane_select, packaged_mane_path, read_mane

    genes = mane_select(read_mane(packaged_mane_path()))
    genes = genes[genes["chrom"] == "22"].head(80)
    write_features(tmp_path / "features.h5", genes["gene_id"], genes["symbol"])
    huang = pd.DataFrame(
        {
            "gene": list(genes["symbol"].str.lower()[:40]) + list(genes["ensembl_gene"][40:]),
            "Xpresso": np.arange(80.0),
            "Enformer": np.arange(80.0)[::-1],
        }
    )
    huang.to_csv(tmp_path / "huang.csv", index=False)
    config = tmp_path / "config.yaml"
    config.write_text(f"""
seed: 0
genes: {{test_fraction: 0.25}}
window: {{n_bins: 11}}
features: {{precomputed: {tmp_path / "features.h5"}}}
backbone: {{layers: 2}}
expression: {{table: simulated, signal_fraction: 0.8}}
evaluate: {{context_bins: [5, 11], ablation_layers: [1, 2], n_boot: 100, table1_no_llm: false,
           baseline_predictions: {tmp_path / "huang.csv"}}}
""")
    work = tmp_path / "work"
    r = run_snakemake(work, "results/expression/targets.tsv", *EVALUATION_ONLY, config=config, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    tgt = pd.read_csv(work / "results/expression/targets.tsv", sep="\t")
    pred_dir = work / "results/predictions"
    pred_dir.mkdir(parents=True)
    for n, layers in [(5, 2), (11, 2), (11, 1)]:  # stand-ins for train_gta's outputs
        write_pred(pred_dir / f"gta_n{n}_l{layers}.tsv", tgt, tgt["value"] * n + layers)
    tables = ["results/table1.tsv", "results/table2.tsv"]
    r = run_snakemake(work, *tables, *EVALUATION_ONLY, config=config, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    t1 = pd.read_csv(work / "results/table1.tsv", sep="\t", keep_default_na=False)
    expected = ["Xpresso", "Enformer", "TSS ridge", "ExPecto-style", "Boosted trees", "GTA", "GTA", "noise ceiling"]
    assert list(t1["model"]) == expected
    assert list(t1["n_bins"].astype(str)) == ["", "", "1", "11", "11", "5", "11", ""]
    assert t1.loc[0, "spearman"] == -t1.loc[1, "spearman"]  # reversed predictions
    n_test = int((tgt["split"] == "test").sum())
    assert n_test == 20 and (t1["n_genes"] == n_test).all()
    assert (t1.loc[5:6, "spearman"] == 1.0).all()
    t2 = pd.read_csv(work / "results/table2.tsv", sep="\t")
    assert list(t2["layers"]) == [1, 2]
    # nothing to do on a rerun; a new n_boot reruns exactly the two tables
    r = run_snakemake(work, *tables, "-n", *EVALUATION_ONLY, config=config, timeout=600)
    assert r.returncode == 0 and "Nothing to be done" in r.stdout
    config.write_text(config.read_text().replace("n_boot: 100", "n_boot: 120"))
    r = run_snakemake(work, *tables, "-n", "--quiet", "rules", *EVALUATION_ONLY, config=config, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    assert planned_rules(r.stdout) == {"make_table1", "make_table2"}


def planned_rules(output):
    """Rule names in the 'Job stats' table of a snakemake dry run."""
    lines = output.splitlines()
    start = lines.index("Job stats:") + 3  # title, header, dashes
    rules = set()
    for line in lines[start:]:
        name = line.split()[0] if line.split() else "total"
        if name == "total":
            break
        rules.add(name)
    return rules
