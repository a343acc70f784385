"""The Sei network (Chen et al. 2022), its B-spline basis, one-hot encoding and class projection.

Layer names, indices, shapes and the forward wiring match the published
`sei.pth` at width 1.0 (docs/formats.md, Sei checkpoint); `width` scales every channel
count for tests and the embedded demo.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import GTAError
from .classes import N_CLASSES

SEQUENCE_LENGTH = 4096
SPLINE_DF = 16
N_TARGETS = 21907
BASE_CHANNELS = (480, 640, 960)
DILATIONS = (2, 4, 8, 16, 25)

# byte -> one-hot row (A, C, G, T); every other byte (N, IUPAC codes, gaps) is 0.25 in all four
_ONE_HOT = np.full((256, 4), 0.25, np.float32)
for _i, _b in enumerate(b"ACGT"):
    _ONE_HOT[_b] = 0.0
    _ONE_HOT[_b, _i] = 1.0
    _ONE_HOT[_b + 32] = _ONE_HOT[_b]  # lower case (soft-masked repeats)
ONE_HOT_TABLE = _ONE_HOT


def one_hot(seq: str | bytes) -> np.ndarray:
    """One-hot encoding, float32 (4, len(seq)), rows A, C, G, T; lower case accepted; other bases 0.25."""
    codes = np.frombuffer(seq.encode("ascii") if isinstance(seq, str) else bytes(seq), np.uint8)
    return np.ascontiguousarray(ONE_HOT_TABLE[codes].T)


def one_hot_codes(codes: np.ndarray) -> np.ndarray:
    """One-hot of a (..., L) uint8 array of ASCII bases -> float32 (..., 4, L)."""
    return np.ascontiguousarray(np.swapaxes(ONE_HOT_TABLE[codes], -1, -2))


def reverse_complement_onehot(x: torch.Tensor) -> torch.Tensor:
    """Reverse complement of (batch, 4, L) one-hot sequences in A, C, G, T order (flip both axes)."""
    return x.flip(-2, -1)


# ----------------------------------------------------------------------------- B-spline basis


def bspline_basis(n: int = 256, df: int = SPLINE_DF, degree: int = 3) -> np.ndarray:
    """The (n, df) cubic B-spline basis Sei applies to its n positions (intercept kept, not scaled).

    Evaluated at positions 0..n-1; df - 4 interior knots evenly spaced between 0 and n-1 (excluded),
    boundary knots 0 and n-1 repeated degree + 1 times; the last interval is closed so that
    row n-1 is the last basis function. Every row sums to 1.
    """
    order = degree + 1
    n_inner = df - order
    if n < 2 or n_inner < 0:
        raise GTAError(f"bspline_basis needs n >= 2 and df >= {order} (got n={n}, df={df})")
    lo, hi = 0.0, float(n - 1)
    inner = np.linspace(lo, hi, n_inner + 2)[1:-1]
    knots = np.concatenate([[lo] * order, inner, [hi] * order])
    x = np.arange(n, dtype=np.float64)
    # degree 0: indicator of [t_i, t_{i+1}); the last non-empty interval also takes x == hi
    basis = np.zeros((n, len(knots) - 1))
    for i in range(len(knots) - 1):
        if knots[i + 1] > knots[i]:
            basis[:, i] = (x >= knots[i]) & (x < knots[i + 1])
    last = np.nonzero(knots[1:] > knots[:-1])[0][-1]
    basis[x == hi, last] = 1.0
    # Cox-de Boor recursion, terms with a zero-length support dropped (0/0 := 0)
    for k in range(1, degree + 1):
        nxt = np.zeros((n, len(knots) - 1 - k))
        for i in range(len(knots) - 1 - k):
            left = knots[i + k] - knots[i]
            right = knots[i + k + 1] - knots[i + 1]
            if left > 0:
                nxt[:, i] += (x - knots[i]) / left * basis[:, i]
            if right > 0:
                nxt[:, i] += (knots[i + k + 1] - x) / right * basis[:, i + 1]
        basis = nxt
    assert basis.shape == (n, df)
    return basis


class BSplineTransformation(nn.Module):
    """Project the last axis (positions) onto a fixed cubic B-spline basis: (B, C, n) -> (B, C, df)."""

    def __init__(self, df: int = SPLINE_DF):
        super().__init__()
        self.df = df
        self._cache: dict[tuple, torch.Tensor] = {}

    def basis(self, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (n, str(device), dtype)
        if key not in self._cache:
            self._cache[key] = torch.from_numpy(bspline_basis(n, self.df)).to(device=device, dtype=dtype)
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # under autocast matmul casts both operands itself; otherwise match the input's dtype
        dtype = torch.float32 if torch.is_autocast_enabled(x.device.type) else x.dtype
        return torch.matmul(x, self.basis(x.shape[-1], x.device, dtype))


# ----------------------------------------------------------------------------- the network


def sei_channels(width: float) -> tuple[int, int, int]:
    """Channel counts of the three resolutions at a width multiplier (480, 640, 960 at 1.0)."""
    if not width > 0:
        raise GTAError(f"the Sei width multiplier must be > 0 (got {width})", input="width")
    return tuple(max(1, int(round(c * width))) for c in BASE_CHANNELS)


def _conv(cin: int, cout: int, k: int = 9, dilation: int = 1) -> nn.Conv1d:
    return nn.Conv1d(cin, cout, kernel_size=k, dilation=dilation, padding=dilation * (k - 1) // 2)


class Sei(nn.Module):
    """The Sei sequence model: (batch, 4, 4096) one-hot -> (batch, n_targets) sigmoid outputs.

    At width 1.0 and n_targets 21907 its state dict has the official keys and shapes (without the
    `module.model.` prefix). `channels` overrides the width-derived channel counts (used when a
    checkpoint's shapes decide them).
    """

    def __init__(
        self,
        width: float = 1.0,
        n_targets: int = N_TARGETS,
        channels: tuple[int, int, int] | None = None,
        sequence_length: int = SEQUENCE_LENGTH,
    ):
        super().__init__()
        c1, c2, c3 = channels if channels is not None else sei_channels(width)
        if sequence_length % 16:
            raise GTAError(f"Sei needs a sequence length divisible by 16 (got {sequence_length})")
        self.channels = (c1, c2, c3)
        self.n_targets = n_targets
        self.sequence_length = sequence_length
        self.lconv1 = nn.Sequential(_conv(4, c1), _conv(c1, c1))
        self.conv1 = nn.Sequential(_conv(c1, c1), nn.ReLU(inplace=True), _conv(c1, c1), nn.ReLU(inplace=True))
        self.lconv2 = nn.Sequential(nn.MaxPool1d(4, 4), nn.Dropout(0.2), _conv(c1, c2), _conv(c2, c2))
        self.conv2 = nn.Sequential(
            nn.Dropout(0.2), _conv(c2, c2), nn.ReLU(inplace=True), _conv(c2, c2), nn.ReLU(inplace=True)
        )
        self.lconv3 = nn.Sequential(nn.MaxPool1d(4, 4), nn.Dropout(0.2), _conv(c2, c3), _conv(c3, c3))
        self.conv3 = nn.Sequential(
            nn.Dropout(0.2), _conv(c3, c3), nn.ReLU(inplace=True), _conv(c3, c3), nn.ReLU(inplace=True)
        )
        for i, d in enumerate(DILATIONS, start=1):
            setattr(
                self, f"dconv{i}", nn.Sequential(nn.Dropout(0.1), _conv(c3, c3, k=5, dilation=d), nn.ReLU(inplace=True))
            )
        self.spline_tr = nn.Sequential(nn.Dropout(0.5), BSplineTransformation(SPLINE_DF))
        self.classifier = nn.Sequential(
            nn.Linear(c3 * SPLINE_DF, n_targets), nn.ReLU(inplace=True), nn.Linear(n_targets, n_targets), nn.Sigmoid()
        )

    @property
    def width(self) -> float:
        return self.channels[0] / BASE_CHANNELS[0]

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Convolutional trunk: (batch, 4, L) -> (batch, c3, L / 16)."""
        lout1 = self.lconv1(x)
        out1 = self.conv1(lout1)
        lout2 = self.lconv2(out1 + lout1)
        out2 = self.conv2(lout2)
        lout3 = self.lconv3(out2 + lout2)
        out3 = self.conv3(lout3)
        c = out3 + self.dconv1(out3 + lout3)
        c = c + self.dconv2(c)
        c = c + self.dconv3(c)
        c = c + self.dconv4(c)
        return c + self.dconv5(c)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid outputs (batch, n_targets)."""
        s = self.spline_tr(self.trunk(x))
        h = s.reshape(s.shape[0], -1)  # channel-major: index c * 16 + k
        return self.classifier[2](self.classifier[1](self.classifier[0](h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the sigmoid runs in fp32 even under autocast
        return self.classifier[3](self.logits(x).float())


def predict(model: Sei, x: torch.Tensor, reverse_complement: bool = True) -> torch.Tensor:
    """Sigmoid outputs (batch, n_targets), fp32; with `reverse_complement` the mean over both strands."""
    if not reverse_complement:
        return model(x).float()
    both = model(torch.cat([x, reverse_complement_onehot(x)], 0)).float()
    n = x.shape[0]
    return (both[:n] + both[n:]) * 0.5


# ----------------------------------------------------------------------------- class projection


def projection_matrix(projvec: np.ndarray | torch.Tensor, n_classes: int = N_CLASSES) -> np.ndarray:
    """The first `n_classes` rows of a projection matrix scaled to unit length, float64 (n_classes, T)."""
    v = np.asarray(projvec.detach().cpu() if isinstance(projvec, torch.Tensor) else projvec, np.float64)
    if v.ndim != 2 or v.shape[0] < n_classes:
        raise GTAError(
            f"a Sei projection matrix must be 2-D with at least {n_classes} rows (got shape {v.shape})",
            input="projection",
        )
    v = v[:n_classes]
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    if not np.all(norm > 0) or not np.all(np.isfinite(v)):
        raise GTAError("a Sei projection matrix has a zero or non-finite row among its first 40", input="projection")
    return v / norm


def class_scores(predictions: np.ndarray | torch.Tensor, projvec: np.ndarray | torch.Tensor) -> np.ndarray:
    """Sequence-class scores (n, 40): predictions projected onto the unit vectors of projvec's first 40 rows."""
    p = np.asarray(predictions.detach().float().cpu() if isinstance(predictions, torch.Tensor) else predictions)
    u = projection_matrix(projvec)
    if p.ndim != 2 or p.shape[1] != u.shape[1]:
        raise GTAError(
            f"predictions {p.shape} and projection matrix ({u.shape[0]}, {u.shape[1]}) disagree on "
            "the number of targets"
        )
    return (p.astype(np.float64) @ u.T).astype(np.float32)
