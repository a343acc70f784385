"""A simulated population whose personal expression is known: the demo's test of `predict_individuals`.

The demo's gene-level expression is simulated from the features (gta.demo.simulation), so an individual's
true expression is the same planted signal computed on that individual's own haplotypes.

Genotypes (`simulate_population`), seeded by `seed`, over the windows of the chosen genes (merged where
they overlap; by default the test genes of targets.tsv, which are the model's test genes):
  - each region is cut into linkage blocks of 60-250 kb (uniform); a block has `FOUNDERS` founder
    haplotypes with frequencies drawn from a Dirichlet(0.8) distribution, and each individual's two
    haplotypes copy, in each block independently, a founder drawn with those frequencies: haplotypes are
    mosaics of a few founders, with full linkage within a block and none between blocks;
  - sites fall on average one per `SITE_SPACING` bp (uniform positions, never overlapping, no N in REF):
    SNVs, and deletions of 1-50 bp (`DELETION_SHARE` of the sites); the ALT allele of a site is carried
    by a set of its block's founders whose summed frequency is closest to a target frequency drawn from
    the neutral site frequency spectrum (density 1/f on [0.01, 0.5]), so allele frequencies are
    realistic and nearby sites are in linkage;
  - written as a phased VCF (GT 0|1), bgzip-compressed and tabix-indexed (pysam).

Expression. With PlantedSignal the population's normalisation frozen (gta.demo.variants), a haplotype's
true value is sqrt(signal_fraction) x [signal(stored window) + signal(haplotype window) -
signal(base window)], the windows built as predict_individuals builds them (gta.personal: every bin some
haplotype changes recomputed in float32 on REF and on each distinct allele set, the whole stored
window), so the reference haplotype has exactly the gene's simulated noiseless target. An individual's
noiseless expression is the mean of its two haplotypes' values (expression_noiseless.tsv: the ceiling);
the observed one adds N(0, sd^2) noise drawn per (seed, gene, individual), sd chosen so that the noise is
`noise_share` of the variance of a typical gene: sd^2 = noise_share / (1 - noise_share) x the median over
genes (with any variation) of the noiseless values' variance across individuals. Genes without variation
get the same noise, as genes without a cis effect do in real cohorts.

Both tables: one row per gene, column `gene_id`, then one column per individual (IND001, IND002, ...).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import GTAError
from ..formats import read_feature_classes, read_feature_genes, read_targets
from ..genome import open_fasta, read_padded, window_start
from ..io import atomic_path
from ..tss import read_tss
from .simulation import grammar_classes
from .variants import PlantedSignal

log = logging.getLogger("gta.demo.population")

FOUNDERS = 6
FOUNDER_ALPHA = 0.8
BLOCK_BP = (60_000, 250_000)
SITE_SPACING = 20_000
DELETION_SHARE = 0.15
MAX_DELETION = 50
MIN_FREQUENCY = 0.01


def _regions(genes: pd.DataFrame, n_bins: int, bin_size: int, grid: str) -> list[tuple[str, int, int]]:
    """The genes' windows merged where they overlap: (chrom, start, end), in gene-table chromosome order."""
    starts = np.asarray(window_start(genes["tss"].to_numpy(np.int64), n_bins, bin_size, grid), np.int64)
    out = []
    for chrom in dict.fromkeys(genes["chrom"]):
        s = np.sort(starts[(genes["chrom"] == chrom).to_numpy()])
        lo, hi = int(s[0]), int(s[0]) + n_bins * bin_size
        for a in s[1:]:
            if a <= hi:
                hi = max(hi, int(a) + n_bins * bin_size)
            else:
                out.append((chrom, lo, hi))
                lo, hi = int(a), int(a) + n_bins * bin_size
        out.append((chrom, lo, hi))
    return out


def _founder_set(freqs: np.ndarray, target: float, rng: np.random.Generator) -> np.ndarray:
    """Founders carrying a site: the prefix of a random founder order whose summed frequency is closest to
    `target` (never all founders: the site stays polymorphic)."""
    order = rng.permutation(len(freqs))
    cum = np.cumsum(freqs[order])[:-1]
    k = int(np.argmin(np.abs(cum - target))) + 1
    carried = np.zeros(len(freqs), bool)
    carried[order[:k]] = True
    return carried


def _block_sites(fa, chrom: str, lo: int, hi: int, n_hap: int, rng: np.random.Generator, records: list, haps: list):
    """Sites of one linkage block [lo, hi): appends (chrom, pos, ref, alt) to `records` and each site's
    carrier haplotypes (n_hap,) bool to `haps`."""
    freqs = rng.dirichlet(np.full(FOUNDERS, FOUNDER_ALPHA))
    founder = rng.choice(FOUNDERS, size=n_hap, p=freqs)
    n_sites = rng.poisson((hi - lo) / SITE_SPACING)
    last_end = lo
    for p in np.sort(rng.integers(max(lo, 1), hi, n_sites)):
        length = int(rng.integers(1, MAX_DELETION + 1)) if rng.random() < DELETION_SHARE else 0
        target = MIN_FREQUENCY * (0.5 / MIN_FREQUENCY) ** rng.random()  # density 1/f on [MIN_FREQUENCY, 0.5]
        carried = _founder_set(freqs, target, rng)
        p = int(p)
        ref = read_padded(fa, chrom, p, p + 1 + length)
        if p <= last_end or "N" in ref:
            continue
        alt = ref[0] if length else "ACGT"[("ACGT".index(ref) + int(rng.integers(1, 4))) % 4]
        records.append((chrom, p + 1, ref, alt))
        haps.append(carried[founder])
        last_end = p + len(ref)


def simulate_genotypes(
    fa, regions: Sequence[tuple[str, int, int]], n_individuals: int, seed: int
) -> tuple[list[tuple], np.ndarray]:
    """(records (chrom, pos, ref, alt), carriers (sites, individuals, 2) bool) over `regions` (module docstring)."""
    rng = np.random.default_rng([seed, 0x9E0])
    records: list[tuple] = []
    haps: list[np.ndarray] = []
    for chrom, lo, hi in regions:
        a = lo
        while a < hi:
            b = min(hi, a + int(rng.integers(*BLOCK_BP)))
            _block_sites(fa, chrom, a, b, 2 * n_individuals, rng, records, haps)
            a = b
    carriers = np.stack(haps).reshape(len(haps), n_individuals, 2) if haps else np.zeros((0, n_individuals, 2), bool)
    return records, carriers


def write_population_vcf(
    out: str | Path, records: Sequence[tuple], carriers: np.ndarray, samples: Sequence[str], fa
) -> None:
    """A phased VCF (bgzip + tabix when `out` ends in .gz), atomically; the index is written before the rename."""
    import pysam

    contigs = list(dict.fromkeys(r[0] for r in records))
    lines = ["##fileformat=VCFv4.2", "##source=gta simulate-population (demo: founder mosaics, neutral spectrum)"]
    lines += [f"##contig=<ID={c},length={len(fa[c])}>" for c in contigs]
    lines.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Phased genotype">')
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]))
    gt = np.where(carriers, "1", "0")
    for i, (chrom, pos, ref, alt) in enumerate(records):
        calls = "\t".join(np.char.add(np.char.add(gt[i, :, 0], "|"), gt[i, :, 1]))
        lines.append(f"{chrom}\t{pos}\tsite{i + 1}\t{ref}\t{alt}\t.\tPASS\t.\tGT\t{calls}")
    text = "\n".join(lines) + "\n"
    out = Path(out)
    if out.suffix != ".gz":
        with atomic_path(out, suffix=".vcf") as tmp:
            tmp.write_text(text)
        return
    with atomic_path(out.with_name(out.name + ".tbi")) as tmp_index, atomic_path(out, suffix=".vcf.gz") as tmp:
        plain = tmp.with_suffix("")
        plain.write_text(text)
        pysam.tabix_compress(str(plain), str(tmp), force=True)
        plain.unlink()
        pysam.tabix_index(str(tmp), preset="vcf", force=True)
        Path(str(tmp) + ".tbi").replace(tmp_index)


def simulate_population(
    features: str | Path,
    tss: str | Path,
    fasta: str | Path,
    sei: dict,
    targets: str | Path,
    out_vcf: str | Path,
    out_expression: str | Path,
    out_noiseless: str | Path,
    n_individuals: int = 200,
    seed: int = 0,
    noise_share: float = 0.5,
    signal_fraction: float = 0.8,
    grammar: str = "demo",
    genes: list[str] | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Demo: a phased population over the genes' windows and each individual's true expression (module docstring).

    Args:
        targets: targets.tsv of the simulation (its test genes are the default genes)
        out_vcf: output phased VCF (.vcf.gz: bgzip-compressed, with its .tbi index)
        out_expression: output TSV, genes x individuals: observed expression (noiseless + individual noise)
        out_noiseless: output TSV, genes x individuals: the noiseless expression (the ceiling)
        n_individuals: individuals simulated
        noise_share: the noise's share of a typical gene's variance across individuals (0 <= share < 1)
        signal_fraction: the simulation's variance share of the signal (expression.signal_fraction)
        grammar: the planted grammar the targets were simulated with ('demo' or 'alternative')
        genes: genes (symbols, GeneIDs or Ensembl ids; default: the test genes of `targets`)
        threads: CPU threads (torch)
    """
    from ..personal import Haplotypes, _sei_units
    from ..predict import SeiScorer
    from ..sei import KEPT
    from ..variants import Variant, place

    if threads:
        import torch

        torch.set_num_threads(threads)
    if grammar not in ("demo", "alternative"):
        raise GTAError(
            f"the population simulation supports grammars 'demo' and 'alternative', not {grammar!r}", input="grammar"
        )
    if not 0.0 <= noise_share < 1.0:
        raise GTAError(f"noise_share must be in [0, 1), got {noise_share}", input="noise_share")
    if n_individuals < 1:
        raise GTAError(f"n_individuals must be at least 1, got {n_individuals}", input="n_individuals")
    gene_id, attrs = read_feature_genes(features)
    n, tss_bin, bin_size = int(attrs["n_bins"]), int(attrs["tss_bin"]), int(attrs["bin_size"])
    grid, orient = str(attrs.get("grid", "tss")), str(attrs.get("orient", "reference"))
    every = read_tss(tss).set_index("gene_id").loc[gene_id].reset_index()
    scores = read_feature_classes(features, grammar_classes(grammar))
    signal = PlantedSignal(scores, tss_bin, grammar)
    chosen = _genes(every, targets, genes)
    fa = open_fasta(fasta)
    records, carriers = simulate_genotypes(fa, _regions(chosen, n, bin_size, grid), n_individuals, seed)
    samples = [f"IND{i + 1:0{max(3, len(str(n_individuals)))}d}" for i in range(n_individuals)]
    write_population_vcf(out_vcf, records, carriers, samples, fa)
    log.info(
        "wrote %s: %d sites (%d deletions), %d individuals, %d genes' windows",
        out_vcf,
        len(records),
        sum(len(r[2]) > 1 for r in records),
        n_individuals,
        len(chosen),
    )

    variants = [Variant(c, p, f"site{i + 1}", r, a) for i, (c, p, r, a) in enumerate(records)]
    pairs, _ = place(variants, chosen, n, bin_size, grid)
    counts: Counter = Counter()
    hap = Haplotypes(variants, carriers, counts)
    starts = np.asarray(window_start(chosen["tss"].to_numpy(np.int64), n, bin_size, grid), np.int64)
    by_gene = dict(list(pairs.groupby("gene_id")))
    for g, s, strand in zip(chosen["gene_id"], starts, chosen["strand"], strict=False):
        if g in by_gene:
            hap.add_gene(int(g), by_gene[g], int(s), (n, bin_size, grid, orient), strand == "-")
    scorer = SeiScorer.load(**sei)
    scorer.check_features(features)
    ref_scores, alt_scores = _sei_units(hap, fa, bin_size, scorer)
    cls = [KEPT.index(c) for c in grammar_classes(grammar)]
    row_of = {int(g): i for i, g in enumerate(gene_id)}
    noiseless = np.stack(
        [
            _true_values(
                hap.genes.get(int(g)), scores[row_of[int(g)]], signal, hap, ref_scores[:, cls], alt_scores[:, cls]
            )
            if int(g) in hap.genes
            else np.full(n_individuals, signal(scores[row_of[int(g)]][None])[0])
            for g in chosen["gene_id"]
        ]
    )
    noiseless *= np.sqrt(signal_fraction)
    var = noiseless.var(axis=1)
    typical = float(np.median(var[var > 0])) if (var > 0).any() else 1.0
    sd = np.sqrt(noise_share / (1.0 - noise_share) * typical)
    noise = np.stack(
        [np.random.default_rng([seed, 0x1D, int(g)]).standard_normal(n_individuals) for g in chosen["gene_id"]]
    )
    observed = noiseless + sd * noise
    log.info(
        "noiseless expression: %d of %d genes vary across individuals (median variance %.3g); noise sd %.3g "
        "(noise share %.2f)",
        int((var > 0).sum()),
        len(chosen),
        typical,
        sd,
        noise_share,
    )
    for table, out in ((observed, out_expression), (noiseless, out_noiseless)):
        frame = pd.DataFrame(table, columns=samples)
        frame.insert(0, "gene_id", chosen["gene_id"].to_numpy(np.int64))
        with atomic_path(out) as tmp:
            frame.to_csv(tmp, sep="\t", index=False, float_format="%.8g")
    return pd.DataFrame(records, columns=["chrom", "pos", "ref", "alt"])


def _true_values(gene: dict, stored: np.ndarray, signal, hap, ref_scores: np.ndarray, alt_scores: np.ndarray):
    """Per individual, the mean over its two haplotypes of the planted signal's value (unit scale): the stored
    window's value plus haplotype window minus base window (module docstring)."""
    base = stored.copy()
    for change in gene["changes"]:
        for col, u in change:
            base[col] = ref_scores[hap.unit_ref[u]]
    windows = [base]
    for change in gene["changes"]:
        w = base.copy()
        for col, u in change:
            w[col] = alt_scores[u]
        windows.append(w)
    y = signal(np.stack(windows))
    per_hap = signal(stored[None])[0] + y[1:] - y[0]
    return per_hap[gene["inverse"]].mean(axis=1)


def _genes(every: pd.DataFrame, targets: str | Path, genes: Sequence[str] | None) -> pd.DataFrame:
    """The features file's genes (tss rows) to simulate, sorted by GeneID: `genes`, or the test genes of targets."""
    from ..identifiers import match_identifiers

    if genes:
        ids = match_identifiers([str(g) for g in genes], every, "genes to simulate")
        if (ids < 0).any():
            raise GTAError("some genes asked for are not genes of the features file", input="genes")
        keep = set(int(g) for g in ids)
    else:
        tgt = read_targets(targets)
        keep = set(tgt.loc[tgt["split"] == "test", "gene_id"].astype(int))
    out = every[every["gene_id"].isin(keep)].sort_values("gene_id", kind="stable").reset_index(drop=True)
    if out.empty:
        raise GTAError(f"no genes to simulate: {targets} has no test genes in the features file", input="targets")
    return out
