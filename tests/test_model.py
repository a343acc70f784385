"""The GTA model on a tiny randomly initialised Llama backbone (CPU, seconds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaModel

from gta import GTAError
from gta.model import GTA, class_token_ids, count_parameters, encode_prompts
from gta.model.spec import backbone_kind, converted_name
from gta.testing import PROMPT_WORDS, tiny_llama, word_tokenizer

N_FEATURES = 33
# fp32 tolerance for "the same computation in another order / shape" on this tiny model
ATOL = 1e-5


@pytest.fixture(scope="module")
def tokenizer():
    """A word-level tokenizer (independent of any model download)."""
    return word_tokenizer()


def tiny_backbone(layers: int = 2, seed: int = 0) -> LlamaModel:
    return tiny_llama(seed=seed, num_hidden_layers=layers, attn_implementation="sdpa")


def tiny_gta(tokenizer, seed: int = 0, **kw) -> GTA:
    bb = tiny_backbone(seed=seed)
    torch.manual_seed(seed + 1)
    args = dict(
        class_names=["B-cell-like", "CTCF-Cohesin", "Promoter", "Transcription", "Transcription"],
        n_features=N_FEATURES,
        prototypes_vocab=6,
        prototypes_classes=5,
        heads=2,
        d_k=4,
        top_k=4,
    )
    args.update(kw)
    # eval mode: the head standardises with running statistics, so genes do not see each other
    # (tests that train call .train() themselves)
    return GTA(bb, tokenizer, **args).eval()


def prompts(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, len(PROMPT_WORDS), (n,), generator=g) for n in lengths]


def features(b, n, seed=0):
    return torch.randn(b, n, N_FEATURES, generator=torch.Generator().manual_seed(seed))


def reference_states(model: GTA, x: torch.Tensor, ids: torch.Tensor, bidirectional: bool = False):
    """One Hugging Face forward over [prompt, data] for a single gene: final states of every token."""
    bb = model.backbone
    with torch.no_grad():
        z = (x[None] - model.feature_mean) / model.feature_std
        data, _ = model.align(z, bb.embed_tokens.weight, model.class_ids)
        seq = torch.cat([bb.embed_tokens(ids)[None], data], dim=1)
        if not bidirectional:
            return bb(inputs_embeds=seq).last_hidden_state[0]
        t, lp = seq.shape[1], len(ids)
        allowed = torch.tril(torch.ones(t, t, dtype=torch.bool))
        allowed[lp:, lp:] = True  # data <-> data both ways; prompt rows unchanged (causal, no data)
        return bb(inputs_embeds=seq, attention_mask=allowed[None, None]).last_hidden_state[0]


# ----------------------------------------------------------------------------- shapes and details


def test_output_shapes_and_details(tokenizer):
    model = tiny_gta(tokenizer)
    b, n = 3, 9
    y, d = model(features(b, n), prompts([5, 2, 7]), return_details=True)
    assert y.shape == (b,)
    assert d["attention"].shape == (b, 2, n, 11)  # heads, bins, P = 6 + 5 prototypes
    assert torch.allclose(d["attention"].sum(-1), torch.ones(b, 2, n), atol=1e-6)
    assert d["selector_logits"].shape == (b, n)
    sel = d["selected"]
    assert sel.shape == (b, 4)
    assert (sel[:, 1:] > sel[:, :-1]).all() and sel.min() >= 0 and sel.max() < n  # position order
    # the selected bins are the ones with the 4 largest logits
    top = torch.topk(d["selector_logits"], 4, dim=1).indices.sort(dim=1).values
    assert torch.equal(sel, top)


@pytest.mark.parametrize("gate", ["sigmoid", "softmax"])
def test_prediction_matches_manual_head(tokenizer, gate):
    """Selector + gate + flattened linear head, recomputed by hand from the final states."""
    model = tiny_gta(tokenizer, gate=gate).eval()
    x, p = features(2, 7, seed=3), prompts([4, 6], seed=3)
    norm = model.head.norm
    norm.running_mean.uniform_(-1, 1)  # as if trained: standardisation with running statistics
    norm.running_var.uniform_(0.5, 2)
    with torch.no_grad():
        y, d = model(x, p, return_details=True)
        h, _ = model.hidden_states(x, p)
        w_sel, b_sel = model.head.selector.weight[0].numpy(), model.head.selector.bias.item()
        w_head, b_head = model.head.head.weight[0].numpy(), model.head.head.bias.item()
    h = h.numpy().astype(np.float64)
    mean, var = norm.running_mean.numpy(), norm.running_var.numpy()
    scale = 1 / math.sqrt(4 * h.shape[-1])  # 1 / sqrt(k * hidden)
    for i in range(2):
        logits = h[i] @ w_sel + b_sel
        assert np.allclose(logits, d["selector_logits"][i].numpy(), atol=1e-5)
        idx = np.sort(np.argsort(-logits)[:4])
        if gate == "sigmoid":
            weight = 1 / (1 + np.exp(-logits[idx]))
        else:
            weight = np.exp(logits[idx] - logits[idx].max())
            weight /= weight.sum()
        standardised = (h[i][idx] - mean) / np.sqrt(var + norm.eps)
        flat = (standardised * weight[:, None]).reshape(-1) * scale
        assert np.isclose(flat @ w_head + b_head, y[i].item(), atol=1e-5)


def test_fewer_bins_than_top_k_selects_all(tokenizer):
    model = tiny_gta(tokenizer, top_k=5)
    x, p = features(2, 3, seed=4), prompts([3, 5], seed=4)
    with torch.no_grad():
        y, d = model(x, p, return_details=True)
        h, _ = model.hidden_states(x, p)
        logits = d["selector_logits"]
        norm = model.head.norm
        h = (h - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
        flat = (h * torch.sigmoid(logits)[:, :, None]).reshape(2, -1)  # all 3 bins, position order
        manual = flat @ model.head.head.weight[0, : 3 * 32] / math.sqrt(5 * 32) + model.head.head.bias
    assert torch.equal(d["selected"], torch.arange(3).expand(2, 3))
    assert torch.allclose(y, manual, atol=1e-5)


# ----------------------------------------------------------------------------- training behaviour


def test_optimiser_step_changes_only_trainable_parts(tokenizer):
    model = tiny_gta(tokenizer).train()
    frozen = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    trained = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = (model(features(4, 8), prompts([3, 9, 1, 6])) - torch.tensor([1.0, -1.0, 0.5, 2.0])).pow(2).mean()
    loss.backward()
    assert model.head.selector.weight.grad is not None and model.head.selector.weight.grad.abs().sum() > 0
    opt.step()
    for name, p in model.backbone.named_parameters():
        assert not p.requires_grad and p.grad is None, name
        assert torch.equal(p, frozen[name]), name
    after = model.trainable_state_dict()
    for name in (
        "align.vocab_map.weight",
        "align.class_map.weight",
        "align.query.weight",
        "align.key.weight",
        "align.value.weight",
        "align.out.weight",
        "head.selector.weight",
        "head.head.weight",
    ):
        assert not torch.equal(after[name], trained[name]), f"{name} did not change"


def test_trainable_state_dict_has_no_backbone_and_round_trips(tokenizer):
    model = tiny_gta(tokenizer)
    model.set_feature_stats(np.linspace(-1, 1, N_FEATURES), np.linspace(0.5, 2, N_FEATURES))
    sd = model.trainable_state_dict()
    assert not any(k.startswith("backbone.") for k in sd)
    n_trainable, n_total = count_parameters(model)
    buffers = {"class_ids", "feature_mean", "feature_std"} | {
        f"head.norm.{b}" for b in ("running_mean", "running_var", "num_batches_tracked")
    }
    assert buffers <= set(sd)
    assert sum(v.numel() for k, v in sd.items() if k not in buffers) == n_trainable
    assert n_total == n_trainable + sum(p.numel() for p in model.backbone.parameters())
    other = tiny_gta(tokenizer, seed=5)
    other.backbone.load_state_dict(model.backbone.state_dict())  # same frozen backbone, other heads
    x, p = features(2, 6, seed=7), prompts([4, 2], seed=7)
    with torch.no_grad():
        assert not torch.allclose(model(x, p), other(x, p))
        other.load_trainable_state_dict(sd)
        assert torch.equal(model(x, p), other(x, p))
    with pytest.raises(GTAError, match="does not fit"):
        other.load_trainable_state_dict({k: v for k, v in sd.items() if k != "head.head.weight"})


def test_feature_stats_standardise_inside_forward(tokenizer):
    model = tiny_gta(tokenizer)
    x, p = features(2, 5, seed=8) * 3 + 1, prompts([3, 4], seed=8)
    mean, std = x.reshape(-1, N_FEATURES).mean(0), x.reshape(-1, N_FEATURES).std(0)
    with torch.no_grad():
        plain = model((x - mean) / std, p)
        model.set_feature_stats(mean.numpy(), std.numpy())
        assert torch.allclose(model(x, p), plain, atol=1e-5)
    with pytest.raises(GTAError, match="shape"):
        model.set_feature_stats(np.zeros(3), np.ones(3))


# ----------------------------------------------------------------------------- masks and positions


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
@pytest.mark.parametrize("cache_mb", [0, 64])
def test_gene_alone_equals_gene_in_batch(tokenizer, attention, cache_mb):
    """Prompts of 1..12 tokens (and none) batched together: each gene's output as if alone (atol 1e-5)."""
    model = tiny_gta(tokenizer, attention=attention, prompt_cache_mb=cache_mb)
    lengths = [6, 1, 12, 0, 3]
    x, p = features(len(lengths), 8, seed=1), prompts(lengths, seed=1)
    with torch.no_grad():
        batch, d = model(x, p, return_details=True)
        for i in range(len(lengths)):
            alone, di = model(x[i : i + 1], p[i : i + 1], return_details=True)
            assert torch.allclose(alone[0], batch[i], atol=ATOL), (i, alone, batch[i])
            assert torch.equal(di["selected"][0], d["selected"][i])


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_states_equal_one_pass_over_prompt_and_data(tokenizer, attention):
    """Prompt-then-data (with cached prompt keys/values) == one Hugging Face pass over [prompt, data]."""
    model = tiny_gta(tokenizer, attention=attention)
    lengths = [5, 11, 0]
    x, p = features(3, 7, seed=2), prompts(lengths, seed=2)
    with torch.no_grad():
        for _ in range(2):  # the second time the prompts come from the cache
            h, _ = model.hidden_states(x, p)
            for i, lp in enumerate(lengths):
                ref = reference_states(model, x[i], p[i], bidirectional=attention == "bidirectional")
                assert torch.allclose(h[i], ref[lp:], atol=ATOL)
                if lp:
                    assert torch.allclose(model.prompt_states([p[i]])[0], ref[:lp], atol=ATOL)
    assert model.prompt_cache.hits >= 2


def test_bidirectional_data_tokens_see_later_bins_prompt_does_not(tokenizer):
    x, p = features(1, 6, seed=9), prompts([5], seed=9)
    x2 = x.clone()
    x2[0, -1] += 2.0  # change the last bin only
    for attention, changes in (("causal", False), ("bidirectional", True)):
        model = tiny_gta(tokenizer, attention=attention)
        with torch.no_grad():
            h1, _ = model.hidden_states(x, p)
            h2, _ = model.hidden_states(x2, p)
            ref1 = reference_states(model, x[0], p[0], bidirectional=attention == "bidirectional")
            ref2 = reference_states(model, x2[0], p[0], bidirectional=attention == "bidirectional")
        assert (h1[0, 0] - h2[0, 0]).abs().max() > 1e-4 if changes else torch.equal(h1[0, 0], h2[0, 0])
        assert (h1[0, -1] - h2[0, -1]).abs().max() > 1e-4
        # in the single pass too, the prompt's states do not depend on the data
        assert torch.allclose(ref1[:5], ref2[:5], atol=1e-6)


def test_prompt_cache_keys_on_tokens_and_autocast(tokenizer):
    model = tiny_gta(tokenizer, prompt_cache_mb=64)
    x, p = features(2, 6, seed=10), prompts([4, 7], seed=10)
    with torch.no_grad():
        a = model(x, p)
        assert len(model.prompt_cache) == 2 and model.prompt_cache.hits == 0
        b = model(x, [p[1], p[0]])
        assert model.prompt_cache.hits == 2
        assert torch.allclose(b, model(x, [p[1], p[0]]))
        assert torch.allclose(a[0], model(x[:1], p[:1])[0], atol=ATOL)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x, p)
        assert len(model.prompt_cache) == 4  # bf16 keys/values are cached apart from fp32 ones


def test_cached_prompt_keys_values_do_not_depend_on_the_batch_that_met_them(tokenizer):
    """Bit for bit: a prompt first met beside longer prompts (padded in a batched pass, the last bits
    change) caches what it caches when met alone, so a resumed run repeats an uninterrupted one."""
    p = prompts([3, 12, 7, 5], seed=16)
    x = features(1, 6, seed=16)
    out = []
    for first in ([p[0], p[1], p[2]], [p[3], p[0]], [p[0]]):
        model = tiny_gta(tokenizer, prompt_cache_mb=64)
        with torch.no_grad():
            model(features(len(first), 6, seed=17), first)  # fills the cache
            out.append(model(x, [p[0]]))
            assert model.prompt_cache.hits >= 1
    assert torch.equal(out[0], out[2]) and torch.equal(out[1], out[2])


def hf_keys_values(backbone, ids: torch.Tensor):
    """Per-block keys and values (kv_heads, L, head_dim) of one prompt run alone through Hugging Face's own
    forward with its own cache (an implementation independent of gta.model.blocks)."""
    with torch.no_grad():
        cache = backbone(input_ids=ids[None], use_cache=True).past_key_values
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [lay.keys[0] for lay in layers], [lay.values[0] for lay in layers]
    return [k[0] for k in cache.key_cache], [v[0] for v in cache.value_cache]


@pytest.mark.parametrize("amp", [False, True])
def test_prefill_gives_each_prompt_the_same_keys_values_whatever_shares_its_pass(tokenizer, amp):
    """Bit for bit, in float32 and under bf16 autocast: a prompt alone, first among others, last in a
    different set, and in the second pass of a bucket (more than PREFILL_GROUP prompts given)."""
    from gta.model.blocks import PREFILL_GROUP, bucket_length, prefill

    bb = tiny_backbone()
    p = prompts([9, 3, 30, 17, 33, 9, 1, 64] * 10, seed=21)
    target = p[0]
    sets = [[target], [target, *p[1:8]], [*p[8:20], target], [*p[1:80], target]]
    # the target lands in the second pass of its bucket
    assert sum(bucket_length(len(x)) == bucket_length(len(target)) for x in sets[-1]) > PREFILL_GROUP
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        got = [prefill(bb, s)[s.index(target) if s[0] is target else len(s) - 1] for s in sets]
    for keys, values in got[1:]:
        assert all(torch.equal(a, b) for a, b in zip(keys + values, got[0][0] + got[0][1], strict=True))
    assert got[0][0][0].shape[1] == len(target)


def test_prefill_equals_each_prompt_run_alone_by_hugging_face(tokenizer):
    """Batched, padded prefill == each prompt alone through the backbone's own forward (float32, 1e-5)."""
    from gta.model.blocks import prefill

    bb = tiny_backbone()
    p = prompts([5, 31, 32, 33, 1, 70], seed=22)
    for ids, (keys, values) in zip(p, prefill(bb, p), strict=True):
        ref_k, ref_v = hf_keys_values(bb, ids)
        for a, b in zip(keys + values, ref_k + ref_v, strict=True):
            assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5), (len(ids), (a - b).abs().max())


@pytest.mark.parametrize("amp", [False, True])
def test_predictions_do_not_depend_on_which_genes_met_the_prompts(tokenizer, amp):
    """Bit for bit: the same batch of genes with a cold cache, after their prompts were computed among other
    genes' in another order and other chunks, with the cache off, and kept in host memory."""
    from gta.model import gta as gta_module

    p = prompts([6, 40, 12, 3, 0, 25, 6, 33], seed=23)
    x = features(len(p), 7, seed=23)
    others = prompts([7, 50, 2, 13], seed=24)
    out = []
    for order, cache_mb, host_mb in (
        (None, "auto", "auto"),
        ([*others, *reversed(p)], 64, 0),
        ([p[3], *others, p[0]], 0, 0),  # the cache off: every prompt computed for its batch
        ([*reversed(p), *others], 0, "auto"),  # all in the host tier
    ):
        model = tiny_gta(tokenizer, prompt_cache_mb=cache_mb, prompt_cache_host_mb=host_mb)
        dtype = torch.bfloat16 if amp else torch.float32
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            if order is not None:
                gta_module.PREFETCH_GENES, saved = 3, gta_module.PREFETCH_GENES
                try:
                    for s, e in model.prefetching(order, 1, dtype):
                        model(features(e - s, 7, seed=s), order[s:e])
                finally:
                    gta_module.PREFETCH_GENES = saved
            out.append(model(x, p))
            # another gene order moves rows of the data pass (not the prompts): equal up to rounding
            perm = torch.tensor([5, 2, 7, 0, 1, 6, 3, 4])
            assert torch.allclose(model(x[perm], [p[i] for i in perm]), out[-1][perm], atol=ATOL)
    assert all(torch.equal(o, out[0]) for o in out[1:])


def test_prompt_cache_keeps_the_rest_in_host_memory_and_counts_hits(tokenizer):
    from gta.model.blocks import prefill

    model = tiny_gta(tokenizer, prompt_cache_mb=0, prompt_cache_host_mb=0)
    assert model.prompt_cache is None
    p = prompts([5, 7, 9], seed=25)
    size = sum(t.numel() * t.element_size() for e in prefill(model.backbone, p[:1]) for t in e[0] + e[1])
    model = tiny_gta(tokenizer, prompt_cache_mb=1.5 * size / 2**20, prompt_cache_host_mb=64)
    x = features(3, 6, seed=25)
    with torch.no_grad():
        a = model(x, p)
        assert [e[2] for e in model.prompt_cache.store.values()] == ["device", "host", "host"]
        assert model.prompt_cache.misses == 3 and model.prompt_cache.hits == 0
        assert torch.equal(model(x, p), a)
    assert model.prompt_cache.hits == 3 and model.prompt_cache.host_hits == 2
    for bad in (-1, "lots", float("nan")):
        with pytest.raises(GTAError, match="prompt_cache_host_mb") as e:
            tiny_gta(tokenizer, prompt_cache_host_mb=bad)
        assert e.value.input == "prompt_cache_host_mb"


def test_inference_mode_stores_nothing_a_training_step_could_trip_on(tokenizer):
    model = tiny_gta(tokenizer, prompt_cache_mb=64).train()
    x, p = features(2, 6, seed=15), prompts([5, 3], seed=15)
    with torch.inference_mode():
        a = model(x, p)
    assert len(model.prompt_cache) == 0
    b = model(x, p)
    b.sum().backward()
    assert len(model.prompt_cache) == 2 and torch.allclose(a, b.detach(), atol=ATOL)


def test_bf16_autocast_forward_backward_close_to_fp32(tokenizer):
    """The head runs in fp32 under autocast, so bf16 enters through the backbone states only: each of the
    head's k x hidden terms w_j * input_j carries about one bf16 rounding of itself (2^-9 relative, half
    of bf16's 2^-8 step). Bound: |y16 - y32| <= 2^-9 * sum_j |w_j * input_j| per gene (errors of
    independent terms partly cancel: measured 0.15-0.4 of that with 6 seeds). A wrong weight, one term off
    by 10% of itself, moves a gene by 1.9-2.9 times the bound (same seeds) and fails it."""
    model = tiny_gta(tokenizer)
    with torch.no_grad():  # as if trained: outputs of order 1, standardisation with running statistics
        torch.manual_seed(0)
        model.head.head.weight.normal_()
        model.head.norm.running_mean.uniform_(-1, 1)
        model.head.norm.running_var.uniform_(0.5, 2)
    x, p = features(3, 8, seed=11), prompts([3, 6, 2], seed=11)
    inputs = []
    model.head.head.register_forward_hook(lambda m, i, o: inputs.append(i[0].detach().clone()))
    with torch.no_grad():
        y32, d32 = model(x, p, return_details=True)
        terms = inputs[0] * model.head.head.weight[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y16, d16 = model(x, p, return_details=True)
    bound = 2.0**-9 * terms.abs().sum(dim=1)
    assert y16.dtype == torch.float32 and torch.isfinite(y16).all()
    assert torch.equal(d16["selected"], d32["selected"])  # the 4th and 5th logits differ by 10x their bf16 error
    assert ((y16 - y32).abs() <= bound).all(), ((y16 - y32).abs(), bound)
    assert y32.abs().min() > 10 * bound.max()  # the bound is far below the signal
    with torch.no_grad():  # a wrong weight: gene 0's largest term 10% off
        j = int(terms[0].abs().argmax())
        model.head.head.weight[0, j] *= 1.1
        wrong = model(x, p)
    assert (wrong[0] - y32[0]).abs() > bound[0]
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16 = model(x, p)
    y16.sum().backward()
    assert model.head.selector.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(q.grad).all() for q in model.parameters() if q.requires_grad)


def test_gradient_checkpointing_gives_the_same_gradients(tokenizer):
    grads = []
    for ckpt in (False, True):
        model = tiny_gta(tokenizer, gradient_checkpointing=ckpt).train()
        model(features(2, 6, seed=12), prompts([4, 2], seed=12)).sum().backward()
        grads.append({n: q.grad.clone() for n, q in model.named_parameters() if q.requires_grad})
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


# ----------------------------------------------------------------------------- LoRA


def test_lora_trains_adapters_only(tokenizer):
    model = tiny_gta(tokenizer, lora=dict(r=2, alpha=4, dropout=0.0)).train()
    assert model.prompt_cache is None
    lora = {n for n, q in model.named_parameters() if "lora_" in n}
    assert lora and all(model.get_parameter(n).requires_grad for n in lora)
    # 2 blocks x (q, k, v, o) x (A, B)
    assert len(lora) == 2 * 4 * 2
    base = {n: q.clone() for n, q in model.backbone.named_parameters() if "lora_" not in n}
    sd0 = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    assert lora <= set(sd0)
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=1e-2)
    model(features(2, 5), prompts([4, 6])).pow(2).sum().backward()
    opt.step()
    for n, q in model.backbone.named_parameters():
        if "lora_" not in n:
            assert torch.equal(q, base[n]) and q.grad is None, n
    changed = [n for n in lora if "lora_B" in n and not torch.equal(model.get_parameter(n), sd0[n])]
    assert changed
    # a disabled LoRA section is no LoRA at all
    assert tiny_gta(tokenizer, lora=dict(enabled=False, r=2)).lora is None


def test_lora_batch_equals_alone(tokenizer):
    model = tiny_gta(tokenizer, lora=dict(r=2, alpha=4))
    with torch.no_grad():  # make the adapters non-trivial (lora_B starts at zero)
        for n, q in model.backbone.named_parameters():
            if "lora_B" in n:
                q.normal_(0, 0.1)
    x, p = features(3, 6, seed=13), prompts([2, 9, 5], seed=13)
    with torch.no_grad():
        batch = model(x, p)
        for i in range(3):
            assert torch.allclose(model(x[i : i + 1], p[i : i + 1])[0], batch[i], atol=ATOL)


# ----------------------------------------------------------------------------- prototypes, tokens


def test_class_prototypes_use_exactly_the_class_name_tokens(tokenizer):
    names = ["B-cell-like", "CTCF-Cohesin", "Promoter", "Transcription", "Transcription"]
    expected = []
    for name in names:
        for t in tokenizer.encode(name, add_special_tokens=False):
            if t not in expected:
                expected.append(t)
    assert expected == [
        PROMPT_WORDS.index(w) for w in ["B", "-", "cell", "like", "CTCF", "Cohesin", "Promoter", "Transcription"]
    ]
    assert class_token_ids(tokenizer, names) == expected
    model = tiny_gta(tokenizer, class_names=names)
    assert model.class_ids.tolist() == expected
    assert model.align.class_map.in_features == len(expected)
    # gradient of the class prototypes w.r.t. the embedding table: non-zero on exactly those rows
    emb = model.backbone.embed_tokens.weight.detach().clone().requires_grad_(True)
    protos = model.align.prototypes(emb, model.class_ids)
    protos[6:].pow(2).sum().backward()
    rows = set(torch.nonzero(emb.grad.abs().sum(1)).flatten().tolist())
    assert rows == set(expected)
    # and each class prototype is the linear combination of those rows (weights stored at unit
    # scale, applied divided by sqrt(fan_in))
    w, b = model.align.class_map.weight, model.align.class_map.bias
    manual = (w @ emb[model.class_ids] + b[:, None]) / math.sqrt(len(expected))
    assert torch.allclose(protos[6:], manual, atol=1e-6)
    vocab = (model.align.vocab_map.weight @ emb + model.align.vocab_map.bias[:, None]) / math.sqrt(emb.shape[0])
    assert torch.allclose(protos[:6], vocab, atol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_alignment_matches_reference_cross_attention(tokenizer, temperature):
    """Q from bins, K/V from prototypes, per-head softmax(QK^T / (sqrt(d_k) T)) V, concat, linear map."""
    model = tiny_gta(tokenizer, align_temperature=temperature)
    al = model.align
    x = features(1, 4, seed=14)[0]
    emb = model.backbone.embed_tokens.weight
    with torch.no_grad():
        out, att = al(x[None], emb, model.class_ids)
        protos = al.prototypes(emb, model.class_ids)
        q, k, v = al.query(x), al.key(protos), al.value(protos)
        heads = []
        for hd in range(2):
            s = slice(hd * 4, (hd + 1) * 4)
            a = torch.softmax(q[:, s] @ k[:, s].T / (math.sqrt(4) * temperature), dim=-1)
            assert torch.allclose(att[0, hd], a, atol=1e-6)
            heads.append(a @ v[:, s])
        ref = al.out(torch.cat(heads, dim=-1))
    assert torch.allclose(out[0], ref, atol=1e-6)


def test_encode_prompts_keeps_the_head(tokenizer):
    text = ["# Task : Gene Expression Prediction on GM12878 cells .", "# Data :"]
    ids = encode_prompts(tokenizer, text, max_tokens=4)
    full = tokenizer(text[0], add_special_tokens=True)["input_ids"]
    assert ids[0].tolist() == full[:4] and ids[0].dtype == torch.long
    assert ids[1].tolist() == tokenizer(text[1])["input_ids"]
    assert [t.tolist() for t in encode_prompts(tokenizer, text, 0)] == [[], []]
    with pytest.raises(GTAError, match="raise the context or lower the number of bins") as e:
        encode_prompts(tokenizer, text, -1)
    assert e.value.inputs == ("context", "n_bins")


def test_bad_arguments_name_the_input(tokenizer):
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(GTAError, match="align_temperature must be a number > 0") as e:
            tiny_gta(tokenizer, align_temperature=bad)
        assert e.value.input == "align_temperature"
    with pytest.raises(GTAError, match="attention 'sideways' is not one of causal") as e:
        tiny_gta(tokenizer, attention="sideways")
    assert e.value.input == "attention"
    with pytest.raises(GTAError, match="selector gate 'relu' is not one of sigmoid") as e:
        tiny_gta(tokenizer, gate="relu")
    assert e.value.input == "gate"
    model = tiny_gta(tokenizer)
    with pytest.raises(GTAError, match="features must be"):
        model(torch.zeros(2, 5, 7), prompts([1, 2]))


def test_backbone_specs(tmp_path):
    assert backbone_kind("smollm2-135m") == "packaged" and converted_name("smollm2-135m") == "smollm2-135m"
    assert backbone_kind("meta-llama/Meta-Llama-3-8B") == "hub"
    assert backbone_kind(str(tmp_path)) == "folder"
    assert converted_name(str(tmp_path / "my-model.Q8_0.gguf")) == "my-model.Q8_0"
    with pytest.raises(GTAError, match="looks like a local path") as e:
        backbone_kind(str(tmp_path / "missing" / "folder"))
    assert e.value.input == "backbone" and not str(e.value).startswith("backbone.model")


def test_load_backbone_allocates_only_the_first_blocks_frozen(tokenizer, tmp_path):
    from safetensors.torch import load_file, save_file

    from gta.model import load_backbone

    full = tiny_backbone(layers=3, seed=21)
    full.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    backbone, tok = load_backbone(tmp_path / "m", layers=2)
    assert len(backbone.layers) == 2 and backbone.config.num_hidden_layers == 2
    assert backbone.config._attn_implementation == "sdpa" and not backbone.training
    assert not any(p.requires_grad for p in backbone.parameters())
    ref = full.state_dict()
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert tok("Gene Expression")["input_ids"] == tokenizer("Gene Expression")["input_ids"]
    half, _ = load_backbone(tmp_path / "m", layers=1, dtype="bfloat16")
    assert half.embed_tokens.weight.dtype == torch.bfloat16
    with pytest.raises(GTAError, match="only 3 blocks") as e:
        load_backbone(tmp_path / "m", layers=4)
    assert e.value.inputs == ("layers", "backbone")
    # a checkpoint that lacks a block's weights is an error, not a silently random block
    weights = next((tmp_path / "m").glob("*.safetensors"))
    state = load_file(weights)
    save_file({k: v for k, v in state.items() if "layers.1.mlp.up_proj" not in k}, weights, metadata={"format": "pt"})
    with pytest.raises(GTAError, match="lacks weights"):
        load_backbone(tmp_path / "m", layers=2)


# ----------------------------------------------------------------------------- paper setting


def test_llama3_8b_eight_blocks_parameter_count_on_meta():
    """Paper setting: Llama3-8B, first 8 of 32 blocks, P = 50 + 50, h = 8, d_k = 32, k = 25."""
    cfg = LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=8,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=8192,
        rope_theta=500000.0,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )
    n_class_tokens = 70
    with torch.device("meta"):
        backbone = LlamaModel(cfg)
        model = GTA(backbone, None, class_ids=list(range(n_class_tokens)), n_features=33)
    d, v, inner, k = 4096, 128256, 8 * 32, 25
    trainable = (
        (v * 50 + 50)
        + (n_class_tokens * 50 + 50)  # prototype maps
        + (33 * inner + inner)
        + 2 * (d * inner + inner)  # query, key, value
        + (inner * d + d)  # out to hidden size
        + (d + 1)
        + (k * d + 1)
    )  # selector, head
    block = 2 * d * d + 2 * d * 1024 + 3 * d * 14336 + 2 * d  # attention, MLP, 2 norms
    frozen = v * d + 8 * block + d  # embeddings, 8 blocks, final norm
    assert count_parameters(model) == (trainable, trainable + frozen)
    assert trainable == 9_678_438 + n_class_tokens * 50
    assert frozen == 2_270_236_672


# ----------------------------------------------------------------------------- head options and controls


def test_position_head_equals_paper_head_when_every_bin_is_kept(tokenizer):
    """N <= k: every bin is kept in order, so slot j = bin j and the position head is the paper's."""
    n = 3
    flat = tiny_gta(tokenizer, top_k=5)
    pos = tiny_gta(tokenizer, top_k=5, head="position", n_bins=n)
    pos.load_state_dict({k: v for k, v in flat.state_dict().items() if not k.startswith("head.head.")}, strict=False)
    with torch.no_grad():
        pos.head.position_weight.copy_(flat.head.head.weight[0, : n * 32].view(n, 32))
        pos.head.bias.copy_(flat.head.head.bias[0])
    x, p = features(4, n, seed=5), prompts([3, 5, 1, 2], seed=5)
    with torch.no_grad():
        assert torch.allclose(pos(x, p), flat(x, p), atol=1e-6)


def test_position_head_weighs_each_kept_token_by_its_own_bin(tokenizer):
    """N > k: the prediction is the sum over kept tokens of <W[bin], gated standardised state>."""
    model = tiny_gta(tokenizer, top_k=3, head="position", n_bins=8, seed=2)
    x, p = features(3, 8, seed=6), prompts([2, 4, 6], seed=6)
    with torch.no_grad():
        y, d = model(x, p, return_details=True)
        h, _ = model.hidden_states(x, p)
        norm = model.head.norm
        z = (h - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
        for i in range(3):
            sel = d["selected"][i]
            gate = torch.sigmoid(d["selector_logits"][i, sel])
            manual = sum(gate[j] * z[i, b] @ model.head.position_weight[b] for j, b in enumerate(sel))
            assert torch.isclose(y[i], manual / math.sqrt(3 * 32) + model.head.bias, atol=1e-5)
    assert model.head.position_weight.shape == (8, 32)


@pytest.mark.parametrize(
    "kw",
    [
        dict(head="position", n_bins=9),
        dict(head="distance", n_bins=9),
        dict(position_embedding=True, n_bins=9),
        dict(blocks="none"),
        dict(blocks="attention"),
        dict(blocks="random"),
        dict(skip=True, head="distance", n_bins=9),
    ],
)
def test_options_train_the_selector_and_keep_shapes(tokenizer, kw):
    """Each option's gradient is the loss's slope: a central finite difference along the gradient (a second
    derivation, no autograd) equals its norm; the frozen backbone gets none."""
    model = tiny_gta(tokenizer, **kw).train()
    x, p, target = features(4, 9), prompts([3, 9, 1, 6]), torch.tensor([1.0, -1.0, 0.5, 2.0])

    def loss():
        return (model(x, p) - target).pow(2).mean()

    y, d = model(x, p, return_details=True)
    assert y.shape == (4,) and d["selected"].shape == (4, 4)
    loss().backward()
    assert model.head.selector.weight.grad.abs().sum() > 0
    if kw.get("position_embedding"):
        assert model.position.grad.abs().sum() > 0
    for q in model.backbone.parameters():
        assert q.grad is None
    trained = [q for q in model.parameters() if q.requires_grad]
    grads = [q.grad.clone() for q in trained]
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    eps = 1e-3  # small enough that the top-k choice stays put (checked), large for fp32 rounding
    with torch.no_grad():
        ends = []
        for sign in (1, -1):
            for q, g in zip(trained, grads, strict=True):
                q.add_(sign * eps * g / norm)
            ends.append((loss(), model(x, p, return_details=True)[1]["selected"]))
            for q, g in zip(trained, grads, strict=True):
                q.sub_(sign * eps * g / norm)
    assert torch.equal(ends[0][1], d["selected"]) and torch.equal(ends[1][1], d["selected"])
    assert ((ends[0][0] - ends[1][0]) / (2 * eps)).item() == pytest.approx(norm.item(), rel=0.01)


def test_position_embedding_starts_at_zero_and_shifts_the_tokens(tokenizer):
    plain, with_pos = tiny_gta(tokenizer), tiny_gta(tokenizer, position_embedding=True, n_bins=6)
    with_pos.load_state_dict(plain.state_dict(), strict=False)
    x, p = features(2, 6, seed=7), prompts([3, 4], seed=7)
    with torch.no_grad():
        assert torch.equal(plain(x, p), with_pos(x, p))  # zero at the start: the same model
        with_pos.position.normal_()
        assert not torch.allclose(plain(x, p), with_pos(x, p))


def test_controls_are_built_as_described(tokenizer):
    x, p = features(2, 6, seed=8), prompts([3, 4], seed=8)
    gta = tiny_gta(tokenizer)
    none = tiny_gta(tokenizer, blocks="none")
    with torch.no_grad():
        h, _ = none.hidden_states(x, p)
        z = (x - none.feature_mean) / none.feature_std
        aligned, _ = none.align(z, none.backbone.embed_tokens.weight, none.class_ids)
    assert torch.equal(h, aligned)  # no backbone: the aligned tokens themselves
    # random backbone: same shapes, other weights, reproducible from the seed, nothing trainable in it
    r1, r2 = tiny_gta(tokenizer, blocks="random", control_seed=3), tiny_gta(tokenizer, blocks="random", control_seed=3)
    for (name, a), b, c in zip(
        r1.backbone.named_parameters(), r2.backbone.parameters(), gta.backbone.parameters(), strict=False
    ):
        assert a.shape == c.shape and torch.equal(a, b) and not a.requires_grad, name
        if a.ndim >= 2:
            assert not torch.equal(a, c), name
    # one trainable attention layer: its parameters train, the prompt does not matter
    att = tiny_gta(tokenizer, blocks="attention")
    assert all(q.requires_grad for q in att.attention_layer.parameters())
    assert set(att.trainable_state_dict()) >= {f"attention_layer.{k}" for k in att.attention_layer.state_dict()}
    with torch.no_grad():
        assert torch.equal(att(x, p), att(x, prompts([7, 1], seed=9)))
    # causal: changing the last bin leaves the first bins' states alone
    x2 = x.clone()
    x2[:, -1] += 5
    with torch.no_grad():
        assert torch.allclose(att.hidden_states(x, p)[0][:, :-1], att.hidden_states(x2, p)[0][:, :-1], atol=1e-6)


def test_bad_head_options_name_the_input(tokenizer):
    with pytest.raises(GTAError, match="head 'pool' is not one of flatten") as e:
        tiny_gta(tokenizer, head="pool")
    assert e.value.input == "head"
    with pytest.raises(GTAError, match="head 'position' needs the number of bins") as e:
        tiny_gta(tokenizer, head="position")
    assert e.value.inputs == ("head", "n_bins")
    with pytest.raises(GTAError, match="blocks") as e:
        tiny_gta(tokenizer, blocks="half")
    assert e.value.input == "blocks"


def test_distance_head_is_the_position_head_with_weights_tied_to_the_distance(tokenizer):
    from gta.model.head import DISTANCE_BINS, distance_basis

    n = 9
    basis = distance_basis(n)
    assert basis.shape == (n, 2 * len(DISTANCE_BINS))
    assert torch.equal(basis[n // 2], torch.ones(basis.shape[1]))  # the TSS bin is in both sides
    assert (basis[: n // 2, 1::2] == 0).all() and (basis[n // 2 + 1 :, 0::2] == 0).all()
    assert torch.isclose(basis[0, 0], torch.tensor(math.exp(-4 / DISTANCE_BINS[0])))
    dist = tiny_gta(tokenizer, top_k=3, head="distance", n_bins=n, seed=4)
    pos = tiny_gta(tokenizer, top_k=3, head="position", n_bins=n, seed=4)
    pos.load_state_dict({k: v for k, v in dist.state_dict().items() if not k.startswith("head.")}, strict=False)
    with torch.no_grad():
        pos.head.weight.copy_(dist.head.basis @ dist.head.readout)
        pos.head.selector.load_state_dict(dist.head.selector.state_dict())
        pos.head.bias.copy_(dist.head.bias)
    x, p = features(3, n, seed=9), prompts([2, 5, 3], seed=9)
    with torch.no_grad():
        assert torch.allclose(dist(x, p), pos(x, p), atol=1e-6)
    assert dist.head.readout.shape == (10, 32) and not dist.head.basis.requires_grad


def test_skip_gives_the_head_the_backbone_state_and_the_aligned_token(tokenizer):
    x, p = features(3, 6, seed=10), prompts([2, 5, 3], seed=10)
    plain, skip = tiny_gta(tokenizer, seed=5), tiny_gta(tokenizer, seed=5, skip=True)
    skip.load_state_dict({k: v for k, v in plain.state_dict().items() if not k.startswith("head.")}, strict=False)
    with torch.no_grad():
        h, _ = plain.hidden_states(x, p)
        both, _ = skip.hidden_states(x, p)
        z = (x - skip.feature_mean) / skip.feature_std
        aligned, _ = skip.align(z, skip.backbone.embed_tokens.weight, skip.class_ids)
    assert both.shape == (3, 6, 64) and skip.head.selector.in_features == 64
    assert torch.equal(both[..., :32], h) and torch.equal(both[..., 32:], aligned)
    # the gradient reaches the alignment through both paths, and the selector
    skip.train()
    skip(x, p).pow(2).mean().backward()
    assert skip.head.selector.weight.grad[0, :32].abs().sum() > 0
    assert skip.head.selector.weight.grad[0, 32:].abs().sum() > 0
    # no backbone, nothing to skip: the same model as without skip
    assert tiny_gta(tokenizer, blocks="none", skip=True).head.selector.in_features == 32
