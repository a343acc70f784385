"""Personal expression, scored: predictions for individuals against their observed expression, beside a
PrediXcan-style elastic net (the `gta evaluate-individuals` stage, rule `evaluate_individuals`).

The individuals that the predictions file, the VCF and the expression table share are split once, seeded, into
training and held-out individuals. The elastic net is fitted per gene on the training individuals' ALT dosages
(0, 1, 2) of the variants in the gene's window; GTA, which never saw an individual, and the elastic net are both
scored on the same held-out individuals: per gene, the Spearman and Pearson correlation across them between
predicted and observed expression. With a noiseless table (the simulated population's planted signal) both are
also scored against it, and the noiseless expression itself is scored as a predictor of the observed: the ceiling.

A gene is *significant* when its best single-variant association with the observed expression across the
training individuals passes Bonferroni at `significance` (the Pearson test of dosage against expression, the
p-value times the number of variants tested); the sign of the correlation counts as correct where it is > 0.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from . import GTAError
from .identifiers import match_identifiers
from .io import atomic_path, require_file

log = logging.getLogger("gta.personal_eval")

PREDICTION_COLUMNS = ["sample", "gene_id", "symbol", "haplotype", "prediction", "n_alt", "bins_changed"]
EVALUATION_COLUMNS = [
    "model",
    "target",
    "gene_id",
    "symbol",
    "n_individuals",
    "spearman",
    "pearson",
    "prediction_variance",
    "n_variants",
    "eqtl_p",
    "significant",
]
SUMMARY_COLUMNS = [
    "model",
    "target",
    "n_genes",
    "n_constant",
    "median_spearman",
    "median_pearson",
    "mean_spearman",
    "n_significant",
    "fraction_correct_sign",
]
HELDOUT_COLUMNS = ["model", "sample", "gene_id", "symbol", "prediction", "observed"]
GTA, ENET, CEILING = "GTA", "elastic_net", "noiseless"
GENE_HEADERS = {"gene_id", "gene", "geneid", "symbol", "gene_symbol", "ensembl_gene", "gene_name"}
Layout = Literal["auto", "gene_rows", "sample_rows"]
EMPTY_CELLS = ["", "NA", "NaN", "nan", "na"]  # a missing value in an expression table


# ----------------------------------------------------------------------------- inputs


def read_individual_predictions(path: str | Path) -> pd.DataFrame:
    """The per-sample means (haplotype 0) of a predictions.parquet (docs/formats.md): a samples x genes frame
    (GeneIDs as columns) and the symbol of each gene (attribute `symbols`)."""
    path = require_file(path, "individual predictions", "run predict_individuals", input="predictions")
    try:
        table = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises many kinds
        raise GTAError(f"cannot read individual predictions {path}: {e}", input="predictions") from e
    missing = [c for c in PREDICTION_COLUMNS if c not in table.columns]
    if missing:
        raise GTAError(
            f"individual predictions {path} lack the column(s) {', '.join(missing)} (docs/formats.md, "
            "predictions.parquet); rerun predict_individuals",
            input="predictions",
        )
    mean = table[table["haplotype"] == 0]
    if mean.empty:
        raise GTAError(
            f"individual predictions {path} have no haplotype 0 rows (each sample's mean of its two haplotypes); "
            "rerun predict_individuals",
            input="predictions",
        )
    wide = mean.pivot_table(index="sample", columns="gene_id", values="prediction", aggfunc="first")
    wide.index = wide.index.astype(str)
    wide.columns = wide.columns.astype(np.int64)
    wide = wide.sort_index(axis=0).sort_index(axis=1)
    wide.attrs["symbols"] = mean.drop_duplicates("gene_id").set_index("gene_id")["symbol"].astype(str).to_dict()
    return wide


def read_individual_expression(
    path: str | Path, tss: pd.DataFrame, layout: Layout = "auto", input: str = "expression"
) -> pd.DataFrame:
    """An expression table of individuals and genes as a samples x GeneIDs frame (NaN where a cell is empty).

    `layout`: 'gene_rows' (first column the gene, then one column per sample: this workflow's expression.tsv),
    'sample_rows' (first column the sample, then one column per gene: Huang et al.'s geuvadis_peer_normalized.csv,
    whose genes are lower-case symbols) or 'auto' (gene_rows when the first header cell is a gene column name:
    gene_id, gene, symbol, ...; else sample_rows). Genes are matched to tss.tsv by symbol (any case), Ensembl id
    or GeneID (gta.identifiers); unmatched and ambiguous ones are logged and left out.
    """
    path = require_file(path, "expression table", "give a table of individuals x genes", input=input)
    from .expression import _separator

    try:
        raw = pd.read_csv(path, sep=_separator(Path(path)), index_col=0, dtype=str, keep_default_na=False)
    except Exception as e:
        raise GTAError(f"cannot read expression table {path}: {e}", input=input) from e
    first = str(raw.index.name or "").strip().lower()
    if layout == "auto":
        layout = "gene_rows" if first in GENE_HEADERS else "sample_rows"
    if layout not in ("gene_rows", "sample_rows"):
        raise GTAError(f"layout must be auto, gene_rows or sample_rows, not {layout!r}", input="layout")
    table = raw.T if layout == "gene_rows" else raw  # samples x gene identifiers
    table = table.apply(lambda col: col.str.strip())
    values = table.apply(lambda col: pd.to_numeric(col, errors="coerce"))
    bad = values.isna() & ~table.isin(EMPTY_CELLS)
    if bad.any().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise GTAError(
            f"expression table {path}: cell ({table.index[row]}, {table.columns[col]}) is not a number "
            f"({table.iat[row, col]!r}); fix the table, or give its layout (rows = genes or rows = samples)",
            input=(input, "layout"),
        )
    ids = match_identifiers([str(c).strip() for c in values.columns], tss, f"expression table {path}")
    values = values.loc[:, ids >= 0]
    values.columns = ids[ids >= 0]
    values.index = [str(s).strip() for s in values.index]
    log.info("expression table %s (%s): %d samples x %d genes", path, layout, *values.shape)
    return values.astype(np.float64)


def _check_samples(samples: Sequence[str], table: pd.DataFrame, what: str, input: str, fix: str) -> None:
    """Stop when a sample of the predictions has no row in `table` (an expression table or the VCF's samples)."""
    missing = [s for s in samples if s not in table.index]
    if missing:
        raise GTAError(
            f"{len(missing)} of the {len(samples)} samples of the predictions are missing from {what} "
            f"(e.g. {', '.join(missing[:5])}; it has e.g. {', '.join(map(str, table.index[:5]))}); {fix}",
            input=input,
        )


# ----------------------------------------------------------------------------- genotypes


def _window_spans(genes: pd.DataFrame, n_bins: int, bin_size: int, grid: str) -> dict[str, np.ndarray]:
    """Per chromosome, the sorted (start, end) of every gene window (0-based, half-open)."""
    from .genome import window_start

    starts = np.asarray(window_start(genes["tss"].to_numpy(np.int64), n_bins, bin_size, grid), np.int64)
    spans = {}
    for chrom in genes["chrom"].astype(str).unique():
        s = np.sort(starts[(genes["chrom"].astype(str) == chrom).to_numpy()])
        spans[chrom] = np.stack([s, s + n_bins * bin_size])
    return spans


def read_dosages(
    vcf: str | Path, samples: Sequence[str], genes: pd.DataFrame, n_bins: int, bin_size: int = 4096, grid: str = "tss"
) -> tuple[list, np.ndarray]:
    """(variants, dosages) of the VCF's ALT alleles inside some gene's window: gta.variants.Variant per ALT
    allele and an int8 (variants, samples) matrix of ALT allele counts (0, 1, 2; -1 where a call is missing),
    columns in the order of `samples`. Phase is not needed for a dosage; a record whose chromosome no gene has is
    skipped."""
    import pysam

    from .variants import Variant, _records, match_chrom

    spans = _window_spans(genes, n_bins, bin_size, grid)
    chrom_map: dict[str, str | None] = {}
    variants, rows = [], []
    counts = {"records": 0}
    header = pysam.VariantFile(str(require_file(vcf, "VCF", "give the population's VCF", input="vcf"))).header
    absent = [s for s in samples if s not in header.samples]
    if absent:
        raise GTAError(
            f"{len(absent)} of the {len(samples)} samples of the predictions are missing from VCF {vcf} "
            f"(e.g. {', '.join(absent[:5])}); give the VCF the predictions were made from",
            input="vcf",
        )
    order = [list(header.samples).index(s) for s in samples]
    for rec in _records(Path(vcf), counts):
        counts["records"] += 1
        if rec.chrom not in chrom_map:
            chrom_map[rec.chrom] = match_chrom(rec.chrom, spans)
        chrom = chrom_map[rec.chrom]
        if chrom is None or not rec.alts:
            continue
        starts, ends = spans[chrom]
        k = np.searchsorted(starts, rec.pos - 1 + len(rec.ref), side="left")  # windows starting before the end
        if k == 0 or ends[k - 1] <= rec.pos - 1:  # ends are sorted as the starts are: the last one is the largest
            continue
        every = [c.allele_indices or (None,) for c in rec.samples.values()]  # the header's sample order
        calls = [every[i] for i in order]
        for a, alt in enumerate(rec.alts, start=1):
            row = np.array([-1 if None in c else c.count(a) for c in calls], np.int8)
            variants.append(Variant(chrom, int(rec.pos), rec.id or f"{chrom}:{rec.pos}:{rec.ref}>{alt}", rec.ref, alt))
            rows.append(row)
    log.info("VCF %s: %d records, %d ALT alleles inside gene windows", vcf, counts["records"], len(variants))
    dosages = np.stack(rows) if rows else np.zeros((0, len(samples)), np.int8)
    return variants, dosages


def gene_variants(variants: list, genes: pd.DataFrame, n_bins: int, bin_size: int, grid: str) -> dict[int, np.ndarray]:
    """{GeneID: indices into `variants` of those in its window} (gta.variants.place)."""
    from .variants import place

    pairs, _ = place(variants, genes, n_bins, bin_size, grid)
    return {int(g): grp["variant"].to_numpy() for g, grp in pairs.groupby("gene_id")}


# ----------------------------------------------------------------------------- the split and the models


def split_individuals(samples: Sequence[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(training, held-out) individuals: a seeded permutation of the sorted sample names, the first
    round(test_fraction * n) held out; both lists sorted."""
    names = sorted(samples)
    order = np.random.default_rng(seed).permutation(len(names))
    n_test = int(round(test_fraction * len(names)))
    test = sorted(names[i] for i in order[:n_test])
    train = sorted(names[i] for i in order[n_test:])
    return train, test


def impute_dosages(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float (individuals, variants) dosages with missing calls (-1) set to the training mean of the variant
    (0 where no training individual has a call)."""
    train, test = train.astype(np.float64), test.astype(np.float64)
    train[train < 0], test[test < 0] = np.nan, np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nan_to_num(np.nanmean(train, axis=0))
    return np.where(np.isnan(train), mean, train), np.where(np.isnan(test), mean, test)


def fit_elastic_net(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, l1_ratio: Sequence[float], cv_folds: int, seed: int
) -> np.ndarray:
    """Held-out predictions of scikit-learn's ElasticNetCV (dosages standardised on the training individuals,
    as glmnet does for PrediXcan; the penalty and l1_ratio chosen by `cv_folds`-fold CV, folds shuffled with
    `seed`). Variants constant in training are left out; without any, the prediction is the training mean."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import ElasticNetCV
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    varies = x_train.std(axis=0) > 0
    if not varies.any():
        return np.full(len(x_test), y_train.mean())
    model = make_pipeline(
        StandardScaler(),
        ElasticNetCV(l1_ratio=list(l1_ratio), cv=KFold(cv_folds, shuffle=True, random_state=seed), max_iter=10000),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train[:, varies], y_train)
    return model.predict(x_test[:, varies])


def eqtl_p(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """(Bonferroni-adjusted p of the best single variant, variants tested): the two-sided Pearson test of each
    non-constant dosage column of `x` against `y`, the smallest p times the number tested (at most 1); (1.0, 0)
    when no column varies."""
    from scipy import stats

    x = x[:, x.std(axis=0) > 0]
    n, m = x.shape
    if m == 0 or n < 3 or y.std() == 0:
        return 1.0, m
    xc, yc = x - x.mean(axis=0), y - y.mean()
    r = np.clip((xc * yc[:, None]).sum(0) / np.sqrt((xc**2).sum(0) * (yc**2).sum()), -1.0, 1.0)
    with np.errstate(divide="ignore"):
        t = r * np.sqrt((n - 2) / np.maximum(1 - r**2, 0.0))
    p = 2 * stats.t.sf(np.abs(t), n - 2)
    return float(min(p.min() * m, 1.0)), m


def correlations(predicted: np.ndarray, observed: np.ndarray) -> tuple[float, float]:
    """(Spearman, Pearson) across individuals; NaN where either side is constant."""
    from scipy.stats import rankdata

    def pearson(a, b):
        a, b = a - a.mean(), b - b.mean()
        denom = np.sqrt((a**2).sum() * (b**2).sum())
        return float((a * b).sum() / denom) if denom > 0 else np.nan

    if np.ptp(predicted) == 0 or np.ptp(observed) == 0:
        return np.nan, np.nan
    return pearson(rankdata(predicted), rankdata(observed)), pearson(predicted, observed)


# ----------------------------------------------------------------------------- summaries and figure


def summarise(evaluation: pd.DataFrame) -> pd.DataFrame:
    """Per model and target: genes scored (observed expression varies over the held-out individuals), genes whose
    predictions are constant over them (their correlation counts as 0 in the medians and means), the median
    Spearman and Pearson, the mean Spearman, the significant genes and the fraction of them with a positive
    Spearman."""
    rows = []
    for (model, target), g in evaluation.groupby(["model", "target"], sort=False):
        constant = g["spearman"].isna()
        rho, r = g["spearman"].fillna(0.0), g["pearson"].fillna(0.0)
        sig = g["significant"].astype(bool)
        rows.append(
            {
                "model": model,
                "target": target,
                "n_genes": len(g),
                "n_constant": int(constant.sum()),
                "median_spearman": float(rho.median()) if len(g) else np.nan,
                "median_pearson": float(r.median()) if len(g) else np.nan,
                "mean_spearman": float(rho.mean()) if len(g) else np.nan,
                "n_significant": int(sig.sum()),
                "fraction_correct_sign": float((rho[sig] > 0).mean()) if sig.any() else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def plot_correlations(evaluation: pd.DataFrame, out: str | Path, label: str = "") -> None:
    """The distribution of per-gene Spearman correlations across held-out individuals, per model (violin plus
    one dot per gene, a line at 0), one panel per target: Huang et al.'s main figure, for these models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(dict.fromkeys(evaluation["target"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 4.2), squeeze=False, sharey=True)
    rng = np.random.default_rng(0)  # the dots' horizontal jitter only
    for ax, target in zip(axes[0], targets, strict=True):
        part = evaluation[evaluation["target"] == target]
        models = list(dict.fromkeys(part["model"]))
        values = [part.loc[part["model"] == m, "spearman"].fillna(0.0).to_numpy() for m in models]
        ax.axhline(0, color="grey", lw=0.8, ls="--")
        ax.violinplot([v if len(v) else [np.nan] for v in values], showmedians=True, widths=0.8)
        for i, v in enumerate(values, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(v)), v, s=6, alpha=0.5, color="black", lw=0)
            ax.text(i, 1.04, f"median {np.median(v):.2f}" if len(v) else "", ha="center", fontsize=7)
        names = [
            f"{m}{' (ceiling)' if m == CEILING else ''}\n{len(v)} genes" for m, v in zip(models, values, strict=True)
        ]
        ax.set_xticks(range(1, len(models) + 1), names, fontsize=8)
        ax.set_ylim(-1.05, 1.12)
        ax.set_title(f"against {target} expression", fontsize=9)
    axes[0][0].set_ylabel("Spearman across held-out individuals (per gene)")
    fig.suptitle(f"Personal expression: per-gene correlation across individuals\n{label}", fontsize=9, y=1.04)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


# ----------------------------------------------------------------------------- the stage


def _score(model, target, gene, symbol, predicted, observed, extra) -> dict:
    keep = np.isfinite(observed) & np.isfinite(predicted)
    rho, r = correlations(predicted[keep], observed[keep])
    return {
        "model": model,
        "target": target,
        "gene_id": gene,
        "symbol": symbol,
        "n_individuals": int(keep.sum()),
        "spearman": rho,
        "pearson": r,
        "prediction_variance": float(np.var(predicted[keep])) if keep.any() else np.nan,
        **extra,
    }


def _score_gene(gene, pred, x, y, truth, itrain, itest, settings) -> tuple[list[dict], pd.DataFrame]:
    """One gene's rows of the evaluation (each model against each target that varies over the held-out
    individuals) and its held-out predictions. `x` (samples, variants) dosages, `y` observed expression of all
    samples, `truth` the noiseless expression of the held-out ones (or None)."""
    symbol = pred.attrs["symbols"].get(gene, str(gene))
    test = list(pred.index[itest])
    fit = np.isfinite(y[itrain])
    x_train, x_test = impute_dosages(x[itrain][fit], x[itest])
    p_eqtl, n_var = eqtl_p(x_train, y[itrain][fit])
    extra = {"n_variants": n_var, "eqtl_p": p_eqtl, "significant": p_eqtl < settings["significance"]}
    predicted = {
        GTA: pred.loc[test, gene].to_numpy(np.float64),
        ENET: fit_elastic_net(
            x_train, y[itrain][fit], x_test, settings["l1_ratio"], settings["cv_folds"], settings["split_seed"]
        ),
    }
    targets = {"observed": y[itest]} | ({"noiseless": truth} if truth is not None else {})
    rows = []
    for target, observed in targets.items():
        if np.unique(observed[np.isfinite(observed)]).size < 2:
            continue  # nothing varies to predict (not the models' fault): the gene is left out of this target
        # the ceiling: the noiseless expression as a predictor of the observed
        ceiling = {CEILING: truth} if target == "observed" and truth is not None else {}
        for model, values in (predicted | ceiling).items():
            rows.append(_score(model, target, gene, symbol, values, observed, extra))
    heldout = pd.concat(
        pd.DataFrame({"model": model, "sample": test, "gene_id": gene, "symbol": symbol, "prediction": values,
                      "observed": y[itest]})
        for model, values in predicted.items()
    )  # fmt: skip
    return rows, heldout


def _check_settings(test_fraction: float, cv_folds: int, l1_ratio: list[float], split_seed: int) -> None:
    from .options import check_seed

    check_seed(split_seed, input="split_seed")
    if not 0 < test_fraction < 1:
        raise GTAError(f"test_fraction must lie between 0 and 1, not {test_fraction}", input="test_fraction")
    if cv_folds < 2:
        raise GTAError(f"cv_folds must be at least 2, not {cv_folds}", input="cv_folds")
    if not l1_ratio or not all(0 < v <= 1 for v in l1_ratio):
        raise GTAError(f"each l1_ratio must lie in (0, 1], not {l1_ratio}", input="l1_ratio")


def _check_sizes(n_train: int, n_test: int, n_all: int, min_individuals: int, cv_folds: int) -> None:
    if n_test < min_individuals or n_train < max(min_individuals, cv_folds):
        raise GTAError(
            f"{n_all} individuals have predictions, genotypes and expression: {n_train} for training and {n_test} "
            f"held out, fewer than min_individuals ({min_individuals}) in one of them (and training needs at least "
            f"cv_folds = {cv_folds}); add individuals, or change test_fraction or min_individuals",
            input=("predictions", "test_fraction", "min_individuals"),
        )


def _matched_genes(pred: pd.DataFrame, expr: pd.DataFrame, path) -> list[int]:
    genes = [int(g) for g in pred.columns if g in expr.columns]
    missing = [pred.attrs["symbols"].get(g, str(g)) for g in pred.columns if g not in expr.columns]
    if not genes:
        raise GTAError(
            f"none of the {pred.shape[1]} genes of the predictions is in expression table {path} (e.g. "
            f"{', '.join(missing[:5])}); check its gene identifiers (symbol, Ensembl id or GeneID) and its layout "
            "(rows = genes or rows = samples)",
            input=("expression", "layout"),
        )
    if missing:
        log.warning(
            "%d of the %d predicted genes are not in expression table %s and are left out, e.g. %s",
            len(missing),
            pred.shape[1],
            path,
            ", ".join(missing[:8]),
        )
    return genes


def evaluate_individuals(
    predictions: str | Path,
    vcf: str | Path,
    expression: str | Path,
    tss: str | Path,
    out: str | Path,
    out_summary: str | Path,
    out_predictions: str | Path,
    out_figure: str | Path,
    n_bins: int,
    expression_noiseless: str | Path | None = None,
    layout: Layout = "auto",
    bin_size: int = 4096,
    grid: Literal["tss", "genome"] = "tss",
    test_fraction: float = 0.3,
    split_seed: int = 0,
    l1_ratio: list[float] | None = None,
    cv_folds: int = 5,
    min_individuals: int = 10,
    significance: float = 0.05,
    label: str = "",
    threads: int = 1,
) -> pd.DataFrame:
    """Stage evaluate_individuals (rule, `gta evaluate-individuals`): GTA's per-individual predictions and a
    PrediXcan-style elastic net, scored per gene across the same held-out individuals.

    Writes the per-gene table (`out`), the summary per model and target (`out_summary`), the held-out predictions
    of both models (`out_predictions`) and the figure of the per-gene correlations (`out_figure`).

    Args:
        predictions: predictions.parquet of predict_individuals (its haplotype 0 rows: each sample's mean)
        vcf: the VCF (or BCF) the predictions were made from; the elastic net's ALT dosages
        expression: observed expression of the individuals (samples x genes or genes x samples, see layout)
        tss: tss.tsv (gene windows, and the expression table's gene identifiers)
        out: output per-gene evaluation.tsv
        out_summary: output summary TSV
        out_predictions: output TSV of the held-out individuals' predictions of each model
        out_figure: output PNG of the per-gene correlations
        n_bins: window of the elastic net's variants, in bins around each TSS (the GTA model's N)
        expression_noiseless: optional noiseless expression (a simulation's planted signal): the ceiling
        layout: expression tables: gene_rows, sample_rows (Huang et al.'s geuvadis_peer_normalized.csv) or auto
        bin_size: bin size in bp
        grid: bin grid of the windows (tss or genome, as the features were made)
        test_fraction: share of the individuals held out
        split_seed: seed of the individuals' split and of the elastic net's CV folds
        l1_ratio: elastic net mixing values tried by CV (1 = lasso); default [0.5], PrediXcan's
        cv_folds: CV folds of the elastic net
        min_individuals: fewest training and held-out individuals accepted
        significance: Bonferroni level of a gene's best single-variant association (training individuals)
        label: provenance line on the figure
        threads: BLAS threads of the elastic net fits (more than the cores oversubscribes them: slower)
    """
    from threadpoolctl import threadpool_limits

    from .tss import read_tss

    l1_ratio = list(l1_ratio or [0.5])
    _check_settings(test_fraction, cv_folds, l1_ratio, split_seed)
    settings = {"l1_ratio": l1_ratio, "cv_folds": cv_folds, "split_seed": split_seed, "significance": significance}
    tss_table = read_tss(require_file(tss, "TSS table", "rerun mane_tss", input="tss"))
    pred = read_individual_predictions(predictions)
    samples = list(pred.index)
    expr = read_individual_expression(expression, tss_table, layout)
    fix = "give the expression of every predicted sample, or predict only the samples it has"
    _check_samples(samples, expr, f"expression table {expression}", "expression", fix)
    noiseless = None
    if expression_noiseless:
        noiseless = read_individual_expression(expression_noiseless, tss_table, layout, input="expression_noiseless")
        _check_samples(samples, noiseless, f"noiseless table {expression_noiseless}", "expression_noiseless", fix)
    genes = _matched_genes(pred, expr, expression)
    train, test = split_individuals(samples, test_fraction, split_seed)
    _check_sizes(len(train), len(test), len(samples), min_individuals, cv_folds)
    log.info("%d individuals: %d for training, %d held out (seed %d)", len(samples), len(train), len(test), split_seed)

    windows = tss_table[tss_table["gene_id"].isin(genes)]
    variants, dosages = read_dosages(vcf, samples, windows, n_bins, bin_size, grid)
    in_window = gene_variants(variants, windows, n_bins, bin_size, grid)
    itrain = np.array([samples.index(s) for s in train])
    itest = np.array([samples.index(s) for s in test])

    rows, heldout = [], []
    with threadpool_limits(limits=threads):  # BLAS threads: the elastic net's small fits are fastest on few
        for k, gene in enumerate(genes, start=1):
            x = dosages[in_window.get(gene, np.zeros(0, np.int64))].T  # (samples, variants)
            y = expr.loc[samples, gene].to_numpy(np.float64)
            has_truth = noiseless is not None and gene in noiseless.columns
            truth = noiseless.loc[test, gene].to_numpy(np.float64) if has_truth else None
            r, h = _score_gene(gene, pred, x, y, truth, itrain, itest, settings)
            rows += r
            heldout.append(h)
            if k % 100 == 0 or k == len(genes):
                log.info("genes scored: %d of %d", k, len(genes))

    evaluation = pd.DataFrame(rows, columns=EVALUATION_COLUMNS)
    summary = summarise(evaluation)
    for _, s in summary.iterrows():
        log.info(
            "%s against %s: median Spearman %.3f over %d genes; correct sign in %.2f of %d significant genes",
            s["model"], s["target"], s["median_spearman"], s["n_genes"], s["fraction_correct_sign"], s["n_significant"],
        )  # fmt: skip
    with atomic_path(out) as t1, atomic_path(out_summary) as t2, atomic_path(out_predictions) as t3:
        evaluation.to_csv(t1, sep="\t", index=False, float_format="%.6g")
        summary.to_csv(t2, sep="\t", index=False, float_format="%.6g")
        pd.concat(heldout, ignore_index=True)[HELDOUT_COLUMNS].to_csv(t3, sep="\t", index=False, float_format="%.8g")
        plot_correlations(evaluation, out_figure, label)
    return evaluation
