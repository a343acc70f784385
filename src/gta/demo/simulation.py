"""The demo's simulated expression: a planted long-range grammar on the Sei features, and its oracle.

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
noise. With expression.text_signal t > 0 (a positive control for the prompt path) a share t of the
variance comes from the gene's annotation text instead:

    text       u_g = std( d[family(g)] ),   d[family] ~ N(0, 1) seeded by (seed, family name)
    observed   y_g = sqrt(t) u_g + sqrt(1 - t) (s_g + sqrt(1 - f) eps_g)
    noiseless        sqrt(t) u_g + sqrt(1 - t) s_g          (simulation.tsv's signal)

so var(y) = 1 = t (text) + (1 - t) f (grammar) + (1 - t)(1 - f) (noise), the grammar and the noise
keeping their ratio. The families (`TEXT_FAMILIES`) are keyword groups of the real MANE names and
symbols (zinc finger, ribosomal protein, olfactory receptor, ...; the first that matches, else
'other'); their effects are random, so a model can learn them only from the training genes' prompts.

The noiseless signal is kept (simulation.tsv) for the Table 1 noise-ceiling row. A model that sees
only the TSS bin can learn P and part of R, but not the distal enhancers; a linear model of
distance-weighted feature sums sees the enhancers only through their linear part (no threshold, no
insulation). `expression.grammar: alternative` is a second grammar (`alternative_terms`).
`expression.grammar: upstream` is the demo grammar with enhancers that act only UPSTREAM of the TSS, in
transcript terms (bins b < t once a minus-strand gene's bins are reversed: gta.formats.transcript_order):
a model that reads a minus-strand gene's bins backwards looks for its enhancers on the wrong side.

Every target the demo trains and evaluates on is drawn here; the oracle (`oracle_fit`,
`oracle_diagnostics`) says how much of the planted signal a context length can reach at best.
"""

from __future__ import annotations


import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import GTAError
from ..options import GrammarName
from ..formats import read_feature_classes, read_feature_genes, target_rows, transcript_order
from ..io import atomic_path
from ..sei import CLASS_LABELS

log = logging.getLogger("gta.demo.simulation")

PROMOTER = CLASS_LABELS.index("P")
ENHANCER = CLASS_LABELS.index("E5")
CTCF = CLASS_LABELS.index("CTCF")
POLYCOMB = (CLASS_LABELS.index("PC1"), CLASS_LABELS.index("PC3"))
GRAMMAR_CLASSES = [PROMOTER, ENHANCER, CTCF, *POLYCOMB]  # order of the z[..., i] axis below


@dataclass(frozen=True)
class Grammar:
    """Constants of the planted grammar (module docstring)."""

    clip: float = 4.0  # standardised scores are clipped to +-clip
    contact_bins: float = 10.0  # enhancer weight 1 / (1 + k / contact_bins)
    ctcf_strong: float = 2.0  # a bin with z_CTCF above this insulates
    polycomb_reach: int = 2  # polycomb bins counted: |b - t| <= reach
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
    right = strong[:, tss_bin + 1 :]
    if right.shape[1] > 1:
        out[:, tss_bin + 2 :] = ~np.maximum.accumulate(right[:, :-1], axis=1)
    left = strong[:, :tss_bin][:, ::-1]  # outward from the TSS
    if left.shape[1] > 1:
        out[:, : tss_bin - 1] = (~np.maximum.accumulate(left[:, :-1], axis=1))[:, ::-1]
    return out


def grammar_terms(
    z: np.ndarray, tss_bin: int, grammar: Grammar = Grammar(), upstream_only: bool = False
) -> dict[str, np.ndarray]:
    """Raw promoter, enhancer and polycomb terms per gene from standardised scores.

    `z` is (genes, bins, 5) with the classes of GRAMMAR_CLASSES in order: P, E5, CTCF, PC1, PC3. With
    `upstream_only` only bins left of the TSS bin (upstream, for z in transcript order) count as enhancers.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 3 or z.shape[2] != len(GRAMMAR_CLASSES) or not 0 <= tss_bin < z.shape[1]:
        raise GTAError(f"grammar_terms needs (genes, bins, {len(GRAMMAR_CLASSES)}) scores and a TSS bin inside them")
    n = z.shape[1]
    k = np.abs(np.arange(n) - tss_bin).astype(np.float64)
    weight = 1.0 / (1.0 + k / grammar.contact_bins)
    weight[tss_bin] = 0.0
    if upstream_only:
        weight[tss_bin:] = 0.0
    enh = z[:, :, 1]
    base = enh.mean(axis=1, keepdims=True) if grammar.enhancer_threshold is None else grammar.enhancer_threshold
    activity = np.maximum(enh - base, 0.0)
    open_ = open_to_tss(z[:, :, 2] > grammar.ctcf_strong, tss_bin)
    near = k <= grammar.polycomb_reach
    polycomb = 0.5 * (np.maximum(z[:, near, 3], 0.0) + np.maximum(z[:, near, 4], 0.0))
    return {
        "promoter": z[:, tss_bin, 0],
        "enhancer": (activity * open_ * weight).sum(axis=1),
        "polycomb": polycomb.mean(axis=1),
    }


def _std(v: np.ndarray) -> np.ndarray:
    sd = v.std()
    return (v - v.mean()) / sd if sd > 0 else np.zeros_like(v)


def combine_terms(terms: dict[str, np.ndarray], grammar: Grammar = Grammar()) -> np.ndarray:
    """Unit-variance signal: std(w_P std(P) + w_E std(E) - w_R std(R)) over genes."""
    s = (
        grammar.w_promoter * _std(terms["promoter"])
        + grammar.w_enhancer * _std(terms["enhancer"])
        - grammar.w_polycomb * _std(terms["polycomb"])
    )
    return _std(s)


def unit_signal(
    scores: np.ndarray,
    tss_bin: int,
    grammar: Grammar = Grammar(),
    name: str = "demo",
    strand: Sequence[str] | None = None,
    orient: str = "reference",
    visible: int | None = None,
) -> np.ndarray:
    """Unit-variance noiseless signal of grammar `name` (`simulate`); with `visible`, the terms come from
    the central `visible` bins only (scores standardised over the whole window) and are returned as
    columns (genes, terms) for `oracle_fit` instead."""
    grammar_classes(name)
    z = standardise_classes(scores, grammar.clip)
    if name == "upstream":
        z = transcript_order(z, strand, orient)
    if visible is not None:
        z, tss_bin = z[:, tss_bin - visible // 2 : tss_bin - visible // 2 + visible], visible // 2
    if name == "alternative":
        terms = alternative_terms(z, tss_bin)
        return np.column_stack(list(terms.values())) if visible is not None else alternative_signal(z, tss_bin)
    terms = grammar_terms(z, tss_bin, grammar, upstream_only=name == "upstream")
    return np.column_stack(list(terms.values())) if visible is not None else combine_terms(terms, grammar)


def gene_noise(gene_ids: Sequence[int], seed: int) -> np.ndarray:
    """One N(0, 1) draw per gene, seeded by (seed, GeneID): independent of gene order and gene set."""
    return np.array([np.random.default_rng([seed, 0x51AB, int(g)]).standard_normal() for g in gene_ids])


# keyword groups of the MANE names (lower case) and symbols: a gene's family is the first that matches
TEXT_FAMILIES = {
    "zinc finger": r"zinc finger|^znf\d|^zfp\d|^zscan|^zbtb|^zkscan",
    "keratin": r"keratin|^krt",
    "ribosomal protein": r"ribosomal protein|^rp[ls]\d",
    "olfactory receptor": r"olfactory receptor|^or\d",
    "histone": r"\bhistone\b|^h[1234]",
    "solute carrier": r"solute carrier|^slc\d",
    "kinase": r"kinase",
    "phosphatase": r"phosphatase",
    "immunoglobulin-like": r"immunoglobulin|leukocyte",
    "adhesion": r"adhesion|cadherin",
    "open reading frame": r"open reading frame",
    "transmembrane protein": r"transmembrane",
    "ion channel": r"channel",
    "transcription factor": r"transcription factor|homeobox",
    "cytochrome": r"cytochrome",
    "peptidase": r"peptidase|protease",
    "ubiquitin": r"ubiquitin",
    "GTPase": r"gtpase|\bg protein",
    "mitochondrial": r"mitochondrial",
    "non-coding RNA": r"antisense|long intergenic|non-protein coding|microrna|^linc",
    "receptor": r"receptor",
    "domain containing": r"domain containing",
}
OTHER_FAMILY = "other"


def text_families(symbols: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """Each gene's family (TEXT_FAMILIES, else 'other') from its MANE name and symbol, matched in lower case."""
    import re

    patterns = [(family, re.compile(rx)) for family, rx in TEXT_FAMILIES.items()]
    out = []
    for symbol, name in zip(symbols, names, strict=True):
        texts = (str(name or "").lower(), str(symbol or "").lower())
        out.append(next((f for f, rx in patterns if any(rx.search(t) for t in texts)), OTHER_FAMILY))
    return np.array(out, dtype=object)


def text_effect(families: Sequence[str], seed: int) -> np.ndarray:
    """Unit-variance text effect per gene: a N(0, 1) draw per family, seeded by (seed, family name),
    standardised over the genes. Needs genes in at least two families."""
    import zlib

    draws = {f: np.random.default_rng([seed, 0x7E47, zlib.crc32(f.encode())]).standard_normal() for f in set(families)}
    effect = np.array([draws[f] for f in families])
    if len(draws) < 2:
        raise GTAError(
            f"text_signal needs genes of at least 2 text families, but all {len(effect)} genes are "
            f"{next(iter(draws), 'none')!r}; use more genes or text_signal: 0",
            input="text_signal",
        )
    return _std(effect)


def simulate(
    scores: np.ndarray,
    gene_ids: Sequence[int],
    tss_bin: int,
    signal_fraction: float,
    seed: int,
    grammar: Grammar = Grammar(),
    name: str = "demo",
    strand: Sequence[str] | None = None,
    orient: str = "reference",
    text_signal: float = 0.0,
    families: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(observed, signal) per gene from the grammar classes' scores (genes, bins, classes of GRAMMARS[name]).

    name 'demo' is the grammar of the module docstring; 'alternative' is `alternative_signal`;
    'upstream' the demo grammar with upstream enhancers only, which needs each gene's `strand` when the
    scores' bins are in 'reference' `orient` (the others are symmetric about the TSS bin). With
    `text_signal` > 0 that share of the variance is the text effect of each gene's family (`families`,
    from `text_families`; module docstring), in both the observed values and the noiseless signal.
    """
    if not 0.0 <= signal_fraction <= 1.0:
        raise GTAError(f"signal_fraction must be in [0, 1], got {signal_fraction}", input="signal_fraction")
    if not 0.0 <= text_signal <= 1.0:
        raise GTAError(f"text_signal must be in [0, 1], got {text_signal}", input="text_signal")
    unit = unit_signal(scores, tss_bin, grammar, name, strand, orient)
    signal = np.sqrt(signal_fraction) * unit
    observed = signal + np.sqrt(1.0 - signal_fraction) * gene_noise(gene_ids, seed)
    if text_signal > 0:
        if families is None or len(families) != len(unit):
            raise GTAError("text_signal needs a text family per gene", input="families")
        text = np.sqrt(text_signal) * text_effect(families, seed)
        keep = np.sqrt(1.0 - text_signal)
        observed, signal = text + keep * observed, text + keep * signal
    return observed, signal


# A second planted grammar, different from the demo's in classes, distance decay and logic, to check
# that what GTA learns on the demo is not tuned to one grammar (docs/experiments.md).
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


GRAMMARS = {"demo": GRAMMAR_CLASSES, "alternative": ALTERNATIVE_CLASSES, "upstream": GRAMMAR_CLASSES}


def grammar_classes(name: str) -> list[int]:
    """The Sei class indices a planted grammar reads (`expression.grammar`)."""
    if name not in GRAMMARS:
        raise GTAError(f"grammar {name!r} is not one of {', '.join(GRAMMARS)}", input="grammar")
    return GRAMMARS[name]


def oracle_fit(
    scores: np.ndarray,
    tss_bin: int,
    observed: np.ndarray,
    split: np.ndarray,
    n_visible: int,
    grammar: Grammar = Grammar(),
    name: str = "demo",
    strand: Sequence[str] | None = None,
    orient: str = "reference",
) -> float:
    """Test Spearman of an oracle that knows the grammar but sees only the central `n_visible` bins.

    The grammar's terms are computed from the visible bins alone (scores standardised over the whole
    stored window, as in `simulate`; `name`, `strand` and `orient` as there), then observed ~ terms
    is fitted by least squares on
    the training genes. n_visible = 1 is the best a TSS-bin-only model can do with this grammar; the
    full window reaches the noise ceiling.
    """
    n = scores.shape[1]
    if n_visible % 2 == 0 or not 1 <= n_visible <= n:
        raise GTAError(f"n_visible must be odd and at most the stored {n} bins, got {n_visible}")
    terms = unit_signal(scores, tss_bin, grammar, name, strand, orient, visible=n_visible)
    x = np.column_stack([terms, np.ones(len(observed))])
    train, test = split == "train", split == "test"
    coef = np.linalg.lstsq(x[train], observed[train], rcond=None)[0]
    from scipy import stats

    return float(stats.spearmanr(x[test] @ coef, observed[test]).statistic)


# ----------------------------------------------------------------------------- diagnostics

ORACLE_COLUMNS = ["visible_bins", "context_bp", "spearman"]


def oracle_diagnostics(
    features: str | Path,
    targets: str | Path,
    out: str | Path,
    visible_bins: Sequence[int] = (),
    grammar: GrammarName = "demo",
    tss: str | Path | None = None,
) -> pd.DataFrame:
    """Stage oracle_diagnostics (rule, `gta oracle-diagnostics`): write oracle.tsv, the test Spearman of
    `oracle_fit` (an oracle that knows the simulated grammar, `grammar` as in `expression.grammar`)
    seeing only the TSS bin, each of `visible_bins` and the full stored window.

    Only meaningful for simulated targets: it tells how much of the planted signal a context length
    can reach at best, next to Table 1's rows for that context.

    Args:
        targets: targets.tsv of the simulation
        visible_bins: more odd bin counts to report
        grammar: the planted grammar the targets were simulated with
        tss: tss.tsv: the genes' strands (the 'upstream' grammar on features in reference orientation)
    """
    from ..formats import gene_strands, read_targets

    feat_ids, attrs = read_feature_genes(features)
    n_bins, tss_bin, bin_size = int(attrs["n_bins"]), int(attrs["tss_bin"]), int(attrs["bin_size"])
    tgt = read_targets(targets)
    rows = target_rows(tgt, feat_ids, targets, features)
    scores = read_feature_classes(features, grammar_classes(grammar))[rows]
    observed, split = tgt["value"].to_numpy(np.float64), tgt["split"].to_numpy(str)
    if (split == "test").sum() < 3:
        raise GTAError(f"targets table {targets} has fewer than 3 test genes; the oracle needs more", input="targets")
    orient = str(attrs.get("orient", "reference"))
    strand = gene_strands(tss, tgt["gene_id"], "target genes") if tss is not None else None
    records = []
    for n in sorted({1, *(int(v) for v in visible_bins), n_bins}):
        if n % 2 == 0 or n > n_bins:
            raise GTAError(
                f"oracle: visible bins must be odd and at most the stored {n_bins}, got {n}", input="visible_bins"
            )
        rho = oracle_fit(scores, tss_bin, observed, split, n, name=grammar, strand=strand, orient=orient)
        log.info("oracle with %d visible bins (%d bp): test Spearman %.4f", n, n * bin_size, rho)
        records.append({"visible_bins": n, "context_bp": n * bin_size, "spearman": f"{rho:.4f}"})
    table = pd.DataFrame(records, columns=ORACLE_COLUMNS)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    return table
