"""Baselines on the same features and splits as GTA, and imported published predictions.

- `TSS ridge`: the 33 kept Sei classes of the TSS bin, standardised with training-gene statistics,
  ridge regression; the penalty is the one with the best validation Spearman.
- `ExPecto-style` (Zhou et al. 2018): each kept class is summed over the bins with exponential
  distance-decay weights exp(-d / L), separately upstream (d <= 0, transcript direction, TSS bin
  included) and downstream (d >= 0), for five decay lengths L, then the same ridge. ExPecto's
  own five constants (0.01-0.2 per 200 bp: 1-20 kb) fit its 40 kb window; here the five lengths
  span 4 kb - 1 Mb geometrically for windows up to ~1 Mb. All stored bins are used.
- `Boosted trees`: scikit-learn's HistGradientBoostingRegressor on the ExPecto-style inputs (the same
  distance-pooled sums), the strongest sequence-only model here. Learning rate, leaves per tree and
  L2 penalty come from a small grid (BOOSTED_GRID) and the number of trees from early stopping, all
  chosen by validation Spearman; seeded, one OpenMP thread (bit-for-bit reruns).
- Huang et al. predictions (`evaluate.baseline_predictions`, CSV `gene,Xpresso,...`): one
  predictions file per column, genes matched like expression tables.

Models are fitted on training genes only; validation genes only choose the penalty (or the trees'
settings); test genes are never read while fitting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import GTAError
from .formats import read_kept_scores, read_targets, target_rows, write_imported_index, write_predictions
from .identifiers import match_identifiers
from .io import require_file

log = logging.getLogger("gta.baselines")

BASELINES = {"tss_ridge": "TSS ridge", "expecto_style": "ExPecto-style", "boosted_trees": "Boosted trees"}
ALPHAS = np.logspace(-2, 6, 17)
EXPECTO_DECAY_BP = (4096.0, 16384.0, 65536.0, 262144.0, 1048576.0)
# the boosted trees' grid: every combination is fitted with BOOSTED_MAX_ITER trees, and the number of
# trees (early stopping) is chosen with the rest by validation Spearman of the staged predictions
BOOSTED_GRID = {"learning_rate": (0.05, 0.1), "max_leaf_nodes": (7, 15), "l2_regularization": (0.0, 1.0)}
BOOSTED_MAX_ITER = 300


# ----------------------------------------------------------------------------- model pieces


def ridge_path(x_train: np.ndarray, y_train: np.ndarray, alphas=ALPHAS):
    """Ridge coefficients for each penalty on standardised features (intercept = mean of y).

    Returns (mean, scale, intercept, coefs (len(alphas), features)); features that are constant on
    the training genes get scale 1 and end up with coefficient 0.
    """
    mean = x_train.mean(axis=0)
    scale = x_train.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    a = (x_train - mean) / scale
    intercept = float(y_train.mean())
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    uty = u.T @ (y_train - intercept)
    coefs = np.stack([vt.T @ (s / (s**2 + alpha) * uty) for alpha in alphas])
    return mean, scale, intercept, coefs


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return -np.inf
    return float(stats.spearmanr(a, b).statistic)


def train_val(split: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation masks of `split`; fewer than 2 genes in either is an error."""
    train, val = split == "train", split == "val"
    if train.sum() < 2 or val.sum() < 2:
        raise GTAError(
            f"{name}: needs at least 2 training and 2 validation genes (got {int(train.sum())} and "
            f"{int(val.sum())}); give targets with more genes in those splits",
            input="targets",
        )
    return train, val


def fit_ridge(x: np.ndarray, y: np.ndarray, split: np.ndarray, alphas=ALPHAS, name: str = "ridge") -> np.ndarray:
    """Predictions for every gene from ridge fitted on 'train', penalty chosen by Spearman on 'val'.

    Ties between penalties go to the larger one.
    """
    train, val = train_val(split, name)
    mean, scale, intercept, coefs = ridge_path(x[train], y[train], alphas)
    z = (x - mean) / scale
    preds = z @ coefs.T + intercept  # (genes, alphas)
    scores = np.array([_spearman(preds[val, i], y[val]) for i in range(len(alphas))])
    best = max(range(len(alphas)), key=lambda i: (scores[i], alphas[i]))
    log.info(
        "%s: %d features, %d training genes; penalty %.3g (validation Spearman %.4f)",
        name,
        x.shape[1],
        int(train.sum()),
        alphas[best],
        scores[best],
    )
    return preds[:, best]


def boosted_params(seed: int = 0, **chosen) -> dict:
    """HistGradientBoostingRegressor's arguments: the fixed ones (no internal early stopping, which would
    hold out random training genes; `seed` as random_state) updated with `chosen` (a grid point, max_iter)."""
    return {"max_iter": BOOSTED_MAX_ITER, "early_stopping": False, "random_state": seed, **chosen}


def fit_boosted(x: np.ndarray, y: np.ndarray, split: np.ndarray, seed: int = 0, name: str = "boosted trees"):
    """(predictions for every gene, chosen parameters) of HistGradientBoostingRegressor fitted on 'train'.

    Each BOOSTED_GRID point is fitted once with BOOSTED_MAX_ITER trees; the point and the number of
    trees with the best validation Spearman (staged predictions: the first m trees) win; ties go to
    the earlier point and fewer trees. The predictions are those of the first m trees of the winning
    fit, which are what HistGradientBoostingRegressor(**boosted_params(seed, **chosen)) fitted on the
    training genes predicts (boosting is sequential). One OpenMP thread: the histograms' sums, and with
    them the trees, do not depend on the thread count.
    """
    from itertools import product

    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    train, val = train_val(split, name)
    best = (-np.inf, None, None)  # (validation Spearman, chosen parameters, predictions)
    # scikit-learn's 20 genes per leaf, fewer for small training sets (a few dozen genes would get one
    # split, or none, and predict a constant)
    leaf = min(20, max(1, int(train.sum()) // 10))
    with threadpool_limits(1, user_api="openmp"):
        for point in product(*BOOSTED_GRID.values()):
            params = {**dict(zip(BOOSTED_GRID, point, strict=True)), "min_samples_leaf": leaf}
            model = HistGradientBoostingRegressor(**boosted_params(seed, **params)).fit(x[train], y[train])
            for m, staged in enumerate(model.staged_predict(x[val]), start=1):
                score = _spearman(staged, y[val])
                if score > best[0]:
                    best = (score, {**params, "max_iter": m}, model)
        score, chosen, model = best
        if model is None:
            raise GTAError(f"{name}: every fit predicts a constant on the validation genes", input="targets")
        pred = list(model.staged_predict(x))[chosen["max_iter"] - 1]
    log.info(
        "%s: %d features, %d training genes; %s (validation Spearman %.4f)",
        *(name, x.shape[1], int(train.sum()), ", ".join(f"{k} {v:g}" for k, v in chosen.items()), score),
    )
    return pred, chosen


def upstream_sign(strand: np.ndarray, orient: str) -> np.ndarray:
    """Per gene, +1 when bin offsets already run in transcript direction, -1 when they must flip.

    In 'reference' orientation a minus-strand gene's upstream bins lie to the right of its TSS
    bin; in 'transcript' orientation every window already has upstream on the left.
    """
    if orient == "transcript":
        return np.ones(len(strand))
    if orient == "reference":
        bad = ~np.isin(strand, ["+", "-"])
        if bad.any():
            raise GTAError(f"{int(bad.sum())} genes have a strand other than '+'/'-' in tss.tsv", input="tss")
        return np.where(strand == "-", -1.0, 1.0)
    raise GTAError(f"features attribute orient must be 'reference' or 'transcript', got {orient!r}", input="features")


def expecto_features(
    scores: np.ndarray, tss_bin: int, bin_size: int, sign: np.ndarray, decays_bp=EXPECTO_DECAY_BP
) -> np.ndarray:
    """(genes, classes * len(decays) * 2) distance-decay sums: upstream then downstream per decay.

    scores (genes, bins, classes); sign per gene from `upstream_sign`. A bin at offset i - tss_bin
    lies d = sign * (i - tss_bin) * bin_size bp from the TSS in transcript direction.
    """
    genes, n, classes = scores.shape
    offset = (np.arange(n) - tss_bin).astype(np.float64) * bin_size
    out = np.zeros((genes, 2 * len(decays_bp) * classes), np.float64)
    for s in np.unique(sign):  # genes sharing an orientation share the weights
        rows = np.flatnonzero(sign == s)
        d = s * offset
        weights = []
        for length in decays_bp:
            w = np.exp(-np.abs(d) / length)
            weights += [w * (d <= 0), w * (d >= 0)]
        w = np.stack(weights, axis=1).astype(scores.dtype)  # (bins, 2 * decays)
        block = np.einsum("gnc,nk->gkc", scores[rows], w, optimize=True)
        out[rows] = block.reshape(len(rows), -1)
    return out


# ----------------------------------------------------------------------------- stages


def _load_features(path: str | Path, tss_bin_only: bool = False):
    """(gene_id, kept-class scores (genes, bins, 33) float32, tss_bin, n_bins, bin_size, orient).

    With `tss_bin_only` the scores hold the TSS bin alone (genes, 1, 33). See gta.formats.read_kept_scores.
    """
    return read_kept_scores(path, tss_bin_only)


def expecto_design(features: str | Path, tgt: pd.DataFrame, targets: str | Path, tss: str | Path) -> np.ndarray:
    """The ExPecto-style inputs (`expecto_features`, all stored bins) of each gene of the targets table `tgt`
    (read from `targets`), in its order; tss.tsv gives the strands."""
    from .tss import read_tss

    gene_id, scores, tss_bin, n_bins, bin_size, orient = _load_features(features)
    scores = scores[target_rows(tgt, gene_id, targets, features)]
    genes = read_tss(require_file(tss, "TSS table", "rerun mane_tss", input="tss")).set_index("gene_id")
    absent = [g for g in tgt["gene_id"] if g not in genes.index]
    if absent:
        raise GTAError(
            f"{len(absent)} target genes are missing from {tss} (first: {absent[:5]}); rerun make_targets",
            input=("targets", "tss"),
        )
    strand = genes.loc[tgt["gene_id"], "strand"].to_numpy(str)
    x = expecto_features(scores, tss_bin, bin_size, upstream_sign(strand, orient))
    log.info(
        "ExPecto-style features from %d bins (%s orientation), decay lengths %s bp",
        n_bins,
        orient,
        ", ".join(f"{d:.0f}" for d in EXPECTO_DECAY_BP),
    )
    return x


def fit_baseline(
    model: Literal["tss_ridge", "expecto_style", "boosted_trees"],
    features: str | Path,
    targets: str | Path,
    tss: str | Path,
    out: str | Path,
    train_fraction: float = 1.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Stage fit_baseline (rule, `gta fit-baseline`): fit one baseline and write its predictions for every
    target gene.

    With `train_fraction` < 1 the model is fitted on that seeded subset of the training genes only
    (gta.splits.train_subset, the same genes `gta train-gta --train-fraction` uses). `boosted_trees`
    reads the ExPecto-style inputs; `seed` is also its random_state.

    Args:
        tss: tss.tsv (strands, for the upstream/downstream split)
        out: output predictions TSV
        train_fraction: fit on this seeded share of the training genes (1.0 = all; the training-set-size sweep)
        seed: seed of the --train-fraction subset and of the boosted trees
    """
    if model not in BASELINES:
        raise GTAError(f"unknown baseline {model!r}; choose one of {sorted(BASELINES)}", input="model")
    tgt = read_targets(targets)
    y = tgt["value"].to_numpy(np.float64)
    split = tgt["split"].to_numpy(str)
    if model == "tss_ridge":
        gene_id, scores = _load_features(features, True)[:2]
        x = scores[target_rows(tgt, gene_id, targets, features), 0, :].astype(np.float64)
    else:
        x = expecto_design(features, tgt, targets, tss)
    fit_split = split.astype(object)  # room for "unused"
    if train_fraction < 1.0:
        from .splits import train_subset

        train = np.flatnonzero(split == "train")
        keep = train_subset(tgt["gene_id"].to_numpy(np.int64)[train], train_fraction, seed)
        fit_split[train[~keep]] = "unused"  # predicted, not fitted on
        log.info("train_fraction %.4g: fitting on %d of %d training genes", train_fraction, int(keep.sum()), len(train))
    if model == "boosted_trees":
        pred, _ = fit_boosted(x, y, fit_split, seed, name=BASELINES[model])
    else:
        pred = fit_ridge(x, y, fit_split, name=BASELINES[model])
    table = pd.DataFrame(
        {"gene_id": tgt["gene_id"], "symbol": tgt["symbol"], "split": split, "observed": y, "predicted": pred}
    )
    test = split == "test"
    if test.sum() > 2:
        log.info(
            "%s: test Spearman %.4f on %d genes", BASELINES[model], _spearman(pred[test], y[test]), int(test.sum())
        )
    write_predictions(table, out)
    return table


# ----------------------------------------------------------------------------- text baselines

TEXT_BASELINES = {"text_ridge": "Text ridge", "text_expecto": "Text + ExPecto-style"}
TEXT_ALPHAS = np.logspace(-3, 5, 17)
DENSE_CELLS = 20_000_000  # fit_sparse_ridge: inputs up to this many cells (160 MB) are solved densely
TEXT_WEIGHTS = (0.25, 1.0, 4.0)  # text_expecto: the text block's share of the total input variance, relative


def prompt_tfidf(texts: Sequence[str], fit_rows: np.ndarray):
    """Sparse TF-IDF rows (texts, words) of `texts`, vocabulary and idf learnt from the texts of `fit_rows`.

    scikit-learn's TfidfVectorizer: lower-cased words of 2+ letters or digits that occur in at least 2 of the
    fitting texts, term frequency 1 + log(count), smooth idf log((1 + n) / (1 + df)) + 1, rows scaled to unit
    L2 norm. A word seen in fewer than 2 fitting texts (a gene's own symbol) is left out.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(min_df=2, sublinear_tf=True)
    try:
        vectorizer.fit([texts[i] for i in np.flatnonzero(fit_rows)])
    except ValueError as e:  # no word in 2 fitting texts
        raise GTAError(f"the prompts of the training genes share no word: {e}", input="prompts") from e
    log.info("TF-IDF: %d words in at least 2 of %d training prompts", len(vectorizer.vocabulary_), int(fit_rows.sum()))
    return vectorizer.transform(texts)


def fit_sparse_ridge(
    x, y: np.ndarray, split: np.ndarray, alphas=TEXT_ALPHAS, name: str = "ridge"
) -> tuple[np.ndarray, float, float]:
    """(predictions for every gene, validation Spearman, penalty): scikit-learn's Ridge (with an intercept,
    inputs as given) fitted on 'train' for each penalty; the penalty with the best validation Spearman wins
    (ties: the larger). Inputs of at most DENSE_CELLS cells are solved exactly (Cholesky), larger sparse
    ones by conjugate gradients (tolerance 1e-10)."""
    from scipy import sparse
    from sklearn.linear_model import Ridge

    train, val = train_val(split, name)
    if sparse.issparse(x) and x.shape[0] * x.shape[1] <= DENSE_CELLS:
        x = x.toarray()  # small enough: the exact (Cholesky) solver, faster than conjugate gradients
    best = None
    for alpha in alphas:
        solver = "sparse_cg" if sparse.issparse(x) else "cholesky"
        ridge = Ridge(alpha=float(alpha), solver=solver, tol=1e-10, max_iter=10_000)
        pred = ridge.fit(x[train], y[train]).predict(x)
        score = _spearman(pred[val], y[val])
        if best is None or (score, alpha) >= best[1:]:
            best = (pred, score, float(alpha))
    return best


def fit_text_baseline(
    model: Literal["text_ridge", "text_expecto"],
    prompts: str | Path,
    targets: str | Path,
    out: str | Path,
    features: str | Path | None = None,
    tss: str | Path | None = None,
) -> pd.DataFrame:
    """Stage fit_text_baseline (rule, `gta fit-text-baseline`): a ridge on each gene's prompt (the text GTA
    reads), alone or beside the ExPecto-style features; predictions for every target gene.

    'text_ridge': ridge on the prompt's TF-IDF (`prompt_tfidf`, words of the training genes' prompts).
    'text_expecto': the same TF-IDF block beside the ExPecto-style block (`expecto_features`, standardised with
    training-gene statistics), each block scaled to a total variance of 1 over the training genes, the text
    block then weighted by each of TEXT_WEIGHTS. Fitted on training genes; the penalty (and the text weight)
    with the best validation Spearman wins.

    Args:
        model: text_ridge (the prompt alone) or text_expecto (the prompt beside the ExPecto-style features)
        prompts: prompts.jsonl (gene_id, prompt), a prompt for each target gene
        features: features.h5 (text_expecto only)
        tss: tss.tsv (text_expecto only: the strands)
        out: output predictions TSV
    """
    from scipy import sparse

    from .annotations.jsonl import read_prompts

    if model not in TEXT_BASELINES:
        raise GTAError(f"unknown text baseline {model!r}; choose one of {sorted(TEXT_BASELINES)}", input="model")
    tgt = read_targets(targets)
    y = tgt["value"].to_numpy(np.float64)
    split = tgt["split"].to_numpy(str)
    text = read_prompts(require_file(prompts, "prompts file", "rerun make_prompts", input="prompts"))
    absent = [g for g in tgt["gene_id"] if g not in text]
    if absent:
        raise GTAError(
            f"{len(absent)} target genes have no prompt in {prompts} (first: {absent[:5]}); rerun make_prompts",
            input=("prompts", "targets"),
        )
    train = split == "train"
    x_text = prompt_tfidf([text[g] for g in tgt["gene_id"]], train)
    name = TEXT_BASELINES[model]
    if model == "text_ridge":
        pred, score, alpha = fit_sparse_ridge(x_text, y, split, name=name)
        log.info("%s: penalty %.3g (validation Spearman %.4f)", name, alpha, score)
    else:
        if features is None or tss is None:
            raise GTAError("text_expecto needs the features file and tss.tsv", input=("features", "tss"))
        x_seq = expecto_design(features, tgt, targets, tss)
        sd = x_seq[train].std(axis=0)
        x_seq = (x_seq - x_seq[train].mean(axis=0)) / np.where(sd > 0, sd, 1.0) / np.sqrt(x_seq.shape[1])
        mean_text = np.asarray(x_text[train].mean(axis=0)).ravel()
        text_var = float(x_text[train].multiply(x_text[train]).sum() / train.sum() - (mean_text**2).sum())
        best = None
        for weight in TEXT_WEIGHTS:
            x = sparse.hstack([x_text * np.sqrt(weight / text_var), sparse.csr_matrix(x_seq)], format="csr")
            fit = fit_sparse_ridge(x, y, split, name=name)
            if best is None or (fit[1], fit[2], weight) > best[1:]:
                best = (*fit, weight)
        pred, score, alpha, weight = best
        log.info("%s: text weight %g, penalty %.3g (validation Spearman %.4f)", name, weight, alpha, score)
    table = pd.DataFrame(
        {"gene_id": tgt["gene_id"], "symbol": tgt["symbol"], "split": split, "observed": y, "predicted": pred}
    )
    test = split == "test"
    if test.sum() > 2:
        log.info("%s: test Spearman %.4f on %d genes", name, _spearman(pred[test], y[test]), int(test.sum()))
    write_predictions(table, out)
    return table


def prediction_file_stem(column: str) -> str:
    """File name stem of an imported predictions column: huang_<column>, unsafe characters as '_'."""
    return "huang_" + re.sub(r"[^A-Za-z0-9_.-]", "_", column.strip())


def read_baseline_columns(path: str | Path) -> list[str]:
    """The model columns of a Huang et al. predictions CSV (all but the first, `gene`)."""
    path = require_file(
        path,
        "baseline predictions",
        "give a CSV with header gene,Xpresso,Enformer,Basenji2,ExPecto",
        input="csv",
    )
    header = pd.read_csv(path, nrows=0).columns
    if len(header) < 2 or header[0].strip().lower() != "gene":
        raise GTAError(
            f"baseline predictions {path} must start with a 'gene' "
            f"column followed by one column per model; header is {list(header)}",
            input="csv",
        )
    cols = [c.strip() for c in header[1:]]
    stems = [prediction_file_stem(c) for c in cols]
    if len(set(stems)) != len(stems):
        raise GTAError(f"baseline predictions {path}: model columns {cols} are not distinct", input="csv")
    return cols


def import_baseline_predictions(
    csv: str | Path, targets: str | Path, tss: str | Path, out_dir: str | Path
) -> dict[str, Path]:
    """Stage import_baseline_predictions (rule, `gta import-baseline-predictions`): one predictions file
    per model column of a Huang CSV in `out_dir`, and their index (models.tsv, in column order), which
    make_table1 reads.

    Args:
        csv: CSV with header gene,<model>,<model>,...
    """
    from .tss import read_tss

    cols = read_baseline_columns(csv)
    table = pd.read_csv(csv, dtype={0: str})
    table.columns = [c.strip() for c in table.columns]
    genes = read_tss(require_file(tss, "TSS table", "rerun mane_tss", input="tss"))
    ids = match_identifiers(table.iloc[:, 0].astype(str).tolist(), genes, f"baseline predictions {csv}")
    tgt = read_targets(targets).set_index("gene_id")
    keep = (ids >= 0) & np.isin(ids, tgt.index.to_numpy())
    tables = {}
    for col in cols:
        pred = pd.to_numeric(table[col], errors="coerce").to_numpy(np.float64)
        ok = keep & np.isfinite(pred)
        g = ids[ok]
        df = pd.DataFrame(
            {
                "gene_id": g,
                "symbol": tgt.loc[g, "symbol"].to_numpy(),
                "split": tgt.loc[g, "split"].to_numpy(),
                "observed": tgt.loc[g, "value"].to_numpy(),
                "predicted": pred[ok],
            }
        )
        n_test = int((df["split"] == "test").sum())
        log.info(
            "%s: %d genes with a prediction and a target, %d of %d test genes",
            col,
            len(df),
            n_test,
            int((tgt["split"] == "test").sum()),
        )
        if n_test < 3:
            raise GTAError(
                f"baseline predictions {csv}: column {col!r} covers {n_test} test genes; check its "
                "gene identifiers (lower-case symbols or Ensembl ids) and the test genes of the targets",
                input=("csv", "targets"),
            )
        tables[col] = df
    written = {}
    for col, df in tables.items():  # every column checked before any file is written
        path = Path(out_dir) / f"{prediction_file_stem(col)}.tsv"
        write_predictions(df, path)
        written[col] = path
    write_imported_index(out_dir, written)
    return written
