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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from . import GTAError

# the files this stage reads and writes: gta.formats (docs/formats.md); their names stay importable from here
from .formats import (
    DELTA_COLUMNS,
    PROMPT_CONTROL_COLUMNS,
    SEED_COLUMNS,
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
    "text_ridge": "no sequence, no LLM: ridge on the prompt's TF-IDF",
    "text_expecto": "no LLM: ridge on the prompt's TF-IDF beside the ExPecto-style features",
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
    x, y = _checked_pairs(observed, predicted, n_boot)
    rho = float(stats.spearmanr(x, y).statistic)
    boots = bootstrap_resamples(x, y, n_boot, seed)
    return rho, _twice_sd(boots)


def _twice_sd(boots: np.ndarray) -> float:
    """2 x the SD (ddof=0) of the resamples' values that are defined (NaN when fewer than 2)."""
    ok = np.isfinite(boots)
    return float(2.0 * np.std(boots[ok])) if ok.sum() >= 2 else math.nan


def _checked_pairs(observed: Sequence[float], predicted: Sequence[float], n_boot: int) -> tuple[np.ndarray, np.ndarray]:
    """bootstrap_spearman's input as float arrays, or a GTAError saying what is wrong."""
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
    return x, y


# ----------------------------------------------------------------------------- prediction files


def held_out_pairs(
    pred: pd.DataFrame, targets: pd.DataFrame | None, name: str, input: str | None = "rows"
) -> tuple[np.ndarray, np.ndarray]:
    """(observed, predicted) of the test genes that have a finite prediction (see held_out_rows)."""
    rows = held_out_rows(pred, targets, name, input)
    return rows["observed"].to_numpy(np.float64), rows["predicted"].to_numpy(np.float64)


def held_out_rows(
    pred: pd.DataFrame, targets: pd.DataFrame | None, name: str, input: str | None = "rows"
) -> pd.DataFrame:
    """The rows of `pred` (in its order) of the test genes that have a finite prediction.

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
    return rows


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
    scores = score_seeds({None: path}, targets, n_boot, seed, name or str(path), input)
    return scores.mean, scores.ci, len(scores.genes)


# ----------------------------------------------------------------------------- models trained once per seed


def _sd(values: np.ndarray) -> float:
    """The sample SD (ddof=1) over seeds; NaN for a single seed."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


@dataclass
class SeedScores:
    """Test Spearman of one model trained once per training seed, every seed scored on the same genes.

    `seeds`: the seeds in the order given (None: a model given without a seed, such as a baseline);
    `genes`: the gene_ids scored, in order; `rho`: each seed's Spearman, (seeds,); `boots`: each seed's
    Spearman on the same `n_boot` resamples of `genes` (bootstrap_resamples with one bootstrap seed),
    (seeds, n_boot).
    """

    seeds: list[int | None]
    genes: np.ndarray
    rho: np.ndarray
    boots: np.ndarray

    @property
    def mean(self) -> float:
        """The table's `spearman`: the mean over seeds (the one seed's value for one seed)."""
        return float(np.mean(self.rho))

    @property
    def ci(self) -> float:
        """2 x the SD of the bootstrap of the seed-mean: every resample scores each seed, then averages."""
        return _twice_sd(self.boots.mean(axis=0))

    def seed_columns(self) -> dict[str, str]:
        """Tables 1 and 3's per-seed cells: spearman_sd (ddof=1; empty for one seed), n_seeds and
        seed_spearman ('seed:rho;...'); all empty for a model given without a seed."""
        if self.seeds == [None]:
            return dict.fromkeys(SEED_COLUMNS, "")
        return {
            "spearman_sd": _fmt(_sd(self.rho)),
            "n_seeds": str(len(self.seeds)),
            "seed_spearman": ";".join(f"{s}:{r:.4f}" for s, r in zip(self.seeds, self.rho, strict=True)),
        }


def score_seeds(
    paths: Mapping[int | None, str | Path],
    targets: pd.DataFrame | None,
    n_boot: int,
    seed: int,
    name: str,
    input: str | None = "rows",
    genes: Sequence[int] | None = None,
) -> SeedScores:
    """Score one model's predictions files, {training seed: path} ({None: path} for a single file), on
    the test genes every file predicts (in the first file's order; with `genes`, those of `genes` in its
    order), each seed on the same bootstrap resamples (bootstrap seed `seed`)."""
    t0 = time.perf_counter()
    frames = {
        s: held_out_rows(read_predictions(path), targets, name if s is None else f"{name}, seed {s}", input)
        for s, path in paths.items()
    }
    keep = np.asarray(next(iter(frames.values()))["gene_id"] if genes is None else genes, np.int64)
    for f in frames.values():
        keep = keep[np.isin(keep, f["gene_id"].to_numpy(np.int64))]
    if len(keep) < 3:
        raise GTAError(f"{name}: only {len(keep)} test genes predicted by every seed; need at least 3", input=input)
    rho, boots = [], []
    for s, f in frames.items():
        if not np.array_equal(f["gene_id"].to_numpy(np.int64), keep):
            if f["gene_id"].duplicated().any():
                raise GTAError(f"{name}: {paths[s]} lists a gene twice; rerun the stage that wrote it", input=input)
            log.warning(
                "%s: seed %s scored on %d of its %d test genes (those every file compared predicts)",
                *(name, s, len(keep), len(f)),
            )
            f = f.set_index("gene_id").loc[keep].reset_index()
        x, y = _checked_pairs(f["observed"], f["predicted"], n_boot)
        rho.append(float(stats.spearmanr(x, y).statistic))
        boots.append(bootstrap_resamples(x, y, n_boot, seed))
    scores = SeedScores(list(frames), keep, np.array(rho), np.vstack(boots))
    seconds = time.perf_counter() - t0
    if scores.seeds == [None]:
        log.info(
            "%s: Spearman %.4f +- %.4f on %d test genes (%d resamples in %.2f s)",
            *(name, scores.mean, scores.ci, len(keep), n_boot, seconds),
        )
    else:
        cells = scores.seed_columns()
        log.info(
            "%s: seeds %s combined: mean Spearman %.4f (SD over seeds %s; per seed %s) +- %.4f on %d test "
            "genes (%d resamples per seed in %.2f s)",
            *(name, ", ".join(map(str, scores.seeds)), scores.mean, cells["spearman_sd"] or "-"),
            *(cells["seed_spearman"], scores.ci, len(keep), n_boot, seconds),
        )
    return scores


def _seed_of(value, key: tuple, input: str) -> int:
    """A row's SEED as an int (a number or its digits), or a GTAError naming the row."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise GTAError(f"row {' '.join(map(str, key))}: seed {value!r} is not a non-negative integer", input=input)
    return int(value)


def by_seed(rows: Sequence[Sequence], n_key: int, input: str = "rows") -> list[tuple[tuple, dict]]:
    """Table rows (KEY..., PREDICTIONS[, SEED]) grouped into models: [(key, {seed: predictions})] in order of
    first appearance. Rows with a SEED and the same n_key leading values are one model trained once per
    seed; a row without a SEED is a model of its own ({None: predictions})."""
    out, seeded = [], {}
    for row in rows:
        row = list(row)
        if len(row) not in (n_key + 1, n_key + 2):
            raise GTAError(
                f"row {row!r} has {len(row)} values; give {n_key + 1} (or {n_key + 2} with a seed)", input=input
            )
        key, path = tuple(row[:n_key]), row[n_key]
        if len(row) == n_key + 1:
            out.append((key, {None: path}))
            continue
        seed = _seed_of(row[-1], key, input)
        if key not in seeded:
            seeded[key] = {}
            out.append((key, seeded[key]))
        if seed in seeded[key]:
            raise GTAError(f"row {' '.join(map(str, key))}: seed {seed} is given twice", input=input)
        seeded[key][seed] = path
    return out


def paired_delta(
    control: SeedScores,
    gta: SeedScores,
    name: str,
    rescore: Callable[[str, np.ndarray], SeedScores],
) -> dict[str, str]:
    """Table 3's difference of a control from GTA, paired by seed: `delta_vs_gta` = the mean over seeds of
    (control_s - GTA_s), `delta_sd` its SD over seeds (ddof=1), `delta_ci` 2 x the SD of its bootstrap (each
    resample scores both models' every seed on the same genes). The two must share their seeds; when they
    predict different test genes, `rescore(variant, genes)` scores each on the shared ones."""
    if control.seeds == [None]:  # a model fitted once (a baseline): the same for every GTA seed
        control = _every_seed(control, gta.seeds)
    if sorted(control.seeds, key=str) != sorted(gta.seeds, key=str):
        raise GTAError(
            f"table3: {name} was trained with seeds {_seed_list(control)} but GTA with {_seed_list(gta)}; the "
            "difference pairs them by seed, so train the control with GTA's seeds (evaluate.seeds)",
            input="rows",
        )
    if not np.array_equal(control.genes, gta.genes):
        shared = gta.genes[np.isin(gta.genes, control.genes)]
        log.warning("%s - GTA: on the %d test genes both predict", name, len(shared))
        control, gta = rescore(name, shared), rescore("GTA", shared)
        if control.seeds == [None]:
            control = _every_seed(control, gta.seeds)
    order = [control.seeds.index(s) for s in gta.seeds]
    diff = control.rho[order] - gta.rho
    boots = (control.boots[order] - gta.boots).mean(axis=0)
    cells = {"delta_vs_gta": _fmt(float(diff.mean())), "delta_sd": _fmt(_sd(diff)), "delta_ci": _fmt(_twice_sd(boots))}
    log.info(
        "%s - GTA, paired by seed (%s): %s (SD over seeds %s) +- %s",
        *(name, _seed_list(gta), cells["delta_vs_gta"], cells["delta_sd"] or "-", cells["delta_ci"]),
    )
    return cells


def _every_seed(scores: SeedScores, seeds: list[int | None]) -> SeedScores:
    """The scores of a model fitted once, repeated for each of `seeds` (paired_delta pairs it with each)."""
    k = len(seeds)
    return SeedScores(list(seeds), scores.genes, np.repeat(scores.rho, k), np.repeat(scores.boots, k, axis=0))


def _seed_list(scores: SeedScores) -> str:
    return "none given" if scores.seeds == [None] else ", ".join(map(str, scores.seeds))


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
    two more columns: the test Spearman on plus- and on minus-strand genes alone (`strand_spearman`;
    for a row with several seeds, the mean over seeds).

    `rows` are (model, bins, predictions path[, training seed]): bins is a number, 'all' (the n_bins stored
    in the features file, whose bin_size gives context_bp) or None (a model without bins). Rows that give a
    seed and share model and bins are one model trained once per seed: one table row whose `spearman` is
    the mean over seeds and `ci` 2 x the SD of the bootstrap of that mean (SeedScores), with the spread
    over seeds in `spearman_sd`, `n_seeds`, `seed_spearman` (empty for rows without a seed).

    Args:
        rows: MODEL BINS PREDICTIONS [SEED], once per row (and seed); BINS: an integer, 'all' (the stored
            n_bins) or '-' (no bins); rows with a SEED and the same MODEL and BINS are one model, its seeds averaged
        features: features.h5 (its bin_size and n_bins)
        simulation: simulation.tsv: adds the noise-ceiling row
        imported: folder of imported predictions (gta import-baseline-predictions): one row per model, first
        tss: tss.tsv: the genes' strands, for the spearman_plus and spearman_minus columns
    """
    given = [(key, paths, "rows") for key, paths in by_seed(rows, 2)]
    if imported:  # these rows come first, named by the stage's `imported`
        given = [((model, None), {None: path}, "imported") for model, path in read_imported_index(imported)] + given
    n_stored, bin_size = features_bins(features)
    tgt = read_targets(targets)
    strand = read_tss(tss).drop_duplicates("gene_id").set_index("gene_id")["strand"] if tss is not None else None
    test_genes = tgt.loc[tgt["split"] == "test", "gene_id"]
    records = []
    for (model, bins), paths, source in given:
        n_bins = _table1_bins(model, bins, n_stored)
        name = model if n_bins is None else f"{model} N={n_bins}"
        scores = score_seeds(paths, tgt, n_boot, seed, name, source)
        records.append(
            {
                "model": model,
                "n_bins": "" if n_bins is None else str(n_bins),
                "context_bp": "" if n_bins is None else str(n_bins * bin_size),
                "spearman": _fmt(scores.mean),
                "ci": _fmt(scores.ci),
                "n_genes": str(len(scores.genes)),
                **scores.seed_columns(),
            }
        )
        if strand is not None:  # the mean over the row's seeds, as `spearman`
            by_strand = [strand_spearman(read_predictions(p), test_genes, strand) for p in paths.values()]
            records[-1].update(
                spearman_plus=_fmt(np.mean([b["+"] for b in by_strand])),
                spearman_minus=_fmt(np.mean([b["-"] for b in by_strand])),
            )
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
                **dict.fromkeys(SEED_COLUMNS, ""),
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
    rows: Sequence[Sequence],
    targets: str | Path,
    out: str | Path,
    n_boot: int = 5000,
    seed: int = 0,
    keep_bins: int | None = None,
) -> pd.DataFrame:
    """Stage make_table3 (rule, `gta make-table3`): write Table 3 (table3.tsv), GTA and its controls, from
    (variant, predictions path[, training seed]) rows.

    Variants are 'GTA' and the evaluate.controls names (TABLE3_DESCRIPTIONS); `keep_bins` goes into
    the context ablation's description. Rows of one variant with a seed are its models trained once per
    seed, averaged as in Table 1 (make_table1); each control's difference from GTA is paired by seed
    (paired_delta: `delta_vs_gta`, `delta_sd`, `delta_ci`), so a control must have GTA's seeds.

    Args:
        rows: VARIANT PREDICTIONS [SEED], once per row (and seed)
        keep_bins: bins the context ablation kept (its description)
    """
    tgt = read_targets(targets)
    groups = by_seed(rows, 1)
    names = [model for (model,), _ in groups]
    for model in names:
        if model not in TABLE3_DESCRIPTIONS:
            raise GTAError(
                f"table3: unknown variant {model!r}; use one of {', '.join(TABLE3_DESCRIPTIONS)}", input="rows"
            )
        if names.count(model) > 1:
            raise GTAError(
                f"table3: variant {model!r} has rows with and without a seed; give all a seed or none", input="rows"
            )
    paths = {model: p for (model,), p in groups}
    scores = {model: score_seeds(p, tgt, n_boot, seed, model) for model, p in paths.items()}

    def rescore(model: str, genes: np.ndarray) -> SeedScores:
        return score_seeds(paths[model], tgt, n_boot, seed, model, genes=genes)

    records = []
    for model, sc in scores.items():
        delta = dict.fromkeys(DELTA_COLUMNS, "")
        if model != "GTA" and "GTA" in scores:
            delta = paired_delta(sc, scores["GTA"], model, rescore)
        records.append(
            {
                "model": model,
                "description": TABLE3_DESCRIPTIONS[model].format(keep_bins=keep_bins),
                "spearman": _fmt(sc.mean),
                "ci": _fmt(sc.ci),
                "n_genes": str(len(sc.genes)),
                **sc.seed_columns(),
                **delta,
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


def make_prompt_control(rows: Sequence[Sequence], out: str | Path, n_boot: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Stage make_prompt_control (rule, `gta make-prompt-control`): write prompt_control.tsv, the positive
    control of the prompt path: each model's test Spearman on targets simulated with each text_signal
    (gta.demo.simulation: that share of the variance comes from the text family of the gene's name).

    `rows` are (model, text_signal, targets, predictions[, training seed]); rows with a seed that share
    model, text_signal and targets are one model trained once per seed: the mean over seeds, its bootstrap
    `ci` and the seed columns, as in Table 1 (make_table1). A row whose model is 'noise ceiling' names the
    simulation.tsv of its targets instead of predictions: the Spearman of the noiseless signal.

    Args:
        rows: MODEL TEXT_SIGNAL TARGETS PREDICTIONS [SEED], once per row (and seed)
    """
    records = []
    for (model, text_signal, targets), paths in by_seed(rows, 3):
        tgt = read_targets(targets)
        if model == NOISE_CEILING:
            rho, ci, n = noise_ceiling(next(iter(paths.values())), tgt, n_boot, seed)
            cells = {"spearman": _fmt(rho), "ci": _fmt(ci), "n_genes": str(n), **dict.fromkeys(SEED_COLUMNS, "")}
        else:
            sc = score_seeds(paths, tgt, n_boot, seed, f"{model} at text_signal {float(text_signal):g}")
            cells = {"spearman": _fmt(sc.mean), "ci": _fmt(sc.ci), "n_genes": str(len(sc.genes)), **sc.seed_columns()}
        records.append({"model": model, "text_signal": f"{float(text_signal):g}", **cells})
    return write_table(records, PROMPT_CONTROL_COLUMNS, out)
