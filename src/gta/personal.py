"""Personal expression: each individual's predicted expression from their phased genome, per haplotype:
`gta predict-individuals` and rule predict_individuals.

Haplotypes. Each haplotype of each sample carries ALL of that sample's ALT alleles in the gene's window at
once (not one variant at a time): a window bin is rebuilt from the FASTA with every allele of the
haplotype that it depends on (gta.variants.alt_bin with the haplotype's alleles: the rule score_variants
documents for one allele, applied to several; two ALT alleles of one haplotype whose REF spans overlap
cannot both be applied, and the later one is dropped and counted as 'overlapping_alleles').

Only the bins that some haplotype changes go through Sei, and each distinct (genome bin, allele set) is
computed once across all samples and genes of the shard: the allele set is the haplotype's alleles the bin
depends on (gta.variants.bin_alleles), so two samples, or two genes whose windows share a genome bin, with
the same alleles there share one Sei computation. The log and the counts file report the distinct
bin-haplotypes computed against the naive count (every haplotype's changed bins computed for each sample
and gene anew).

Prediction. As in score_variants, the changed bins' Sei scores are computed in float32 (no autocast, each
bin a Sei batch of its own, both strands) and never rounded to float16; the REF scores of every bin some
haplotype changes are recomputed the same way. Per gene, the base window is the features file's window
with those bins replaced by their recomputed REF scores; a haplotype's window is the base window with its
changed bins replaced by their ALT scores. Both go through the model in float32, and

    prediction = ref_prediction + model(haplotype window) - model(base window)

where ref_prediction is the model on the features file's window alone. So the differences between
haplotypes are the model's response to their alleles alone (no float16 step of the stored REF bins
enters them), and a haplotype that changes no bin has prediction = ref_prediction exactly. Haplotype
0 is the sample's mean of its two haplotypes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from . import GTAError
from .genome import open_fasta, window_start
from .scoring import Progress, chunk_range, merge_variant_scores, write_outputs
from .tss import read_tss
from .variants import Variant, alt_bin, bin_alleles, place, read_genotypes, ref_bin

log = logging.getLogger("gta.personal")

PREDICTION_COLUMNS = ["sample", "gene_id", "symbol", "haplotype", "prediction", "n_alt", "bins_changed"]


def personal_genes(genes: pd.DataFrame, model, asked: Sequence[str] | None) -> pd.DataFrame:
    """The genes of `genes` (tss.tsv rows of the features file) to predict, sorted by GeneID: `asked`
    (symbols, GeneIDs or Ensembl ids), or by default the model's test genes (its splits.tsv)."""
    from .identifiers import match_identifiers

    if asked:
        ids = match_identifiers([str(g) for g in asked], genes, "genes to predict")
        unknown = [a for a, g in zip(asked, ids, strict=False) if g < 0]
        if unknown:
            raise GTAError(
                f"{len(unknown)} genes asked for are not genes of the features file: "
                f"{', '.join(map(str, unknown[:10]))}; give symbols, GeneIDs or Ensembl ids of its genes",
                input="genes",
            )
        keep = set(int(g) for g in ids)
    else:
        splits = pd.read_csv(Path(model.folder) / "splits.tsv", sep="\t")
        keep = set(splits.loc[splits["split"] == "test", "gene_id"].astype(int))
        if not keep:
            raise GTAError(f"model {model} records no test genes in splits.tsv; name the genes", input="genes")
    out = genes[genes["gene_id"].isin(keep)].sort_values("gene_id", kind="stable").reset_index(drop=True)
    if out.empty:
        raise GTAError("none of the genes asked for is in the features file", input=("genes", "features"))
    return out


class Haplotypes:
    """Per gene, the distinct haplotypes of the samples in its window and the Sei units they need.

    units: {(chrom, bin start, variant indices the bin depends on): unit number}, shared by all genes;
    ref_units: {(chrom, bin start): number} of every bin some haplotype changes. Per gene: `inverse`
    (samples x 2 -> distinct haplotype), and per distinct haplotype its [(window column, unit)], its ALT
    allele count and its changed columns.
    """

    def __init__(self, variants: Sequence[Variant], carriers: np.ndarray, counts: Counter):
        self.variants, self.carriers, self.counts = variants, carriers, counts
        self.units: dict[tuple, int] = {}
        self.ref_units: dict[tuple[str, int], int] = {}
        self.unit_ref: list[int] = []  # per unit, its bin's REF unit
        self.genes: dict[int, dict] = {}

    def add_gene(self, gene_id: int, rows: pd.DataFrame, start: int, window: tuple, minus: bool) -> None:
        """The haplotypes of one gene: `rows` its (variant, gene) pairs (gta.variants.place), `start` its window's
        first base, `window` (n_bins, bin_size, grid, orient), `minus` its strand."""
        n, bin_size, _, orient = window
        idx = rows["variant"].to_numpy(np.int64)
        first, last = rows["bin_first"].to_numpy(), rows["bin_last"].to_numpy()
        n_samples = self.carriers.shape[1]
        pattern = self.carriers[idx].reshape(len(idx), -1).T  # (samples x 2 haplotypes, window variants)
        distinct, inverse = np.unique(pattern, axis=0, return_inverse=True)
        multiplicity = np.bincount(inverse.ravel(), minlength=len(distinct))
        changes, n_alt, cols = [], [], []
        for d, carried in enumerate(distinct):
            alleles = self._applicable([int(idx[k]) for k in np.flatnonzero(carried)], int(multiplicity[d]))
            pos = {v: k for k, v in enumerate(idx.tolist())}
            bins = sorted({b for v in alleles for b in range(int(first[pos[v]]), int(last[pos[v]]) + 1)})
            hap = [self.variants[v] for v in alleles]
            change = []
            for b in bins:
                s = start + b * bin_size
                used = bin_alleles(s, bin_size, hap)
                key = (hap[0].chrom, s, tuple(sorted(alleles[hap.index(u)] for u in used)))
                col = n - 1 - b if (orient == "transcript" and minus) else b
                if key not in self.units:
                    self.units[key] = len(self.units)
                    self.unit_ref.append(self.ref_units.setdefault(key[:2], len(self.ref_units)))
                change.append((col, self.units[key]))
            self.counts["naive_bins"] += len(change) * int(multiplicity[d])
            changes.append(change)
            n_alt.append(len(alleles))
            cols.append(frozenset(c for c, _ in change))
        self.genes[gene_id] = {
            "inverse": inverse.reshape(n_samples, 2),
            "changes": changes,
            "n_alt": np.array(n_alt, np.int64),
            "cols": cols,
        }

    def _applicable(self, carried: list[int], multiplicity: int) -> list[int]:
        """The haplotype's alleles sorted by position, without one whose REF span overlaps an earlier one's."""
        out, end = [], -1
        for v in sorted(carried, key=lambda i: (self.variants[i].start0, self.variants[i].end0)):
            if self.variants[v].start0 < end:
                self.counts["overlapping_alleles"] += multiplicity
                continue
            out.append(v)
            end = self.variants[v].end0
        return out


def _sei_units(hap: Haplotypes, fa, bin_size: int, scorer) -> tuple[np.ndarray, np.ndarray]:
    """Kept-class Sei scores (float32, exact) of every distinct REF bin and ALT unit, each bin a Sei batch of
    its own; an ALT sequence equal to its REF one reuses the REF scores."""
    from .sei import KEPT

    total = len(hap.ref_units) + len(hap.units)
    progress = Progress("Sei on changed bins (REF and distinct haplotype bins): %d/%d, %.1f bins/s", total)
    ref = np.empty((len(hap.ref_units), len(KEPT)), np.float32)
    ref_seq = {}
    for (chrom, s), u in hap.ref_units.items():
        ref_seq[(chrom, s)] = ref_bin(fa, chrom, s, bin_size)
        ref[u] = scorer.scores([ref_seq[(chrom, s)]], exact=True)[0, KEPT]
        progress(u + 1)
    alt = np.empty((len(hap.units), len(KEPT)), np.float32)
    for (chrom, s, alleles), u in hap.units.items():
        seq = alt_bin(fa, chrom, s, bin_size, [hap.variants[v] for v in alleles])
        same = seq == ref_seq[(chrom, s)]
        hap.counts["sei_bins"] += not same
        alt[u] = ref[hap.ref_units[(chrom, s)]] if same else scorer.scores([seq], exact=True)[0, KEPT]
        progress(len(hap.ref_units) + u + 1)
    hap.counts["sei_bins"] += len(ref)
    return ref, alt


def predict_individuals(
    model: str | Path,
    vcf: str | Path,
    features: str | Path,
    tss: str | Path,
    fasta: str | Path,
    sei: dict,
    out: str | Path,
    *,
    samples: list[str] | None = None,
    genes: list[str] | None = None,
    prompts: str | Path | None = None,
    cell_type: str = "GM12878 lymphoblastoid cells",
    shard: str = "1-of-1",
    unphased: Literal["error", "as_phased"] = "error",
    ref_check: Literal["stop", "flag", "skip"] = "stop",
    backbone: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    batch_size: int = 32,
    out_counts: str | Path | None = None,
) -> pd.DataFrame:
    """Predict each sample's expression per haplotype from a phased VCF (shard `shard` of the genes).

    Writes `out` (PREDICTION_COLUMNS, docs/formats.md: one row per sample, gene and haplotype 1, 2 and 0 =
    their mean; sorted by gene_id, sample, haplotype) and, with `out_counts`, a TSV of counts (what the VCF
    held, missing and unphased calls, the distinct and naive bin-haplotypes, Sei bins computed).

    Args:
        model: trained model folder or its config.json
        vcf: phased VCF, VCF.gz or BCF with the samples' genotypes (GT), on the FASTA's genome build
        features: features.h5 the model was trained on (its REF bins; recording its FASTA and Sei)
        tss: tss.tsv of the features file
        fasta: the genome the features were computed on
        out: output table (.parquet or .tsv)
        samples: samples to predict (default: every sample of the VCF)
        genes: genes to predict: symbols, GeneIDs or Ensembl ids (default: the model's test genes)
        prompts: prompts.jsonl (else MANE names)
        shard: which shard of the genes (sorted by GeneID), 'I-of-N'
        unphased: an unphased heterozygous call: stop with an error, or read it in its written order
        ref_check: a REF allele that differs from the FASTA: stop, flag (keep) or skip the variant
        backbone: backbone folder or hub id (default: the one the model records)
        device: where the model runs: 'auto', 'cpu', 'cuda' or 'cuda:N'
        threads: CPU threads (torch)
        batch_size: haplotype windows per model batch (each gene's windows are batched on their own)
        out_counts: output TSV of counts
    """
    import torch

    from .predict import SeiScorer, gene_prompts
    from .pretrained import GTAModel
    from .provenance import check_fasta
    from .scoring import _check_provenance, check_orientation
    from .sei.inference import parse_shard

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    fa = open_fasta(fasta)
    variants, carriers, names, counts = read_genotypes(vcf, list(fa.keys()), samples, fa, ref_check, unphased)
    gta = GTAModel.from_pretrained(model, backbone, device)
    w = gta.config.get("window", {})
    window = (gta.n_bins, int(w.get("bin_size", 4096)), str(w.get("grid", "tss")), str(w.get("orient", "reference")))
    gene_id, _, x_ref = gta.load_features(features)
    every = read_tss(tss)
    every = every[every["gene_id"].isin(gene_id)].reset_index(drop=True)
    chosen = personal_genes(every, gta, genes)
    pairs, _ = place(variants, chosen, *window[:3])
    if pairs.empty:
        raise GTAError(
            f"VCF {vcf} has no variant in any of the {len(chosen)} genes' windows ({window[0]} bins of "
            f"{window[1]:,} bp around each TSS); give a VCF that covers these genes (check its chromosomes and "
            "genome build), or other genes",
            input=("vcf", "genes"),
        )
    if parse_shard(shard, "shard")[0] != 1:  # the VCF's counts go to shard 1 only, so merged counts count it once
        counts = Counter({k: 0 for k in counts})
    lo, hi = chunk_range(len(chosen), shard)
    chosen = chosen.iloc[lo:hi].reset_index(drop=True)
    with_variants = set(pairs["gene_id"])
    counts.update(
        {
            "genes": len(chosen),
            "genes_without_variants": int((~chosen["gene_id"].isin(with_variants)).sum()),
            "haplotypes": 2 * len(names) * len(chosen),
        }
    )
    prov = _check_provenance(features, chosen, tss)
    check_fasta(features, fasta, chosen["chrom"], prov)
    scorer = SeiScorer.load(**sei)
    scorer.check_features(features)
    check_orientation(window, scorer)
    hap = Haplotypes(variants, carriers, counts)
    starts = np.asarray(window_start(chosen["tss"].to_numpy(np.int64), *window[:3]), np.int64)
    by_gene = dict(list(pairs.groupby("gene_id")))
    for g, s, strand in zip(chosen["gene_id"], starts, chosen["strand"], strict=False):
        if g in by_gene:
            hap.add_gene(int(g), by_gene[g], int(s), window, strand == "-")
    counts["distinct_bins"] = len(hap.units)
    counts["ref_bins"] = len(hap.ref_units)
    log.info(
        "shard %s: %d genes (%d without variants in their window), %d samples; distinct bin-haplotypes %d "
        "(+ %d REF bins) against %d naive (per sample, haplotype and gene): %.1fx fewer",
        shard,
        len(chosen),
        counts["genes_without_variants"],
        len(names),
        len(hap.units),
        len(hap.ref_units),
        counts["naive_bins"],
        counts["naive_bins"] / max(len(hap.units), 1),
    )
    ref_scores, alt_scores = _sei_units(hap, open_fasta(fasta), window[1], scorer)
    row_of = {int(g): i for i, g in enumerate(gene_id)}
    text = dict(zip(chosen["gene_id"], gene_prompts(chosen, cell_type, prompts), strict=False))
    ids = dict(zip(chosen["gene_id"], gta.encode([text[g] for g in chosen["gene_id"]]), strict=False))
    progress = Progress("GTA: %d/%d genes, %.2f genes/s overall", len(chosen), t0)
    tables = []
    for k, (g, sym, strand) in enumerate(zip(chosen["gene_id"], chosen["symbol"], chosen["strand"], strict=False)):
        x = x_ref[row_of[int(g)]]
        ref_pred = _predict(gta, x[None], ids[g], strand, sym, batch_size)[0]
        tables.append(
            _gene_rows(
                gta,
                hap.genes.get(int(g)),
                x,
                ref_pred,
                ref_scores,
                alt_scores,
                hap,
                names,
                (int(g), sym, strand, ids[g]),
                batch_size,
                counts,
            )
        )
        progress(k + 1)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=PREDICTION_COLUMNS)
    write_outputs(table, out, counts, out_counts)
    el = time.perf_counter() - t0
    log.info(
        "wrote %s: %d rows, %d samples x %d genes in %.1f s (%.2f samples x genes/s); counts: %s",
        out,
        len(table),
        len(names),
        len(chosen),
        el,
        len(names) * len(chosen) / max(el, 1e-9),
        ", ".join(f"{k} {c}" for k, c in counts.items()),
    )
    return table


def _predict(model, x: np.ndarray, ids, strand: str, gene: str, batch_size: int) -> np.ndarray:
    """The model on windows `x` (k, n_bins, classes) of one gene, in float32 (no autocast), batches of its own."""
    n = len(x)
    return model.predict(x, [ids] * n, batch_size=batch_size, strand=[strand] * n, autocast="float32", genes=[gene] * n)


def _gene_rows(model, gene: dict | None, x, ref_pred, ref_scores, alt_scores, hap, names, info, batch_size, counts):
    """One gene's rows: per sample its haplotypes 1, 2 and their mean (0)."""
    g, sym, strand, ids = info
    n = len(names)
    if gene is None:  # no variant in the window: every haplotype is the reference
        pred, n_alt, changed = np.full((n, 2), ref_pred), np.zeros((n, 2), np.int64), np.zeros((n, 3), np.int64)
    else:
        inv, changes = gene["inverse"], gene["changes"]
        base = x.copy()
        for change in changes:
            for col, u in change:
                base[col] = ref_scores[hap.unit_ref[u]]
        windows, which = [base], []
        for d, change in enumerate(changes):
            if change:
                w = base.copy()
                for col, u in change:
                    w[col] = alt_scores[u]
                windows.append(w)
                which.append(d)
        y = np.full(len(changes), ref_pred)
        if which:
            out = _predict(model, np.stack(windows), ids, strand, sym, batch_size)
            y[which] = ref_pred + (out[1:] - out[0])
            counts["model_windows"] += len(windows)
        pred, n_alt = y[inv], gene["n_alt"][inv]
        cols = gene["cols"]
        changed = np.array([[len(cols[a]), len(cols[b]), len(cols[a] | cols[b])] for a, b in inv], np.int64).reshape(
            n, 3
        )
    rows = []
    for h, p, a, c in (
        (1, pred[:, 0], n_alt[:, 0], changed[:, 0]),
        (2, pred[:, 1], n_alt[:, 1], changed[:, 1]),
        (0, pred.mean(axis=1), n_alt.sum(axis=1), changed[:, 2]),
    ):
        rows.append(pd.DataFrame({"sample": names, "haplotype": h, "prediction": p, "n_alt": a, "bins_changed": c}))
    table = pd.concat(rows, ignore_index=True)
    table.insert(1, "gene_id", np.int64(g))
    table.insert(2, "symbol", sym)
    table["haplotype"] = table["haplotype"].astype(np.int8)
    table = table.sort_values(["sample", "haplotype"], kind="stable").reset_index(drop=True)
    return table[PREDICTION_COLUMNS]


def merge_individual_predictions(
    predictions: list[str | Path], counts: list[str | Path], out: str | Path, out_counts: str | Path
) -> None:
    """Concatenate the shards' predictions (in shard order: the genes stay sorted) and sum their counts.

    Args:
        predictions: the shards' tables, in shard order
        counts: the shards' counts TSVs
        out: output table (.parquet or .tsv)
        out_counts: output counts TSV
    """
    merge_variant_scores(predictions, counts, out, out_counts)
