"""GTA training throughput with the demo backbone (SmolLM2-135M, 8 blocks), batch 8.

One step = forward + backward + Adam step. Rows: N = 51 and 251 data tokens, fp32 vs bf16 autocast,
prompt keys/values cached (every epoch after the first) vs recomputed (the first epoch; always with
LoRA). 'rest' is the same step with the backbone bypassed (alignment, selector, head, optimiser);
'backbone' = step - rest. Prompts are Figure-4 style with MANE names, as in the demo (~45 tokens).

    python benchmarks/bench_model.py [--steps 5] [--backbone results/backbone/smollm2-135m]

The backbone folder defaults to results/backbone/smollm2-135m when present, else the packaged GGUF
is converted into a temporary folder first (~20 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gta.model import GTA, convert_backbone, encode_prompts, load_backbone  # noqa: E402
from gta.sei import CLASS_NAMES, KEPT  # noqa: E402

GENES = [("A1BG", "alpha-1-B glycoprotein"), ("NAT2", "N-acetyltransferase 2"),
         ("ADA", "adenosine deaminase"), ("CDH2", "cadherin 2"), ("AKT3", "AKT serine/threonine kinase 3"),
         ("ZBTB11-AS1", "ZBTB11 antisense RNA 1"), ("MED6", "mediator complex subunit 6"),
         ("NR2E3", "nuclear receptor subfamily 2 group E member 3")]
PROMPT = ("# Task: Gene Expression Prediction on GM12878 lymphoblastoid cells.\n# Official Gene Symbol: {}\n"
          "# Official Gene Full Name: {}\n# Data:")


def backbone_folder(arg: str | None, scratch: str) -> str:
    if arg:
        return arg
    default = ROOT / "results" / "backbone" / "smollm2-135m"
    if (default / "config.json").is_file():
        return str(default)
    out = Path(scratch) / "smollm2-135m"
    print(f"converting the packaged SmolLM2 GGUF into {out} (removed afterwards) ...", flush=True)
    convert_backbone("smollm2-135m", out)
    return str(out)


def time_steps(step, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default=None)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--bins", type=int, nargs="+", default=[51, 251])
    a, _ = ap.parse_known_args()  # benchmarks/run_all.py passes its own selection arguments

    # the weights are memory-mapped from the folder: keep a temporary conversion until the end
    with tempfile.TemporaryDirectory(prefix="gta-bench-") as scratch:
        backbone, tokenizer = load_backbone(backbone_folder(a.backbone, scratch), layers=a.layers)
        run(a, backbone, tokenizer)


def run(a: argparse.Namespace, backbone, tokenizer) -> None:
    names = [CLASS_NAMES[i] for i in KEPT]
    texts = [PROMPT.format(*GENES[i % len(GENES)]) for i in range(a.batch)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"SmolLM2-135M {a.layers} blocks, batch {a.batch}, median of {a.steps} steps "
          "(timings on a shared machine are noisy)")
    print(f"{'N':>4} {'precision':>9} {'prompt':>10} {'tokens':>7} {'step s':>7} {'genes/s':>8} "
          f"{'backbone s':>10} {'rest s':>7} {'backbone %':>10}")
    for n in a.bins:
        ids = encode_prompts(tokenizer, texts, 2048 - n)
        mean_tokens = sum(len(i) for i in ids) / len(ids) + n
        torch.manual_seed(0)
        x, target = torch.randn(a.batch, n, len(KEPT)), torch.randn(a.batch)
        for amp in (False, True):
            for cached in (True, False):
                torch.manual_seed(0)
                model = GTA(backbone, tokenizer, names, n_features=len(KEPT),
                            prompt_cache_mb=2048 if cached else 0).train()
                opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)

                def step(full: bool = True):
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                        if full:
                            y = model(x, ids)
                        else:  # the same step without the backbone: aligned tokens straight to the head
                            z = (x - model.feature_mean) / model.feature_std
                            data, _ = model.align(z, backbone.get_input_embeddings().weight, model.class_ids)
                            y = model.head(data.float())[0]
                    loss = torch.nn.functional.mse_loss(y.float(), target)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

                total = time_steps(step, a.steps)
                rest = time_steps(lambda: step(False), a.steps)
                print(f"{n:>4} {'bf16' if amp else 'fp32':>9} {'cached' if cached else 'recomputed':>10} "
                      f"{mean_tokens:>7.0f} {total:>7.3f} {a.batch / total:>8.1f} {total - rest:>10.3f} "
                      f"{rest:>7.3f} {100 * (total - rest) / total:>9.0f}%", flush=True)


if __name__ == "__main__":
    main()
