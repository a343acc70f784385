"""Token alignment: Sei class features per bin -> backbone input embeddings via text prototypes.

Following the paper (and Time-LLM's reprogramming layer it builds on): P text prototypes, each a learned
linear combination of frozen token embeddings (`prototypes_vocab` over the whole vocabulary,
`prototypes_classes` over the tokens of the Sei class names), serve as keys and values of a multi-head
cross-attention whose queries are the N bins' standardised features; the concatenated heads are mapped
linearly to the backbone's hidden size. Per-head size d_k, inner size heads * d_k, softmax scale
1/(sqrt(d_k) T) with the temperature T (1: the paper's scaled dot product), no residual, no dropout.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import GTAError


def class_token_ids(tokenizer, class_names: list[str]) -> list[int]:
    """The unique token ids of the class names, in order of first appearance.

    Each name is tokenised on its own, exactly as written (no leading space, no special tokens),
    e.g. 'B-cell-like', 'CTCF-Cohesin'; repeated names ('Transcription', 'Heterochromatin') and
    repeated sub-word tokens contribute once.
    """
    if not class_names:
        raise GTAError("class_names is empty: the class prototypes need the kept Sei class names")
    ids: list[int] = []
    seen: set[int] = set()
    for name in class_names:
        for t in tokenizer(name, add_special_tokens=False)["input_ids"]:
            if int(t) not in seen:
                seen.add(int(t))
                ids.append(int(t))
    if not ids:
        raise GTAError("the class names tokenise to no tokens; check the tokenizer and the names")
    return ids


# the size arguments of TokenAlignment, each at least 1
SIZES = (
    "n_features",
    "hidden",
    "vocab_size",
    "n_class_tokens",
    "prototypes_vocab",
    "prototypes_classes",
    "heads",
    "d_k",
)
CONFIG_SIZES = ("prototypes_vocab", "prototypes_classes", "heads", "d_k")  # the ones a ModelConfig field sets


class TokenAlignment(nn.Module):
    """Multi-head cross-attention from N feature bins (queries) to P text prototypes (keys, values).

    Prototypes: rows 0..prototypes_vocab-1 are linear combinations (with bias) of all `vocab_size`
    token embeddings; rows prototypes_vocab.. combine the `n_class_tokens` class-name token embeddings.
    forward(x, embeddings, class_ids) takes x (B, N, n_features), the frozen embedding table
    (vocab_size, hidden) and the class-name token ids, and returns (aligned (B, N, hidden),
    attention (B, heads, N, P)).
    """

    def __init__(
        self,
        n_features: int,
        hidden: int,
        vocab_size: int,
        n_class_tokens: int,
        prototypes_vocab: int = 50,
        prototypes_classes: int = 50,
        heads: int = 8,
        d_k: int = 32,
        temperature: float = 1.0,
    ):
        super().__init__()
        sizes = locals()  # the arguments, by name
        for name in SIZES:
            if sizes[name] < 1:
                raise GTAError(
                    f"token alignment: {name} must be >= 1 (got {sizes[name]})",
                    input=name if name in CONFIG_SIZES else None,
                )
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise GTAError(
                f"token alignment: align_temperature must be a number > 0 (got {temperature!r})",
                input="align_temperature",
            )
        self.heads, self.d_k, self.temperature = heads, d_k, float(temperature)
        self.vocab_map = nn.Linear(vocab_size, prototypes_vocab)
        self.class_map = nn.Linear(n_class_tokens, prototypes_classes)
        # Prototype combination weights live at unit scale and are divided by sqrt(fan_in) in
        # _combine: the prototypes start exactly as with nn.Linear's default U(+-1/sqrt(fan_in)),
        # but Adam's per-weight steps (size ~lr each) no longer add up over the 49k-128k vocabulary
        # rows into prototype jumps larger than the prototypes themselves at every step.
        for lin in (self.vocab_map, self.class_map):
            nn.init.uniform_(lin.weight, -1.0, 1.0)
            nn.init.uniform_(lin.bias, -1.0, 1.0)
        inner = heads * d_k
        self.query = nn.Linear(n_features, inner)
        self.key = nn.Linear(hidden, inner)
        self.value = nn.Linear(hidden, inner)
        self.out = nn.Linear(inner, hidden)

    @torch.no_grad()
    def calibrate(self, embeddings: torch.Tensor, class_ids: torch.Tensor) -> None:
        """Initialise the query and key maps so the attention logits start with unit variance.

        With nn.Linear's default initialisation and prototypes at the scale of token embeddings, the
        logits start near zero: every bin attends almost uniformly to all prototypes, every data
        token is nearly the same vector, and the backbone sees N copies of one token. Here queries get
        unit-variance entries from standardised features and keys from the prototypes' actual scale.
        """
        if embeddings.is_meta:  # shapes only (parameter counts): nothing to measure
            return
        protos = self.prototypes(embeddings, class_ids).float()
        rms = float(protos.pow(2).mean().sqrt()) or 1.0
        nn.init.normal_(self.query.weight, std=1.0 / math.sqrt(self.query.in_features))
        nn.init.normal_(self.key.weight, std=1.0 / (rms * math.sqrt(self.key.in_features)))
        nn.init.zeros_(self.query.bias)
        nn.init.zeros_(self.key.bias)

    @property
    def n_prototypes(self) -> int:
        return self.vocab_map.out_features + self.class_map.out_features

    def prototypes(self, embeddings: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        """The P text prototypes (P, hidden) from the frozen embedding table.

        Without autograd (evaluation, prediction) the prototypes are kept until the combination
        weights, the table or the class ids change: a (prototypes_vocab, vocabulary) @ (vocabulary,
        hidden) product per batch (2.8 GFLOP for SmolLM2) would otherwise often cost more than the
        batch itself. Parameters' in-place updates (optimiser steps, load_state_dict) bump their
        version counters, which are part of the key.
        """
        device_type = embeddings.device.type
        dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else embeddings.dtype
        if torch.is_grad_enabled() or torch.is_inference_mode_enabled():
            # (inference-mode results could not be reused outside inference mode)
            return self._prototypes(embeddings, class_ids, dtype)
        tensors = (
            self.vocab_map.weight,
            self.vocab_map.bias,
            self.class_map.weight,
            self.class_map.bias,
            embeddings,
            class_ids,
        )
        key = (dtype, *((t.data_ptr(), t._version, t.device, t.dtype) for t in tensors))
        cached = getattr(self, "_proto_cache", None)
        if cached is None or cached[0] != key:
            self._proto_cache = (key, self._prototypes(embeddings, class_ids, dtype))
        return self._proto_cache[1]

    def _prototypes(self, embeddings: torch.Tensor, class_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        device_type = embeddings.device.type
        with torch.autocast(device_type, enabled=False):
            vocab = self._combine(self.vocab_map, self._table_as(embeddings, dtype))
            classes = self._combine(self.class_map, embeddings.index_select(0, class_ids).to(dtype))
        return torch.cat([vocab, classes], dim=0).to(self.vocab_map.weight.dtype)

    @staticmethod
    def _combine(lin: nn.Linear, emb: torch.Tensor) -> torch.Tensor:
        """lin.out_features linear combinations (plus bias) of the rows of emb, in emb's dtype.

        The combination weights are stored at unit scale and divided by sqrt(fan_in) here (see
        __init__): the same function as a plain linear layer, but an Adam step moves a prototype
        by O(lr) instead of O(lr * sqrt(vocabulary size)).
        """
        scale = 1.0 / math.sqrt(lin.in_features)
        return (lin.weight.to(emb.dtype) @ emb + lin.bias.to(emb.dtype)[:, None]) * scale

    def _table_as(self, embeddings: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The embedding table in `dtype`; the cast copy of the (frozen) table is kept between calls."""
        if embeddings.dtype == dtype:
            return embeddings
        key = (embeddings.data_ptr(), embeddings._version, embeddings.device, dtype)
        cached = getattr(self, "_table_cache", None)
        if cached is None or cached[0] != key:
            self._table_cache = (key, embeddings.detach().to(dtype))
        return self._table_cache[1]

    def forward(self, x: torch.Tensor, embeddings: torch.Tensor, class_ids: torch.Tensor):
        b, n, _ = x.shape
        protos = self.prototypes(embeddings, class_ids)  # (P, D)
        q = self.query(x).view(b, n, self.heads, self.d_k)  # (B, N, H, E)
        k = self.key(protos).view(-1, self.heads, self.d_k)  # (P, H, E)
        v = self.value(protos).view(-1, self.heads, self.d_k)  # (P, H, E)
        scores = torch.einsum("bnhe,phe->bhnp", q, k) / (math.sqrt(self.d_k) * self.temperature)
        attention = torch.softmax(scores.float(), dim=-1).to(v.dtype)  # (B, H, N, P)
        mixed = torch.einsum("bhnp,phe->bnhe", attention, v).reshape(b, n, self.heads * self.d_k)
        return self.out(mixed), attention
