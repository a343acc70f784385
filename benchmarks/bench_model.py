"""GTA training throughput with the demo backbone (SmolLM2-135M, 8 blocks), batch 8.

One step = forward + backward + Adam step. Rows: N = 51 and 251 data tokens, fp32 vs bf16 autocast,
prompt keys/values cached (every epoch after the first) vs recomputed (the first epoch; always with
LoRA). 'rest' is the same step with the backbone bypassed (alignment, selector, head, optimiser);
'backbone' = step - rest. Prompts are Figure-4 style with MANE names, as in the demo (~45 tokens).

    python benchmarks/bench_model.py [--steps 5] [--backbone results/backbone/smollm2-135m]

Second section ('flops', issue 11): a training step's achieved FLOP/s against the bare matmul rate of
the same GEMM shapes on the same machine, fp32, for backbone 2 and 8 blocks, N = 11 and 41, batch 8
and 32, torch threads 1 and 2. The step's FLOPs are counted analytically (`step_gemms`: forward and
backward, frozen weights without weight gradients, cached prompt keys/values, the vocabulary-wide
prototype products); the bare rate times torch.matmul on exactly those shapes and layouts (forward
products and the transposed ones the backward performs), each step interleaved with one bare pass,
so 'fraction' = step GFLOP/s / bare GFLOP/s is a ratio measured under the same machine load.

    python benchmarks/bench_model.py --section flops [--flops-layers 2 8] [--flops-bins 11 41]
        [--flops-batch 8 32] [--flops-threads 1 2] [--repeats 5]

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

GENES = [
    ("A1BG", "alpha-1-B glycoprotein"),
    ("NAT2", "N-acetyltransferase 2"),
    ("ADA", "adenosine deaminase"),
    ("CDH2", "cadherin 2"),
    ("AKT3", "AKT serine/threonine kinase 3"),
    ("ZBTB11-AS1", "ZBTB11 antisense RNA 1"),
    ("MED6", "mediator complex subunit 6"),
    ("NR2E3", "nuclear receptor subfamily 2 group E member 3"),
]
PROMPT = (
    "# Task: Gene Expression Prediction on GM12878 lymphoblastoid cells.\n# Official Gene Symbol: {}\n"
    "# Official Gene Full Name: {}\n# Data:"
)


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
    ap.add_argument("--section", choices=("all", "steps", "flops"), default="all")
    ap.add_argument("--flops-layers", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--flops-bins", type=int, nargs="+", default=[11, 41])
    ap.add_argument("--flops-batch", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--flops-threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    a, _ = ap.parse_known_args()  # benchmarks/run_all.py passes its own selection arguments

    # the weights are memory-mapped from the folder: keep a temporary conversion until the end
    with tempfile.TemporaryDirectory(prefix="gta-bench-") as scratch:
        folder = backbone_folder(a.backbone, scratch)
        if a.section in ("all", "steps"):
            backbone, tokenizer = load_backbone(folder, layers=a.layers)
            run(a, backbone, tokenizer)
        if a.section in ("all", "flops"):
            run_flops(a, folder)


def run(a: argparse.Namespace, backbone, tokenizer) -> None:
    names = [CLASS_NAMES[i] for i in KEPT]
    texts = [PROMPT.format(*GENES[i % len(GENES)]) for i in range(a.batch)]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
        f"SmolLM2-135M {a.layers} blocks, batch {a.batch}, median of {a.steps} steps "
        "(timings on a shared machine are noisy)"
    )
    print(
        f"{'N':>4} {'precision':>9} {'prompt':>10} {'tokens':>7} {'step s':>7} {'genes/s':>8} "
        f"{'backbone s':>10} {'rest s':>7} {'backbone %':>10}"
    )
    for n in a.bins:
        ids = encode_prompts(tokenizer, texts, 2048 - n)
        mean_tokens = sum(len(i) for i in ids) / len(ids) + n
        torch.manual_seed(0)
        x, target = torch.randn(a.batch, n, len(KEPT)), torch.randn(a.batch)
        for amp in (False, True):
            for cached in (True, False):
                torch.manual_seed(0)
                model = GTA(
                    backbone,
                    tokenizer,
                    names,
                    n_features=len(KEPT),
                    prompt_cache_mb=2048 if cached else 0,
                    prompt_cache_host_mb=0,
                ).train()
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
                print(
                    f"{n:>4} {'bf16' if amp else 'fp32':>9} {'cached' if cached else 'recomputed':>10} "
                    f"{mean_tokens:>7.0f} {total:>7.3f} {a.batch / total:>8.1f} {total - rest:>10.3f} "
                    f"{rest:>7.3f} {100 * (total - rest) / total:>9.0f}%",
                    flush=True,
                )


# ----------------------------------------------------------------------------- FLOPs (issue 11)


def cpu_name() -> str:
    """lscpu-style model name and the SIMD flags that decide the fp32/bf16 GEMM rate."""
    name, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name == "unknown CPU":
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} [{' '.join(simd) or 'no avx2/avx512/amx flags'}]"


def step_gemms(cfg: dict, batch: int, n: int, lengths: list[int], width: int, bidirectional: bool = False):
    """The matrix products of one fp32 training step (forward + backward), and its useful FLOPs.

    Returns (gemms, useful_flops). gemms: (count, batch, m, k, n, a_transposed, b_transposed) for
    A (m, k) @ B (k, n), each operand stored as the step stores it (a transposed operand is a .t() view
    of a contiguous tensor), i.e. what the bare-matmul rate is timed on; attention products are over
    the padded key width the step computes. useful_flops counts 2*m*k*n per product over the work a
    step needs: frozen backbone weights get no weight gradient (their inputs do, down to the alignment);
    cached prompt keys/values cost nothing; data tokens attend to their own prompt (true length) and
    the data tokens before them (all of them if bidirectional), and no key/value gradient is needed for
    prompt positions; the prototypes are one (P_vocab, V) @ (V, D) product (plus its weight gradient)
    per step whatever the batch; elementwise work (norms, rotary, softmax, Adam) is not counted.
    """
    D, I, hd = cfg["hidden"], cfg["intermediate"], cfg["head_dim"]
    hq, hkv, layers = cfg["heads"], cfg["kv_heads"], cfg["layers"]
    V, C, F = cfg["vocab"], cfg["class_tokens"], cfg["features"]
    pv, pc, ah, dk, k_top = cfg["p_vocab"], cfg["p_classes"], cfg["align_heads"], cfg["d_k"], cfg["top_k"]
    P, inner, T = pv + pc, ah * dk, batch * n
    g: list[tuple] = []

    def linear(rows, fan_in, fan_out, count=1, weight_grad=False, input_grad=True):
        g.append((count, 1, rows, fan_in, fan_out, False, True))  # y = x @ W^T
        if input_grad:
            g.append((count, 1, rows, fan_out, fan_in, False, False))  # dx = dy @ W
        if weight_grad:
            g.append((count, 1, fan_out, rows, fan_in, True, False))  # dW = dy^T @ x

    # backbone blocks: frozen projections (input gradients only) and attention over prompt + data keys
    kv = hkv * hd
    for fi, fo in ((D, hq * hd), (D, kv), (D, kv), (hq * hd, D), (D, I), (D, I), (I, D)):
        linear(T, fi, fo, count=layers)
    w = width + n
    bh = batch * hq
    attn = len(g)
    g += [
        (layers, bh, n, hd, w, False, True),
        (layers, bh, n, w, hd, False, False),  # QK^T, PV
        (layers, bh, n, hd, w, False, True),
        (layers, bh, w, n, hd, True, False),  # dP, dV
        (layers, bh, n, w, hd, False, False),
        (layers, bh, w, n, hd, True, False),
    ]  # dQ, dK
    # alignment: prototypes (vocab-wide and class-token), key/value maps, cross-attention, query, out
    g += [
        (1, 1, pv, V, D, False, False),
        (1, 1, pv, D, V, False, True),  # W @ E, dW = dP @ E^T
        (1, 1, pc, C, D, False, False),
        (1, 1, pc, D, C, False, True),
    ]
    linear(P, D, inner, count=2, weight_grad=True)  # key, value (protos need grads)
    linear(T, F, inner, weight_grad=True, input_grad=False)  # query (inputs need none)
    ba = batch * ah
    g += [
        (1, ba, n, dk, P, False, True),
        (1, ba, n, P, dk, False, False),  # scores, mixed
        (1, ba, n, dk, P, False, True),
        (1, ah, P, T, dk, True, False),  # d attention, d value
        (1, ba, n, P, dk, False, False),
        (1, ah, P, T, dk, True, False),
    ]  # d query, d key
    linear(T, inner, D, weight_grad=True)  # out
    # selector (every token) and head (the top k, flattened); the head's input gradient feeds the blocks
    linear(T, D, 1, weight_grad=True)
    linear(batch, min(k_top, n) * D, 1, weight_grad=True)

    def flops(rows):
        return sum(2.0 * c * b * m * k * nn for c, b, m, k, nn, _, _ in rows)

    useful = flops(g)
    # replace the padded attention count by the useful one: true prompt lengths, causal data keys,
    # and key/value gradients for the data keys only
    pad_attn = flops(g[attn : attn + 6])
    pairs_data = n * n if bidirectional else n * (n + 1) // 2
    pairs = sum(L * n for L in lengths) + batch * pairs_data  # (query, key) pairs
    useful += layers * hq * 2.0 * hd * (4 * pairs + 2 * batch * pairs_data) - pad_attn
    return g, useful


def bare_matmul(gemms):
    """A function that runs torch.matmul once on every product in `gemms` (operands made once)."""
    ops = []
    for count, b, m, k, n, ta, tb in gemms:
        lead = (b,) if b > 1 else ()
        a = torch.randn(*lead, k, m).transpose(-1, -2) if ta else torch.randn(*lead, m, k)
        bb = torch.randn(*lead, n, k).transpose(-1, -2) if tb else torch.randn(*lead, k, n)
        ops.append((count, a, bb))

    def go():
        for count, a, bb in ops:
            for _ in range(count):
                torch.matmul(a, bb)

    return go


def run_flops(a: argparse.Namespace, folder: str) -> None:
    names = [CLASS_NAMES[i] for i in KEPT]
    print(
        f"\nTraining-step FLOP/s vs the bare matmul rate of the same shapes (fp32): {cpu_name()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}; median of {a.repeats} steps, each followed "
        "by one bare pass (interleaved: the machine is shared)"
    )
    print(
        f"{'blocks':>6} {'N':>4} {'batch':>5} {'threads':>7} {'GFLOP':>6} {'step s':>7} {'genes/s':>8} "
        f"{'step GF/s':>9} {'bare s':>7} {'bare GF/s':>9} {'fraction':>8}"
    )
    threads0 = torch.get_num_threads()
    for layers in a.flops_layers:
        backbone, tokenizer = load_backbone(folder, layers=layers)
        bc = backbone.config
        for n in a.flops_bins:
            for batch in a.flops_batch:
                texts = [PROMPT.format(*GENES[i % len(GENES)]) for i in range(batch)]
                ids = encode_prompts(tokenizer, texts, 2048 - n)
                torch.manual_seed(0)
                x, target = torch.randn(batch, n, len(KEPT)), torch.randn(batch)
                model = GTA(backbone, tokenizer, names, n_features=len(KEPT)).train()
                opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
                al = model.align
                cfg = dict(
                    hidden=bc.hidden_size,
                    intermediate=bc.intermediate_size,
                    head_dim=getattr(bc, "head_dim", bc.hidden_size // bc.num_attention_heads),
                    heads=bc.num_attention_heads,
                    kv_heads=bc.num_key_value_heads,
                    layers=layers,
                    vocab=al.vocab_map.in_features,
                    class_tokens=al.class_map.in_features,
                    features=len(KEPT),
                    p_vocab=al.vocab_map.out_features,
                    p_classes=al.class_map.out_features,
                    align_heads=al.heads,
                    d_k=al.d_k,
                    top_k=model.head.top_k,
                )
                lengths = [len(i) for i in ids]
                gemms, useful = step_gemms(cfg, batch, n, lengths, max(lengths), model.bidirectional)
                bare_flops = sum(2.0 * c * b * m * k * nn for c, b, m, k, nn, _, _ in gemms)
                bare = bare_matmul(gemms)

                def step():
                    y = model(x, ids)
                    loss = torch.nn.functional.mse_loss(y.float(), target)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

                for threads in a.flops_threads:
                    torch.set_num_threads(threads)
                    for _ in range(2):  # warm-up (the first step also fills the prompt cache)
                        step()
                        bare()
                    ts, tb = [], []
                    for _ in range(a.repeats):
                        t0 = time.perf_counter()
                        step()
                        t1 = time.perf_counter()
                        bare()
                        ts.append(t1 - t0)
                        tb.append(time.perf_counter() - t1)
                    s, b = statistics.median(ts), statistics.median(tb)
                    rate, bare_rate = useful / s / 1e9, bare_flops / b / 1e9
                    print(
                        f"{layers:>6} {n:>4} {batch:>5} {threads:>7} {useful / 1e9:>6.1f} {s:>7.3f} "
                        f"{batch / s:>8.1f} {rate:>9.1f} {b:>7.3f} {bare_rate:>9.1f} "
                        f"{rate / bare_rate:>8.2f}",
                        flush=True,
                    )
    torch.set_num_threads(threads0)


if __name__ == "__main__":
    main()
