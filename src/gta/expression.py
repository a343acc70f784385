"""Expression targets: observed tables, gene matching, train/val/test splits, and the simulation.

Observed tables (`expression.table`) are a long TSV (columns `gene`, `value`) or a wide CSV/TSV
(rows = individuals, first column = sample id, one column per gene; the target is the per-gene
median across individuals). Gene identifiers are matched to tss.tsv by symbol (case-insensitive),
Ensembl gene id (with or without version) or NCBI GeneID (`123` or `GeneID:123`).

Simulation (`expression.table: simulated`, `expression.grammar: demo`): a planted long-range grammar
on the Sei features. Each class used is standardised over all genes and bins (median and 1.4826 x
MAD, clipped to +-4 so that all-N assembly-gap bins cannot dominate): z[g, b, class]. With t the
TSS bin and k = |b - t| the distance in bins (constants in `Grammar`):

    promoter   P_g = z[g, t, P]
    enhancers  a[g, b] = max(0, z[g, b, E5] - 2)        (B-cell-like peaks: a sharp threshold)
               E_g = sum_{b != t} a[g, b] * open[g, b] / (1 + k / 10)   (contact ~ 1/distance)
    insulation open[g, b] = 0 if any bin strictly between t and b has z[g, ., CTCF] > 2, else 1
    polycomb   R_g = mean_{k <= 2} (max(0, z[g, b, PC1]) + max(0, z[g, b, PC3])) / 2
    signal     s_g = sqrt(f) * std( 0.6 std(P) + 1.5 std(E) - 0.6 std(R) )
    observed   y_g = s_g + sqrt(1 - f) * eps_g,   eps_g ~ N(0, 1) seeded by (seed, GeneID)

std() standardises over genes; f = expression.signal_fraction, so var(s) = f and the rest is
noise. The noiseless s is kept (simulation.tsv) for the Table 1 noise-ceiling row. A model that
sees only the TSS bin can learn P and part of R, but not the distal enhancers; a linear model of
distance-weighted feature sums sees the enhancers only through their linear part (no threshold, no
insulation). `expression.grammar: alternative` is a second grammar (`alternative_terms`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from . import GTAError
from .io import atomic_path, require_file
from .sei import CLASS_LABELS

log = logging.getLogger("gta.expression")

TARGET_COLUMNS = ["gene_id", "symbol", "value", "split"]
SPLITS = ("train", "val", "test")
_ENSEMBL = re.compile(r"^(ENSG\d+)(\.\d+)?$", re.IGNORECASE)
_GENEID = re.compile(r"^(?:GeneID:)?(\d+)$", re.IGNORECASE)


# ----------------------------------------------------------------------------- reading tables

def _separator(path: Path) -> str:
    name = path.name.lower()
    for ext in (".gz", ".bz2", ".xz", ".zip"):
        name = name.removesuffix(ext)
    if name.endswith(".csv"):
        return ","
    if name.endswith((".tsv", ".txt", ".tab")):
        return "\t"
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt") as fh:
        first = fh.readline()
    return "\t" if "\t" in first else ","


def read_expression_table(path: str | Path) -> pd.Series:
    """Per-identifier expression from a long (`gene`, `value`) or wide (samples x genes) table.

    Returns a Series indexed by the identifiers as written (a wide table gives the per-gene median
    across its rows; empty cells are skipped). Identifiers may repeat; matching deals with that.
    """
    path = require_file(path, "expression table (expression.table)",
                        "give a long TSV (gene, value), a wide CSV/TSV, or 'simulated'")
    sep = _separator(path)
    try:
        raw = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False, compression="infer")
    except Exception as e:
        raise GTAError(f"cannot read expression table {path} (expression.table): {e}") from e
    if raw.shape[0] < 2 or raw.shape[1] < 2:
        raise GTAError(f"expression table {path} (expression.table) needs a header and at least one row "
                       f"and two columns; got {raw.shape[0]} lines x {raw.shape[1]} columns")
    header = [h.strip() for h in raw.iloc[0]]
    body = raw.iloc[1:]
    lower = [h.lower() for h in header]
    if "gene" in lower and "value" in lower:
        genes = body.iloc[:, lower.index("gene")].str.strip()
        values = _numeric(body.iloc[:, lower.index("value")], path, "value")
        keep = genes != ""
        log.info("long expression table %s: %d rows", path, int(keep.sum()))
        return pd.Series(values[keep.to_numpy()], index=genes[keep].to_list(), dtype=np.float64)
    genes = header[1:]
    matrix = np.column_stack([_numeric(body.iloc[:, j], path, header[j]) for j in range(1, len(header))])
    finite = np.isfinite(matrix)
    if (~finite).any():
        log.info("wide expression table %s: %d empty or NaN cells and %d infinite cells skipped in the medians",
                 path, int(np.isnan(matrix).sum()), int(np.isinf(matrix).sum()))
    empty = ~finite.any(axis=0)
    if empty.any():
        log.warning("%d gene columns of %s have no value; dropped", int(empty.sum()), path)
    with np.errstate(all="ignore"):
        med = np.nanmedian(np.where(finite, matrix, np.nan)[:, ~empty], axis=0)
    kept = [g for g, e in zip(genes, empty) if not e]
    log.info("wide expression table %s: %d samples x %d genes; target = per-gene median",
             path, matrix.shape[0], len(kept))
    _check_levels(matrix[:, ~empty], med, path)
    return pd.Series(med, index=kept, dtype=np.float64)


def _numeric(col: pd.Series, path: Path, name: str) -> np.ndarray:
    text = col.str.strip()
    values = pd.to_numeric(text.where(~text.isin(["", "NA", "NaN", "nan", "na"]), None), errors="coerce")
    bad = values.isna() & ~text.isin(["", "NA", "NaN", "nan", "na"])
    if bad.any():
        example = text[bad].iloc[0]
        raise GTAError(f"expression table {path}: column {name!r} has a non-numeric value {example!r} "
                       f"({int(bad.sum())} such cells); fix the table (expression.table)")
    return values.to_numpy(np.float64)


def _check_levels(matrix: np.ndarray, medians: np.ndarray, path: Path) -> None:
    """Warn when per-gene levels look removed by normalisation (each gene centred across samples)."""
    if matrix.shape[0] < 3 or len(medians) < 3:
        return
    with np.errstate(all="ignore"):
        within = float(np.nanmedian(np.nanstd(matrix, axis=0)))
    between = float(np.std(medians))
    if between == 0:
        raise GTAError(f"expression table {path}: every gene has the same median; per-gene levels were "
                       "removed by normalisation, so genes cannot be compared (expression.table)")
    if within > 0 and between < 0.1 * within:
        log.warning("expression table %s: the per-gene medians vary little across genes (SD %.3g) compared "
                    "with the spread within genes (median SD %.3g): the normalisation may have removed "
                    "per-gene levels, and a Spearman across genes would then mean little", path, between, within)


# ----------------------------------------------------------------------------- identifiers

@dataclass
class GeneIndex:
    """Look-up of tss.tsv genes by symbol (lower case), Ensembl id (no version) and GeneID."""

    by_symbol: dict[str, list[int]]
    by_ensembl: dict[str, list[int]]
    ids: set[int]

    @classmethod
    def from_tss(cls, tss: pd.DataFrame) -> "GeneIndex":
        by_symbol: dict[str, list[int]] = {}
        by_ensembl: dict[str, list[int]] = {}
        for gid, sym, ens in zip(tss["gene_id"], tss["symbol"], tss["ensembl_gene"]):
            if isinstance(sym, str) and sym:
                by_symbol.setdefault(sym.lower(), []).append(int(gid))
            if isinstance(ens, str) and ens:
                by_ensembl.setdefault(ens.split(".")[0].upper(), []).append(int(gid))
        return cls(by_symbol, by_ensembl, {int(g) for g in tss["gene_id"]})

    def lookup(self, identifier: str) -> list[int]:
        """GeneIDs an identifier names (empty: unknown; several: ambiguous)."""
        ident = str(identifier).strip()
        m = _ENSEMBL.match(ident)
        if m:
            return list(self.by_ensembl.get(m.group(1).upper(), []))
        m = _GENEID.match(ident)
        if m:
            gid = int(m.group(1))
            return [gid] if gid in self.ids else []
        return list(self.by_symbol.get(ident.lower(), []))


def match_identifiers(identifiers: Sequence[str], tss: pd.DataFrame, what: str) -> np.ndarray:
    """GeneID per identifier, -1 where it matches no gene or is ambiguous.

    Ambiguous: an identifier that names several genes, or several identifiers that name the same
    gene (all of them are dropped). Counts and examples go to the log, labelled `what`.
    """
    index = GeneIndex.from_tss(tss)
    hits = [index.lookup(i) for i in identifiers]
    out = np.full(len(identifiers), -1, np.int64)
    single = [h[0] if len(h) == 1 else -1 for h in hits]
    counts: dict[int, int] = {}
    for g in single:
        if g >= 0:
            counts[g] = counts.get(g, 0) + 1
    unmatched = [i for i, h in zip(identifiers, hits) if not h]
    multi = [i for i, h in zip(identifiers, hits) if len(h) > 1]
    shared = [i for i, g in zip(identifiers, single) if g >= 0 and counts[g] > 1]
    for j, g in enumerate(single):
        if g >= 0 and counts[g] == 1:
            out[j] = g
    log.info("%s: %d identifiers, %d matched to a gene, %d unmatched, %d ambiguous "
             "(%d naming several genes, %d naming a gene another identifier also names)",
             what, len(identifiers), int((out >= 0).sum()), len(unmatched), len(multi) + len(shared),
             len(multi), len(shared))
    if unmatched:
        log.info("%s: unmatched examples: %s", what, ", ".join(map(str, unmatched[:8])))
    if multi or shared:
        log.warning("%s: ambiguous identifiers dropped, e.g. %s", what, ", ".join(map(str, (multi + shared)[:8])))
    return out


def _count_dropped(raw: pd.Series, ids: np.ndarray, tss: pd.DataFrame, with_features: np.ndarray,
                   table: str) -> np.ndarray:
    """Rows of an expression table that become targets; every other row counted by its reason in the log.

    Each dropped row is counted once, under the first reason that applies: its identifier names no gene,
    names several genes, or names a gene another row also names (duplicate); its gene has no features;
    its value is missing (empty, NA, NaN) or infinite.
    """
    index = GeneIndex.from_tss(tss)
    hits = np.array([len(index.lookup(i)) for i in raw.index], np.int64)
    values = raw.to_numpy(np.float64)
    reasons = {
        "unmatched identifier": hits == 0,
        "identifier naming several genes": hits > 1,
        "duplicate (a gene named by several rows)": (hits == 1) & (ids < 0),
        "gene without features": (ids >= 0) & ~np.isin(ids, with_features),
        "missing value (empty, NA, NaN)": np.isnan(values),
        "infinite value": np.isinf(values),
    }
    keep = np.ones(len(values), bool)
    counts = {}
    for reason, mask in reasons.items():
        counts[reason] = int((mask & keep).sum())
        keep &= ~mask
    log.info("expression table %s: %d rows, %d kept as targets; dropped: %s", table, len(values), int(keep.sum()),
             ", ".join(f"{n} {reason}" for reason, n in counts.items()))
    return keep


def read_gene_list(path: str | Path) -> list[str]:
    """Identifiers from a gene list: one per line, first comma/tab/space-separated field; '#' comments."""
    path = require_file(path, "test gene list (genes.test_genes)", "one symbol, Ensembl id or GeneID per line")
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.append(re.split(r"[,\t ]", line, maxsplit=1)[0].strip())
    if not out:
        raise GTAError(f"test gene list {path} (genes.test_genes) names no gene")
    return out


# ----------------------------------------------------------------------------- splits

def _rank_key(seed: int, stage: str, gene_ids: np.ndarray) -> np.ndarray:
    """A seeded pseudo-random 64-bit key per gene, independent of the genes' order."""
    keys = [int.from_bytes(hashlib.blake2b(f"{seed}:{stage}:{int(g)}".encode(), digest_size=8).digest(), "little")
            for g in gene_ids]
    return np.array(keys, dtype=np.uint64)


def _take_fraction(gene_ids: np.ndarray, fraction: float, seed: int, stage: str) -> np.ndarray:
    """Boolean mask of round(fraction * n) genes (at least 1 and at most n - 1 when n >= 2)."""
    n = len(gene_ids)
    k = int(round(fraction * n))
    if n >= 2:
        k = min(max(k, 1), n - 1)
    order = np.lexsort((gene_ids, _rank_key(seed, stage, gene_ids)))
    mask = np.zeros(n, bool)
    mask[order[:k]] = True
    return mask


def assign_splits(gene_ids: Sequence[int], test_ids: Iterable[int] | None = None, test_fraction: float = 0.2,
                  val_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """'train' / 'val' / 'test' per gene, deterministic for a seed and independent of gene order.

    `test_ids` are the test genes; without them a seeded `test_fraction` is held out. The rest is
    split by a seeded `val_fraction` into validation and training genes.
    """
    ids = np.asarray(gene_ids, dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise GTAError("assign_splits: gene ids must be unique")
    split = np.full(len(ids), "train", dtype=object)
    if test_ids is None:
        test = _take_fraction(ids, test_fraction, seed, "test")
    else:
        test = np.isin(ids, np.fromiter(test_ids, np.int64))
    split[test] = "test"
    rest = np.flatnonzero(~test)
    val = _take_fraction(ids[rest], val_fraction, seed, "val")
    split[rest[val]] = "val"
    return split.astype(str)


def train_subset(gene_ids: Sequence[int], fraction: float, seed: int = 0) -> np.ndarray:
    """Mask of the training genes kept at `fraction` (a training-set-size sweep): the first
    round(fraction * n) genes (at least 2) in a seeded order of their GeneIDs.

    The order depends on the seed and each GeneID only, so the subsets are nested (a smaller
    fraction keeps a subset of a larger one's genes) and fraction 1.0 keeps every gene.
    """
    ids = np.asarray(gene_ids, dtype=np.int64)
    if not 0.0 < fraction <= 1.0:
        raise GTAError(f"train_fraction must be in (0, 1], got {fraction} (evaluate.train_fractions)")
    if fraction >= 1.0:
        return np.ones(len(ids), bool)
    k = min(len(ids), max(2, int(round(fraction * len(ids)))))
    order = np.lexsort((ids, _rank_key(seed, "train_fraction", ids)))
    mask = np.zeros(len(ids), bool)
    mask[order[:k]] = True
    return mask


# ----------------------------------------------------------------------------- simulation

PROMOTER = CLASS_LABELS.index("P")
ENHANCER = CLASS_LABELS.index("E5")
CTCF = CLASS_LABELS.index("CTCF")
POLYCOMB = (CLASS_LABELS.index("PC1"), CLASS_LABELS.index("PC3"))
GRAMMAR_CLASSES = [PROMOTER, ENHANCER, CTCF, *POLYCOMB]  # order of the z[..., i] axis below


@dataclass(frozen=True)
class Grammar:
    """Constants of the planted grammar (module docstring)."""

    clip: float = 4.0               # standardised scores are clipped to +-clip
    contact_bins: float = 10.0      # enhancer weight 1 / (1 + k / contact_bins)
    ctcf_strong: float = 2.0        # a bin with z_CTCF above this insulates
    polycomb_reach: int = 2         # polycomb bins counted: |b - t| <= reach
    w_promoter: float = 0.6
    w_enhancer: float = 1.5
    w_polycomb: float = 0.6
    enhancer_threshold: float | None = 2.0  # a bin is an enhancer above this z; None: above the window mean


def standardise_classes(scores: np.ndarray, clip: float = Grammar.clip) -> np.ndarray:
    """Each class (last axis) standardised over all genes and bins: (x - median) / (1.4826 MAD), clipped.

    A class whose MAD is 0 falls back to its SD; a constant class becomes 0.
    """
    x = np.asarray(scores, dtype=np.float64)
    flat = x.reshape(-1, x.shape[-1])
    med = np.median(flat, axis=0)
    scale = 1.4826 * np.median(np.abs(flat - med), axis=0)
    sd = flat.std(axis=0)
    scale = np.where(scale > 0, scale, sd)
    z = np.where(scale > 0, (x - med) / np.where(scale > 0, scale, 1.0), 0.0)
    return np.clip(z, -clip, clip)


def open_to_tss(strong: np.ndarray, tss_bin: int) -> np.ndarray:
    """(genes, bins) True where no bin strictly between the TSS bin and that bin is `strong`."""
    genes, n = strong.shape
    out = np.ones((genes, n), bool)
    right = strong[:, tss_bin + 1:]
    if right.shape[1] > 1:
        out[:, tss_bin + 2:] = ~np.maximum.accumulate(right[:, :-1], axis=1)
    left = strong[:, :tss_bin][:, ::-1]  # outward from the TSS
    if left.shape[1] > 1:
        out[:, :tss_bin - 1] = (~np.maximum.accumulate(left[:, :-1], axis=1))[:, ::-1]
    return out


def grammar_terms(z: np.ndarray, tss_bin: int, grammar: Grammar = Grammar()) -> dict[str, np.ndarray]:
    """Raw promoter, enhancer and polycomb terms per gene from standardised scores.

    `z` is (genes, bins, 5) with the classes of GRAMMAR_CLASSES in order: P, E5, CTCF, PC1, PC3.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 3 or z.shape[2] != len(GRAMMAR_CLASSES) or not 0 <= tss_bin < z.shape[1]:
        raise GTAError(f"grammar_terms needs (genes, bins, {len(GRAMMAR_CLASSES)}) scores and a TSS bin inside them")
    n = z.shape[1]
    k = np.abs(np.arange(n) - tss_bin).astype(np.float64)
    weight = 1.0 / (1.0 + k / grammar.contact_bins)
    weight[tss_bin] = 0.0
    enh = z[:, :, 1]
    base = enh.mean(axis=1, keepdims=True) if grammar.enhancer_threshold is None else grammar.enhancer_threshold
    activity = np.maximum(enh - base, 0.0)
    open_ = open_to_tss(z[:, :, 2] > grammar.ctcf_strong, tss_bin)
    near = k <= grammar.polycomb_reach
    polycomb = 0.5 * (np.maximum(z[:, near, 3], 0.0) + np.maximum(z[:, near, 4], 0.0))
    return {"promoter": z[:, tss_bin, 0],
            "enhancer": (activity * open_ * weight).sum(axis=1),
            "polycomb": polycomb.mean(axis=1)}


def _std(v: np.ndarray) -> np.ndarray:
    sd = v.std()
    return (v - v.mean()) / sd if sd > 0 else np.zeros_like(v)


def combine_terms(terms: dict[str, np.ndarray], grammar: Grammar = Grammar()) -> np.ndarray:
    """Unit-variance signal: std(w_P std(P) + w_E std(E) - w_R std(R)) over genes."""
    s = (grammar.w_promoter * _std(terms["promoter"]) + grammar.w_enhancer * _std(terms["enhancer"])
         - grammar.w_polycomb * _std(terms["polycomb"]))
    return _std(s)


def gene_noise(gene_ids: Sequence[int], seed: int) -> np.ndarray:
    """One N(0, 1) draw per gene, seeded by (seed, GeneID): independent of gene order and gene set."""
    return np.array([np.random.default_rng([seed, 0x51AB, int(g)]).standard_normal() for g in gene_ids])


def simulate(scores: np.ndarray, gene_ids: Sequence[int], tss_bin: int, signal_fraction: float, seed: int,
             grammar: Grammar = Grammar(), name: str = "demo") -> tuple[np.ndarray, np.ndarray]:
    """(observed, signal) per gene from the grammar classes' scores (genes, bins, classes of GRAMMARS[name]).

    name 'demo' is the grammar of the module docstring; 'alternative' is `alternative_signal`.
    """
    if not 0.0 <= signal_fraction <= 1.0:
        raise GTAError(f"expression.signal_fraction must be in [0, 1], got {signal_fraction}")
    grammar_classes(name)
    z = standardise_classes(scores, grammar.clip)
    unit = combine_terms(grammar_terms(z, tss_bin, grammar), grammar) if name == "demo" else alternative_signal(z, tss_bin)
    signal = np.sqrt(signal_fraction) * unit
    observed = signal + np.sqrt(1.0 - signal_fraction) * gene_noise(gene_ids, seed)
    return observed, signal


# A second planted grammar, different from the demo's in classes, distance decay and logic, to check
# that what GTA learns on the demo is not tuned to one grammar (README, "GTA on the demo").
ALTERNATIVE_CLASSES = [CLASS_LABELS.index(c) for c in ("TF1", "E7", "TF2", "HET1")]


def alternative_terms(z: np.ndarray, tss_bin: int, decay_bins: float = 8.0) -> dict[str, np.ndarray]:
    """Activator and (silenced) enhancer terms of the alternative grammar from z (genes, bins, 4):
    TF1, E7, TF2, HET1 (`alternative_signal` combines them).

        activator  A_g = mean_{k <= 1} z[g, b, TF1]                     (the TSS bin and its neighbours)
        enhancers  c[g, b] = min(max(0, z[E7] - 0.5), max(0, z[TF2] - 0.5))   (both classes must be high)
                   E_g = sum_{b != t} c[g, b] exp(-k / 8)              (exponential contact decay)
        silencing  S_g = 0.25 if mean_{k <= 2} z[g, b, HET1] > 0.75 else 1  (a heterochromatic promoter
                   region silences its enhancers: a product, not a sum)
        signal     std( 0.8 std(A) + 1.3 std(E * S) )
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 3 or z.shape[2] != len(ALTERNATIVE_CLASSES) or not 0 <= tss_bin < z.shape[1]:
        raise GTAError(f"alternative_signal needs (genes, bins, {len(ALTERNATIVE_CLASSES)}) scores and a TSS bin")
    k = np.abs(np.arange(z.shape[1]) - tss_bin).astype(np.float64)
    activator = z[:, k <= 1, 0].mean(axis=1)
    both = np.minimum(np.maximum(z[:, :, 1] - 0.5, 0.0), np.maximum(z[:, :, 2] - 0.5, 0.0))
    weight = np.exp(-k / decay_bins)
    weight[tss_bin] = 0.0
    enhancer = (both * weight).sum(axis=1)
    silenced = np.where(z[:, k <= 2, 3].mean(axis=1) > 0.75, 0.25, 1.0)
    return {"activator": activator, "enhancer": enhancer * silenced}


def alternative_signal(z: np.ndarray, tss_bin: int) -> np.ndarray:
    """Unit-variance signal of the alternative grammar (`alternative_terms`)."""
    terms = alternative_terms(z, tss_bin)
    return _std(0.8 * _std(terms["activator"]) + 1.3 * _std(terms["enhancer"]))


GRAMMARS = {"demo": GRAMMAR_CLASSES, "alternative": ALTERNATIVE_CLASSES}


def grammar_classes(name: str) -> list[int]:
    """The Sei class indices a planted grammar reads (`expression.grammar`)."""
    if name not in GRAMMARS:
        raise GTAError(f"expression.grammar: {name!r} is not one of {', '.join(GRAMMARS)}")
    return GRAMMARS[name]


def oracle_fit(scores: np.ndarray, tss_bin: int, observed: np.ndarray, split: np.ndarray, n_visible: int,
               grammar: Grammar = Grammar(), name: str = "demo") -> float:
    """Test Spearman of an oracle that knows the grammar but sees only the central `n_visible` bins.

    The grammar's three terms are computed from the visible bins alone (scores standardised over
    the whole stored window, as in `simulate`; `name` the grammar, as there), then observed ~ terms
    is fitted by least squares on
    the training genes. n_visible = 1 is the best a TSS-bin-only model can do with this grammar; the
    full window reaches the noise ceiling.
    """
    n = scores.shape[1]
    if n_visible % 2 == 0 or not 1 <= n_visible <= n:
        raise GTAError(f"n_visible must be odd and at most the stored {n} bins, got {n_visible}")
    z = standardise_classes(scores, grammar.clip)
    lo = tss_bin - n_visible // 2
    visible = z[:, lo:lo + n_visible]
    terms = (grammar_terms(visible, n_visible // 2, grammar) if name == "demo"
             else alternative_terms(visible, n_visible // 2))
    x = np.column_stack([*terms.values(), np.ones(len(observed))])
    train, test = split == "train", split == "test"
    coef = np.linalg.lstsq(x[train], observed[train], rcond=None)[0]
    from scipy import stats

    return float(stats.spearmanr(x[test] @ coef, observed[test]).statistic)


# ----------------------------------------------------------------------------- features access

def read_feature_genes(path: str | Path) -> tuple[np.ndarray, dict]:
    """(gene_id, attrs) of a features file."""
    import h5py

    path = require_file(path, "features file", "rerun the Sei stage or fix features.precomputed")
    with h5py.File(path, "r") as f:
        for key in ("features", "gene_id"):
            if key not in f:
                raise GTAError(f"features file {path} lacks dataset {key!r}; see CONTRACT section 3")
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        for key in ("n_bins", "tss_bin", "bin_size"):
            if key not in attrs:
                raise GTAError(f"features file {path} lacks attribute {key!r}; see CONTRACT section 3")
        return f["gene_id"][:].astype(np.int64), attrs


def read_feature_classes(path: str | Path, classes: Sequence[int]) -> np.ndarray:
    """Scores (genes, bins, len(classes)) float32 of some classes, in the order given."""
    import h5py

    with h5py.File(path, "r") as f:
        ds = f["features"]
        if ds.ndim != 3 or ds.shape[2] != 40:
            raise GTAError(f"features file {path}: dataset 'features' must be (genes, n_bins, 40), got {ds.shape}")
        out = np.empty((ds.shape[0], ds.shape[1], len(classes)), np.float32)
        step = max(1, 4_000_000 // max(1, ds.shape[1] * 40))
        for s in range(0, ds.shape[0], step):
            out[s:s + step] = ds[s:s + step][:, :, list(classes)]
    return out


# ----------------------------------------------------------------------------- the stage

def make_targets(tss_path: str | Path, features_path: str | Path, table: str, out: str | Path,
                 simulation_out: str | Path | None = None, test_genes: str | Path | None = None,
                 test_fraction: float = 0.2, val_fraction: float = 0.2, seed: int = 0,
                 log_transform: bool = False, signal_fraction: float = 0.7, grammar: str = "demo") -> pd.DataFrame:
    """CLI body of `gta targets`: write targets.tsv (gene_id, symbol, value, split) for genes with features.

    `table` is a table path or 'simulated' (then `simulation_out` gets gene_id, signal).
    """
    from .tss import read_tss

    tss = read_tss(require_file(tss_path, "TSS table", "rerun mane_tss"))
    feat_ids, attrs = read_feature_genes(features_path)
    in_tss = np.isin(feat_ids, tss["gene_id"].to_numpy())
    if not in_tss.all():
        log.warning("%d genes of the features file are not in %s; left out", int((~in_tss).sum()), tss_path)
    genes = tss.set_index("gene_id").loc[feat_ids[in_tss]].reset_index()
    log.info("%d genes with features and a TSS", len(genes))

    if table == "simulated":
        if simulation_out is None:
            raise GTAError("expression.table is 'simulated': an output for the noiseless signal is needed")
        scores = read_feature_classes(features_path, grammar_classes(grammar))[in_tss]
        observed, signal = simulate(scores, genes["gene_id"].to_numpy(), int(attrs["tss_bin"]),
                                    signal_fraction, seed, name=grammar)
        values = pd.Series(observed, index=genes["gene_id"].to_numpy())
        log.info("simulated expression for %d genes from %d bins, signal fraction %.2f (planted %s grammar, "
                 "see gta.expression)", len(genes), int(attrs["n_bins"]), signal_fraction, grammar)
    else:
        raw = read_expression_table(table)
        ids = match_identifiers(list(raw.index), tss, f"expression table {table}")
        keep = _count_dropped(raw, ids, tss, genes["gene_id"].to_numpy(), table)
        values = pd.Series(raw.to_numpy()[keep], index=ids[keep])
        if log_transform:
            if (values < 0).any():
                raise GTAError(f"expression.log_transform is true but {table} has {int((values < 0).sum())} "
                               "negative values; log1p needs non-negative values (turn log_transform off)")
            values = np.log1p(values)
        if len(values) < 3:
            raise GTAError(f"expression table {table} matches only {len(values)} genes that have features; "
                           "check its identifiers (symbols, Ensembl ids or GeneIDs) and genes.chromosomes")
        if float(np.std(values.to_numpy())) == 0.0:
            raise GTAError(f"expression table {table} (expression.table): all {len(values)} genes kept have the "
                           f"same value ({values.iloc[0]:g}), so there is nothing to predict or rank; check the "
                           "table's value column (a wide table's target is each gene's median across rows)")

    genes = genes[genes["gene_id"].isin(values.index)].copy()
    genes["value"] = values.loc[genes["gene_id"]].to_numpy(np.float64)

    test_ids = None
    if test_genes:
        wanted = read_gene_list(test_genes)
        matched = match_identifiers(wanted, tss, f"test gene list {test_genes}")
        test_ids = {int(g) for g in matched if g >= 0}
        present = test_ids & set(genes["gene_id"])
        log.info("test gene list: %d genes matched, %d of them have features and a target",
                 len(test_ids), len(present))
        if len(present) < 3:
            raise GTAError(f"only {len(present)} genes of genes.test_genes ({test_genes}) have features and a "
                           "target; check the list's identifiers and genes.chromosomes")
    genes["split"] = assign_splits(genes["gene_id"].to_numpy(), test_ids, test_fraction, val_fraction, seed)
    genes = genes.sort_values("gene_id")
    counts = genes["split"].value_counts()
    log.info("splits: %s", ", ".join(f"{s} {int(counts.get(s, 0))}" for s in SPLITS))
    source = "simulated expression" if table == "simulated" else f"expression table {table}"
    for s in SPLITS:
        if counts.get(s, 0) > 0:
            continue
        if test_ids is not None and s != "test":
            rest = int((genes["split"] != "test").sum())
            raise GTAError(f"the {s} split is empty: of the {len(genes)} genes with features and a target "
                           f"({source}), {len(genes) - rest} are in genes.test_genes ({test_genes}) and only "
                           f"{rest} are left for training and validation; use a test gene list that leaves "
                           "genes out, or add genes (genes.chromosomes / genes.max_genes)")
        raise GTAError(f"the {s} split is empty ({len(genes)} genes with features and a target from {source}); "
                       "use more genes (genes.chromosomes / genes.max_genes) or change genes.test_fraction / "
                       "genes.val_fraction")

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(out))
        genes[TARGET_COLUMNS].to_csv(tmp, sep="\t", index=False, float_format="%.8g")
        if table == "simulated":
            sim = pd.DataFrame({"gene_id": genes["gene_id"].to_numpy(),
                                "signal": pd.Series(signal, index=feat_ids[in_tss]).loc[genes["gene_id"]].to_numpy()})
            sim.to_csv(stack.enter_context(atomic_path(simulation_out)), sep="\t", index=False, float_format="%.8g")
    log.info("wrote %d targets to %s", len(genes), out)
    return genes[TARGET_COLUMNS]


# ----------------------------------------------------------------------------- diagnostics

ORACLE_COLUMNS = ["visible_bins", "context_bp", "spearman"]


def oracle_diagnostics(features_path: str | Path, targets: str | Path, out: str | Path,
                       visible_bins: Sequence[int] = (), grammar: str = "demo") -> pd.DataFrame:
    """CLI body of `gta oracle`: write oracle.tsv, the test Spearman of `oracle_fit` (an oracle that knows
    the simulated grammar, `grammar` as in `expression.grammar`) seeing only the TSS bin, each of
    `visible_bins` and the full stored window.

    Only meaningful for simulated targets: it tells how much of the planted signal a context length
    can reach at best, next to Table 1's rows for that context.
    """
    from .evaluate import read_targets

    feat_ids, attrs = read_feature_genes(features_path)
    n_bins, tss_bin, bin_size = int(attrs["n_bins"]), int(attrs["tss_bin"]), int(attrs["bin_size"])
    tgt = read_targets(targets)
    pos = {int(g): i for i, g in enumerate(feat_ids)}
    missing = [g for g in tgt["gene_id"] if g not in pos]
    if missing:
        raise GTAError(f"{len(missing)} genes of {targets} are not in the features file {features_path} "
                       f"(first: {missing[:5]}); rerun make_targets")
    scores = read_feature_classes(features_path, grammar_classes(grammar))[[pos[g] for g in tgt["gene_id"]]]
    observed, split = tgt["value"].to_numpy(np.float64), tgt["split"].to_numpy(str)
    if (split == "test").sum() < 3:
        raise GTAError(f"targets table {targets} has fewer than 3 test genes; the oracle needs more")
    records = []
    for n in sorted({1, *(int(v) for v in visible_bins), n_bins}):
        if n % 2 == 0 or n > n_bins:
            raise GTAError(f"oracle: visible bins must be odd and at most the stored {n_bins}, got {n}")
        rho = oracle_fit(scores, tss_bin, observed, split, n, name=grammar)
        log.info("oracle with %d visible bins (%d bp): test Spearman %.4f", n, n * bin_size, rho)
        records.append({"visible_bins": n, "context_bp": n * bin_size, "spearman": f"{rho:.4f}"})
    table = pd.DataFrame(records, columns=ORACLE_COLUMNS)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    return table
