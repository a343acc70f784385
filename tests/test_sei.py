"""Sei model: layout, parameter count, spline basis, one-hot, projection, strand symmetry, checkpoints."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gta import GTAError
from gta.genome import reverse_complement
from gta.demo.sei import make_demo_projection, build_demo_sei, make_demo_sei
from gta.sei import (
    CLASS_LABELS,
    Sei,
    bspline_basis,
    class_scores,
    load_projection,
    load_sei,
    one_hot,
    predict,
    save_sei,
)
from gta.sei.checkpoint import EXPECTED_KEYS, read_state_dict

TINY = 1 / 60  # channels (8, 11, 16)


@pytest.fixture(scope="module")
def tiny_model() -> Sei:
    return build_demo_sei(TINY, 24, seed=3)


def random_onehot(rng: np.random.Generator, n: int, length: int = 4096) -> torch.Tensor:
    seqs = ["".join(rng.choice(list("ACGTN"), length, p=[0.28, 0.21, 0.21, 0.28, 0.02])) for _ in range(n)]
    return torch.from_numpy(np.stack([one_hot(s) for s in seqs]))


# ----------------------------------------------------------------------------- architecture


def test_full_size_layout_and_parameter_count_on_meta():
    with torch.device("meta"):
        model = Sei()
    state = model.state_dict()
    assert list(state) == EXPECTED_KEYS  # 38 tensors, official names and order
    assert len(state) == 38
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["lconv1.0.weight"] == (480, 4, 9)
    assert shapes["lconv2.2.weight"] == (640, 480, 9)
    assert shapes["lconv3.2.weight"] == (960, 640, 9)
    assert shapes["dconv5.1.weight"] == (960, 960, 5)
    assert shapes["classifier.0.weight"] == (21907, 15360)
    assert shapes["classifier.2.weight"] == (21907, 21907)
    assert sum(v.numel() for v in state.values()) == 889_979_983
    assert sum(v.numel() for k, v in state.items() if not k.startswith("classifier")) == 73_528_000
    dil = [(getattr(model, f"dconv{i}")[1].dilation[0], getattr(model, f"dconv{i}")[1].padding[0]) for i in range(1, 6)]
    assert dil == [(2, 4), (4, 8), (8, 16), (16, 32), (25, 50)]


def _reference_forward(state: dict, x: torch.Tensor, basis: np.ndarray) -> torch.Tensor:
    """Sei's forward written out from docs/formats.md (Sei checkpoint) with functional ops (eval mode)."""

    def conv(h, name, d=1):
        w = state[f"{name}.weight"]
        return F.conv1d(h, w, state[f"{name}.bias"], padding=d * (w.shape[-1] - 1) // 2, dilation=d)

    lout1 = conv(conv(x, "lconv1.0"), "lconv1.1")
    out1 = F.relu(conv(F.relu(conv(lout1, "conv1.0")), "conv1.2"))
    lout2 = conv(conv(F.max_pool1d(out1 + lout1, 4, 4), "lconv2.2"), "lconv2.3")
    out2 = F.relu(conv(F.relu(conv(lout2, "conv2.1")), "conv2.3"))
    lout3 = conv(conv(F.max_pool1d(out2 + lout2, 4, 4), "lconv3.2"), "lconv3.3")
    out3 = F.relu(conv(F.relu(conv(lout3, "conv3.1")), "conv3.3"))
    c = out3 + F.relu(conv(out3 + lout3, "dconv1.1", 2))
    for i, d in zip(range(2, 6), (4, 8, 16, 25), strict=False):
        c = c + F.relu(conv(c, f"dconv{i}.1", d))
    s = torch.einsum("bcn,nk->bck", c, torch.from_numpy(basis).float())
    h = s.reshape(len(s), -1)
    h = F.relu(F.linear(h, state["classifier.0.weight"], state["classifier.0.bias"]))
    return torch.sigmoid(F.linear(h, state["classifier.2.weight"], state["classifier.2.bias"]))


def test_forward_matches_reference_wiring(tiny_model):
    x = random_onehot(np.random.default_rng(0), 3)
    with torch.no_grad():
        got = tiny_model(x)
        want = _reference_forward(tiny_model.state_dict(), x, bspline_basis(256, 16))
    assert got.shape == (3, 24)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert tiny_model.trunk(x).shape == (3, 16, 256)


# ----------------------------------------------------------------------------- basis, one-hot, projection


def test_bspline_basis_properties():
    from scipy.interpolate import BSpline

    b = bspline_basis(256, 16)
    assert b.shape == (256, 16)
    assert np.allclose(b.sum(1), 1.0, atol=1e-12)
    assert b.min() >= -1e-15
    assert b[0, 0] == pytest.approx(1.0) and b[255, 15] == pytest.approx(1.0)
    knots = np.r_[[0.0] * 4, 255 * np.arange(1, 13) / 13, [255.0] * 4]
    ref = BSpline.design_matrix(np.arange(256.0), knots, 3).toarray()
    np.testing.assert_allclose(b, ref, atol=1e-12)
    # each cubic piece is supported on at most 4 knot intervals
    for j in range(16):
        nz = np.nonzero(b[:, j] > 0)[0]
        assert knots[j] <= nz.min() and nz.max() <= knots[j + 4]
    # another size: the same construction
    b2 = bspline_basis(50, 7)
    k2 = np.r_[[0.0] * 4, np.linspace(0, 49, 5)[1:-1], [49.0] * 4]
    np.testing.assert_allclose(b2, BSpline.design_matrix(np.arange(50.0), k2, 3).toarray(), atol=1e-12)


def test_one_hot():
    seq = "ACGTacgtNnRY-"
    x = one_hot(seq)
    assert x.dtype == np.float32 and x.shape == (4, len(seq))
    rows = {"A": 0, "C": 1, "G": 2, "T": 3}
    for i, base in enumerate(seq):
        want = np.full(4, 0.25, np.float32)
        if base.upper() in rows:
            want = np.eye(4, dtype=np.float32)[rows[base.upper()]]
        np.testing.assert_array_equal(x[:, i], want)
    assert np.allclose(one_hot("ACGT" * 1000).sum(0), 1.0)


def test_class_scores_match_numpy():
    rng = np.random.default_rng(1)
    preds = rng.random((7, 50))
    projvec = rng.standard_normal((61, 50))
    want = np.stack([[p @ v / np.sqrt((v**2).sum()) for v in projvec[:40]] for p in preds])
    got = class_scores(preds, projvec)
    assert got.shape == (7, 40) and len(CLASS_LABELS) == 40
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(class_scores(torch.from_numpy(preds).float(), projvec), want, rtol=1e-4, atol=1e-5)
    with pytest.raises(GTAError):
        class_scores(preds, projvec[:, :49])


def test_reverse_complement_symmetry(tiny_model):
    rng = np.random.default_rng(2)
    seq = "".join(rng.choice(list("ACGTacgtN"), 4096))
    x = torch.from_numpy(np.stack([one_hot(seq), one_hot(reverse_complement(seq))]))
    with torch.no_grad():
        p = predict(tiny_model, x)
        single = tiny_model(x)
    torch.testing.assert_close(p[0], p[1], atol=1e-6, rtol=1e-6)
    # the averaged prediction is the mean of the two strands' own outputs
    torch.testing.assert_close(p[0], (single[0] + single[1]) / 2, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(single[0], single[1], atol=1e-3)  # the model itself is not symmetric


def test_demo_model_varies_without_saturating(tiny_model):
    x = random_onehot(np.random.default_rng(5), 32)
    with torch.no_grad():
        p = predict(tiny_model, x)
    assert ((p < 0.01) | (p > 0.99)).float().mean() < 0.02
    assert p.std(0).mean() > 0.05  # targets differ between sequences
    # same seed, same weights; another seed, other weights
    again = build_demo_sei(TINY, 24, seed=3)
    assert all(
        torch.equal(a, b) for a, b in zip(tiny_model.state_dict().values(), again.state_dict().values(), strict=False)
    )
    other = build_demo_sei(TINY, 24, seed=4)
    assert not torch.equal(tiny_model.classifier[2].weight, other.classifier[2].weight)
    np.testing.assert_array_equal(make_demo_projection(24, 0), make_demo_projection(24, 0))
    assert make_demo_projection(24, 0).shape == (61, 24)


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_with_official_prefix(tmp_path, tiny_model):
    path = tmp_path / "sei.pth"
    save_sei(tiny_model, path)
    raw = torch.load(path, weights_only=True)
    assert len(raw) == 38 and all(k.startswith("module.model.") for k in raw)
    loaded = load_sei(path)
    assert loaded.channels == (8, 11, 16) and loaded.n_targets == 24 and not loaded.training
    for k, v in tiny_model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, atol=0, rtol=0)
    x = random_onehot(np.random.default_rng(3), 2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), tiny_model(x), atol=0, rtol=0)
    # bare keys load too, and a correct checksum passes
    bare = tmp_path / "bare.pth"
    torch.save(tiny_model.state_dict(), bare)
    digest = hashlib.sha256(bare.read_bytes()).hexdigest()
    assert load_sei(bare, sha256=digest.upper()).n_targets == 24


def test_demo_files(tmp_path):
    make_demo_sei(tmp_path / "d.pth", tmp_path / "p.npy", width=TINY, n_targets=16, seed=0)
    model = load_sei(tmp_path / "d.pth")
    v = load_projection(tmp_path / "p.npy", model.n_targets)
    assert v.shape == (61, 16) and model.n_targets == 16
    with pytest.raises(GTAError, match="has 16 columns but the checkpoint predicts 17") as e:
        load_projection(tmp_path / "p.npy", 17)
    assert e.value.inputs == ("projection", "checkpoint")


def test_bad_checkpoints_give_clear_errors(tmp_path, tiny_model):
    with pytest.raises(GTAError, match=r"Sei checkpoint not found.*official sei\.pth"):
        load_sei(tmp_path / "missing.pth")
    good = tmp_path / "good.pth"
    save_sei(tiny_model, good)
    with pytest.raises(GTAError, match=r"good\.pth has sha256 .* but the expected sha256 is 0+:"):
        load_sei(good, sha256="0" * 64)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(GTAError, match=r"truncated\.pth.*corrupt"):
        load_sei(truncated)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint" * 100)
    with pytest.raises(GTAError, match=r"garbage\.pth"):
        load_sei(garbage)
    wrong = tmp_path / "wrong.pth"
    torch.save({"module.model.encoder.weight": torch.zeros(3)}, wrong)
    with pytest.raises(GTAError, match=r"wrong\.pth does not have the Sei layout"):
        load_sei(wrong)
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    state["conv1.0.weight"] = torch.zeros(8, 9, 9)  # a layer of another width
    mixed = tmp_path / "mixed.pth"
    torch.save(state, mixed)
    with pytest.raises(GTAError, match=r"mixed\.pth.*shapes"):
        load_sei(mixed)
    pickled = tmp_path / "pickled.pth"
    torch.save({"model": object}, pickled)  # not loadable with weights_only=True
    with pytest.raises(GTAError, match=r"pickled\.pth") as e:
        read_state_dict(pickled)
    assert e.value.input == "checkpoint"  # the rule adds sei.checkpoint, the command line --checkpoint
    assert "weights_only" not in str(e.value)  # torch's advice to load it anyway (which runs its code) is not relayed


def test_a_saved_checkpoint_depends_on_the_weights_only(tmp_path):
    """The same weights saved twice (each through its own random temporary file) give the same bytes, so
    the checkpoint's sha256 recorded in the features' provenance is the same in two runs (a local run and
    a Slurm run of one config compare features.h5 byte for byte); other weights give other bytes."""
    model = build_demo_sei(1 / 60, 20, seed=1)
    digests = []
    for name in ("a.pth", "b/c.pth", "a.pth"):
        save_sei(model, tmp_path / name)
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert len(set(digests)) == 1
    save_sei(build_demo_sei(1 / 60, 20, seed=2), tmp_path / "other.pth")
    assert hashlib.sha256((tmp_path / "other.pth").read_bytes()).hexdigest() != digests[0]
