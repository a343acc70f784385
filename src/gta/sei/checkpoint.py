"""Sei checkpoints and projection matrices: loading (official or demo), checks, saving.

The seeded random demo model is made by `gta.demo.sei`.
"""

from __future__ import annotations

import io

import logging
import pickle
from pathlib import Path

import numpy as np
import torch

from .. import GTAError
from ..io import atomic_path, sha256sum  # noqa: F401  (sha256sum re-exported)
from .model import N_CLASSES, Sei

log = logging.getLogger("gta.sei.checkpoint")

OFFICIAL_PREFIX = "module.model."
CONV_KEYS = [
    "lconv1.0",
    "lconv1.1",
    "conv1.0",
    "conv1.2",
    "lconv2.2",
    "lconv2.3",
    "conv2.1",
    "conv2.3",
    "lconv3.2",
    "lconv3.3",
    "conv3.1",
    "conv3.3",
] + [f"dconv{i}.1" for i in range(1, 6)]
LAYER_KEYS = CONV_KEYS + ["classifier.0", "classifier.2"]
EXPECTED_KEYS = [f"{k}.{p}" for k in LAYER_KEYS for p in ("weight", "bias")]
_FIX = "use the official sei.pth (Zenodo 4906997, model/sei.pth) or the demo's random checkpoint"


def strip_prefix(state: dict) -> dict:
    """Drop the official `module.model.` prefix (or `module.` / `model.`) from state-dict keys."""
    for prefix in (OFFICIAL_PREFIX, "module.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def read_state_dict(path: str | Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The bare-key Sei state dict of a checkpoint file, checked against `sha256` when given."""
    path = Path(path)
    if not path.is_file():
        raise GTAError(f"Sei checkpoint not found: {path} ({_FIX})", input="checkpoint")
    if sha256:
        got = sha256sum(path)
        if got.lower() != sha256.strip().lower():
            raise GTAError(
                f"Sei checkpoint {path} has sha256 {got}, but the expected sha256 is {sha256}: the file is "
                "corrupt, incomplete or a different model; download it again or fix the expected sha256",
                input=("checkpoint", "sha256"),
            )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle with code, not a torch file at all
        # torch's own message for a pickle suggests weights_only=False, which could run code: never relay it
        why = "it is not a plain state dict of tensors" if isinstance(e, pickle.UnpicklingError) else str(e)
        raise GTAError(
            f"cannot read Sei checkpoint {path}: {type(e).__name__}: {why.splitlines()[0] if why else ''}; the "
            f"file is corrupt or not a torch state dict, and pickled objects are never loaded ({_FIX})",
            input="checkpoint",
        ) from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise GTAError(f"Sei checkpoint {path} is not a state dict of tensors ({_FIX})", input="checkpoint")
    state = strip_prefix(obj)
    missing = [k for k in EXPECTED_KEYS if k not in state]
    extra = [k for k in state if k not in EXPECTED_KEYS]
    if missing or extra:
        raise GTAError(
            f"Sei checkpoint {path} does not have the Sei layout: "
            f"missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {extra[:4]}{'...' if len(extra) > 4 else ''} ({_FIX})",
            input="checkpoint",
        )
    return state


def infer_shapes(state: dict[str, torch.Tensor], path: str | Path = "") -> tuple[tuple[int, int, int], int]:
    """(channels, n_targets) of a bare-key Sei state dict, from its tensor shapes."""
    try:
        c1 = state["lconv1.0.weight"].shape[0]
        c2 = state["lconv2.2.weight"].shape[0]
        c3 = state["lconv3.2.weight"].shape[0]
        n_targets = state["classifier.2.weight"].shape[0]
    except (KeyError, IndexError) as e:
        raise GTAError(f"Sei checkpoint {path} lacks a layer: {e}", input="checkpoint") from e
    return (int(c1), int(c2), int(c3)), int(n_targets)


def load_sei(path: str | Path, sha256: str | None = None, device: str | torch.device = "cpu") -> Sei:
    """Load a Sei checkpoint (official `module.model.`-prefixed or bare keys) in eval mode on `device`.

    Width and n_targets come from the tensor shapes. `sha256`, when given, must match the file.
    """
    state = read_state_dict(path, sha256)
    channels, n_targets = infer_shapes(state, path)
    with torch.device("meta"):
        model = Sei(channels=channels, n_targets=n_targets)
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    except RuntimeError as e:
        first = [line.strip() for line in str(e).splitlines() if "size mismatch" in line][:2]
        raise GTAError(
            f"Sei checkpoint {path} has tensor shapes that do not fit one "
            f"Sei network: {' '.join(first) or str(e)[:300]} ({_FIX})",
            input="checkpoint",
        ) from e
    log.info(
        "loaded Sei from %s: channels %s, %d targets, %.1fM parameters",
        path,
        channels,
        n_targets,
        sum(p.numel() for p in model.parameters()) / 1e6,
    )
    return model.to(device).eval()


def save_sei(model: Sei, path: str | Path, prefix: str = OFFICIAL_PREFIX) -> None:
    """Write a model's state dict as a checkpoint with the official key prefix (atomically)."""
    state = {prefix + k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # through memory: torch.save names the zip's records after the file it writes, here a random temporary
    # name, so the same weights would give other bytes (and another sha256 in the features' provenance)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path, suffix=".pth") as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_projection(path: str | Path, n_targets: int | None = None) -> np.ndarray:
    """A Sei projection matrix (`projvec_targets.npy`, rows = classes, columns = targets), float32."""
    path = Path(path)
    if not path.is_file():
        raise GTAError(
            f"Sei projection matrix not found: {path} (the official projvec_targets.npy ships in "
            "sei_model.tar.gz; the demo makes a random one)",
            input="projection",
        )
    try:
        v = np.load(path, allow_pickle=False)
    except Exception as e:
        raise GTAError(f"cannot read the Sei projection matrix {path}: {e}", input="projection") from e
    if v.ndim != 2 or v.shape[0] < N_CLASSES or not np.issubdtype(v.dtype, np.number):
        raise GTAError(
            f"Sei projection matrix {path} must be numeric with shape "
            f"(>= {N_CLASSES}, n_targets), e.g. (61, 21907); got {v.shape} {v.dtype}",
            input="projection",
        )
    if n_targets is not None and v.shape[1] != n_targets:
        raise GTAError(
            f"Sei projection matrix {path} has {v.shape[1]} columns but the "
            f"checkpoint predicts {n_targets} targets; use the projection that belongs to the checkpoint",
            input=("projection", "checkpoint"),
        )
    return v.astype(np.float32)


__all__ = [
    "load_sei",
    "load_projection",
    "read_state_dict",
    "save_sei",
    "sha256sum",
    "strip_prefix",
    "EXPECTED_KEYS",
    "OFFICIAL_PREFIX",
]
