"""Running the backbone's decoder blocks on a prompt, then on the data tokens behind it.

GTA's sequence is [prompt tokens, N data tokens]. Prompt tokens attend causally to the prompt only
(in both attention modes), so their keys and values in every block depend on the prompt alone. The
model therefore runs the prompt first (`prompt_pass`, recording each block's keys and values) and the
data tokens second (`data_pass`, attending to those keys and values plus their own). This is the same
computation as one pass over the concatenated sequence, but lets a frozen backbone reuse a gene's prompt
keys/values across steps (`PromptKVCache`) and skips the backward pass through the prompt.

Batches of prompts of different lengths are right-padded; masks hide the padding and every gene keeps
its own positions (prompt 0..L-1, data L..L+N-1), so a gene's output does not depend on the other genes in
its batch, up to rounding: the kernels a pass runs are chosen by its shapes, and another shape can change
the last bits. `prefill` therefore runs prompts in passes of one fixed shape per prompt length: groups of
PREFILL_GROUP prompts (the last group of a length filled up with copies), padded to the length rounded up
to PREFILL_BUCKET tokens. Each row of a pass is computed by the same operations whatever the other rows
hold, so a prompt gets the same keys and values bit for bit whichever prompts share its pass, in any
order: what `PromptKVCache` keeps, and a resumed run, do not depend on the batches that met a prompt.
"""

from __future__ import annotations

import inspect
import logging
from collections import OrderedDict

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint

log = logging.getLogger("gta.model")


class PrefixKV:
    """Read-only stand-in for a Hugging Face cache: prepends fixed per-block keys/values to the new ones."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor]):
        self.keys, self.values = keys, values

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        k = torch.cat([self.keys[layer_idx].to(key_states.dtype), key_states], dim=-2)
        v = torch.cat([self.values[layer_idx].to(value_states.dtype), value_states], dim=-2)
        return k, v


class RecordKV:
    """Stand-in for a Hugging Face cache that records each block's keys and values and passes them on."""

    def __init__(self):
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        self.keys[layer_idx], self.values[layer_idx] = key_states, value_states
        return key_states, value_states


def _cache_keyword(layer: nn.Module) -> str:
    """The decoder layer's cache argument: 'cache' (transformers >= 5.2x), earlier 'past_key_value(s)'."""
    params = inspect.signature(type(layer).forward).parameters
    return next((k for k in ("cache", "past_key_values", "past_key_value") if k in params), "past_key_values")


GQA_SDPA = "gta_sdpa_gqa"


def _sdpa_gqa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """Hugging Face's SDPA attention for our boolean (B, 1, Q, K) masks, without copying keys/values per head.

    Given a mask, transformers' 'sdpa' repeats every key/value head for its query-head group
    (repeat_kv: a copy of the prompt + data keys and values in every block, and a reduction of their
    gradients in the backward pass); torch's SDPA does the grouping itself (enable_gqa), with the same
    kernel and the same result up to float rounding. Anything else goes to transformers' own function.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    if (
        attention_mask is None
        or attention_mask.dtype != torch.bool
        or groups <= 1
        or dropout
        or kwargs.get("position_bias") is not None
        or kwargs.get("softcap") is not None
    ):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    out = nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, scale=scaling, enable_gqa=True
    )
    return out.transpose(1, 2).contiguous(), None


def _attention_implementation(backbone: nn.Module) -> str | None:
    """The attention function to run the blocks with: ours for transformers' SDPA, else the backbone's."""
    impl = getattr(backbone.config, "_attn_implementation", None)
    if impl != "sdpa":
        return impl
    try:
        from transformers import AttentionInterface

        if GQA_SDPA not in AttentionInterface._global_mapping:
            AttentionInterface.register(GQA_SDPA, _sdpa_gqa)
    except (ImportError, AttributeError):  # an older transformers: keep its SDPA
        return impl
    return GQA_SDPA


def _call_layer(layer, hidden, mask, position_embeddings, position_ids, cache, cache_kw, attn_impl=None):
    # the attention function is looked up from the (shared) config at call time: switched for this
    # call only, inside the checkpointed function, so a recomputation in the backward pass uses it too
    config = getattr(getattr(layer, "self_attn", None), "config", None)
    saved = getattr(config, "_attn_implementation", None)
    switch = attn_impl is not None and config is not None and saved != attn_impl
    if switch:
        config._attn_implementation = attn_impl
    try:
        out = layer(
            hidden,
            attention_mask=mask,
            position_embeddings=position_embeddings,
            position_ids=position_ids,
            **{cache_kw: cache},
        )
    finally:
        if switch:
            config._attn_implementation = saved
    return out[0] if isinstance(out, tuple) else out


def _attention_mask(backbone: nn.Module, allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, Q, K) bool 'may attend' -> the 4-D mask the backbone's attention implementation expects."""
    allowed = allowed[:, None]
    if getattr(backbone.config, "_attn_implementation", "sdpa") == "eager":
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
            ~allowed, torch.finfo(dtype).min
        )
    return allowed


def run_blocks(
    backbone: nn.Module,
    hidden: torch.Tensor,
    position_ids: torch.Tensor,
    allowed: torch.Tensor,
    cache,
    checkpoint: bool = False,
) -> torch.Tensor:
    """Hidden states after every decoder block (no final norm) for (B, T, D) inputs.

    `allowed` is a (B, T, K) bool matrix of which key each query may attend to (K = cached prefix + T);
    `cache` a PrefixKV / RecordKV or None; `checkpoint` recomputes each block in the backward pass.
    """
    layers = backbone.layers
    if len(layers) == 0:
        return hidden
    cache_kw = _cache_keyword(layers[0])
    mask = _attention_mask(backbone, allowed, hidden.dtype)
    pe = backbone.rotary_emb(hidden, position_ids)
    impl = _attention_implementation(backbone)
    for layer in layers:
        if checkpoint and torch.is_grad_enabled():
            hidden = _checkpoint(
                _call_layer, layer, hidden, mask, pe, position_ids, cache, cache_kw, impl, use_reentrant=False
            )
        else:
            hidden = _call_layer(layer, hidden, mask, pe, position_ids, cache, cache_kw, impl)
    return hidden


def prompt_pass(
    backbone: nn.Module, prompt_ids: list[torch.Tensor], return_states: bool = False, width: int | None = None
):
    """Run right-padded prompts (each non-empty) through the blocks, causally.

    Returns (keys, values, states): per-block keys and values (B, kv_heads, width, head_dim) with
    garbage at padded positions, and, if asked, the final-normed hidden states (B, width, D); `width`
    defaults to the longest prompt.
    """
    device = backbone.embed_tokens.weight.device
    lengths = torch.tensor([len(p) for p in prompt_ids], device=device)
    width = max(int(lengths.max()), width or 0)
    ids = torch.zeros(len(prompt_ids), width, dtype=torch.long, device=device)
    for i, p in enumerate(prompt_ids):
        ids[i, : len(p)] = p.to(device)
    hidden = backbone.embed_tokens(ids)
    ar = torch.arange(width, device=device)
    position_ids = ar.expand(len(prompt_ids), width)
    allowed = (ar[None, :] <= ar[:, None])[None] & (ar[None, None, :] < lengths[:, None, None])
    allowed = allowed | torch.eye(width, dtype=torch.bool, device=device)[None]  # padded rows see themselves
    record = RecordKV()
    hidden = run_blocks(backbone, hidden, position_ids, allowed, record)
    n = len(backbone.layers)
    keys = [record.keys[i] for i in range(n)]
    values = [record.values[i] for i in range(n)]
    return keys, values, (backbone.norm(hidden) if return_states else None)


def data_pass(
    backbone: nn.Module,
    data: torch.Tensor,
    prefix_keys: list[torch.Tensor] | None,
    prefix_values: list[torch.Tensor] | None,
    lengths: torch.Tensor,
    bidirectional: bool = False,
    checkpoint: bool = False,
) -> torch.Tensor:
    """Final-normed hidden states (B, N, D) of the data tokens placed after each gene's prompt.

    `prefix_keys`/`prefix_values`: per-block (B, kv_heads, L_max, head_dim) prompt keys/values, right
    padded (None when no gene has a prompt); `lengths` (B,) the true prompt lengths. Data tokens see
    their own prompt and the data tokens before them ('causal') or all data tokens ('bidirectional').
    """
    b, n, _ = data.shape
    device = data.device
    width = prefix_keys[0].shape[-2] if prefix_keys else 0
    lengths = lengths.to(device)
    ar_n = torch.arange(n, device=device)
    position_ids = lengths[:, None] + ar_n[None, :]
    own = torch.ones(n, n, dtype=torch.bool, device=device) if bidirectional else ar_n[None, :] <= ar_n[:, None]
    allowed = own[None].expand(b, n, n)
    cache = None
    if width:
        prompt_ok = torch.arange(width, device=device)[None, :] < lengths[:, None]
        allowed = torch.cat([prompt_ok[:, None, :].expand(b, n, width), allowed], dim=-1)
        cache = PrefixKV(prefix_keys, prefix_values)
    hidden = run_blocks(backbone, data, position_ids, allowed, cache, checkpoint=checkpoint)
    return backbone.norm(hidden)


PREFILL_GROUP = 32  # prompts per prefill pass (a GPU runs 32 prompts about as fast as a few)
PREFILL_BUCKET = 16  # prompt lengths are padded up to a multiple of this many tokens


def bucket_length(n: int) -> int:
    """The width a prompt of `n` tokens is padded to in `prefill`."""
    return -(-n // PREFILL_BUCKET) * PREFILL_BUCKET


def prefill(backbone: nn.Module, prompt_ids: list[torch.Tensor]) -> list[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """Each prompt's per-block keys and values ((kv_heads, L, head_dim) lists), in passes of a fixed shape.

    Prompts (each non-empty) are grouped by `bucket_length`; each group of PREFILL_GROUP is one
    `prompt_pass` padded to that width, the last group of a width filled up with copies of its first
    prompt, so every pass has the shape (PREFILL_GROUP, bucket_length(L)) and a prompt's keys and values
    do not depend on the other prompts given (module docstring).
    """
    out: list = [None] * len(prompt_ids)
    by_width: dict[int, list[int]] = {}
    for i, p in enumerate(prompt_ids):
        by_width.setdefault(bucket_length(len(p)), []).append(i)
    for width, rows in sorted(by_width.items()):
        for s in range(0, len(rows), PREFILL_GROUP):
            group = rows[s : s + PREFILL_GROUP]
            ids = [prompt_ids[i] for i in group]
            ids += [ids[0]] * (PREFILL_GROUP - len(ids))
            keys, values, _ = prompt_pass(backbone, ids, width=width)
            for j, i in enumerate(group):
                n = len(prompt_ids[i])
                out[i] = ([k[j, :, :n].clone() for k in keys], [v[j, :, :n].clone() for v in values])
    return out


class PromptKVCache:
    """Per-prompt block keys/values, first come first kept: up to `max_bytes` on the model's device, then up
    to `host_bytes` in host memory (pinned when the model is on a GPU, copied over when used).

    Either budget may be 'auto' (resolved at the first store, `auto_budget`). `hits`/`misses` count
    lookups; `host_hits` the hits served from host memory.
    """

    def __init__(self, max_bytes: int | str, host_bytes: int | str = 0):
        self.budget = {"device": max_bytes, "host": host_bytes}
        self.used = {"device": 0, "host": 0}
        self.store: OrderedDict = OrderedDict()  # key -> (keys, values, tier)
        self.hits = self.misses = self.host_hits = 0

    @property
    def bytes(self) -> int:
        return self.used["device"] + self.used["host"]

    def get(self, key, device: torch.device | None = None):
        entry = self.store.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        keys, values, tier = entry
        if tier == "device" or device is None:
            return keys, values
        self.host_hits += 1
        move = device.type == "cuda"
        return [k.to(device, non_blocking=move) for k in keys], [v.to(device, non_blocking=move) for v in values]

    def put(self, key, keys: list[torch.Tensor], values: list[torch.Tensor]) -> bool:
        if key in self.store:
            return False
        size = sum(t.numel() * t.element_size() for t in keys + values)
        device = keys[0].device
        for tier in ("device", "host"):
            if isinstance(self.budget[tier], str):
                self.budget[tier] = auto_budget(tier, device)
            if self.used[tier] + size <= self.budget[tier]:
                break
        else:
            return False
        if tier == "host" and device.type != "cpu":
            keys, values = _to_host(keys), _to_host(values)
        else:
            keys, values = [k.detach() for k in keys], [v.detach() for v in values]  # prefill's own copies
        self.store[key] = (keys, values, tier)
        self.used[tier] += size
        return True

    def clear(self) -> None:
        self.store.clear()
        self.used = {"device": 0, "host": 0}

    def __len__(self) -> int:
        return len(self.store)


def _to_host(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.detach().to("cpu").pin_memory() if torch.cuda.is_available() else t.detach().cpu() for t in tensors]


# share of free memory an 'auto' budget takes: on a GPU half of what is free when the first prompt is
# stored (before the first training step: activations need the rest), in host memory half of what is
# available (a quarter on a CPU model, whose two tiers share that memory)
AUTO_SHARE = {("device", "cuda"): 0.5, ("host", "cuda"): 0.5, ("device", "cpu"): 0.25, ("host", "cpu"): 0.25}


def auto_budget(tier: str, device: torch.device) -> int:
    """Bytes an 'auto' budget resolves to for the `tier` ('device' or 'host') of a model on `device`."""
    from ..hardware import available_memory

    kind = "cuda" if device.type == "cuda" else "cpu"
    free = available_memory(device if tier == "device" else torch.device("cpu"))
    budget = int(free * AUTO_SHARE[(tier, kind)])
    log.info("prompt cache: %s budget auto = %.0f MiB", tier, budget / 2**20)
    return budget
