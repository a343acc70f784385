"""Variant effects on the demo, where the truth is known: the demo's expression is simulated from the
features (gta.demo.simulation), so the true effect of a variant is the planted signal recomputed on the ALT
features. `make_demo_vcf` writes variants in bins of known roles in the planted grammar;
`validate_variants` compares `gta score-variants`' predicted deltas with the true ones.
"""

from __future__ import annotations


import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .. import GTAError
from ..options import GrammarName
from .simulation import GRAMMAR_CLASSES, Grammar, alternative_terms, grammar_classes, grammar_terms, open_to_tss
from ..formats import read_feature_classes, read_feature_genes
from ..genome import open_fasta, window_start
from ..io import atomic_path
from ..tss import read_tss

log = logging.getLogger("gta.demo.variants")

SITE_CLASSES = ("promoter", "enhancer", "insulated", "ctcf", "neutral", "other")
VALIDATION_COLUMNS = ["class", "kind", "n_pairs", "n_variants", "spearman", "mean_abs_true", "mean_abs_predicted"]
_WEIGHTS = {
    "demo": {"promoter": Grammar.w_promoter, "enhancer": Grammar.w_enhancer, "polycomb": -Grammar.w_polycomb},
    "alternative": {"activator": 0.8, "enhancer": 1.3},
}


class PlantedSignal:
    """The planted signal as a function of one gene's scores, with the population's normalisation
    (class medians and scales, term means and SDs) frozen: called on the population it returns exactly
    the unit signal `gta.demo.simulation.simulate` drew the targets from; called on ALT features it gives
    the signal the simulation would assign them."""

    def __init__(self, scores: np.ndarray, tss_bin: int, name: str = "demo", grammar: Grammar | None = None):
        grammar_classes(name)
        self.tss_bin, self.name, self.grammar = tss_bin, name, grammar or Grammar()
        flat = np.asarray(scores, np.float64).reshape(-1, scores.shape[-1])
        self.med = np.median(flat, axis=0)
        scale = 1.4826 * np.median(np.abs(flat - self.med), axis=0)
        self.scale = np.where(scale > 0, scale, flat.std(axis=0))
        terms = self.terms(scores)
        self.term_stats = {k: (v.mean(), v.std()) for k, v in terms.items()}
        s = self._combine(terms)
        self.stats = (s.mean(), s.std())

    def z(self, scores: np.ndarray) -> np.ndarray:
        x = np.asarray(scores, np.float64)
        z = np.where(self.scale > 0, (x - self.med) / np.where(self.scale > 0, self.scale, 1.0), 0.0)
        return np.clip(z, -self.grammar.clip, self.grammar.clip)

    def terms(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        z = self.z(scores)
        return (
            grammar_terms(z, self.tss_bin, self.grammar) if self.name == "demo" else alternative_terms(z, self.tss_bin)
        )

    def _combine(self, terms: dict[str, np.ndarray]) -> np.ndarray:
        def std(key, v):
            mean, sd = self.term_stats[key]
            return (v - mean) / sd if sd > 0 else np.zeros_like(v)

        return sum(w * std(k, terms[k]) for k, w in _WEIGHTS[self.name].items())

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        mean, sd = self.stats
        s = self._combine(self.terms(scores))
        return (s - mean) / sd if sd > 0 else np.zeros_like(s)


def site_classes(z: np.ndarray, tss_bin: int, grammar: Grammar | None = None) -> np.ndarray:
    """(genes, bins) role of each bin in the demo grammar, from z (genes, bins, 5: P, E5, CTCF, PC1, PC3):
    'promoter' (the TSS bin), 'ctcf' (an insulating CTCF bin), 'enhancer' (an active enhancer open to the
    TSS), 'insulated' (an active enhancer behind an insulator), 'neutral' (every grammar class below 0.5
    and at least 3 bins from the TSS) or 'other'."""
    grammar = grammar or Grammar()
    genes, n = z.shape[:2]
    k = np.abs(np.arange(n) - tss_bin)[None, :].repeat(genes, 0)
    ctcf = z[:, :, 2] > grammar.ctcf_strong
    active = z[:, :, 1] > (grammar.enhancer_threshold if grammar.enhancer_threshold is not None else 0.0)
    open_ = open_to_tss(ctcf, tss_bin)
    out = np.full((genes, n), "other", dtype=object)
    out[(z.max(axis=2) < 0.5) & (k >= 3)] = "neutral"
    out[active & ~open_ & (k > 0)] = "insulated"
    out[active & open_ & (k > 0)] = "enhancer"
    out[ctcf & (k > 0)] = "ctcf"
    out[k == 0] = "promoter"
    return out


def _population(features: str | Path, tss: str | Path, classes) -> tuple[pd.DataFrame, np.ndarray, dict]:
    gene_id, attrs = read_feature_genes(features)
    genes = read_tss(tss).set_index("gene_id").loc[gene_id].reset_index()
    return genes, read_feature_classes(features, classes), attrs


def make_demo_vcf(
    features: str | Path, tss: str | Path, fasta: str | Path, out: str | Path, per_class: int = 40, seed: int = 0
) -> pd.DataFrame:
    """A VCF of `per_class` sites per role (SITE_CLASSES but 'other'), each with a 1-3 kb deletion inside
    the bin and an SNV; sites are distinct genome bins drawn with `seed`. Returns the sites.

    Args:
        out: output VCF (.vcf or .vcf.gz)
        per_class: sites per class
    """
    genes, scores, attrs = _population(features, tss, GRAMMAR_CLASSES)
    n, tss_bin, bin_size = int(attrs["n_bins"]), int(attrs["tss_bin"]), int(attrs["bin_size"])
    roles = site_classes(PlantedSignal(scores, tss_bin).z(scores), tss_bin)
    rng = np.random.default_rng([seed, 0xC0FFEE])
    fa = open_fasta(fasta)
    starts = (
        np.asarray(window_start(genes["tss"].to_numpy(np.int64), n, bin_size, str(attrs.get("grid", "tss"))))[:, None]
        + bin_size * np.arange(n)[None, :]
    )
    records, sites, used = [], [], set()
    for role in SITE_CLASSES[:-1]:
        g_idx, b_idx = np.nonzero(roles == role)
        order = rng.permutation(len(g_idx))
        taken = 0
        for i in order:
            if taken == per_class:
                break
            g, b = int(g_idx[i]), int(b_idx[i])
            chrom, s = genes["chrom"].iat[g], int(starts[g, b])
            if (chrom, s) in used or s < 0 or s + bin_size > len(fa[chrom]):
                continue
            seq = str(fa[chrom][s : s + bin_size]).upper()
            length = int(rng.integers(1000, 3001))
            p = int(rng.integers(1, bin_size - length - 1))  # 0-based anchor base inside the bin
            q = int(rng.integers(0, bin_size))
            if "N" in seq[p : p + length + 1] or seq[q] == "N":
                continue
            used.add((chrom, s))
            taken += 1
            tag = f"{role}_{taken}"
            records.append((chrom, s + p + 1, f"{tag}_del", seq[p : p + length + 1], seq[p]))
            alt = "ACGT"[("ACGT".index(seq[q]) + int(rng.integers(1, 4))) % 4]
            records.append((chrom, s + q + 1, f"{tag}_snv", seq[q], alt))
            sites.append((role, genes["gene_id"].iat[g], chrom, s, b - tss_bin))
        if taken < per_class:
            log.warning("only %d %s sites (asked for %d)", taken, role, per_class)
    order = {c: i for i, c in enumerate(fa.keys())}
    records.sort(key=lambda r: (order[r[0]], r[1]))
    contigs = sorted({r[0] for r in records}, key=order.get)
    lines = ["##fileformat=VCFv4.2", "##source=gta make-demo-vcf (sites chosen by their role in the planted grammar)"]
    lines += [f"##contig=<ID={c},length={len(fa[c])}>" for c in contigs]
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    lines += [f"{c}\t{pos}\t{vid}\t{ref}\t{alt}\t.\tPASS\t." for c, pos, vid, ref, alt in records]
    with atomic_path(out, suffix=".vcf") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    log.info(
        "wrote %s: %d variants at %d sites (%s)",
        out,
        len(records),
        len(sites),
        ", ".join(f"{r} {sum(s[0] == r for s in sites)}" for r in SITE_CLASSES[:-1]),
    )
    return pd.DataFrame(sites, columns=["class", "gene_id", "chrom", "bin_start", "offset"])


def true_deltas(
    scores_table: pd.DataFrame,
    features: str | Path,
    tss: str | Path,
    fasta: str | Path,
    sei: dict,
    grammar: str = "demo",
    signal_fraction: float = 0.8,
) -> pd.DataFrame:
    """The scores table with 'true_delta' (the planted signal on ALT minus on REF, in target units: the
    touched bins' REF and ALT class scores computed together in float32 and unrounded, the other bins as
    stored, so the truth has no float16 floor either) and
    'class' (the role of the variant's bin in the gene's window, demo grammar) added."""
    from ..predict import SeiScorer
    from ..variants import Variant, alt_bin, place, ref_bin

    genes, scores, attrs = _population(features, tss, grammar_classes(grammar))
    n, tss_bin, bin_size = int(attrs["n_bins"]), int(attrs["tss_bin"]), int(attrs["bin_size"])
    grid = str(attrs.get("grid", "tss"))
    signal = PlantedSignal(scores, tss_bin, grammar)
    _, demo_scores, _ = _population(features, tss, GRAMMAR_CLASSES)
    roles = site_classes(PlantedSignal(demo_scores, tss_bin).z(demo_scores), tss_bin)
    row_of = {g: i for i, g in enumerate(genes["gene_id"])}
    keys = scores_table[["id", "chrom", "pos", "ref", "alt"]].drop_duplicates().reset_index(drop=True)
    variants = [Variant(c, int(p), i, r, a) for i, c, p, r, a in keys.itertuples(index=False)]
    pairs, _ = place(variants, genes, n, bin_size, grid)  # the whole stored window, as the simulation sees it
    scorer = SeiScorer.load(**sei)
    scorer.check_features(features)
    fa = open_fasta(fasta)
    starts = np.asarray(window_start(genes["tss"].to_numpy(np.int64), n, bin_size, grid))
    cls = grammar_classes(grammar)
    truth, role = {}, {}
    for v_idx, rows in pairs.groupby("variant"):
        v = variants[v_idx]
        g_rows = [row_of[g] for g in rows["gene_id"]]
        x_ref, x_alt = scores[g_rows].copy(), scores[g_rows].copy()
        cache: dict[int, np.ndarray] = {}
        for j, (g, first, last) in enumerate(zip(g_rows, rows["bin_first"], rows["bin_last"], strict=False)):
            for b in range(int(first), int(last) + 1):
                s = int(starts[g]) + b * bin_size
                if s not in cache:  # REF and ALT bin together in float32, unrounded (as score_variants does)
                    pair = [ref_bin(fa, v.chrom, s, bin_size), alt_bin(fa, v.chrom, s, bin_size, v)]
                    cache[s] = scorer.scores(pair, exact=True)[:, cls]
                x_ref[j, b], x_alt[j, b] = cache[s]
            role[(v_idx, genes["gene_id"].iat[g])] = roles[g, int(first)]
        delta = np.sqrt(signal_fraction) * (signal(x_alt) - signal(x_ref))
        for g, d in zip(rows["gene_id"], delta, strict=False):
            truth[(v_idx, g)] = d
    index = {tuple(k): i for i, k in enumerate(keys.itertuples(index=False))}
    v_of = [index[tuple(r)] for r in scores_table[["id", "chrom", "pos", "ref", "alt"]].itertuples(index=False)]
    out = scores_table.copy()
    out["true_delta"] = [truth.get((v, g), np.nan) for v, g in zip(v_of, out["gene_id"], strict=False)]
    out["class"] = [role.get((v, g), "other") for v, g in zip(v_of, out["gene_id"], strict=False)]
    out["kind"] = np.where(out["ref"].str.len() == out["alt"].str.len(), "snv", "deletion")
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def validate_variants(
    scores: str | Path,
    features: str | Path,
    tss: str | Path,
    fasta: str | Path,
    sei: dict,
    out: str | Path,
    grammar: GrammarName = "demo",
    signal_fraction: float = 0.8,
    out_pairs: str | Path | None = None,
) -> pd.DataFrame:
    """Spearman of predicted and true deltas per bin role and variant kind (VALIDATION_COLUMNS).

    Args:
        scores: gta score-variants output
        out: output TSV: class, n_pairs, n_variants, spearman
        grammar: the planted grammar the targets were simulated with
        signal_fraction: the simulation's variance share of the signal
        out_pairs: output TSV: every pair with its class and true delta
    """
    from ..scoring import read_table

    table = read_table(scores)
    if table.empty:
        raise GTAError(f"{scores} has no scored variant; nothing to validate", input="scores")
    pairs = true_deltas(table, features, tss, fasta, sei, grammar, signal_fraction)
    rows = []
    for role in ("all",) + SITE_CLASSES:
        for kind in ("all", "deletion", "snv"):
            sel = pairs[((pairs["class"] == role) | (role == "all")) & ((pairs["kind"] == kind) | (kind == "all"))]
            if sel.empty:
                continue
            t, p = sel["true_delta"].to_numpy(), sel["delta"].to_numpy()
            rows.append(
                {
                    "class": role,
                    "kind": kind,
                    "n_pairs": len(sel),
                    "n_variants": sel["id"].nunique(),
                    "spearman": _spearman(p, t),
                    "mean_abs_true": float(np.abs(t).mean()),
                    "mean_abs_predicted": float(np.abs(p).mean()),
                }
            )
    result = pd.DataFrame(rows, columns=VALIDATION_COLUMNS)
    with atomic_path(out) as tmp:
        result.to_csv(tmp, sep="\t", index=False, float_format="%.4g")
    if out_pairs:
        with atomic_path(out_pairs) as tmp:
            pairs.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    for r in result[result["kind"] == "all"].itertuples():
        log.info(
            "%-9s %5d pairs: Spearman %.3f (mean |true delta| %.4f, |predicted| %.4f)",
            r[1],
            r.n_pairs,
            r.spearman,
            r.mean_abs_true,
            r.mean_abs_predicted,
        )
    return result
