"""Sei throughput: bare forward fp32 vs bf16, and the whole stage (FASTA -> HDF5) as a fraction of bare bf16.

    python benchmarks/bench_sei.py [--width 0.25 0.0625] [--threads 1 2] [--batch-size 32] [--rounds 3]

A "window" is one 4,096-bp bin; with reverse-complement averaging (on, as in the stage) each window is two
Sei passes. The bare forward runs on ready one-hot tensors; the stage (gta.sei.inference.run_shard) reads
the windows from a synthetic chr21 FASTA in a reader process, one-hot encodes them, runs Sei, projects
onto the 40 classes in fp32 and writes the float16 HDF5 shard. Both at the same batch size and threads.
Target: the stage keeps >= 85% of the bare bf16 rate.
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
from gta.sei import predict
from gta.hardware import cpu_supports_bf16, tune_malloc
from gta.sei.inference import WindowSpec, run_shard

BIN = 4096


def bare_rate(model, x: torch.Tensor, dtype: torch.dtype, seconds: float) -> float:
    """Windows per second of predict() (both strands) on a ready batch, after one warm-up pass."""
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        predict(model, x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            predict(model, x)
            n += x.shape[0]
        return n / (time.perf_counter() - t0)


def stage_rate(tmp: Path, fasta: Path, model, projvec, batch_size: int, n_genes: int, n_bins: int = 11) -> float:
    """Windows per second of run_shard (FASTA -> HDF5, bf16) over n_genes genes of n_bins distinct bins."""
    genes = pd.DataFrame(
        {
            "gene_id": np.arange(1, n_genes + 1),
            "symbol": [f"G{i}" for i in range(n_genes)],
            "ensembl_gene": "",
            "name": "",
            "chrom": "chr21",
            "tss": 14_000_000 + np.arange(n_genes) * n_bins * BIN,
            "strand": "+",
        }
    )
    tss = tmp / "tss.tsv"
    genes.to_csv(tss, sep="\t", index=False)
    out = tmp / "shard.h5"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    run_shard(
        tss,
        fasta,
        model,
        projvec,
        out,
        WindowSpec(n_bins, BIN, "reference", "tss"),
        dtype=torch.bfloat16,
        batch_size=batch_size,
    )
    return n_genes * n_bins / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--width",
        type=float,
        nargs="+",
        default=[0.25, 0.0625],
        help="Sei width multipliers (0.25 = channels 120/160/240; 0.0625 = the demo's 30/40/60)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="torch threads (the demo runs 2 shard jobs of 1 thread each)",
    )
    ap.add_argument("--n-targets", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=3.0, help="time per bare measurement; a stage run about 2x")
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating bare-bf16 / stage rounds; the best of each is reported (noise from other "
        "processes only ever slows a round down)",
    )
    a, _ = ap.parse_known_args()  # benchmarks/run_all.py leaves its own arguments in sys.argv

    tune_malloc()  # as `gta predict-sei` does on CPU
    logging.getLogger("gta").setLevel(logging.WARNING)
    print(
        f"batch {a.batch_size} windows (x2 strands: reverse-complement averaging), n_targets {a.n_targets}, "
        f"native CPU bf16: {cpu_supports_bf16()}, best of {a.rounds} rounds"
    )
    with tempfile.TemporaryDirectory(prefix="bench_sei_") as tmp:
        tmp = Path(tmp)
        fasta = tmp / "chr21.fa"
        write_synthetic_genome(fasta, ["chr21"], {"chr21": []}, seed=0)
        for width in a.width:
            model = build_demo_sei(width, a.n_targets, seed=0)
            projvec = make_demo_projection(a.n_targets, seed=0)
            rng = np.random.default_rng(0)
            x = torch.from_numpy(np.eye(4, dtype=np.float32)[rng.integers(0, 4, (a.batch_size, BIN))])
            x = x.transpose(1, 2).contiguous()
            for threads in a.threads:
                torch.set_num_threads(threads)
                fp32 = bare_rate(model, x, torch.float32, a.seconds)
                b16 = bare_rate(model, x, torch.bfloat16, a.seconds)
                n_genes = max(1, round(b16 * 2 * a.seconds / (11 * a.batch_size))) * a.batch_size
                stage = 0.0
                for _ in range(a.rounds):
                    stage = max(stage, stage_rate(tmp, fasta, model, projvec, a.batch_size, n_genes))
                    b16 = max(b16, bare_rate(model, x, torch.bfloat16, a.seconds))
                print(
                    f"width {width:g} (channels {model.channels}), {threads} thread(s): bare forward "
                    f"fp32 {fp32:.1f} windows/s, bf16 {b16:.1f} windows/s ({b16 / fp32:.2f}x); "
                    f"stage FASTA->HDF5 bf16 {stage:.1f} windows/s ({n_genes * 11} windows) = "
                    f"{100 * stage / b16:.0f}% of bare bf16 (target >= 85%)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
