"""Variant scoring throughput: only the bins a variant touches through Sei vs the whole window per pair.

    python benchmarks/bench_variants.py [--n-bins 51] [--variants 100] [--genes 32] [--spacing 100000]
                                        [--width 0.03125] [--threads 1] [--naive-pairs 12]

gta.scoring.score_variants keeps every other bin's features from the features file and sends through Sei
only the bins each variant's REF span touches, on the reference and on the ALT haplotype together
(gta.variants.ref_bin, alt_bin; float32), once per (variant, bin) however many genes' windows share that
bin. The naive alternative recomputes all N bins of the ALT window of every (variant, gene) pair. Both
then run GTA once per pair on the ALT window (score_variants on REF and ALT together).
Expected: the Sei part is about N / (2 x bins touched per pair) times cheaper.

Setup (in a temporary folder): a synthetic chr21, `--genes` TSSs from 14 Mb on, `--spacing` bp apart
(jittered, mixed strands) so that windows overlap, genome-grid windows of N bins, features from the
Sei stage (run_shard + merge_features, float16 storage) with the demo Sei at `--width`, an untrained GTA
model on a tiny random Llama backbone (its cost is small; the ratio of interest is the Sei one), and
a VCF of `--variants` SNVs and small indels inside the genes' windows, REF from the FASTA.

Timed:
  (a) score_variants end to end (model loading, VCF reading and REF check, Sei on the touched bins,
      GTA on REF and ALT, writing the table), and its Sei part alone (gta.scoring._touched_bins,
      run again here with the same kind of scorer);
  (b) the whole-window alternative on `--naive-pairs` pairs spread over all pairs: alt_bin for the
      touched bins, the reference for the others, SeiScorer.scores on all N, then GTA; its per-pair
      cost is scaled to all pairs. Its end-to-end time is score_variants' time with the Sei part
      replaced by the whole-window Sei part (loading, I/O and GTA are the same work in both).
Sei runs in fp32 so numbers compare across machines.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gta.demo.genome import write_synthetic_genome
from gta.demo.sei import build_demo_sei, make_demo_projection
from gta.genome import open_fasta, read_padded, window_start
from gta.hardware import tune_malloc
from gta.model import GTA
from gta.options import ModelConfig, TrainConfig
from gta.predict import SeiScorer, gene_prompts
from gta.pretrained import GTAModel, save_model
from gta.scoring import _touched_bins, score_variants
from gta.sei import KEPT
from gta.testing import write_tiny_backbone
from gta.sei.checkpoint import save_sei
from gta.sei.features import merge_features
from gta.sei.inference import WindowSpec, run_shard
from gta.train import feature_window, load_features
from gta.tss import read_tss
from gta.variants import alt_bin, place, read_vcf, ref_bin

BIN = 4096
GRID = "genome"
CELL_TYPE = "GM12878 lymphoblastoid cells"


def write_genes(path: Path, n_genes: int, spacing: int, rng: np.random.Generator) -> pd.DataFrame:
    """A TSS table of n_genes on chr21 from 14 Mb on, about `spacing` bp apart, mixed strands."""
    jitter = rng.integers(-spacing // 4, spacing // 4 + 1, n_genes)
    genes = pd.DataFrame(
        {
            "gene_id": np.arange(1, n_genes + 1),
            "symbol": [f"G{i}" for i in range(1, n_genes + 1)],
            "ensembl_gene": "",
            "name": "",
            "chrom": "chr21",
            "tss": 14_000_000 + np.arange(n_genes) * spacing + jitter,
            "strand": rng.choice(["+", "-"], n_genes),
        }
    )
    genes.to_csv(path, sep="\t", index=False)
    return genes


def write_vcf(
    path: Path, fa, genes: pd.DataFrame, n_bins: int, n_variants: int, rng: np.random.Generator
) -> dict[str, int]:
    """n_variants SNVs (60%), deletions (20%, 1-20 bp) and insertions (20%, 1-20 bp) inside the genes'
    windows, REF from the FASTA; returns how many of each kind."""
    ws = np.asarray(window_start(genes["tss"].to_numpy(np.int64), n_bins, BIN, GRID))
    lo, hi = int(ws.min()), int(ws.max()) + n_bins * BIN - 32
    rows, kinds = [], {"snv": 0, "deletion": 0, "insertion": 0}
    while len(rows) < n_variants:
        start0 = int(rng.integers(lo, hi))
        kind = rng.choice(["snv", "deletion", "insertion"], p=[0.6, 0.2, 0.2])
        k = int(rng.integers(1, 21))
        ref = read_padded(fa, "chr21", start0, start0 + (k + 1 if kind == "deletion" else 1))
        if "N" in ref:
            continue
        if kind == "snv":
            alt = str(rng.choice([b for b in "ACGT" if b != ref]))
        elif kind == "deletion":
            alt = ref[0]
        else:
            alt = ref + "".join(rng.choice(list("ACGT"), k))
        kinds[kind] += 1
        rows.append((start0 + 1, ref, alt))
    rows.sort()
    with open(path, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n")
        fh.write(f"##contig=<ID=chr21,length={len(fa['chr21'])}>\n")
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for i, (pos, ref, alt) in enumerate(rows):
            fh.write(f"chr21\t{pos}\tv{i + 1}\t{ref}\t{alt}\t.\tPASS\t.\n")
    return kinds


def write_model(folder: Path, backbone: Path, features: Path, n_bins: int, threads: int) -> None:
    """An untrained GTA model folder (feature statistics from the features file) for timing."""
    mcfg = ModelConfig(
        backbone=str(backbone), layers=1, prototypes_vocab=4, prototypes_classes=4, heads=2, d_k=4, top_k=3, context=128
    )
    tcfg = TrainConfig(epochs=1, batch_size=8, autocast="float32", device="cpu", threads=threads)
    model = GTA.from_config(mcfg, n_bins, tcfg.seed)
    tokenizer = model.tokenizer
    gene_id, symbol, x = load_features(features, n_bins)
    flat = x.reshape(-1, x.shape[-1])
    model.set_feature_stats(flat.mean(0), flat.std(0))
    splits = pd.DataFrame({"gene_id": gene_id, "symbol": symbol, "split": "train"})
    save_model(
        folder,
        model,
        tokenizer,
        mcfg,
        tcfg,
        n_bins,
        0.0,
        1.0,
        model.trainable_state_dict(),
        splits,
        [],
        {},
        window=feature_window(features),
    )


def sei_touched(scorer: SeiScorer, fa, variants, pairs: pd.DataFrame, genes: pd.DataFrame, window: tuple):
    """(distinct touched bins, seconds) of score_variants' own Sei part (REF and ALT of each bin)."""
    t0 = time.perf_counter()
    _, ref_scores, _ = _touched_bins(pairs, genes, variants, window, fa, scorer)
    return len(ref_scores), time.perf_counter() - t0


def sei_whole_windows(
    scorer: SeiScorer, fa, variants, pairs: pd.DataFrame, genes: pd.DataFrame, n_bins: int, orient: str
) -> tuple[np.ndarray, float]:
    """((pairs, n_bins, 33) ALT windows, seconds): every bin of every pair's window through Sei."""
    g = genes.set_index("gene_id")
    t0 = time.perf_counter()
    seqs = []
    for v, gid, first, last in zip(
        pairs["variant"], pairs["gene_id"], pairs["bin_first"], pairs["bin_last"], strict=False
    ):
        var = variants[int(v)]
        start = int(window_start(int(g.at[gid, "tss"]), n_bins, BIN, GRID))
        for b in range(n_bins):
            s = start + b * BIN
            seqs.append(alt_bin(fa, var.chrom, s, BIN, var) if first <= b <= last else ref_bin(fa, var.chrom, s, BIN))
    x = scorer.scores(seqs)[:, KEPT].reshape(len(pairs), n_bins, len(KEPT))
    if orient == "transcript":  # bin 0 farthest upstream for minus-strand genes, as the features file
        minus = (g.loc[pairs["gene_id"], "strand"] == "-").to_numpy()
        x[minus] = x[minus][:, ::-1]
    return x, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-bins", type=int, default=51, help="bins N per window (odd)")
    ap.add_argument("--variants", type=int, default=100, help="variants in the VCF")
    ap.add_argument("--genes", type=int, default=32, help="genes on the synthetic chr21")
    ap.add_argument(
        "--spacing",
        type=int,
        default=100_000,
        help="bp between TSSs (+-25%% jitter); a window spans N x 4,096 bp (209 kb at N=51)",
    )
    ap.add_argument("--width", type=float, default=0.03125, help="demo Sei width multiplier (the demo's 1/32)")
    ap.add_argument("--n-targets", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--batch-size", type=int, default=32, help="Sei batch (bins)")
    ap.add_argument("--device", default="cpu", help="device for Sei and GTA ('cpu', 'cuda', 'auto')")
    ap.add_argument(
        "--naive-pairs",
        type=int,
        default=12,
        help="(variant, gene) pairs the whole-window alternative is timed on (scaled to all pairs)",
    )
    ap.add_argument("--seed", type=int, default=0)
    a, _ = ap.parse_known_args()  # benchmarks/run_all.py leaves its own arguments in sys.argv

    tune_malloc()
    torch.set_num_threads(a.threads)
    logging.getLogger("gta").setLevel(logging.WARNING)
    n = a.n_bins
    rng = np.random.default_rng(a.seed)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_variants_") as tmp:
        tmp = Path(tmp)
        fasta = tmp / "chr21.fa"
        write_synthetic_genome(fasta, ["chr21"], {"chr21": []}, seed=0)
        fa = open_fasta(fasta)
        tss = tmp / "tss.tsv"
        write_genes(tss, a.genes, a.spacing, rng)
        genes = read_tss(tss)

        sei_model = build_demo_sei(a.width, a.n_targets, seed=0)
        projvec = make_demo_projection(a.n_targets, seed=0)
        checkpoint, projection = tmp / "sei.pth", tmp / "projvec.npy"
        save_sei(sei_model, checkpoint)
        np.save(projection, projvec)
        sei = {
            "checkpoint": checkpoint,
            "projection": projection,
            "device": a.device,
            "dtype": "float32",
            "batch_size": a.batch_size,
        }

        t0 = time.perf_counter()
        (tmp / "shards").mkdir()
        shard = tmp / "shards" / "1-of-1.h5"
        run_shard(
            tss,
            fasta,
            sei_model,
            projvec,
            shard,
            WindowSpec(n, BIN, "reference", GRID),
            device="cpu" if a.device == "auto" else a.device,
            dtype=torch.float32,
            batch_size=a.batch_size,
            checkpoint_path=checkpoint,  # recorded (provenance): score_variants checks the Sei files against them
            projection_path=projection,
        )
        features = tmp / "features.h5"
        merge_features(tss, [shard], features)
        t_features = time.perf_counter() - t0

        model_dir = tmp / "model"
        write_model(model_dir, write_tiny_backbone(tmp / "backbone", num_hidden_layers=1), features, n, a.threads)
        vcf = tmp / "variants.vcf"
        kinds = write_vcf(vcf, fa, genes, n, a.variants, rng)

        # warm-up outside the timings: imports, first forward passes of Sei and of GTA
        gta = GTAModel.from_pretrained(model_dir, device=a.device)
        orient = str(gta.config.get("window", {}).get("orient", "reference"))
        scorer = SeiScorer.load(**sei)
        scorer.scores([ref_bin(fa, "chr21", 14_000_000, BIN)])
        _, _, x_ref = load_features(features, n)
        prompts = dict(zip(genes["gene_id"], gene_prompts(genes, CELL_TYPE), strict=False))
        strand = genes.set_index("gene_id")["strand"]
        gta.predict(x_ref[:2], [prompts[g] for g in genes["gene_id"][:2]], strand=strand[genes["gene_id"][:2]])

        # (a) score_variants end to end
        out, counts_tsv = tmp / "scores.tsv", tmp / "counts.tsv"
        t0 = time.perf_counter()
        table = score_variants(
            model_dir, vcf, features, tss, fasta, sei, out, device=a.device, threads=a.threads, out_counts=counts_tsv
        )
        t_a = time.perf_counter() - t0
        counts = dict(pd.read_csv(counts_tsv, sep="\t").values)

        variants, _ = read_vcf(vcf, list(fa.keys()), "stop", fa)
        pairs, outside = place(variants, genes, n, BIN, GRID)
        n_var, n_pairs = len(variants), len(pairs)
        touched = (pairs["bin_last"] - pairs["bin_first"] + 1).to_numpy()
        # (a) its Sei part alone, with the same kind of scorer
        units, t_a_sei = sei_touched(scorer, fa, variants, pairs, genes, (n, BIN, GRID, orient))

        # (b) whole windows, on pairs spread over all of them
        k = min(a.naive_pairs, n_pairs)
        sub = pairs.iloc[np.unique(np.linspace(0, n_pairs - 1, k).round().astype(int))].reset_index(drop=True)
        k = len(sub)
        x_alt, t_b_sei = sei_whole_windows(scorer, fa, variants, sub, genes, n, orient)
        ids = gta.encode([prompts[g] for g in sub["gene_id"]])
        t0 = time.perf_counter()
        alt_naive = gta.predict(x_alt, ids, strand=strand[sub["gene_id"]].to_numpy())
        t_b_gta = time.perf_counter() - t0

        # agreement: the whole-window ALT predictions (float16-rounded bins) against score_variants' ones
        # (REF prediction + exact delta): equal up to the float16 rounding of the touched bins
        key = table.set_index(["id", "gene_id"])["alt_prediction"]
        alt_inc = np.array(
            [key[(variants[int(v)].id, g)] for v, g in zip(sub["variant"], sub["gene_id"], strict=False)]
        )
        max_diff = float(np.abs(alt_naive - alt_inc).max()) if k else 0.0

    # per pair and totals
    b_sei_pair = t_b_sei / max(k, 1)
    b_sei_total = b_sei_pair * n_pairs
    b_total = t_a - t_a_sei + b_sei_total
    mean_touched = float(touched.mean()) if n_pairs else float("nan")
    expected = n / (2 * mean_touched)
    units_per_pair = units / max(n_pairs, 1)

    def rates(seconds: float) -> str:
        return f"{n_var / seconds:9.2f} variants/s  {n_pairs / seconds:9.2f} pairs/s  ({seconds:7.2f} s)"

    print(
        f"N = {n} bins of {BIN} bp ({GRID} grid), {len(genes)} genes {a.spacing} bp apart, "
        f"demo Sei width {a.width:g} (channels {sei_model.channels}), {a.n_targets} targets, fp32, "
        f"{a.threads} torch thread(s), device {a.device}, Sei batch {a.batch_size}"
    )
    print(f"features: {len(genes)} windows via run_shard + merge_features in {t_features:.1f} s")
    print(
        f"VCF: {n_var} variants ({kinds['snv']} SNVs, {kinds['deletion']} deletions, "
        f"{kinds['insertion']} insertions, 1-20 bp), {outside} in no window; {n_pairs} (variant, gene) pairs "
        f"({n_pairs / max(n_var, 1):.2f} genes per variant)"
    )
    print(
        f"bins touched per pair: mean {mean_touched:.3f} (max {int(touched.max()) if n_pairs else 0}); "
        f"distinct touched bins computed by score_variants (REF and ALT each): {units} ({units_per_pair:.3f} per pair, "
        f"{units / max(n_var, 1):.3f} per variant; its counts file says alt_bins {counts.get('alt_bins')}, "
        f"scored_pairs {counts.get('scored_pairs')})"
    )
    print(
        f"whole-window alternative timed on {k} of {n_pairs} pairs ({k * n} bins through Sei), "
        f"scaled per pair to all {n_pairs}; its end to end = score_variants' time - its Sei part + "
        f"the whole-window Sei part"
    )
    print()
    print("Sei part (touched bins -> 40 class scores; score_variants: REF and ALT of each, the naive way: ALT)")
    print(f"  touched bins only (score_variants): {rates(t_a_sei)}  {2 * units / t_a_sei:7.1f} bins/s")
    print(f"  whole window per pair (naive)     : {rates(b_sei_total)}  {k * n / t_b_sei:7.1f} bins/s")
    print(
        f"  measured speed ratio {b_sei_total / t_a_sei:6.1f}x   expected N / (2 x bins touched) = "
        f"{n} / (2 x {mean_touched:.3f}) = {expected:.1f}x   (N / (2 x distinct touched bins per pair) = "
        f"{n / (2 * units_per_pair):.1f}x, the bins shared between genes computed once)"
    )
    print(
        "End to end (Sei + GTA; score_variants includes loading the models, the VCF and REF check, GTA on REF "
        "and ALT, writing the table)"
    )
    print(f"  score_variants                    : {rates(t_a)}")
    print(f"  whole window per pair (naive)     : {rates(b_total)}")
    print(
        f"  measured speed ratio {b_total / t_a:6.1f}x   expected N / (2 x bins touched) = {expected:.1f}x "
        f"(the part that is not Sei is {100 * (t_a - t_a_sei) / t_a:.0f}% of score_variants' time)"
    )
    print(
        f"  GTA on ALT windows alone: {k / t_b_gta:.1f} pairs/s ({1e3 * t_b_gta / max(k, 1):.1f} ms per pair, "
        f"tiny random backbone)"
    )
    print(f"check: max |ALT prediction, whole window - score_variants| over the {k} pairs = {max_diff:.3g}")
    print(f"benchmark wall time {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
