"""Text baselines: TF-IDF of the gene prompts (alone or beside the ExPecto-style features) and a ridge, checked
against TF-IDF written out in numpy and the closed-form ridge solution."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gta import GTAError
from gta.baselines import TEXT_ALPHAS, TEXT_WEIGHTS, expecto_features, fit_text_baseline, prompt_tfidf, upstream_sign

from test_baselines import make_inputs

pytest.importorskip("sklearn")

FAMILIES = ["zinc finger protein", "ribosomal protein", "olfactory receptor", "solute carrier family", "kinase"]


def hand_tfidf(texts, fit_rows):
    """TF-IDF by hand: words of 2+ word characters (lower case) in >= 2 fitting texts, sorted; tf 1 + ln(count);
    idf ln((1 + n) / (1 + df)) + 1 over the fitting texts; rows scaled to unit length."""
    words = [re.findall(r"\b\w\w+\b", t.lower()) for t in texts]
    fit = [w for w, keep in zip(words, fit_rows, strict=True) if keep]
    df = {}
    for doc in fit:
        for w in set(doc):
            df[w] = df.get(w, 0) + 1
    vocab = sorted(w for w, d in df.items() if d >= 2)
    idf = np.array([np.log((1 + len(fit)) / (1 + df[w])) + 1 for w in vocab])
    x = np.zeros((len(texts), len(vocab)))
    for i, doc in enumerate(words):
        for j, w in enumerate(vocab):
            if doc.count(w):
                x[i, j] = (1 + np.log(doc.count(w))) * idf[j]
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def closed_form(x, y, split, alphas):
    """(validation Spearman, alpha, predictions) of the best penalty (ties: the larger), ridge with an
    unpenalised intercept solved from the centred normal equations of the training rows."""
    train, val = split == "train", split == "val"
    mx, my = x[train].mean(axis=0), y[train].mean()
    a = x[train] - mx
    best = None
    for alpha in alphas:
        beta = np.linalg.solve(a.T @ a + alpha * np.eye(x.shape[1]), a.T @ (y[train] - my))
        pred = (x - mx) @ beta + my
        score = stats.spearmanr(pred[val], y[val]).statistic
        if best is None or (score, alpha) >= best[:2]:
            best = (score, alpha, pred)
    return best


def prompts_for(tmp_path, ids, seed=0):
    """A prompt per gene in the demo's format, its name from one of FAMILIES (or none); returns the family
    index per gene (-1 for none)."""
    rng = np.random.default_rng(seed)
    family = rng.integers(-1, len(FAMILIES), len(ids))
    with open(tmp_path / "prompts.jsonl", "w") as fh:
        for g, f in zip(ids, family, strict=True):
            name = f"{FAMILIES[f]} {g}" if f >= 0 else f"uncharacterised protein {g}"
            text = f"# Task: Gene Expression Prediction on GM12878.\n# Official Gene Symbol: S{g}\n"
            fh.write(
                json.dumps({"gene_id": int(g), "prompt": f"{text}# Official Gene Full Name: {name}\n# Data:"}) + "\n"
            )
    return family


def test_prompt_tfidf_matches_a_hand_computation():
    texts = [
        "zinc finger protein 1",
        "zinc finger protein 2 zinc",
        "ribosomal protein L3",
        "ribosomal protein S6 kinase",
        "kinase 7, kinase",
        "olfactory receptor 1A1",
        "zinc finger kinase",
    ]
    fit = np.array([1, 1, 1, 1, 1, 0, 0], bool)  # the last two are unseen: their words count only if fitted
    got = prompt_tfidf(texts, fit).toarray()
    assert np.allclose(got, hand_tfidf(texts, fit))
    assert np.all(got[5] == 0)  # 'olfactory receptor' never occurs in a fitting text


@pytest.mark.parametrize("solver", ["cholesky", "sparse_cg"])
def test_text_ridge_matches_the_closed_form_ridge(tmp_path, monkeypatch, solver):
    if solver == "sparse_cg":  # the solver of inputs too large to densify
        monkeypatch.setattr("gta.baselines.DENSE_CELLS", 0)
    n = 80
    ids = np.arange(1, n + 1)
    family = prompts_for(tmp_path, ids)
    rng = np.random.default_rng(1)
    y = np.array([0.0, 2.0, -1.0, 1.0, -2.0, 0.5])[family + 1] + 0.5 * rng.normal(size=n)
    split = np.array(["train", "train", "val", "test"])[np.arange(n) % 4]
    pd.DataFrame({"gene_id": ids, "symbol": [f"S{i}" for i in ids], "value": y, "split": split}).to_csv(
        tmp_path / "targets.tsv", sep="\t", index=False
    )
    fit_text_baseline("text_ridge", tmp_path / "prompts.jsonl", tmp_path / "targets.tsv", tmp_path / "out.tsv")
    back = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    assert list(back.columns) == ["gene_id", "symbol", "split", "observed", "predicted"]
    texts = [json.loads(line)["prompt"] for line in (tmp_path / "prompts.jsonl").read_text().splitlines()]
    _, _, want = closed_form(hand_tfidf(texts, split == "train"), y, split, TEXT_ALPHAS)
    assert np.allclose(back["predicted"], want, rtol=1e-4, atol=1e-5)
    # the family words carry the planted effect to genes never trained on
    test = split == "test"
    assert stats.spearmanr(back.loc[test, "predicted"], y[test]).statistic > 0.8


def test_text_expecto_matches_the_closed_form_ridge_on_both_blocks(tmp_path):
    y, split = make_inputs(tmp_path, n=80, n_bins=5)
    ids = np.arange(1, 81)
    family = prompts_for(tmp_path, ids)
    y = y + np.array([0.0, 2.0, -1.0, 1.0, -2.0, 0.5])[family + 1]  # a text part beside the sequence part
    pd.DataFrame({"gene_id": ids, "symbol": [f"S{i}" for i in ids], "value": y, "split": split}).to_csv(
        tmp_path / "targets.tsv", sep="\t", index=False
    )
    fit_text_baseline(
        "text_expecto",
        tmp_path / "prompts.jsonl",
        tmp_path / "targets.tsv",
        tmp_path / "out.tsv",
        features=tmp_path / "f.h5",
        tss=tmp_path / "tss.tsv",
    )
    got = pd.read_csv(tmp_path / "out.tsv", sep="\t")["predicted"].to_numpy()
    # independent inputs: hand TF-IDF; the 33 kept classes summed with the decay weights (float16 as stored)
    import h5py

    from gta.sei import KEPT

    train = split == "train"
    texts = [json.loads(line)["prompt"] for line in (tmp_path / "prompts.jsonl").read_text().splitlines()]
    t = hand_tfidf(texts, train)
    t = t / np.sqrt(((t[train] - t[train].mean(axis=0)) ** 2).mean(axis=0).sum())
    with h5py.File(tmp_path / "f.h5") as f:
        scores = f["features"][:].astype(np.float32)[:, :, KEPT]
    strand = pd.read_csv(tmp_path / "tss.tsv", sep="\t")["strand"].to_numpy(str)
    e = expecto_features(scores, 2, 4096, upstream_sign(strand, "reference"))
    e = (e - e[train].mean(axis=0)) / e[train].std(axis=0) / np.sqrt(e.shape[1])
    fits = [closed_form(np.hstack([t * np.sqrt(w), e]), y, split, TEXT_ALPHAS) + (w,) for w in TEXT_WEIGHTS]
    best = max(fits, key=lambda f: (f[0], f[1], f[3]))
    assert np.allclose(got, best[2], rtol=1e-4, atol=1e-4)


def test_text_baseline_names_a_gene_without_prompt(tmp_path):
    make_inputs(tmp_path, n=40)
    prompts_for(tmp_path, np.arange(1, 40))  # gene 40 has none
    with pytest.raises(GTAError, match="no prompt") as e:
        fit_text_baseline("text_ridge", tmp_path / "prompts.jsonl", tmp_path / "targets.tsv", tmp_path / "out.tsv")
    assert e.value.input == ("prompts", "targets")
    assert not (tmp_path / "out.tsv").exists()
