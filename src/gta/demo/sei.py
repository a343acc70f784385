"""The demo Sei: a seeded random network and projection matrix standing in for the official 3.3 GiB model.

Its weights are random (rescaled so outputs vary without saturating), so the demo's Sei class scores
are not biology: they are what the demo's simulated expression (`gta.demo.simulation`) is planted on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..io import atomic_path
from ..sei.checkpoint import save_sei
from ..sei.model import SEQUENCE_LENGTH, Sei, one_hot_codes, predict

log = logging.getLogger("gta.demo.sei")


def _calibration_batch(rng: np.random.Generator, n: int, length: int = SEQUENCE_LENGTH) -> torch.Tensor:
    """Seeded genome-like one-hot sequences: GC 0.3-0.7, CpG-rich stretches, tandem repeats."""
    seqs = np.empty((n, length), np.uint8)
    bases = np.frombuffer(b"ACGT", np.uint8)
    for i in range(n):
        gc = rng.uniform(0.3, 0.7)
        p = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
        s = bases[rng.choice(4, length, p=p)]
        if i % 4 == 1:  # a CpG island
            a = int(rng.integers(0, length - 1200))
            s[a : a + 1200 : 10], s[a + 1 : a + 1201 : 10] = ord("C"), ord("G")
        if i % 4 == 2:  # a tandem repeat
            a, k = int(rng.integers(0, length - 600)), int(rng.integers(1, 4))
            s[a : a + 600] = np.tile(bases[rng.integers(0, 4, k)], 600 // k + 1)[:600]
        seqs[i] = s
    return torch.from_numpy(one_hot_codes(seqs))


@torch.no_grad()
def build_demo_sei(width: float, n_targets: int, seed: int = 0, logit_std: float = 1.5, n_calibration: int = 64) -> Sei:
    """A Sei network with seeded random weights whose outputs vary between sequences without saturating.

    Weights start N(0, 1/fan_in); then, in one forward pass over seeded genome-like sequences, each
    convolution and linear layer is rescaled so that every output channel has mean 0 and unit standard
    deviation (layer-sequential unit variance), and the final layer so that each target's logit has
    standard deviation `logit_std` across sequences.
    """
    gen = torch.Generator().manual_seed(seed)
    model = Sei(width=width, n_targets=n_targets).eval()
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    for m in layers:
        fan_in = m.weight[0].numel()
        m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / fan_in**0.5)
        m.bias.zero_()
    last = model.classifier[2]

    def normalise(module, _inputs, out):
        dims = [0, 2] if out.ndim == 3 else [0]
        mean, std = out.mean(dims), out.std(dims).clamp_min(1e-6)
        scale = (logit_std if module is last else 1.0) / std
        module.weight.mul_(scale.view(-1, *[1] * (module.weight.ndim - 1)))
        module.bias.sub_(mean).mul_(scale)
        shape = (1, -1, 1) if out.ndim == 3 else (1, -1)
        return (out - mean.view(shape)) * scale.view(shape)

    hooks = [m.register_forward_hook(normalise) for m in layers]
    try:
        x = _calibration_batch(np.random.default_rng(seed), n_calibration)
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return model


def make_demo_projection(n_targets: int, seed: int = 0, n_rows: int = 61) -> np.ndarray:
    """A seeded random (61, n_targets) projection matrix, float32 (the official one has 61 rows)."""
    rng = np.random.default_rng([seed, 61])
    return rng.standard_normal((n_rows, n_targets)).astype(np.float32)


def make_demo_sei(checkpoint: str | Path, projection: str | Path, width: float, n_targets: int, seed: int = 0) -> Sei:
    """Stage make_demo_sei (rule, `gta make-demo-sei`): write the seeded demo checkpoint (official key prefix)
    and projection matrix.

    Args:
        checkpoint: output .pth
        projection: output .npy
        width: channel-width multiplier (1.0 = published Sei)
        n_targets: output targets (21907 = published Sei)
    """
    model = build_demo_sei(width, n_targets, seed)
    save_sei(model, checkpoint)
    with atomic_path(projection, suffix=".npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, make_demo_projection(n_targets, seed))
    x = _calibration_batch(np.random.default_rng([seed, 1]), 16)
    with torch.no_grad():
        p = predict(model, x)
    log.info(
        "demo Sei: width %.4g (channels %s), %d targets, %.2fM parameters; on 16 fresh sequences the "
        "sigmoid outputs have mean %.3f, across-sequence SD %.3f, %.2f%% outside [0.01, 0.99]",
        model.width,
        model.channels,
        n_targets,
        sum(p.numel() for p in model.parameters()) / 1e6,
        float(p.mean()),
        float(p.std(0).mean()),
        100 * float(((p < 0.01) | (p > 0.99)).float().mean()),
    )
    return model


__all__ = ["build_demo_sei", "make_demo_projection", "make_demo_sei"]
