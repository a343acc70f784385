"""evaluate_individuals (gta.personal_eval): per-gene correlations across held-out individuals, the elastic net
baseline, the shared split and the bad inputs, on a small hand-built population (VCF, predictions, expression)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gta import GTAError
from gta.personal_eval import eqtl_p, evaluate_individuals, fit_elastic_net

pytest.importorskip("sklearn")

N_SAMPLES = 40
BIN, N_BINS = 4096, 3  # windows of 3 x 4096 bp around each TSS
TSS = {1: 50_000, 2: 150_000, 3: 250_000, 4: 350_000}
SYMBOLS = {1: "GA", 2: "GB", 3: "GC", 4: "GD"}
# per gene: VCF positions (1-based) inside its window; gene 4 has none, 600_000 lies in no window
POSITIONS = {1: [48_001, 50_100, 52_000], 2: [149_000, 151_500], 3: [247_000, 250_010, 253_000], 4: []}
OUTSIDE = 600_000
SAMPLES = [f"S{i:02d}" for i in range(N_SAMPLES)]


def _write_vcf(path, positions, haps):
    """A phased VCF: one biallelic SNV per position, haps (positions, samples, 2) of 0/1."""
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=chr1,length=1000000>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(SAMPLES),
    ]
    for pos, h in zip(positions, haps, strict=True):
        gts = [f"{a}|{b}" for a, b in h]
        lines.append(f"chr1\t{pos}\tv{pos}\tA\tG\t.\tPASS\t.\tGT\t" + "\t".join(gts))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def population(tmp_path):
    """tss.tsv, population.vcf, predictions.parquet, expression.tsv (gene_rows) and a noiseless table; `truth`
    holds the dosages per gene (samples, variants) and the tables as frames."""
    rng = np.random.default_rng(7)
    positions = [p for g in sorted(POSITIONS) for p in POSITIONS[g]] + [OUTSIDE]
    haps = (rng.random((len(positions), N_SAMPLES, 2)) < 0.35).astype(int)
    _write_vcf(tmp_path / "population.vcf", positions, haps)
    dose = {p: haps[i].sum(axis=1) for i, p in enumerate(positions)}
    tss = pd.DataFrame(
        {
            "gene_id": list(TSS),
            "symbol": [SYMBOLS[g] for g in TSS],
            "ensembl_gene": [f"ENSG{g:011d}" for g in TSS],
            "name": "x",
            "chrom": "chr1",
            "tss": list(TSS.values()),
            "strand": "+",
        }
    )
    tss.to_csv(tmp_path / "tss.tsv", sep="\t", index=False)
    signal, rows = {}, []
    for g in TSS:
        d = np.array([dose[p] for p in POSITIONS[g]]).T if POSITIONS[g] else np.zeros((N_SAMPLES, 0))
        signal[g] = d @ np.linspace(1.0, -0.5, d.shape[1]) if d.shape[1] else rng.normal(size=N_SAMPLES) * 0.1
        # the GTA-like prediction: a noisy copy of the signal (gene 3: of its negative, a wrong sign)
        hap_pred = [0.5 * signal[g] * (-1 if g == 3 else 1) + rng.normal(scale=0.3, size=N_SAMPLES) for _ in (1, 2)]
        for h, values in ((1, hap_pred[0]), (2, hap_pred[1]), (0, (hap_pred[0] + hap_pred[1]) / 2)):
            rows.append(
                pd.DataFrame(
                    {
                        "sample": SAMPLES,
                        "gene_id": np.int64(g),
                        "symbol": SYMBOLS[g],
                        "haplotype": np.int8(h),
                        "prediction": values,
                        "n_alt": 0,
                        "bins_changed": 0,
                    }  # fmt: skip
                )
            )
    preds = pd.concat(rows, ignore_index=True)
    preds.to_parquet(tmp_path / "predictions.parquet")
    noiseless = pd.DataFrame(signal, index=SAMPLES)  # samples x genes
    observed = noiseless + rng.normal(scale=0.5, size=noiseless.shape)
    observed.T.rename_axis("gene_id").to_csv(tmp_path / "expression.tsv", sep="\t")
    noiseless.T.rename_axis("gene_id").to_csv(tmp_path / "expression_noiseless.tsv", sep="\t")
    doses = {g: np.array([dose[p] for p in POSITIONS[g]]).T for g in TSS if POSITIONS[g]}
    return tmp_path, {"dose": doses, "observed": observed, "noiseless": noiseless, "predictions": preds}


def _run(d, **kw):
    args = dict(
        predictions=d / "predictions.parquet",
        vcf=d / "population.vcf",
        expression=d / "expression.tsv",
        tss=d / "tss.tsv",
        out=d / "out" / "evaluation.tsv",
        out_summary=d / "out" / "summary.tsv",
        out_predictions=d / "out" / "heldout.tsv",
        out_figure=d / "out" / "personal.png",
        n_bins=N_BINS,
        test_fraction=0.25,
        split_seed=3,
        cv_folds=4,
        min_individuals=5,
    )
    return evaluate_individuals(**(args | kw))


def _held_out(seed=3, fraction=0.25):
    """The documented split, by hand: a seeded permutation of the sorted names, the first round(f * n) held out."""
    order = np.random.default_rng(seed).permutation(N_SAMPLES)
    return sorted(SAMPLES[i] for i in order[: round(fraction * N_SAMPLES)])


def test_correlations_against_scipy(population):
    d, truth = population
    _run(d, expression_noiseless=d / "expression_noiseless.tsv")
    ev = pd.read_csv(d / "out" / "evaluation.tsv", sep="\t")
    test = _held_out()
    mean = truth["predictions"].query("haplotype == 0").pivot(index="sample", columns="gene_id", values="prediction")
    for g in TSS:
        row = ev[(ev.model == "GTA") & (ev.target == "observed") & (ev.gene_id == g)].iloc[0]
        p, o = mean.loc[test, g].to_numpy(), truth["observed"].loc[test, g].to_numpy()
        assert row.n_individuals == len(test) == 10
        assert row.spearman == pytest.approx(stats.spearmanr(p, o)[0], abs=1e-6)
        assert row.pearson == pytest.approx(stats.pearsonr(p, o)[0], abs=1e-6)
        assert row.prediction_variance == pytest.approx(np.var(p), rel=1e-5)
        ceiling = ev[(ev.model == "noiseless") & (ev.target == "observed") & (ev.gene_id == g)].iloc[0]
        assert ceiling.spearman == pytest.approx(stats.spearmanr(truth["noiseless"].loc[test, g], o)[0], abs=1e-6)
        vs_truth = ev[(ev.model == "GTA") & (ev.target == "noiseless") & (ev.gene_id == g)].iloc[0]
        assert vs_truth.spearman == pytest.approx(stats.spearmanr(p, truth["noiseless"].loc[test, g])[0], abs=1e-6)
    # the summary, by hand from the per-gene table
    summary = pd.read_csv(d / "out" / "summary.tsv", sep="\t").set_index(["model", "target"])
    for (model, target), s in summary.iterrows():
        part = ev[(ev.model == model) & (ev.target == target)]
        assert s.median_spearman == pytest.approx(np.median(part.spearman.fillna(0)), abs=1e-6)
        sig = part[part.significant]
        assert s.n_significant == len(sig)
        if len(sig):
            assert s.fraction_correct_sign == pytest.approx(np.mean(sig.spearman.fillna(0) > 0))
    # gene 3's GTA predictions have the wrong sign; genes 1-3 carry strong eQTLs, gene 4 none
    by_gene = ev[(ev.model == "GTA") & (ev.target == "observed")].set_index("gene_id")
    assert by_gene.loc[3, "spearman"] < 0 < by_gene.loc[1, "spearman"]
    assert by_gene.loc[[1, 2, 3], "significant"].all() and not by_gene.loc[4, "significant"]
    assert by_gene.loc[4, "n_variants"] == 0 and by_gene.loc[1, "n_variants"] == 3
    assert (d / "out" / "personal.png").stat().st_size > 0


def test_elastic_net_against_direct_sklearn(population):
    from sklearn.linear_model import ElasticNetCV
    from sklearn.model_selection import KFold

    d, truth = population
    _run(d, l1_ratio=[0.5, 1.0])
    held = pd.read_csv(d / "out" / "heldout.tsv", sep="\t")
    test = _held_out()
    train = sorted(set(SAMPLES) - set(test))
    it, ih = [SAMPLES.index(s) for s in train], [SAMPLES.index(s) for s in test]
    for g in (1, 2, 3):
        x, y = truth["dose"][g].astype(float), truth["observed"][g].to_numpy()
        mu, sd = x[it].mean(0), x[it].std(0)
        direct = ElasticNetCV(l1_ratio=[0.5, 1.0], cv=KFold(4, shuffle=True, random_state=3), max_iter=10000)
        direct.fit((x[it] - mu) / sd, y[it])
        expected = direct.predict((x[ih] - mu) / sd)
        got = held[(held.model == "elastic_net") & (held.gene_id == g)].set_index("sample").loc[test, "prediction"]
        np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-6, atol=1e-8)
    # gene 4 has no variant in its window: the training mean for every held-out individual
    gd = held[(held.model == "elastic_net") & (held.gene_id == 4)]
    assert np.allclose(gd.prediction, truth["observed"].loc[train, 4].mean())


def test_fit_elastic_net_tiny_case():
    """A 12-individual, 2-variant case against a direct fit; a constant variant is left out."""
    from sklearn.linear_model import ElasticNetCV
    from sklearn.model_selection import KFold

    x = np.array([[0, 1, 1], [1, 1, 2], [2, 1, 0], [0, 1, 1], [1, 1, 1], [2, 1, 2]] * 2, float)
    y = np.array([0.1, 1.2, 2.1, -0.1, 0.9, 2.2, 0.0, 1.1, 1.9, 0.2, 1.0, 2.0])
    new = np.array([[0, 1, 0], [2, 1, 2]], float)
    got = fit_elastic_net(x, y, new, [0.5], 3, 0)
    keep = [0, 2]
    mu, sd = x[:, keep].mean(0), x[:, keep].std(0)
    direct = ElasticNetCV(l1_ratio=[0.5], cv=KFold(3, shuffle=True, random_state=0), max_iter=10000)
    direct.fit((x[:, keep] - mu) / sd, y)
    np.testing.assert_allclose(got, direct.predict((new[:, keep] - mu) / sd), rtol=1e-8)
    assert got[1] > got[0]  # the first variant raises expression


def test_eqtl_p_against_scipy_loop():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, size=(30, 5)).astype(float)
    x[:, 2] = 1.0  # constant: not tested
    y = x[:, 1] * 0.7 + rng.normal(size=30)
    p, m = eqtl_p(x, y)
    ps = [stats.pearsonr(x[:, j], y)[1] for j in (0, 1, 3, 4)]
    assert m == 4
    assert p == pytest.approx(min(min(ps) * 4, 1.0), rel=1e-6)


def test_heldout_identical_for_both_models(population):
    d, _ = population
    _run(d)
    held = pd.read_csv(d / "out" / "heldout.tsv", sep="\t")
    test = _held_out()
    for (_, _), part in held.groupby(["model", "gene_id"]):
        assert sorted(part["sample"]) == test
    assert set(held.model) == {"GTA", "elastic_net"}
    ev = pd.read_csv(d / "out" / "evaluation.tsv", sep="\t")
    assert (ev.n_individuals == len(test)).all()
    # rerun: the same numbers
    first = (d / "out" / "evaluation.tsv").read_text()
    _run(d)
    assert (d / "out" / "evaluation.tsv").read_text() == first


def test_huang_layout_gives_the_same_numbers(population):
    """Huang et al.'s geuvadis_peer_normalized.csv layout: samples as rows (unnamed first column), genes as
    columns named by lower-case symbols."""
    d, truth = population
    _run(d)
    expected = pd.read_csv(d / "out" / "evaluation.tsv", sep="\t")
    huang = truth["observed"].rename(columns=lambda g: SYMBOLS[g].lower())
    huang.to_csv(d / "peer.csv")  # first header cell empty, as R's write.csv leaves it
    _run(d, expression=d / "peer.csv")
    pd.testing.assert_frame_equal(pd.read_csv(d / "out" / "evaluation.tsv", sep="\t"), expected)
    _run(d, expression=d / "peer.csv", layout="sample_rows")
    pd.testing.assert_frame_equal(pd.read_csv(d / "out" / "evaluation.tsv", sep="\t"), expected)


def _no_outputs(d):
    return not (d / "out").exists() or not any((d / "out").iterdir())


def test_sample_missing_from_expression(population):
    d, truth = population
    truth["observed"].drop(index=["S05", "S17"]).T.rename_axis("gene_id").to_csv(d / "short.tsv", sep="\t")
    with pytest.raises(GTAError, match=r"2 of the 40 samples .* missing from expression table .*S05") as e:
        _run(d, expression=d / "short.tsv")
    assert e.value.input == "expression" and _no_outputs(d)


def test_sample_missing_from_vcf(population):
    d, _ = population
    text = (d / "population.vcf").read_text().replace("\tS39", "\tX39")
    (d / "population.vcf").write_text(text)
    with pytest.raises(GTAError, match=r"missing from VCF .*S39") as e:
        _run(d)
    assert e.value.input == "vcf" and _no_outputs(d)


def test_genes_missing_from_expression(population):
    d, truth = population
    other = truth["observed"].rename(columns=lambda g: f"NOPE{g}")
    other.T.rename_axis("gene_id").to_csv(d / "other.tsv", sep="\t")
    with pytest.raises(GTAError, match="none of the 4 genes of the predictions") as e:
        _run(d, expression=d / "other.tsv")
    assert "expression" in e.value.inputs and _no_outputs(d)
    # some genes missing: those are left out, the rest scored
    truth["observed"].drop(columns=[2]).T.rename_axis("gene_id").to_csv(d / "three.tsv", sep="\t")
    ev = _run(d, expression=d / "three.tsv")
    assert set(ev.gene_id) == {1, 3, 4}


def test_too_few_individuals(population):
    d, _ = population
    with pytest.raises(GTAError, match=r"30 for training and 10 held out, fewer than min_individuals \(12\)") as e:
        _run(d, min_individuals=12)
    assert "min_individuals" in e.value.inputs and _no_outputs(d)


def test_cli_runs_the_stage(population):
    from gta.cli import main

    d, _ = population
    rc = main(
        ["evaluate-individuals", "--predictions", str(d / "predictions.parquet"), "--vcf", str(d / "population.vcf"),
         "--expression", str(d / "expression.tsv"), "--tss", str(d / "tss.tsv"), "--out", str(d / "c" / "e.tsv"),
         "--out-summary", str(d / "c" / "s.tsv"), "--out-predictions", str(d / "c" / "h.tsv"),
         "--out-figure", str(d / "c" / "f.png"), "--n-bins", "3", "--min-individuals", "5", "--cv-folds", "4",
         "--test-fraction", "0.25", "--split-seed", "3", "--l1-ratio", "0.5", "1.0"]
    )  # fmt: skip
    assert rc == 0
    _run(d, l1_ratio=[0.5, 1.0])
    assert (d / "c" / "e.tsv").read_text() == (d / "out" / "evaluation.tsv").read_text()


@pytest.mark.workflow
def test_rule_evaluate_individuals(population, tmp_path):
    """The rule on the hand-built population: its config keys reach the stage (the same numbers as a direct call),
    and a bad key value names the key."""
    import pysam
    import yaml

    from conftest import TINY, run_snakemake

    d, _ = population
    work = tmp_path / "work"
    (work / "results" / "personal").mkdir(parents=True)
    (work / "results" / "genes").mkdir(parents=True)
    pysam.tabix_compress(str(d / "population.vcf"), str(work / "results" / "personal" / "population.vcf.gz"))
    for name in ("predictions.parquet", "expression.tsv", "expression_noiseless.tsv"):
        (work / "results" / "personal" / name).write_bytes((d / name).read_bytes())
    (work / "results" / "genes" / "tss.tsv").write_bytes((d / "tss.tsv").read_bytes())
    config = yaml.safe_load(TINY.read_text()) | {
        "personal": {
            "vcf": "demo",
            "window_bins": 3,
            "test_fraction": 0.25,
            "split_seed": 3,
            "cv_folds": 4,
            "min_individuals": 5,
        }
    }
    config["window"]["grid"] = "tss"
    target = "results/personal/evaluation.tsv"
    r = run_snakemake(work, target, "--cores", "1", "--allowed-rules", "evaluate_individuals", config=config)
    assert r.returncode == 0, r.stdout[-3000:]
    _run(d, expression_noiseless=d / "expression_noiseless.tsv")
    assert (work / target).read_text() == (d / "out" / "evaluation.tsv").read_text()
    assert (work / "results" / "figures" / "personal_correlations.png").is_file()
    config["personal"]["min_individuals"] = 12
    r = run_snakemake(work, target, "-F", "--cores", "1", "--allowed-rules", "evaluate_individuals", config=config)
    assert r.returncode != 0
    log = (work / "results" / "logs" / "evaluate_individuals.log").read_text()
    assert "fewer than min_individuals (12)" in log and "personal.min_individuals" in log
    assert not (work / target).exists()


def test_read_dosages_by_hand(tmp_path):
    """ALT allele counts per sample in the samples' order: a multiallelic record gives one row per ALT, a missing
    or half-missing call -1, a haploid call its one allele; a record outside every window is skipped."""
    from gta.personal_eval import impute_dosages, read_dosages

    lines = [
        "##fileformat=VCFv4.2",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\tC\tD",
        "1\t50000\tm\tA\tG,T\t.\t.\t.\tGT\t1|2\t2|2\t0|0\t./.",
        "1\t50100\ts\tC\tG\t.\t.\t.\tGT\t.|1\t1|1\t1\t0/1",
        "1\t90000\tfar\tC\tG\t.\t.\t.\tGT\t1|1\t1|1\t1|1\t1|1",
    ]
    (tmp_path / "x.vcf").write_text("\n".join(lines) + "\n")
    genes = pd.DataFrame({"gene_id": [1], "symbol": ["GA"], "chrom": ["chr1"], "tss": [50_000], "strand": ["+"]})
    variants, dose = read_dosages(tmp_path / "x.vcf", ["D", "C", "B", "A"], genes, 3, 4096)
    assert [(v.chrom, v.pos, v.alt) for v in variants] == [
        ("chr1", 50000, "G"),
        ("chr1", 50000, "T"),
        ("chr1", 50100, "G"),
    ]
    np.testing.assert_array_equal(dose, [[-1, 0, 0, 1], [-1, 0, 2, 1], [1, 1, 2, -1]])
    train, test = impute_dosages(dose[:, :3].T, dose[:, 3:].T)  # D, C, B train; A held out
    np.testing.assert_allclose(train[0], [0.0, 1.0, 1.0])  # D's missing calls: the training means of C and B
    np.testing.assert_allclose(test[0], [1.0, 1.0, 4 / 3])  # A's missing call: the training mean of D, C, B
