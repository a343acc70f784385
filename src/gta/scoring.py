"""Variant effects: every VCF variant in a gene's window, scored as GTA(ALT) - GTA(REF): `gta score-variants`.

Touched bins. For a (variant, gene) pair only the window bins the variant's REF span touches differ
between REF and ALT. Each such bin is computed through Sei from the FASTA twice, on the reference
(gta.variants.ref_bin) and on the ALT haplotype (gta.variants.alt_bin: each bin stays 4,096 bp; an
insertion keeps the middle of the grown bin, a deletion pulls bases in from its right), as one Sei batch
of its own, in float32 whatever the `sei` dtype (no autocast, no TF32 on GPUs), not rounded to float16,
on both strands as the Sei stage does. A bin is computed once per variant however many genes' windows
hold it.

delta. The REF window is the gene's window from the features file with its touched bins replaced by
their REF scores, the ALT window the same with their ALT scores; both go through the model as one
float32 batch of two (no autocast), and delta = model(ALT window) - model(REF window). So delta is the
model's response to the variant's change alone: it does not depend on the other variants in the VCF,
on the chunk or on any batch, and it is not quantised by the features file's float16 storage (an effect
smaller than one float16 step of a class score still comes out). A variant whose ALT bin sequences are
its REF ones (ALT == REF) has delta exactly 0, without a forward pass.

ref_prediction is the model on the gene's window from the features file alone (a batch of one, float32):
one number per gene whatever the chunk. alt_prediction = ref_prediction + delta. (The REF window of
delta differs from the stored one in the touched bins, which are recomputed in float32, so
model(REF window) may differ from ref_prediction in its last digits; delta does not carry that.)
"""

from __future__ import annotations

from typing import Literal

import contextlib
import dataclasses
import logging
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from . import GTAError
from .genome import open_fasta, window_start
from .io import atomic_path
from .provenance import check_fasta
from .sei.features import remove_stale_shards
from .tss import read_tss
from .variants import alt_bin, place, read_vcf, ref_bin

log = logging.getLogger("gta.scoring")

CHUNK_NAME = re.compile(r"^\d+-of-\d+\.(counts\.tsv|tsv|parquet)$")  # a chunk's files (rule score_variants)
SCORE_COLUMNS = [
    "id",
    "chrom",
    "pos",
    "ref",
    "alt",
    "gene_id",
    "symbol",
    "distance",
    "bin",
    "bins_touched",
    "ref_prediction",
    "alt_prediction",
    "delta",
    "ref_mismatch",
]


def chunk_range(n: int, chunk: str) -> tuple[int, int]:
    """[lo, hi) of chunk 'I-of-N' among n variants (contiguous, near-equal)."""
    from .sei.inference import parse_shard

    i, k = parse_shard(chunk, "chunk")
    bounds = np.linspace(0, n, k + 1).round().astype(int)
    return int(bounds[i - 1]), int(bounds[i])


def _window_bins(
    pairs: pd.DataFrame, genes: pd.DataFrame, n_bins: int, bin_size: int, grid: str, orient: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pair row, window bin index as the model sees it, absolute bin start) of every touched bin, by pair
    row and then bin, as three int64 arrays."""
    g = genes.set_index("gene_id")
    tss = g["tss"].loc[pairs["gene_id"]].to_numpy(np.int64)
    minus = (g["strand"].loc[pairs["gene_id"]] == "-").to_numpy(bool) & (orient == "transcript")
    first = pairs["bin_first"].to_numpy(np.int64)
    k = pairs["bin_last"].to_numpy(np.int64) - first + 1
    row = np.repeat(np.arange(len(pairs), dtype=np.int64), k)
    b = first[row] + np.arange(len(row), dtype=np.int64) - np.repeat(np.cumsum(k) - k, k)
    start = np.asarray(window_start(tss, n_bins, bin_size, grid), np.int64)[row] + b * bin_size
    return row, np.where(minus[row], n_bins - 1 - b, b), start


@dataclasses.dataclass(frozen=True)
class PairBins:
    """The touched bins of each (variant, gene) pair: pair `row`'s are [(window column, unit)] =
    zip(col, unit)[offsets[row]:offsets[row + 1]] (compact arrays: a million variants make ~1e7 pairs)."""

    offsets: np.ndarray
    col: np.ndarray
    unit: np.ndarray

    def __getitem__(self, row: int) -> list[tuple[int, int]]:
        a, b = self.offsets[row], self.offsets[row + 1]
        return list(zip(self.col[a:b].tolist(), self.unit[a:b].tolist(), strict=True))

    def first_col(self) -> np.ndarray:
        """Each pair's first touched window column."""
        return self.col[self.offsets[:-1]]


def write_table(table: pd.DataFrame, out: str | Path) -> None:
    """Parquet when `out` ends in .parquet, else TSV; atomically."""
    out = Path(out)
    with atomic_path(out, suffix=out.suffix) as tmp:
        if out.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def write_outputs(table: pd.DataFrame, out: str | Path, counts: Counter, out_counts: str | Path | None) -> None:
    """The scores and (with `out_counts`) the counts, both written under temporary names first and renamed
    only when both are complete: a failed write leaves neither (the counts are renamed first, so at worst a
    failing last rename leaves counts without scores, never scores without their counts)."""
    with contextlib.ExitStack() as stack:
        scores = stack.enter_context(atomic_path(out, suffix=Path(out).suffix))
        if out_counts:
            write_counts(counts, stack.enter_context(atomic_path(out_counts)))
        write_table(table, scores)


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, sep="\t")


def score_variants(
    model: str | Path,
    vcf: str | Path,
    features: str | Path,
    tss: str | Path,
    fasta: str | Path,
    sei: dict,
    out: str | Path,
    *,
    prompts: str | Path | None = None,
    cell_type: str = "GM12878 lymphoblastoid cells",
    chunk: str = "1-of-1",
    ref_check: Literal["stop", "flag", "skip"] = "stop",
    backbone: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    out_counts: str | Path | None = None,
) -> pd.DataFrame:
    """Score chunk `chunk` of the VCF's variants against every gene of `tss` whose window they touch.

    Writes `out` (one row per variant and gene, SCORE_COLUMNS; Parquet or TSV by suffix) and, with
    `out_counts`, a TSV of counts (what the VCF held, what was skipped and why, what was scored).

    Args:
        model: trained model folder or its config.json (gta train-gta --out-model)
        vcf: VCF, VCF.gz or BCF (multi-allelic records are split)
        features: features.h5: the REF features (recording its FASTA, Sei and gene windows: these must match)
        tss: tss.tsv of the features file: the genes scored
        fasta: the genome the features were computed on
        out: output table (.parquet or .tsv)
        prompts: prompts.jsonl (else MANE names)
        chunk: which chunk of the VCF's variants, 'I-of-N'
        ref_check: a REF allele that differs from the FASTA: stop, flag the row, or skip the variant
        backbone: backbone folder or hub id (default: the one the model records)
        device: where the model runs: 'auto', 'cpu', 'cuda' or 'cuda:N'
        threads: CPU threads (torch)
        out_counts: output TSV of counts (skipped, outside windows, scored)
    """
    import torch

    from .predict import SeiScorer, gene_prompts
    from .pretrained import GTAModel

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    fa = open_fasta(fasta)
    vcf_read = read_vcf(vcf, list(fa.keys()), ref_check, fa)  # before the model: a bad VCF stops at once
    gta = GTAModel.from_pretrained(model, backbone, device)
    w = gta.config.get("window", {})
    window = (gta.n_bins, int(w.get("bin_size", 4096)), str(w.get("grid", "tss")), str(w.get("orient", "reference")))
    gene_id, _, x_ref = gta.load_features(features)
    genes = read_tss(tss)
    genes = genes[genes["gene_id"].isin(gene_id)].reset_index(drop=True)
    prov = _check_provenance(features, genes, tss)
    variants, pairs, counts = _chunk_pairs(*vcf_read, chunk, genes, window)
    check_fasta(features, fasta, genes.loc[genes["gene_id"].isin(pairs["gene_id"]), "chrom"], prov)
    scorer = SeiScorer.load(**sei)
    scorer.check_features(features)
    check_orientation(window, scorer)
    per_pair, ref_bins, alt_bins = _touched_bins(pairs, genes, variants, window, fa, scorer)
    counts["alt_bins"] = len(alt_bins)
    text = dict(zip(genes["gene_id"], gene_prompts(genes, cell_type, prompts), strict=False))
    strand = dict(zip(genes["gene_id"], genes["strand"], strict=False))
    x_ref = x_ref[[{g: i for i, g in enumerate(gene_id)}[g] for g in genes["gene_id"]]]
    ref_pred, delta = _predict_pairs(
        gta, pairs, per_pair, ref_bins, alt_bins, dict(zip(genes["gene_id"], x_ref, strict=False)), text, t0, strand
    )
    table = _score_table(variants, pairs, per_pair, ref_pred, delta, gta.n_bins // 2)
    write_outputs(table, out, counts, out_counts)
    el = time.perf_counter() - t0
    log.info(
        "wrote %s: %d rows; %d variants in %.1f s (%.2f variants/s, %.2f pairs/s); counts: %s",
        out,
        len(table),
        counts["chunk_variants"],
        el,
        counts["chunk_variants"] / max(el, 1e-9),
        len(pairs) / max(el, 1e-9),
        ", ".join(f"{k} {c}" for k, c in counts.items()),
    )
    return table


def check_orientation(window: tuple, scorer) -> None:
    """A model that reads its windows in transcript orientation needs ALT bins averaged over both strands."""
    if window[3] == "transcript" and not scorer.reverse_complement:
        raise GTAError(
            "the model reads its windows in transcript orientation, so the Sei scores of ALT bins must be "
            "averaged over both strands: use reverse_complement true",
            input="sei.reverse_complement",
        )


def _check_provenance(features, genes: pd.DataFrame, tss) -> dict:
    """The features file's provenance (gta.provenance): it must record it, since its bins are mixed with
    bins recomputed now, and its genes' windows must be those of `tss`."""
    from .formats import read_provenance
    from .provenance import check_gene_windows, missing_provenance

    prov = read_provenance(features)
    missing = missing_provenance(prov)
    if missing:
        raise GTAError(
            f"the features file {features} records no {', '.join(missing)} (made elsewhere, or before these were "
            "recorded): scoring mixes its bins with bins recomputed from the FASTA and Sei, so it must record "
            "what it was made from; recompute it with predict_sei and merge_features (features.precomputed: null)",
            input="features",
        )
    check_gene_windows(features, genes, tss, prov)
    return prov


def _chunk_pairs(variants: list, counts: Counter, chunk: str, genes: pd.DataFrame, window: tuple):
    """The chunk's variants (of the VCF's `variants`), their (variant, gene) pairs and the counts; the VCF's own
    `counts` go to chunk 1 only (which may be empty), so that merged counts count each record once."""
    from .sei.inference import parse_shard

    if parse_shard(chunk, "chunk")[0] != 1:
        counts = Counter({k: 0 for k in counts})
    lo, hi = chunk_range(len(variants), chunk)
    variants = variants[lo:hi]
    pairs, outside = place(variants, genes, *window[:3])
    counts.update({"chunk_variants": len(variants), "outside_windows": outside, "scored_pairs": len(pairs)})
    log.info(
        "chunk %s: variants %d-%d of the VCF, %d (variant, gene) pairs, %d variants in no window of %d genes",
        chunk,
        lo,
        hi,
        len(pairs),
        outside,
        len(genes),
    )
    return variants, pairs, counts


def pair_units(pairs: pd.DataFrame, genes: pd.DataFrame, window: tuple) -> tuple[PairBins, list[tuple[int, int]]]:
    """(per pair its touched bins as (window column, unit), the units): a unit is a distinct (variant index,
    absolute bin start), however many genes' windows hold the bin, numbered in order of first use."""
    n, bin_size, grid, orient = window
    rows, cols, starts = _window_bins(pairs, genes, n, bin_size, grid, orient)
    of_variant = pairs["variant"].to_numpy(np.int64)[rows]
    # units: distinct (variant, bin start), numbered in order of first use (bin starts are > -2**31)
    key = (of_variant << 32) + (starts + (1 << 31))
    distinct, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    unit_id = np.empty(len(distinct), np.int64)
    unit_id[order] = np.arange(len(distinct))
    per_pair = PairBins(np.searchsorted(rows, np.arange(len(pairs) + 1)), cols, unit_id[inverse.ravel()])
    units = list(zip(of_variant[first[order]].tolist(), starts[first[order]].tolist(), strict=True))
    return per_pair, units


def _touched_bins(pairs: pd.DataFrame, genes: pd.DataFrame, variants, window: tuple, fa, scorer):
    """Sei scores (kept classes) on REF and on ALT of every distinct touched bin, one per (variant, absolute
    start) however many genes' windows hold it, and per pair its [(window column, bin)]. A bin's REF and ALT
    sequences are one float32 Sei batch of their own, so their scores depend on nothing else; when they are
    the same sequence, ALT is REF exactly."""
    from .sei import KEPT

    per_pair, units = pair_units(pairs, genes, window)
    bin_size = window[1]
    ref_scores = np.empty((len(units), len(KEPT)), np.float32)
    alt_scores = np.empty_like(ref_scores)
    progress = Progress("Sei on touched bins (REF and ALT): %d/%d, %.1f bins/s", len(units))
    for u, (v, start) in enumerate(units):
        var = variants[v]
        ref, alt = ref_bin(fa, var.chrom, start, bin_size), alt_bin(fa, var.chrom, start, bin_size, var)
        both = scorer.scores([ref] if alt == ref else [ref, alt], exact=True)[:, KEPT]
        ref_scores[u], alt_scores[u] = both[0], both[-1]
        progress(u + 1)
    return per_pair, ref_scores, alt_scores


class Progress:
    """Logs `message % (done, total, rate)` every 30 s and at the end; the rate counts from `start`."""

    def __init__(self, message: str, total: int, start: float | None = None):
        self.message, self.total = message, total
        self.start = time.perf_counter() if start is None else start
        self.last = time.perf_counter()

    def __call__(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.last > 30 or done >= self.total:
            log.info(self.message, done, self.total, done / max(now - self.start, 1e-9))
            self.last = now


def _predict(model, x: np.ndarray, ids, strand: str, gene: str) -> np.ndarray:
    """The one place scoring runs the model: windows `x` (k, n_bins, classes) of one gene (`gene`, named in
    errors) with its prompt `ids` and `strand`, as one float32 batch (no autocast) of their own, so the numbers
    depend on `x` alone."""
    n = len(x)
    return model.predict(x, [ids] * n, batch_size=n, strand=[strand] * n, autocast="float32", genes=[gene] * n)


def _predict_pairs(
    model,
    pairs: pd.DataFrame,
    per_pair: PairBins,
    ref_bins: np.ndarray,
    alt_bins: np.ndarray,
    x_ref: dict,
    text: dict,
    t0: float,
    strand: dict,
) -> tuple[dict, np.ndarray]:
    """ref_prediction per gene (its features-file window alone) and each pair's delta (its REF and ALT
    windows in one batch; exactly 0, without a forward pass, when the two windows are equal). Windows are in
    the model's recorded orientation; `strand` {gene: '+'/'-'} turns them to transcript order."""
    genes = pairs["gene_id"].unique()
    ids = dict(zip(genes, model.encode([text[g] for g in genes]), strict=False))
    symbol = dict(zip(pairs["gene_id"], pairs["symbol"], strict=False))
    ref_pred = {g: _predict(model, x_ref[g][None], ids[g], strand[g], symbol[g])[0] for g in genes}
    delta = np.zeros(len(pairs))
    progress = Progress("GTA: %d/%d pairs, %.1f variant-gene pairs/s overall", len(pairs), t0)
    for row, g in enumerate(pairs["gene_id"]):
        x = np.stack([x_ref[g], x_ref[g]])
        for col, u in per_pair[row]:
            x[0, col], x[1, col] = ref_bins[u], alt_bins[u]
        if (x[0] != x[1]).any():
            ref, alt = _predict(model, x, ids[g], strand[g], symbol[g])
            delta[row] = alt - ref
        progress(row + 1)
    return ref_pred, delta


def _score_table(
    variants, pairs: pd.DataFrame, per_pair: PairBins, ref_pred: dict, delta: np.ndarray, tss_bin: int
) -> pd.DataFrame:
    v = [variants[i] for i in pairs["variant"]]
    ref = np.array([ref_pred[g] for g in pairs["gene_id"]], np.float64)
    return pd.DataFrame(
        {
            "id": [x.id for x in v],
            "chrom": [x.chrom for x in v],
            "pos": [x.pos for x in v],
            "ref": [x.ref for x in v],
            "alt": [x.alt for x in v],
            "gene_id": pairs["gene_id"].to_numpy(np.int64),
            "symbol": pairs["symbol"].to_numpy(),
            "distance": pairs["distance"].to_numpy(np.int64),
            "bin": per_pair.first_col() - tss_bin,
            "bins_touched": (pairs["bin_last"] - pairs["bin_first"] + 1).to_numpy(np.int64),
            "ref_prediction": ref,
            "alt_prediction": ref + delta,
            "delta": delta,
            "ref_mismatch": [x.ref_mismatch for x in v],
        },
        columns=SCORE_COLUMNS,
    )


def write_counts(counts: Counter, out: str | Path) -> None:
    with atomic_path(out) as tmp:
        pd.DataFrame({"what": list(counts), "n": [int(c) for c in counts.values()]}).to_csv(tmp, sep="\t", index=False)


def merge_variant_scores(
    scores: list[str | Path], counts: list[str | Path], out: str | Path, out_counts: str | Path
) -> None:
    """Concatenate the chunks' tables (in chunk order) and sum their counts; then delete the chunk files
    of an earlier `variants.chunks` beside them ('I-of-N.*' not among `scores` and `counts`).

    Args:
        scores: the chunks' tables, in chunk order
        counts: the chunks' counts TSVs
        out: output table (.parquet or .tsv)
        out_counts: output counts TSV
    """
    tables = [read_table(p) for p in scores]
    tables = [t for t in tables if len(t)] or tables[:1]
    total: Counter = Counter()
    for c in counts:
        t = pd.read_csv(c, sep="\t")
        total.update(dict(zip(t["what"], t["n"].astype(int), strict=False)))
    write_outputs(pd.concat(tables, ignore_index=True), out, total, out_counts)
    remove_stale_shards([*scores, *counts], CHUNK_NAME)
    log.info("wrote %s from %d chunks; %s", out, len(scores), ", ".join(f"{k} {c}" for k, c in total.items()))
