"""Prompt prefill and the prompt cache on the demo backbone (SmolLM2-135M, the demo's 1 block), CPU.

Section 'prefill': every demo prompt's keys/values computed one prompt at a time (`prompt_pass` on each
alone, as gta did before) against `prefill` (fixed-shape passes of 32 prompts per 16-token length
bucket), fp32; the two results agree to 1e-5 (checked).

Section 'epoch': a demo-size training epoch (the demo's model: N = 51, top_k 51, head distance, skip,
batch 32, fp32; --genes genes, random features and targets) with the prompt cache holding every prompt
(a cached epoch, the reference), with a device budget that holds only 20% of the prompts and the rest
recomputed each epoch, and with that budget plus the host-memory tier; each after one epoch that fills
the cache, each timed as the median of --repeats epochs, interleaved so the ratios share the machine's
load. The first (cold) epoch is reported too.

    python benchmarks/bench_prefill.py [--section all|prefill|epoch] [--genes 1400] [--repeats 2]
        [--layers 1] [--threads 1] [--backbone FOLDER] [--prompts results/annotations/prompts.jsonl]

Prompts: the demo's prompts.jsonl when given or present under results/, else Figure-4 style prompts with
MANE names as in bench_model.py (the same length, ~45 tokens).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model import GENES, PROMPT, backbone_folder, cpu_name  # noqa: E402

from gta.model import GTA, encode_prompts, load_backbone  # noqa: E402
from gta.model.blocks import prefill, prompt_pass  # noqa: E402
from gta.sei import CLASS_NAMES, KEPT  # noqa: E402

N_BINS = 51


def demo_prompts(path: str | None, count: int) -> list[str]:
    from gta.annotations import read_prompts

    path = path or next((str(p) for p in [ROOT / "results/annotations/prompts.jsonl"] if p.exists()), None)
    if path:
        return list(read_prompts(path).values())
    return [PROMPT.format(*GENES[i % len(GENES)]) for i in range(count)]


def clock(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_prefill(backbone, ids: list[torch.Tensor]) -> None:
    with torch.no_grad():
        alone: list = []
        one = clock(lambda: alone.extend(prompt_pass(backbone, [p])[:2] for p in ids))
        batched: list = []
        many = clock(lambda: batched.extend(prefill(backbone, ids)))
    worst = max(
        float((a[0, :, : len(p)] - b).abs().max())
        for (keys, values), p, (bk, bv) in zip(((k, v) for k, v in alone), ids, batched, strict=True)
        for a, b in zip(keys + values, bk + bv, strict=True)
    )
    tokens = sum(len(p) for p in ids)
    print(f"{len(ids)} prompts, {tokens} tokens (mean {tokens / len(ids):.0f}); max |batched - alone| {worst:.1e}")
    print(f"  one at a time: {one:7.2f} s  {len(ids) / one:7.1f} prompts/s")
    print(f"  batched      : {many:7.2f} s  {len(ids) / many:7.1f} prompts/s   ({one / many:.1f}x faster)", flush=True)


def run_epochs(backbone, tokenizer, ids: list[torch.Tensor], genes: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    rows = rng.choice(len(ids), size=min(genes, len(ids)), replace=False)
    prompts = [ids[i] for i in rows]
    x = torch.from_numpy(rng.standard_normal((len(rows), N_BINS, len(KEPT)), dtype=np.float32))
    y = torch.from_numpy(rng.standard_normal(len(rows), dtype=np.float32))
    names = [CLASS_NAMES[i] for i in KEPT]
    sizes = [sum(t.numel() * t.element_size() for t in k + v) for k, v in prefill(backbone, prompts[:64])]
    total_mb = float(np.mean(sizes)) * len(prompts) / 2**20
    settings = {
        "cached (all prompts kept)": (4 * total_mb + 64, 0),
        "20% kept, rest recomputed": (0.2 * total_mb, 0),
        "20% kept + host tier": (0.2 * total_mb, 4 * total_mb + 64),
    }
    models = {}
    for name, (dev, host) in settings.items():
        torch.manual_seed(0)
        model = GTA(
            backbone, tokenizer, names, n_features=len(KEPT), n_bins=N_BINS, top_k=N_BINS, head="distance",
            skip=True, dropout=0.3, prompt_cache_mb=dev, prompt_cache_host_mb=host,
        ).train()  # fmt: skip
        models[name] = (model, torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3))

    def epoch(name: str, seed: int) -> float:
        model, opt = models[name]
        order = np.random.default_rng(seed).permutation(len(rows))
        t0 = time.perf_counter()
        for s, e in model.prefetching([prompts[i] for i in order], 32):
            batch = order[s:e]
            loss = torch.nn.functional.mse_loss(model(x[batch], [prompts[i] for i in batch]).float(), y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    print(f"epoch of {len(rows)} genes, N = {N_BINS}, batch 32, prompt keys/values {total_mb:.0f} MiB in all")
    cold = {name: epoch(name, 0) for name in settings}  # fills the caches
    times: dict[str, list[float]] = {name: [] for name in settings}
    for r in range(repeats):
        for name in settings:
            times[name].append(epoch(name, r + 1))
    ref = statistics.median(times["cached (all prompts kept)"])
    for name in settings:
        cache = models[name][0].prompt_cache
        t = statistics.median(times[name])
        print(
            f"  {name:28s}: {t:6.2f} s/epoch ({len(rows) / t:6.1f} genes/s) = {t / ref:.2f}x cached; "
            f"first epoch {cold[name]:6.2f} s; {cache.used['device'] / 2**20:.0f} MiB on the device, "
            f"{cache.used['host'] / 2**20:.0f} MiB host",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--section", choices=("all", "prefill", "epoch"), default="all")
    ap.add_argument("--backbone", default=None)
    ap.add_argument("--prompts", default=None)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--genes", type=int, default=1400)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    a, _ = ap.parse_known_args()  # benchmarks/run_all.py passes its own selection arguments
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory(prefix="gta-bench-") as scratch:
        backbone, tokenizer = load_backbone(backbone_folder(a.backbone, scratch), layers=a.layers)
        ids = encode_prompts(tokenizer, demo_prompts(a.prompts, 2022), 2048 - N_BINS)
        print(
            f"torch {torch.__version__}, {cpu_name()}, {a.threads} threads; SmolLM2-135M {a.layers} blocks, fp32 "
            "(timings on a shared machine are noisy)"
        )
        if a.section in ("all", "prefill"):
            run_prefill(backbone, ids)
        if a.section in ("all", "epoch"):
            run_epochs(backbone, tokenizer, ids, a.genes, a.repeats)


if __name__ == "__main__":
    main()
