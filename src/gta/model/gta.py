"""GTA: token alignment -> frozen backbone blocks (prompt first, data tokens last) -> selector and head."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import torch
from torch import nn

from .. import GTAError
from ..options import ModelConfig
from ..sei import CLASS_NAMES, KEPT
from .alignment import TokenAlignment, class_token_ids
from .backbone import load_backbone, tensors_sha256
from .blocks import PromptKVCache, data_pass, prefill, prompt_pass
from .head import SelectorHead

log = logging.getLogger("gta.model")
ATTENTION = ("causal", "bidirectional")
BLOCKS = ("pretrained", "random", "none", "attention")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
PREFETCH_GENES = 512  # genes whose prompts `prefetching` computes together (and holds) at a time


# the ModelConfig fields that are GTA arguments of the same name
MODEL_CONFIG_ARGS = (
    "prototypes_vocab", "prototypes_classes", "heads", "d_k", "top_k", "gate", "attention", "lora",
    "gradient_checkpointing", "prompt_cache_mb", "prompt_cache_host_mb", "head", "position_embedding", "dropout",
    "blocks", "skip", "align_temperature",
)  # fmt: skip


class GTA(nn.Module):
    """Genetic sequence Token Alignment on a frozen decoder backbone.

    forward(features, prompt_ids) takes features (B, N, n_features) (raw Sei class scores of the kept
    classes; standardised inside with the statistics from `set_feature_stats`) and one 1-D token-id
    tensor per gene (`encode_prompts`), and returns predictions (B,); with return_details=True also a
    dict with 'attention' (B, heads, N, P) of the alignment, 'selector_logits' (B, N) and 'selected'
    (B, min(top_k, N)) bin indices in position order.

    Arguments: `backbone` a frozen base model from `load_backbone`; `tokenizer` its tokenizer;
    `class_names` the names whose tokens form the class prototypes (or `class_ids`, explicit token
    ids); `attention` 'causal' (the paper) or 'bidirectional' (data tokens also see later data
    tokens; the prompt stays causal); `lora` None or dict(r=, alpha=, dropout=) for LoRA adapters
    (peft) on the attention projections q, k, v, o (a dict with enabled=False counts as None);
    `gradient_checkpointing` recomputes the blocks in the backward pass; `prompt_cache_mb` memory (MiB,
    or 'auto') on the model's device for reusing each prompt's block keys/values across calls, and
    `prompt_cache_host_mb` host memory for those beyond it (used only without LoRA, where they never
    change; both 0 turn it off). Prompts not kept are computed many at a time (`prefetching`, `prefill`)
    with the same keys and values whichever prompts share their pass.

    Beyond the paper: `head` 'flatten' (the paper), 'position' (head weights indexed by bin
    position) or 'distance' (those weights tied to the distance from the TSS bin); both need
    `n_bins`, see SelectorHead. `position_embedding` adds a learned vector per bin position
    (n_bins x hidden, starting at zero) to the aligned data tokens; `dropout` drops the head's
    inputs in training. `skip` gives the head each bin's aligned token beside its backbone state
    (2 x hidden per bin), so the blocks can only add to what the head sees. `blocks` builds the
    controls that ask whether the language model helps: 'pretrained' (GTA), 'random' (the same
    backbone with random weights, embeddings included, seeded by `control_seed`), 'none' (the
    aligned tokens go straight to the selector and head) or 'attention' (one trainable pre-norm
    self-attention layer over the data tokens, causal or bidirectional as `attention`, in place of
    the backbone; the prompt is not used).

    The sequence is [prompt, N data tokens]; the blocks run on the prompt first and then on the data
    tokens behind it (gta.model.blocks), which equals one pass over the whole sequence. The backbone's
    final RMSNorm is applied to the last kept block's output before the selector: that is Hugging Face's
    last_hidden_state of the truncated model, what an implementation built on Hugging Face / Unsloth
    with 8 of 32 blocks (as the paper's) gets from the backbone.
    """

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer,
        class_names: list[str] | None = None,
        n_features: int = 33,
        prototypes_vocab: int = 50,
        prototypes_classes: int = 50,
        heads: int = 8,
        d_k: int = 32,
        top_k: int = 25,
        gate: str = "sigmoid",
        attention: str = "causal",
        lora: dict | None = None,
        gradient_checkpointing: bool = False,
        prompt_cache_mb: float | str = "auto",
        prompt_cache_host_mb: float | str = "auto",
        class_ids: list[int] | None = None,
        head: str = "flatten",
        n_bins: int | None = None,
        position_embedding: bool = False,
        dropout: float = 0.0,
        blocks: str = "pretrained",
        control_seed: int = 0,
        skip: bool = False,
        align_temperature: float = 1.0,
    ):
        super().__init__()
        if attention not in ATTENTION:
            raise GTAError(f"attention {attention!r} is not one of {', '.join(ATTENTION)}", input="attention")
        if blocks not in BLOCKS:
            raise GTAError(f"blocks {blocks!r} is not one of {', '.join(BLOCKS)}", input="blocks")
        if position_embedding and not n_bins:
            raise GTAError(
                "position_embedding needs the number of bins (n_bins)", input=("position_embedding", "n_bins")
            )
        if class_ids is None:
            if tokenizer is None or class_names is None:
                raise GTAError("GTA needs the tokenizer and class_names (or explicit class_ids)")
            class_ids = class_token_ids(tokenizer, list(class_names))
        self.backbone_sha256: str | None = None  # the loaded backbone's identity (from_config sets it)
        if blocks == "random":
            randomize_backbone(backbone, control_seed)
        for p in backbone.parameters():
            p.requires_grad_(False)
        self.backbone = backbone
        self.blocks = blocks
        self.tokenizer = tokenizer
        self.bidirectional = attention == "bidirectional"
        self.attention_mode = attention
        self.gradient_checkpointing = gradient_checkpointing
        emb = backbone.get_input_embeddings().weight
        vocab_size, hidden = emb.shape
        self.register_buffer("class_ids", torch.tensor(class_ids, dtype=torch.long))
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.align = TokenAlignment(
            n_features,
            hidden,
            vocab_size,
            len(class_ids),
            prototypes_vocab,
            prototypes_classes,
            heads,
            d_k,
            temperature=align_temperature,
        )
        self.align.calibrate(emb, self.class_ids)
        # with `skip` the head reads each bin's aligned token beside its backbone state (no skip
        # without blocks: the aligned token is then the state itself)
        self.skip = skip and blocks != "none"
        self.head = SelectorHead(
            hidden * (2 if self.skip else 1), top_k, gate, mode=head, n_bins=n_bins, dropout=dropout
        )
        self.position = nn.Parameter(torch.zeros(n_bins, hidden)) if position_embedding else None
        self.attention_layer = (
            SelfAttentionLayer(hidden, backbone.config.num_attention_heads, causal=attention == "causal")
            if blocks == "attention"
            else None
        )
        if lora is not None and not lora.get("enabled", True):
            lora = None  # the config section with enabled: false
        self.lora = dict(lora) if lora else None
        if self.lora:
            self._add_lora(self.lora)
        budgets = (
            _cache_budget(prompt_cache_mb, "prompt_cache_mb"),
            _cache_budget(prompt_cache_host_mb, "prompt_cache_host_mb"),
        )
        self.prompt_cache = PromptKVCache(*budgets) if any(budgets) and not self.lora else None
        self._held: dict = {}  # prompt keys/values `prefetching` holds for the batches of its chunk
        self.backbone.eval()

    @classmethod
    def from_config(cls, mcfg: ModelConfig, n_bins: int, seed: int = 0) -> GTA:
        """The one way to build a model: the backbone slice `mcfg` names and a GTA module on it for
        `n_bins` data tokens, with the kept Sei classes; `seed` seeds the 'random' blocks control.
        The backbone's tokenizer is the model's `.tokenizer`."""
        backbone, tokenizer = load_backbone(mcfg.backbone, layers=mcfg.layers, dtype=mcfg.backbone_dtype)
        same = {name: getattr(mcfg, name) for name in MODEL_CONFIG_ARGS}  # ModelConfig fields GTA takes as is
        names = [CLASS_NAMES[i] for i in KEPT]
        sha256 = tensors_sha256(backbone)  # as loaded, before a control randomises it: what a model folder records
        model = cls(backbone, tokenizer, names, len(KEPT), n_bins=n_bins, control_seed=seed, **same)
        model.backbone_sha256 = sha256
        return model

    # ------------------------------------------------------------------ set-up

    def _add_lora(self, lora: dict) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        unknown = set(lora) - {"r", "alpha", "dropout", "enabled"}
        if unknown:
            raise GTAError(f"LoRA settings: unknown keys {sorted(unknown)} (use r, alpha, dropout)", input="lora")
        config = LoraConfig(
            r=int(lora.get("r", 8)),
            lora_alpha=float(lora.get("alpha", 16)),
            lora_dropout=float(lora.get("dropout", 0.0)),
            target_modules=LORA_TARGETS,
            bias="none",
        )
        inject_adapter_in_model(config, self.backbone)
        n = 0
        for name, p in self.backbone.named_parameters():
            p.requires_grad_("lora_" in name)
            n += p.numel() if "lora_" in name else 0
        if n == 0:
            raise GTAError(
                "LoRA: the backbone has no attention projections (q_proj, k_proj, v_proj, o_proj)",
                input=("lora", "backbone"),
            )
        log.info(
            "LoRA r=%s alpha=%s on %s: %d trainable backbone parameters",
            config.r,
            config.lora_alpha,
            ",".join(LORA_TARGETS),
            n,
        )

    def train(self, mode: bool = True):
        """Train mode for the trained parts; the frozen backbone stays in eval mode (LoRA dropout follows)."""
        super().train(mode)
        self.backbone.eval()
        if self.lora:
            for name, module in self.backbone.named_modules():
                if name.endswith("lora_dropout") or ".lora_dropout." in name:
                    module.train(mode)
        return self

    def set_feature_stats(self, mean, std) -> None:
        """Store the training set's per-feature mean and standard deviation (applied inside forward).

        A zero standard deviation (a feature constant in the training set) is replaced by 1.
        """
        mean = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        std = torch.as_tensor(np.asarray(std, dtype=np.float32))
        n = self.feature_mean.numel()
        if mean.shape != (n,) or std.shape != (n,):
            raise GTAError(f"feature statistics must have shape ({n},), got {tuple(mean.shape)} and {tuple(std.shape)}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()) or (std < 0).any():
            raise GTAError(
                "feature statistics contain NaN, infinite or negative values; check the features file",
                input="features",
            )
        if (std == 0).any():
            log.warning("%d features are constant in the training set; their std is set to 1", int((std == 0).sum()))
            std = torch.where(std == 0, torch.ones_like(std), std)
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std)

    # ------------------------------------------------------------------ state

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained state only: alignment, selector, head (with its running statistics), LoRA adapters
        (if any), feature statistics and class token ids; no frozen backbone weights."""
        keep = {n for n, p in self.named_parameters() if p.requires_grad}
        keep |= {"class_ids", "feature_mean", "feature_std"}
        keep |= {f"head.{n}" for n, _ in self.head.named_buffers()}  # the head's running statistics
        return {k: v for k, v in self.state_dict().items() if k in keep}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load what `trainable_state_dict` saved (same backbone, sizes and LoRA setting)."""
        expected = set(self.trainable_state_dict())
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise GTAError(
                f"trained state does not fit this model: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]} (different model or LoRA settings?)"
            )
        for key in ("class_ids",):
            if state[key].shape != self.class_ids.shape or not torch.equal(state[key].cpu(), self.class_ids.cpu()):
                raise GTAError("trained state was made with other class-name tokens (a different backbone tokenizer)")
        try:
            self.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise GTAError(f"trained state does not fit this model: {e}") from e
        # the prompt cache stays valid: prompt keys/values depend on the frozen backbone only
        # (the cache is off with LoRA)

    # ------------------------------------------------------------------ forward

    @property
    def device(self) -> torch.device:
        return self.feature_mean.device

    def _cache_key(self, ids: torch.Tensor, device: torch.device):
        amp = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None
        return str(device), amp, ids.cpu().numpy().astype(np.int64).tobytes()

    def _prompt_entries(self, prompt_ids: list[torch.Tensor], device: torch.device) -> list:
        """Each prompt's per-block (keys, values), each (kv_heads, L, head_dim); None for an empty prompt.

        From what `prefetching` holds, else the cache, else computed by `prefill` (and cached, except under
        inference_mode, whose tensors a later training step could not use). With LoRA in training the
        prompts run as one batch with gradients (the adapters learn through them) and nothing is kept.
        """
        todo = [i for i, p in enumerate(prompt_ids) if p.numel() > 0]
        entries: list = [None] * len(prompt_ids)
        if self.lora and torch.is_grad_enabled():
            k, v, _ = prompt_pass(self.backbone, [prompt_ids[i].to(device) for i in todo])
            for j, i in enumerate(todo):
                n = prompt_ids[i].numel()
                entries[i] = ([t[j, :, :n] for t in k], [t[j, :, :n] for t in v])
            return entries
        missing: dict = {}  # key -> rows of that prompt
        for i in todo:
            key = self._cache_key(prompt_ids[i], device)
            entry = self._held.get(key)
            if entry is None and self.prompt_cache is not None:
                entry = self.prompt_cache.get(key, device)
            if entry is None:
                missing.setdefault(key, []).append(i)
            entries[i] = entry
        if missing:
            with torch.no_grad():
                computed = prefill(self.backbone, [prompt_ids[rows[0]].to(device) for rows in missing.values()])
            store = self.prompt_cache is not None and not torch.is_inference_mode_enabled()
            for (key, rows), entry in zip(missing.items(), computed, strict=True):
                if store:
                    self.prompt_cache.put(key, *entry)
                for i in rows:
                    entries[i] = entry
        return entries

    def _prompt_prefix(self, prompt_ids: list[torch.Tensor], device: torch.device):
        """Per-block prompt keys/values (B, kv_heads, L_max, head_dim), right padded, and the lengths (B,)."""
        lengths = [int(p.numel()) for p in prompt_ids]
        lens = torch.tensor(lengths, device=device)
        width = max(lengths)
        if width == 0:
            return None, None, lens
        entries = self._prompt_entries(prompt_ids, device)
        ref = next(e for e in entries if e is not None)
        out_k, out_v = [], []
        for layer in range(len(ref[0])):
            for out, part in ((out_k, 0), (out_v, 1)):
                rows = []
                for e in entries:
                    t = e[part][layer] if e is not None else ref[part][layer][:, :0]
                    rows.append(nn.functional.pad(t, (0, 0, 0, width - t.shape[-2])))
                out.append(torch.stack(rows))
        return out_k, out_v, lens

    def prefetching(self, prompt_ids: list[torch.Tensor], batch_size: int, precision: torch.dtype = torch.float32):
        """(start, stop) of each batch of `batch_size` over `prompt_ids`, in order; before the batches of
        each chunk of about PREFETCH_GENES genes, the chunk's prompts that are not kept are computed
        together (`prefill`: full passes of one shape per length bucket) and held until the chunk is done.

        `precision`: the autocast dtype of the forward passes (float32: none); the prompts are computed in
        it. The numbers do not depend on the chunks: a prompt's keys/values are the same in any pass.
        """
        from ..hardware import autocast

        batch_size = max(int(batch_size), 1)
        chunk = max(PREFETCH_GENES // batch_size, 1) * batch_size
        prefetch = self.blocks in ("pretrained", "random") and not (self.lora and self.training)
        try:
            for c in range(0, len(prompt_ids), chunk):
                part = prompt_ids[c : c + chunk]
                if prefetch:
                    self._held = {}
                    device = self.device
                    with autocast(device, precision):
                        unique = {self._cache_key(p, device): p for p in part if p.numel() > 0}
                        self._held = dict(zip(unique, self._prompt_entries(list(unique.values()), device), strict=True))
                for s in range(c, min(c + chunk, len(prompt_ids)), batch_size):
                    yield s, min(s + batch_size, len(prompt_ids))
        finally:
            self._held = {}

    def _check_inputs(self, features: torch.Tensor, prompt_ids) -> None:
        n_features = self.feature_mean.numel()
        if features.ndim != 3 or features.shape[-1] != n_features:
            raise GTAError(f"features must be (genes, bins, {n_features}), got {tuple(features.shape)}")
        if len(prompt_ids) != features.shape[0]:
            raise GTAError(f"{len(prompt_ids)} prompts for {features.shape[0]} genes")
        for p in prompt_ids:
            if p.ndim != 1:
                raise GTAError("each prompt must be a 1-D tensor of token ids (see encode_prompts)")

    def hidden_states(self, features: torch.Tensor, prompt_ids: list[torch.Tensor]):
        """Final-normed backbone states of the data tokens (B, N, hidden) and the alignment attention;
        with `skip`, each state followed by the bin's aligned token (B, N, 2 * hidden)."""
        self._check_inputs(features, prompt_ids)
        device = self.device
        # contiguous: under bf16 autocast the CPU kernels round differently for a strided input, and a
        # model must give the same numbers whatever view of the features a caller passes
        x = (features.to(device=device, dtype=torch.float32).contiguous() - self.feature_mean) / self.feature_std
        emb = self.backbone.get_input_embeddings().weight
        data, attention = self.align(x, emb, self.class_ids)
        if self.position is not None:
            if data.shape[1] != self.position.shape[0]:
                raise GTAError(
                    f"the position embedding was built for {self.position.shape[0]} bins, got {data.shape[1]}"
                )
            data = data + self.position
        if self.blocks == "none":
            return data.float(), attention
        if self.blocks == "attention":
            h = self.attention_layer(data.float())
        else:
            keys, values, lengths = self._prompt_prefix([p.to(device) for p in prompt_ids], device)
            h = data_pass(
                self.backbone,
                data.to(emb.dtype),
                keys,
                values,
                lengths,
                bidirectional=self.bidirectional,
                checkpoint=self.gradient_checkpointing,
            )
        if self.skip:
            h = torch.cat([h.float(), data.float()], dim=-1)
        return h, attention

    def forward(self, features: torch.Tensor, prompt_ids: list[torch.Tensor], return_details: bool = False):
        h, attention = self.hidden_states(features, prompt_ids)
        y, logits, selected = self.head(h)
        if return_details:
            return y, {"attention": attention, "selector_logits": logits, "selected": selected}
        return y

    def prompt_states(self, prompt_ids: list[torch.Tensor]) -> list[torch.Tensor]:
        """Final-normed backbone states (L_i, hidden) of each prompt's tokens (they never see data tokens)."""
        device = self.device
        out = [torch.zeros(0, self.backbone.config.hidden_size, device=device) for _ in prompt_ids]
        todo = [i for i, p in enumerate(prompt_ids) if p.numel() > 0]
        if todo:
            _, _, states = prompt_pass(self.backbone, [prompt_ids[i].to(device) for i in todo], return_states=True)
            for j, i in enumerate(todo):
                out[i] = states[j, : prompt_ids[i].numel()]
        return out


def canonical_order(features: torch.Tensor | np.ndarray, prompt_ids: list[torch.Tensor]) -> np.ndarray:
    """An order of genes that depends on their content alone: prompt length, prompt tokens, then a hash of
    the gene's features. Batches taken in this order give each gene the same batch mates whatever order the
    genes came in, so predictions do not depend on it even in their last bits (a data pass's numbers can
    depend on its batch), and a batch holds prompts of similar lengths (less padding)."""
    keys = []
    for i, p in enumerate(prompt_ids):
        row = features[i].numpy() if isinstance(features, torch.Tensor) else np.asarray(features[i])
        digest = hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=16).digest()
        keys.append((p.numel(), p.cpu().numpy().astype(np.int64).tobytes(), digest))
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def _cache_budget(value: float | str, name: str) -> int | str:
    """A prompt cache budget in MiB (or 'auto') as bytes (or 'auto')."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        mb = float(value)
    except (TypeError, ValueError):
        mb = float("nan")
    if not mb >= 0 or mb == float("inf"):
        raise GTAError(f"{name} must be a number of MiB >= 0 or 'auto', got {value!r}", input=name)
    return int(mb * 2**20)


class SelfAttentionLayer(nn.Module):
    """One trainable pre-norm multi-head self-attention layer with a residual: x + MHA(LayerNorm(x)).

    The 'attention' control (Tan et al. 2024 replaced the LLM of reprogramming models by one such layer).
    """

    def __init__(self, hidden: int, heads: int, causal: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool, device=x.device), 1) if self.causal else None
        y = self.norm(x)
        return x + self.attn(y, y, y, attn_mask=mask, need_weights=False)[0]


@torch.no_grad()
def randomize_backbone(backbone: nn.Module, seed: int) -> None:
    """Re-initialise every backbone weight at random (the 'random' control): linear and embedding
    weights ~ N(0, initializer_range) (Hugging Face's Llama initialisation), norms 1, biases 0; seeded."""
    gen = torch.Generator().manual_seed(seed)
    std = float(getattr(backbone.config, "initializer_range", 0.02))
    for name, p in backbone.named_parameters():
        if p.ndim >= 2:
            p.copy_(torch.randn(p.shape, generator=gen) * std)
        elif "norm" in name:
            p.fill_(1.0)
        else:
            p.zero_()


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; shared (tied) tensors are counted once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
