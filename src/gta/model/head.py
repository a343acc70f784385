"""Selector and regression head: the top-k data tokens' final activations -> one expression value."""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

from .. import GTAError

log = logging.getLogger("gta.model.head")
GATES = ("sigmoid", "softmax")
HEADS = ("flatten", "position", "distance")
DISTANCE_BINS = (1.0, 3.0, 10.0, 30.0, 100.0)  # decay lengths of the distance head, in bins


class SelectorHead(nn.Module):
    """Score every data token, keep the top k in position order, gate them, regress on the flattened rest.

    A linear layer gives each data token's final activation h_i one logit s_i. The k tokens with the
    largest logits are kept in position (bin) order; each kept activation is standardised per hidden
    dimension (batch normalisation without affine parameters: running statistics at evaluation),
    scaled by a gate of its own logit, and the k * hidden values are flattened into a linear layer
    that gives the prediction.

    Why a gate: a hard top-k passes no gradient to the selector; scaling each kept activation by a
    function of its logit does. 'sigmoid' (default) scales by sigmoid(s_i): each token's weight
    depends on its own score only, stays in (0, 1) with a non-vanishing gradient at initialisation
    (all weights ~0.5), and does not shrink with k. 'softmax' scales by the softmax of the k kept
    logits (weights sum to 1, so tokens compete).

    Why the standardisation and scaling: a frozen LLM's final activations carry a few huge,
    gene-independent dimensions ("massive activations"); unstandardised, they dominate the head's
    input, so the gene-specific part is a tiny perturbation and the head's first Adam steps move the
    prediction by O(lr * k * hidden). The flattened input is divided by sqrt(k * hidden) and the
    head starts near zero (it predicts about the training mean), so one step moves the prediction by
    O(lr) whatever the backbone's width.

    With fewer data tokens than k (N < k) every token is kept and the remaining k - N slots of the
    head's input are zeros: the model is then exactly one with k = N.

    `mode` says how the head weighs the kept tokens:
    - 'flatten' (the paper): the k kept activations, in bin order, are flattened into one linear
      layer, so head slot j holds the j-th kept bin. When the selection differs between genes, slot j
      holds different bins, and no weight can depend on a bin's distance to the TSS.
    - 'position': one weight vector per bin position (n_bins x hidden); a kept token is weighed by
      the vector of the bin it came from, and the prediction sums over the kept tokens. With N <= k
      every bin is kept in order and this is exactly the 'flatten' head (slot j = bin j).
    - 'distance': the position head with its weights tied to the distance from the TSS bin:
      W = basis (n_bins x 10) @ readout (10 x hidden), the basis being exp(-|d| / L) on each side of
      the TSS bin (d <= 0 and d >= 0) for L in DISTANCE_BINS (ExPecto's distance-decay idea, here
      applied to the backbone's nonlinear token states): 10 x hidden weights whatever N.
    forward(h (B, N, hidden)) -> (prediction (B,), logits (B, N), indices (B, min(k, N))).
    """

    def __init__(
        self,
        hidden: int,
        top_k: int = 25,
        gate: str = "sigmoid",
        mode: str = "flatten",
        n_bins: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        if top_k < 1:
            raise GTAError(f"top_k must be >= 1 (got {top_k})", input="top_k")
        if gate not in GATES:
            raise GTAError(f"selector gate {gate!r} is not one of {', '.join(GATES)}", input="gate")
        if mode not in HEADS:
            raise GTAError(f"head {mode!r} is not one of {', '.join(HEADS)}", input="head")
        if mode != "flatten" and not (n_bins and n_bins >= 1):
            raise GTAError(f"head {mode!r} needs the number of bins (n_bins)", input=("head", "n_bins"))
        self.hidden, self.top_k, self.gate, self.mode = hidden, top_k, gate, mode
        self.n_bins = n_bins
        self.selector = nn.Linear(hidden, 1)
        self.norm = nn.BatchNorm1d(hidden, affine=False)
        self.dropout = nn.Dropout(dropout)  # on the standardised kept activations, in training only
        # weights start small (std 0.01), so predictions start near the training mean
        if mode == "flatten":
            self.head = nn.Linear(top_k * hidden, 1)
            nn.init.normal_(self.head.weight, std=0.01)
            nn.init.zeros_(self.head.bias)
        elif mode == "distance":
            self.register_buffer("basis", distance_basis(n_bins))
            self.readout = nn.Parameter(torch.randn(self.basis.shape[1], hidden) * 0.01)
            self.bias = nn.Parameter(torch.zeros(()))
        else:
            self.weight = nn.Parameter(torch.randn(n_bins, hidden) * 0.01)
            self.bias = nn.Parameter(torch.zeros(()))
        self.scale = 1.0 / math.sqrt(top_k * hidden)
        self._warned = False

    @property
    def position_weight(self) -> torch.Tensor:
        """The weights (n_bins, hidden) of the 'position' and 'distance' heads."""
        return self.basis @ self.readout if self.mode == "distance" else self.weight

    def forward(self, h: torch.Tensor):
        b, n, d = h.shape
        # selection and head in fp32 even under autocast: bf16 logits would tie and flip the top k
        with torch.autocast(h.device.type, enabled=False):
            h = h.float()
            logits = self.selector(h).squeeze(-1)  # (B, N)
            k = min(self.top_k, n)
            if k < self.top_k and self.mode == "flatten" and not self._warned:
                log.warning(
                    "only %d data tokens for top_k %d: all are selected, the other %d head inputs are zero",
                    n,
                    self.top_k,
                    self.top_k - k,
                )
                self._warned = True
            idx = torch.topk(logits, k, dim=1).indices.sort(dim=1).values  # (B, k), position order
            chosen = torch.gather(h, 1, idx[:, :, None].expand(b, k, d))  # (B, k, D)
            s = torch.gather(logits, 1, idx)
            weight = torch.sigmoid(s) if self.gate == "sigmoid" else torch.softmax(s, dim=1)
            chosen = self.norm(chosen.reshape(b * k, d)).reshape(b, k, d)
            gated = self.dropout(chosen) * weight[:, :, None] * self.scale
            if self.mode != "flatten":
                if n != self.n_bins:
                    raise GTAError(f"the position head was built for {self.n_bins} bins, got {n}")
                y = (gated * self.position_weight[idx]).sum(dim=(1, 2)) + self.bias
                return y, logits, idx
            flat = gated.reshape(b, k * d)
            if k < self.top_k:
                flat = torch.nn.functional.pad(flat, (0, (self.top_k - k) * d))
            y = self.head(flat).squeeze(-1)
        return y, logits, idx


def distance_basis(n_bins: int, lengths=DISTANCE_BINS) -> torch.Tensor:
    """(n_bins, 2 * len(lengths)) exp(-|d| / L) for d <= 0 and d >= 0, d = bin - centre bin."""
    d = torch.arange(n_bins, dtype=torch.float32) - n_bins // 2
    cols = []
    for length in lengths:
        w = torch.exp(-d.abs() / length)
        cols += [w * (d <= 0), w * (d >= 0)]
    return torch.stack(cols, dim=1)
