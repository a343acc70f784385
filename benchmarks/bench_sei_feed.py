"""Feeding Sei: does the stage's CPU side slow down the thread that drives the model? On a CPU, with a fake model.

    python benchmarks/bench_sei_feed.py [--readers 0 1 2] [--batch-size 256] [--model-ms 0.5] [--rounds 3]

On a GPU the thread that launches Sei's kernels needs the GIL for every launch; when another thread of the
same process holds it (today's prefetch thread, doing numpy work), the GPU waits. This benchmark shows the
same contention on a CPU with two stand-ins for Sei, both with Sei's output shape (units, n_targets):

  - a *launch-bound* fake model: its forward is many tiny torch ops dispatched from Python (each needs the
    GIL, as a kernel launch does), `--model-ms` milliseconds per bin (calibrated at start);
  - a null model: no compute.

For each feed (`readers` 0 = today's prefetch thread; k = k reader processes, uint8 codes) it measures

  model alone     the work of the model's thread on batches made ready beforehand: the fake model,
                  predict's reverse-complement copies, the class projection; for the readers' feed also
                  the one-hot from uint8 codes, which on a GPU is one gather on the device but on this
                  CPU takes the model thread's time (so it counts as the model's);
  pipeline alone  run_shard (FASTA -> HDF5) with the null model;
  stage           run_shard with the fake model;

the two run_shard figures at its steady rate (between its first and last progress report, so without the
fixed costs of starting a shard). It reports stage time / max(model alone, pipeline alone): 1.0 = the two
sides overlap perfectly, the larger one sets the pace. Target <= 1.1. The machine may be shared: each round
measures the three figures back to back (under the same load) and the ratio is the median over `--rounds`
rounds; the rates are the best of the rounds (other processes only ever slow a round down).
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
from torch import nn

from gta.demo.genome import write_synthetic_genome
from gta.demo.sei import make_demo_projection
from gta.sei.inference import (
    WindowSpec,
    _class_projection,
    _CodesToDevice,
    _class_scores,
    iter_codes,
    plan_units,
    run_shard,
    unit_codes,
)
from gta.sei.model import one_hot_codes
from gta.genome import open_fasta

BIN = 4096
N_BINS = 11
CHROM = "chr21"
FIRST_TSS = 10_000_000


class FakeSei(nn.Module):
    """Sei's interface (n_targets, channels, forward (n, 4, 4096) -> (n, n_targets) in [0, 1]); the forward
    costs `ops_per_seq` tiny torch ops per sequence, dispatched one by one from Python (0: no compute)."""

    def __init__(self, n_targets: int, ops_per_seq: float = 0.0):
        super().__init__()
        self.n_targets, self.channels, self.ops_per_seq = n_targets, (0, 0, 0), ops_per_seq
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x[:, 0, :8].mean(1, keepdim=True)
        for _ in range(round(self.ops_per_seq * x.shape[0])):
            h = h * self.scale  # one "launch"
        return torch.sigmoid(h).expand(x.shape[0], self.n_targets).contiguous()


def calibrate(n_targets: int, model_ms: float) -> float:
    """Tiny ops per sequence so that the fake model costs `model_ms` per bin (2 sequences with both strands)."""
    probe = FakeSei(n_targets, 1000.0)
    x = torch.zeros(4, 4, BIN)
    with torch.inference_mode():
        best = min(_timed(lambda: probe(x)) for _ in range(5))
    per_op = best / 4000
    return model_ms * 1e-3 / 2 / per_op


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def write_genes(tmp: Path, n_genes: int) -> Path:
    genes = pd.DataFrame(
        {
            "gene_id": np.arange(1, n_genes + 1),
            "symbol": [f"G{i}" for i in range(n_genes)],
            "ensembl_gene": "",
            "name": "",
            "chrom": CHROM,
            "tss": FIRST_TSS + np.arange(n_genes) * N_BINS * BIN,
            "strand": "+",
        }
    )
    path = tmp / "tss.tsv"
    genes.to_csv(path, sep="\t", index=False)
    return path


def stage_seconds(tmp: Path, tss: Path, fasta: Path, model, projvec, batch_size: int, readers: int) -> float:
    """Seconds run_shard takes for all its bins at its steady rate: timed between its first and last
    progress report (one per batch), so that the fixed costs (plan, fingerprint, starting the readers,
    provenance) do not count."""
    out = tmp / "shard.h5"
    out.unlink(missing_ok=True)
    spec = WindowSpec(N_BINS, BIN, "reference", "tss")
    seen: list[tuple[float, int]] = []
    run_shard(
        tss,
        fasta,
        model,
        projvec,
        out,
        spec,
        batch_size=batch_size,
        readers=readers,
        flush_seconds=0,
        progress=lambda done, total: seen.append((time.perf_counter(), done)),
    )
    (t0, g0), (t1, g1) = seen[0], seen[-1]
    return (t1 - t0) / (g1 - g0) * seen[-1][1]


def model_alone_seconds(fasta: Path, tss: Path, model, projvec, batch_size: int, codes: bool) -> float:
    """The model thread's work on batches made ready beforehand (the same units as the stage), summed: from
    the one-hot (today's feed hands it over) or from uint8 codes (the readers'), whose one-hot the model's
    device makes (on a GPU one gather; on this CPU it counts as the model's work)."""
    genes = pd.read_csv(tss, sep="\t")
    plan = plan_units(genes, WindowSpec(N_BINS, BIN), [CHROM])
    fa = open_fasta(fasta)
    ready = [
        torch.from_numpy(unit_codes(fa, plan, lo, min(lo + batch_size, plan.n_units), BIN))
        for lo in range(0, plan.n_units, batch_size)
    ]
    device = torch.device("cpu")
    to_device = _CodesToDevice(device, batch_size, BIN)
    if not codes:
        ready, to_device = [torch.from_numpy(one_hot_codes(c.numpy())) for c in ready], (lambda x: x)
    unit = _class_projection(projvec, model, device)

    def run():
        with torch.inference_mode():
            for x in ready:
                _class_scores(model, to_device(x), unit, True, device, torch.float32).numpy()

    return _timed(run)


def reader_rate(fasta: Path, tss: Path, batch_size: int) -> float:
    """Bins per second that one reader process hands over when nothing else runs (iter_codes, readers=1)."""
    genes = pd.read_csv(tss, sep="\t")
    plan = plan_units(genes, WindowSpec(N_BINS, BIN), [CHROM])
    t = _timed(lambda: sum(1 for _ in iter_codes(fasta, plan, 0, batch_size, BIN, readers=1)))
    return plan.n_units / t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readers", type=int, nargs="+", default=[0, 1, 2], help="feeds to compare (0 = today's thread)")
    ap.add_argument("--batch-size", type=int, default=256, help="bins per batch (the H200 run used 256)")
    ap.add_argument("--n-units", type=int, default=8192, help="bins per stage run (rounded to whole genes)")
    ap.add_argument("--n-targets", type=int, default=2048)
    ap.add_argument(
        "--model-ms",
        type=float,
        default=0.5,
        help="fake model's cost per bin in ms (0.5: ~4x the pipeline, as Sei on the H200)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the model's process")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (median ratio, best rates)")
    a, _ = ap.parse_known_args()  # benchmarks/run_all.py leaves its own arguments in sys.argv

    torch.set_num_threads(a.threads)
    logging.getLogger("gta").setLevel(logging.WARNING)
    ops = calibrate(a.n_targets, a.model_ms)
    fake, null = FakeSei(a.n_targets, ops), FakeSei(a.n_targets, 0.0)
    projvec = make_demo_projection(a.n_targets, seed=0)
    n_genes = max(1, a.n_units // N_BINS)
    n_units = n_genes * N_BINS
    print(
        f"batch {a.batch_size} bins (x2 strands), {n_units} bins per run, fake model {a.model_ms} ms/bin "
        f"({ops:.0f} tiny ops per sequence), n_targets {a.n_targets}, {a.threads} torch thread(s), "
        f"{a.rounds} rounds"
    )
    with tempfile.TemporaryDirectory(prefix="bench_sei_feed_") as tmp:
        tmp = Path(tmp)
        fasta = tmp / f"{CHROM}.fa"
        write_synthetic_genome(fasta, [CHROM], {CHROM: []}, seed=0)
        tss = write_genes(tmp, n_genes)
        best: dict = {}
        ratios: dict[int, list[float]] = {r: [] for r in a.readers}
        for _ in range(a.rounds):
            for r in a.readers:  # one round: the three figures back to back, under the same load
                sec = {
                    "model": model_alone_seconds(fasta, tss, fake, projvec, a.batch_size, codes=r > 0),
                    "pipeline": stage_seconds(tmp, tss, fasta, null, projvec, a.batch_size, r),
                    "stage": stage_seconds(tmp, tss, fasta, fake, projvec, a.batch_size, r),
                }
                ratios[r].append(sec["stage"] / max(sec["model"], sec["pipeline"]))
                for key, v in sec.items():
                    best[key, r] = min(best.get((key, r), np.inf), v)
        per_reader = max(reader_rate(fasta, tss, a.batch_size) for _ in range(a.rounds))
    for r in a.readers:
        model, pipeline, stage = best["model", r], best["pipeline", r], best["stage", r]
        feed = "prefetch thread (today)" if r == 0 else f"{r} reader process{'es' if r > 1 else ''}"
        print(
            f"readers {r} ({feed}): best of {a.rounds}: model alone {n_units / model:.0f} bins/s, pipeline alone "
            f"(null model) {n_units / pipeline:.0f} bins/s, stage {n_units / stage:.0f} bins/s; "
            f"stage / max(model, pipeline) per round: median {np.median(ratios[r]):.2f} "
            f"(range {min(ratios[r]):.2f}-{max(ratios[r]):.2f}; target <= 1.10)",
            flush=True,
        )
    print(f"one reader process alone hands over {per_reader:.0f} bins/s")


if __name__ == "__main__":
    main()
