"""Personal expression throughput: distinct bin-haplotypes through Sei against naive per-sample recomputation.

    python benchmarks/bench_individuals.py [--n-bins 51] [--genes 24] [--individuals 200] [--spacing 100000]
                                           [--width 0.03125] [--threads 1] [--sei-rate 1751] [--project-n 251]

gta.personal.predict_individuals sends through Sei only the bins some haplotype changes, and each distinct
(genome bin, allele set) once across all samples and genes (plus each changed bin's REF once). The naive
way recomputes, for every sample, haplotype and gene, every bin that haplotype changes. The ratio of the
two is what deduplication saves; it grows with the number of individuals, as haplotypes repeat.

Setup (in a temporary folder), as bench_variants: a synthetic chr21, `--genes` TSSs `--spacing` bp apart
(windows overlap on the genome grid), features from the Sei stage with the demo Sei at `--width`, an
untrained GTA model on a tiny random Llama backbone, and the demo's simulated population
(gta.demo.population.simulate_genotypes: founder mosaics in 60-250 kb linkage blocks, a site per 20 kb
on average, SNVs and 1-50 bp deletions, neutral allele frequencies) of `--individuals` over the windows.

Timed: predict_individuals end to end (VCF reading and REF check, Sei on the distinct bins, the model on
each gene's distinct haplotype windows, writing the table). Printed: distinct bin-haplotypes and REF bins
against the naive count (the ratio), samples x genes per second, Sei bins per second, and a projection
to a cohort: with `--sei-rate` (default: the 1,751 bins/s the full-width Sei runs on one H200 in bf16, both strands)
the Sei time for `--project-samples` samples x `--project-genes` genes at N = `--project-n`, scaling the
measured distinct bins per gene-window bin (which depends on the variant density: this simulation's is
lower than a real cohort's, see the printed caveat).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_variants import BIN, GRID, write_genes, write_model  # noqa: E402

from gta.demo.genome import write_synthetic_genome  # noqa: E402
from gta.demo.population import _regions, simulate_genotypes, write_population_vcf  # noqa: E402
from gta.demo.sei import build_demo_sei, make_demo_projection  # noqa: E402
from gta.genome import open_fasta  # noqa: E402
from gta.hardware import tune_malloc  # noqa: E402
from gta.personal import predict_individuals  # noqa: E402
from gta.sei.checkpoint import save_sei  # noqa: E402
from gta.sei.features import merge_features  # noqa: E402
from gta.sei.inference import WindowSpec, run_shard  # noqa: E402
from gta.testing import write_tiny_backbone  # noqa: E402
from gta.tss import read_tss  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-bins", type=int, default=51, help="bins N per window (odd)")
    ap.add_argument("--genes", type=int, default=24, help="genes on the synthetic chr21")
    ap.add_argument("--individuals", type=int, default=200, help="simulated individuals")
    ap.add_argument("--spacing", type=int, default=100_000, help="bp between TSSs (+-25%% jitter)")
    ap.add_argument("--width", type=float, default=0.03125, help="demo Sei width multiplier (the demo's 1/32)")
    ap.add_argument("--n-targets", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--device", default="cpu", help="device for Sei and GTA ('cpu', 'cuda', 'auto')")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sei-rate", type=float, default=1751.0, help="Sei bins/s of the projection (H200, full Sei)")
    ap.add_argument("--project-samples", type=int, default=421, help="samples of the projection (Geuvadis)")
    ap.add_argument("--project-genes", type=int, default=2850, help="genes of the projection (Huang et al.)")
    ap.add_argument("--project-n", type=int, default=251, help="bins N of the projection")
    a, _ = ap.parse_known_args()  # benchmarks/run_all.py leaves its own arguments in sys.argv

    tune_malloc()
    torch.set_num_threads(a.threads)
    logging.getLogger("gta").setLevel(logging.WARNING)
    n = a.n_bins
    rng = np.random.default_rng(a.seed)
    with tempfile.TemporaryDirectory(prefix="bench_individuals_") as tmp:
        tmp = Path(tmp)
        fasta = tmp / "chr21.fa"
        write_synthetic_genome(fasta, ["chr21"], {"chr21": []}, seed=0)
        fa = open_fasta(fasta)
        tss = tmp / "tss.tsv"
        write_genes(tss, a.genes, a.spacing, rng)
        genes = read_tss(tss)
        sei_model = build_demo_sei(a.width, a.n_targets, seed=0)
        checkpoint, projection = tmp / "sei.pth", tmp / "projvec.npy"
        save_sei(sei_model, checkpoint)
        np.save(projection, make_demo_projection(a.n_targets, seed=0))
        sei = {"checkpoint": checkpoint, "projection": projection, "device": a.device, "dtype": "float32"}
        (tmp / "shards").mkdir()
        shard = tmp / "shards" / "1-of-1.h5"
        run_shard(
            tss,
            fasta,
            sei_model,
            np.load(projection),
            shard,
            WindowSpec(n, BIN, "reference", GRID),
            device="cpu" if a.device == "auto" else a.device,
            dtype=torch.float32,
            checkpoint_path=checkpoint,
            projection_path=projection,
        )
        features = tmp / "features.h5"
        merge_features(tss, [shard], features)
        model_dir = tmp / "model"
        write_model(model_dir, write_tiny_backbone(tmp / "backbone", num_hidden_layers=1), features, n, a.threads)
        records, carriers = simulate_genotypes(fa, _regions(genes, n, BIN, GRID), a.individuals, a.seed)
        vcf = tmp / "population.vcf.gz"
        samples = [f"IND{i + 1:03d}" for i in range(a.individuals)]
        write_population_vcf(vcf, records, carriers, samples, fa)

        out, counts_tsv = tmp / "predictions.parquet", tmp / "counts.tsv"
        t0 = time.perf_counter()
        predict_individuals(
            model_dir,
            vcf,
            features,
            tss,
            fasta,
            sei,
            out,
            genes=[str(g) for g in genes["gene_id"]],
            device=a.device,
            threads=a.threads,
            out_counts=counts_tsv,
        )
        elapsed = time.perf_counter() - t0
        c = dict(pd.read_csv(counts_tsv, sep="\t").values.tolist())

    n_genes, n_samples = len(genes), a.individuals
    distinct, ref, naive = int(c["distinct_bins"]), int(c["ref_bins"]), int(c["naive_bins"])
    print(
        f"N = {n} bins of {BIN} bp ({GRID} grid), {n_genes} genes {a.spacing} bp apart, {n_samples} individuals, "
        f"{len(records)} sites ({sum(len(r[2]) > 1 for r in records)} deletions), demo Sei width {a.width:g}, "
        f"fp32, {a.threads} torch thread(s), device {a.device}, tiny random backbone"
    )
    print(
        f"bin-haplotypes through Sei: {distinct} distinct + {ref} REF = {distinct + ref}; naive per-sample "
        f"recomputation {naive} (+ its REF bins): {naive / max(distinct, 1):.1f}x fewer distinct ALT bins, "
        f"{naive / max(distinct + ref, 1):.1f}x fewer Sei bins in all; Sei computed {int(c['sei_bins'])} "
        "(ALT equal to REF reuses it)"
    )
    print(
        f"model windows: {int(c['model_windows'])} for {2 * n_samples * n_genes} haplotype-gene pairs "
        f"({2 * n_samples * n_genes / max(int(c['model_windows']), 1):.1f}x fewer)"
    )
    print(
        f"end to end {elapsed:.1f} s: {n_samples * n_genes / elapsed:.1f} samples x genes/s, "
        f"{int(c['sei_bins']) / elapsed:.1f} Sei bins/s overall"
    )
    per_bin = (distinct + ref) / (n_genes * n)  # Sei bins per gene-window bin, at this density and cohort
    bins = per_bin * a.project_genes * a.project_n
    naive_bins = naive / (n_genes * n) * a.project_samples / n_samples * a.project_genes * a.project_n
    print(
        f"projection: {a.project_samples} samples x {a.project_genes} genes at N = {a.project_n}: "
        f"{per_bin:.3f} Sei bins per gene-window bin measured -> {bins:,.0f} bins, {bins / a.sei_rate / 60:.1f} min "
        f"at {a.sei_rate:g} bins/s; naive per-sample recomputation {naive_bins:,.0f} bins, "
        f"{naive_bins / a.sei_rate / 3600:.1f} h (caveat: a real cohort has ~10-50x this simulation's site "
        "density, so more bins change and more allele sets are distinct per bin)"
    )


if __name__ == "__main__":
    main()
