"""Bootstrap Spearman evaluation and assembly of Tables 1-3 and the training-set-size sweep.

Every number is computed on the TEST genes only (split == "test" in targets.tsv). The error bar
is the paper's: 2 x the standard deviation (numpy's default, ddof=0) of Spearman's rho over
`n_boot` resamples of the test genes drawn with replacement.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from . import GTAError

# the files this stage reads and writes: gta.formats (docs/formats.md); their names stay importable from here
from .formats import (
    TABLE1_COLUMNS,
    TABLE2_COLUMNS,
    TABLE3_COLUMNS,
    TRAIN_SIZE_COLUMNS,
    features_bins,
    read_imported_index,
    read_predictions,
    read_simulation,
    read_targets,
    read_tss,
    write_table,
)  # noqa: F401

log = logging.getLogger("gta.evaluate")

TABLE3_DESCRIPTIONS = {
    "GTA": "the configured model: pretrained backbone blocks, gene prompt",
    "no_backbone": "aligned tokens straight to the selector and head, no backbone",
    "random_backbone": "same backbone architecture with random weights",
    "attention_layer": "one trainable self-attention layer instead of the backbone",
    "no_prompt": "GTA trained and tested with empty prompts",
    "context_ablation": "trained GTA; bins outside the central {keep_bins} set to the training mean",
}
NOISE_CEILING = "noise ceiling"
_CHUNK_ELEMENTS = 2_000_000  # resamples x genes handled at once (bounds memory to ~100 MB)


# ----------------------------------------------------------------------------- bootstrap


def _sorted_layout(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(rank_of, starts, group): each gene's position when sorted by value; for tied values the
    first sorted position of each group of equal values and each sorted position's group (None
    when all values differ)."""
    order = np.argsort(values, kind="stable")
    rank_of = np.empty(len(values), np.int64)
    rank_of[order] = np.arange(len(values))
    sorted_vals = values[order]
    new = np.ones(len(values), bool)
    new[1:] = sorted_vals[1:] != sorted_vals[:-1]
    if new.all():
        return rank_of, None, None
    return rank_of, np.flatnonzero(new), np.cumsum(new) - 1


def _twice_ranks(counts: np.ndarray, starts: np.ndarray | None, group: np.ndarray | None) -> np.ndarray:
    """2 x the average (tie-aware) rank of each sorted position inside each resample.

    counts (B, n) holds how often each gene was drawn, genes in sorted order. A drawn value's
    rank is the number of drawn values below it plus (copies of its value + 1) / 2, the same for
    all copies; twice that is an integer, which keeps every later sum exact.
    """
    if starts is None:
        upto = np.cumsum(counts, axis=1, dtype=np.int64)
        return 2 * upto - counts + 1
    per_group = np.add.reduceat(counts, starts, axis=1)
    upto = np.cumsum(per_group, axis=1, dtype=np.int64)
    return (2 * upto - per_group + 1)[:, group]


def bootstrap_resamples(
    observed: Sequence[float], predicted: Sequence[float], n_boot: int = 5000, seed: int = 0
) -> np.ndarray:
    """Spearman's rho of each of `n_boot` resamples (genes drawn with replacement).

    Resample b draws the gene indices `rng.integers(0, n, n)` for b = 0, 1, ... from
    `rng = numpy.random.default_rng(seed)`, so a plain loop reproduces it exactly. A resample
    whose observed or predicted values are all equal gives NaN.
    """
    x = np.asarray(observed, dtype=np.float64)
    y = np.asarray(predicted, dtype=np.float64)
    n = len(x)
    rng = np.random.default_rng(seed)
    pos_x, starts_x, group_x = _sorted_layout(x)
    pos_y, starts_y, group_y = _sorted_layout(y)
    # sorted-by-x position -> sorted-by-y position of the same gene
    x_to_y = np.empty(n, np.int64)
    x_to_y[pos_x] = pos_y
    centre = n * (n + 1) ** 2  # sum over a resample of (2 x mean rank)^2 = n (n + 1)^2
    out = np.empty(n_boot, np.float64)
    chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
    offsets = None
    for b0 in range(0, n_boot, chunk):
        b = min(chunk, n_boot - b0)
        idx = rng.integers(0, n, size=(b, n))
        if offsets is None or len(offsets) != b:
            offsets = (np.arange(b) * n)[:, None]
        # counts per gene, genes in sorted-by-x order
        cx = np.bincount((pos_x[idx] + offsets).ravel(), minlength=b * n).reshape(b, n)
        cy = np.empty_like(cx)
        cy[:, x_to_y] = cx  # the same counts, genes in sorted-by-y order
        rx = _twice_ranks(cx, starts_x, group_x)
        ry = _twice_ranks(cy, starts_y, group_y)[:, x_to_y]  # back to sorted-by-x order
        wx = cx * rx
        s_xy = np.einsum("ij,ij->i", wx, ry) - centre
        s_xx = np.einsum("ij,ij->i", wx, rx) - centre
        s_yy = np.einsum("ij,ij->i", cx * ry, ry) - centre
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = s_xy / np.sqrt(s_xx.astype(np.float64) * s_yy.astype(np.float64))
        rho[(s_xx <= 0) | (s_yy <= 0)] = np.nan
        out[b0 : b0 + b] = rho
    return out


def bootstrap_spearman(
    observed: Sequence[float], predicted: Sequence[float], n_boot: int = 5000, seed: int = 0
) -> tuple[float, float]:
    """(rho, ci): Spearman's rho on all pairs and 2 x the SD of `n_boot` bootstrap resamples' rho.

    The SD is numpy's default (ddof=0) over the resamples that have a defined rho; resample b
    draws `rng.integers(0, n, n)` from `numpy.random.default_rng(seed)` (see
    `bootstrap_resamples`). Needs at least 3 pairs of finite values.
    """
    x = np.asarray(observed, dtype=np.float64)
    y = np.asarray(predicted, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise GTAError(
            f"bootstrap_spearman needs two 1-D sequences of equal length, got shapes {x.shape} and {y.shape}"
        )
    if len(x) < 3:
        raise GTAError(f"bootstrap_spearman needs at least 3 genes, got {len(x)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise GTAError("bootstrap_spearman got NaN or infinite values; drop genes without a prediction first")
    if n_boot < 2:
        raise GTAError(f"n_boot must be at least 2, got {n_boot}", input="n_boot")
    rho = float(stats.spearmanr(x, y).statistic)
    boots = bootstrap_resamples(x, y, n_boot, seed)
    ok = np.isfinite(boots)
    ci = float(2.0 * np.std(boots[ok])) if ok.sum() >= 2 else math.nan
    return rho, ci


# ----------------------------------------------------------------------------- prediction files


def held_out_pairs(
    pred: pd.DataFrame, targets: pd.DataFrame | None, name: str, input: str | None = "rows"
) -> tuple[np.ndarray, np.ndarray]:
    """(observed, predicted) of the test genes that have a finite prediction.

    With `targets` (targets.tsv), its split decides which genes are test genes and the file's
    observed values must agree with it (a stale predictions file is an error). `input`: the errors'
    GTAError.input, the stage parameter that named the predictions file.
    """
    if targets is not None:
        test = targets[targets["split"] == "test"].set_index("gene_id")["value"]
        rows = pred[pred["gene_id"].isin(test.index)]
        expect = test.loc[rows["gene_id"]].to_numpy(np.float64)
        got = rows["observed"].to_numpy(np.float64)
        if not np.allclose(got, expect, rtol=1e-4, atol=1e-6, equal_nan=False):
            raise GTAError(
                f"{name}: observed values differ from the targets file (targets.tsv); the "
                "predictions file is stale, rerun the stage that wrote it",
                input=input,
            )
        wrong_split = rows["split"] != "test"
        if wrong_split.any():
            raise GTAError(
                f"{name}: {int(wrong_split.sum())} test genes of targets.tsv have another split in "
                "the predictions file; it is stale, rerun the stage that wrote it",
                input=input,
            )
        n_test = len(test)
    else:
        rows = pred[pred["split"] == "test"]
        n_test = len(rows)
    rows = rows[np.isfinite(rows["predicted"].to_numpy(np.float64))]
    if len(rows) < n_test:
        log.warning("%s: predictions for %d of %d test genes", name, len(rows), n_test)
    if len(rows) < 3:
        raise GTAError(f"{name}: only {len(rows)} test genes with a prediction; need at least 3", input=input)
    return rows["observed"].to_numpy(np.float64), rows["predicted"].to_numpy(np.float64)


# ----------------------------------------------------------------------------- tables


def _fmt(value: float) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.4f}"


def evaluate_file(
    path: str | Path,
    targets: pd.DataFrame | None,
    n_boot: int,
    seed: int,
    name: str | None = None,
    input: str | None = "rows",
) -> tuple[float, float, int]:
    """(spearman, ci, n_genes) of one predictions file on the test genes (`input`: see held_out_pairs)."""
    name = name or str(path)
    obs, pred = held_out_pairs(read_predictions(path), targets, name, input)
    t0 = time.perf_counter()
    rho, ci = bootstrap_spearman(obs, pred, n_boot, seed)
    log.info(
        "%s: Spearman %.4f +- %.4f on %d test genes (%d resamples in %.2f s)",
        name,
        rho,
        ci,
        len(obs),
        n_boot,
        time.perf_counter() - t0,
    )
    return rho, ci, len(obs)


def noise_ceiling(simulation: str | Path, targets: pd.DataFrame, n_boot: int, seed: int) -> tuple[float, float, int]:
    """Spearman of the simulation's noiseless signal vs the observed targets on the test genes."""
    sim = read_simulation(simulation)
    test = targets[targets["split"] == "test"].merge(sim[["gene_id", "signal"]], on="gene_id", how="inner")
    if len(test) < 3:
        raise GTAError(
            f"simulation file {simulation} covers {len(test)} test genes; rerun make_targets", input="simulation"
        )
    rho, ci = bootstrap_spearman(test["value"].to_numpy(), test["signal"].to_numpy(), n_boot, seed)
    log.info("noise ceiling: Spearman %.4f +- %.4f on %d test genes", rho, ci, len(test))
    return rho, ci, len(test)


STRAND_COLUMNS = ["spearman_plus", "spearman_minus"]  # Table 1's per-strand columns (with make_table1's tss)


def strand_spearman(pred: pd.DataFrame, test_genes, strand: pd.Series) -> dict[str, float]:
    """Spearman of observed vs predicted on the test genes of each strand separately.

    `pred` a predictions table (gene_id, observed, predicted), `test_genes` the GeneIDs to count, `strand`
    '+'/'-' indexed by GeneID (tss.tsv). Returns {'+': rho, '-': rho}; NaN for a strand with fewer than 3
    test genes with a finite prediction. A model that reads one strand's windows the wrong way round
    shows it here (gta.formats.transcript_order).
    """
    rows = pred[pred["gene_id"].isin(test_genes) & np.isfinite(pred["predicted"].to_numpy(np.float64))]
    on = strand.reindex(rows["gene_id"]).to_numpy()
    out = {}
    for s in ("+", "-"):
        part = rows[on == s]
        rho = stats.spearmanr(part["observed"], part["predicted"]).statistic if len(part) >= 3 else np.nan
        out[s] = float(rho)
    return out


def _table1_bins(model: str, bins: int | str | None, n_stored: int) -> int | None:
    """A Table 1 row's context bins: None or '-' (no bins), 'all' (the features file's n_bins) or a number."""
    if isinstance(bins, str) and bins.isdigit():
        bins = int(bins)
    if bins is None or bins == "-":
        return None
    if bins == "all":
        return n_stored
    if isinstance(bins, int) and not isinstance(bins, bool) and bins > 0:
        return bins
    raise GTAError(f"Table 1 row {model!r} has bins {bins!r}; use a positive number, 'all' or none", input="rows")


def make_table1(
    rows: Sequence[Sequence],
    targets: str | Path,
    features: str | Path,
    out: str | Path,
    simulation: str | Path | None = None,
    n_boot: int = 5000,
    seed: int = 0,
    imported: str | Path | None = None,
    tss: str | Path | None = None,
) -> pd.DataFrame:
    """Stage make_table1 (rule, `gta make-table1`): write Table 1 (table1.tsv), one row per model in order
    (+ the noise ceiling when `simulation` is given); the models of `imported` come first. With `tss`,
    two more columns: the test Spearman on plus- and on minus-strand genes alone (`strand_spearman`).

    `rows` are (model, bins, predictions path): bins is a number, 'all' (the n_bins stored in the
    features file, whose bin_size gives context_bp) or None (a model without bins).

    Args:
        rows: MODEL BINS PREDICTIONS, once per row; BINS: an integer, 'all' (the stored n_bins) or '-' (no bins)
        features: features.h5 (its bin_size and n_bins)
        simulation: simulation.tsv: adds the noise-ceiling row
        imported: folder of imported predictions (gta import-baseline-predictions): one row per model, first
        tss: tss.tsv: the genes' strands, for the spearman_plus and spearman_minus columns
    """
    given = [[*row, "rows"] for row in rows]
    if imported:  # these rows come first, named by the stage's `imported`
        given = [[model, None, path, "imported"] for model, path in read_imported_index(imported)] + given
    n_stored, bin_size = features_bins(features)
    tgt = read_targets(targets)
    strand = read_tss(tss).drop_duplicates("gene_id").set_index("gene_id")["strand"] if tss is not None else None
    test_genes = tgt.loc[tgt["split"] == "test", "gene_id"]
    records = []
    for model, bins, path, source in given:
        n_bins = _table1_bins(model, bins, n_stored)
        rho, ci, n = evaluate_file(path, tgt, n_boot, seed, model, source)
        records.append(
            {
                "model": model,
                "n_bins": "" if n_bins is None else str(n_bins),
                "context_bp": "" if n_bins is None else str(n_bins * bin_size),
                "spearman": _fmt(rho),
                "ci": _fmt(ci),
                "n_genes": str(n),
            }
        )
        if strand is not None:
            by_strand = strand_spearman(read_predictions(path), test_genes, strand)
            records[-1].update(spearman_plus=_fmt(by_strand["+"]), spearman_minus=_fmt(by_strand["-"]))
    if simulation is not None:
        rho, ci, n = noise_ceiling(simulation, tgt, n_boot, seed)
        records.append(
            {
                "model": NOISE_CEILING,
                "n_bins": "",
                "context_bp": "",
                "spearman": _fmt(rho),
                "ci": _fmt(ci),
                "n_genes": str(n),
            }
        )
    return write_table(records, TABLE1_COLUMNS + (STRAND_COLUMNS if strand is not None else []), out)


def make_table2(
    rows: Sequence[tuple[int, str]], targets: str | Path, out: str | Path, n_boot: int = 5000, seed: int = 0
) -> pd.DataFrame:
    """Stage make_table2 (rule, `gta make-table2`): write Table 2 (table2.tsv), GTA by backbone layer
    count, from (layers, predictions path) pairs.

    Args:
        rows: LAYERS PREDICTIONS, once per row
    """
    tgt = read_targets(targets)
    records = []
    for layers, path in rows:
        rho, ci, n = evaluate_file(path, tgt, n_boot, seed, f"GTA {layers} layers")
        records.append({"layers": str(layers), "spearman": _fmt(rho), "ci": _fmt(ci), "n_genes": str(n)})
    return write_table(records, TABLE2_COLUMNS, out)


def make_table3(
    rows: Sequence[tuple[str, str]],
    targets: str | Path,
    out: str | Path,
    n_boot: int = 5000,
    seed: int = 0,
    keep_bins: int | None = None,
) -> pd.DataFrame:
    """Stage make_table3 (rule, `gta make-table3`): write Table 3 (table3.tsv), GTA and its controls, from
    (variant, predictions path) pairs.

    Variants are 'GTA' and the evaluate.controls names (TABLE3_DESCRIPTIONS); `keep_bins` goes into
    the context ablation's description.

    Args:
        rows: VARIANT PREDICTIONS, once per row
        keep_bins: bins the context ablation kept (its description)
    """
    tgt = read_targets(targets)
    records = []
    for model, path in rows:
        if model not in TABLE3_DESCRIPTIONS:
            raise GTAError(
                f"table3: unknown variant {model!r}; use one of {', '.join(TABLE3_DESCRIPTIONS)}", input="rows"
            )
        rho, ci, n = evaluate_file(path, tgt, n_boot, seed, model)
        records.append(
            {
                "model": model,
                "description": TABLE3_DESCRIPTIONS[model].format(keep_bins=keep_bins),
                "spearman": _fmt(rho),
                "ci": _fmt(ci),
                "n_genes": str(n),
            }
        )
    return write_table(records, TABLE3_COLUMNS, out)


def make_train_size(
    rows: Sequence[tuple[str, float, str]],
    targets: str | Path,
    out_table: str | Path,
    n_boot: int = 5000,
    seed: int = 0,
    out_figure: str | Path | None = None,
    label: str = "",
) -> pd.DataFrame:
    """Stage make_train_size (rule, `gta make-train-size`): write train_size.tsv from (model, train
    fraction, predictions path) triples, test Spearman by training-set size (n_train is the size of the
    seeded subset, gta.splits.train_subset), and with `out_figure` its figure (gta.figures.plot_train_size,
    `label` its provenance line).

    Args:
        rows: MODEL FRACTION PREDICTIONS, once per row
        seed: bootstrap seed and the seed of the training subsets
        label: provenance line on the figure
    """
    from .splits import train_subset

    tgt = read_targets(targets)
    train_ids = tgt.loc[tgt["split"] == "train", "gene_id"].to_numpy(np.int64)
    records = []
    for model, fraction, path in rows:
        fraction = float(fraction)
        try:
            n_train = int(train_subset(train_ids, fraction, seed).sum())
        except GTAError as e:
            e.input = "rows"  # the fraction is one of this stage's rows
            raise
        rho, ci, n = evaluate_file(path, tgt, n_boot, seed, f"{model} at train fraction {fraction:g}")
        records.append(
            {
                "model": model,
                "train_fraction": f"{fraction:g}",
                "n_train": str(n_train),
                "spearman": _fmt(rho),
                "ci": _fmt(ci),
                "n_genes": str(n),
            }
        )
    table = write_table(records, TRAIN_SIZE_COLUMNS, out_table)
    if out_figure is not None:
        from .figures import plot_train_size

        plot_train_size(table, out_figure, label)
    return table
