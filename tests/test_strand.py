"""Strand: GTA models read every gene's bins in transcript order (upstream first), whatever its strand.

Features in 'reference' orientation hold a minus-strand gene's upstream bins on the right of its TSS; a
head with separate upstream and downstream readouts (position, distance) must see them reversed.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from gta import GTAError
from gta.demo.simulation import GRAMMAR_CLASSES, grammar_terms, simulate
from gta.evaluate import make_table1, strand_spearman
from gta.explain import explain_genes
from gta.formats import transcript_order
from gta.model.head import SelectorHead
from gta.model.gta import GTA
from gta.pretrained import GTAModel
from gta.train import load_dataset, load_features

from test_evaluate import write_features_attrs, write_pred, write_targets
from test_train import backbone_dir, data_files, run, strands  # noqa: F401 (fixtures)


def test_transcript_order_reverses_minus_strand_bins_only():
    x = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)  # genes, bins, classes
    want = x.copy()
    want[1] = np.stack([x[1, 3], x[1, 2], x[1, 1], x[1, 0]])  # by hand: gene 1 is on the minus strand
    got = transcript_order(x, ["+", "-", "+"], "reference")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(x[1, 0], [8, 9])  # the input is left as it was
    assert transcript_order(x, ["+", "-", "+"], "transcript") is x  # already upstream first
    with pytest.raises(GTAError, match="give each gene's strand") as e:
        transcript_order(x, None, "reference")
    assert e.value.input == "strand"
    with pytest.raises(GTAError, match="'.'"):
        transcript_order(x, ["+", ".", "+"], "reference")
    with pytest.raises(GTAError, match="2 strands for 3 genes"):
        transcript_order(x, ["+", "-"], "reference")


# ----------------------------------------------------------------------------- a head that knows upstream


def fit_head(h: np.ndarray, y: np.ndarray, mode: str, steps: int = 200) -> SelectorHead:
    torch.manual_seed(0)
    head = SelectorHead(h.shape[2], top_k=h.shape[1], mode=mode, n_bins=h.shape[1])
    opt = torch.optim.Adam(head.parameters(), lr=3e-2)
    x, t = torch.from_numpy(h), torch.from_numpy(y)
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(head(x)[0], t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head.eval()


@pytest.mark.parametrize("mode", ["position", "distance"])
def test_an_upstream_only_signal_needs_the_strand(mode):
    """Expression from the bins upstream of the TSS only: read in reference order (every gene taken as
    '+'), the head finds a minus-strand gene's upstream bins on the wrong side; in transcript order not."""
    rng = np.random.default_rng(0)
    genes, n, hidden = 600, 9, 4
    x = rng.normal(size=(genes, n, hidden)).astype(np.float32)  # reference order
    strand = np.where(rng.random(genes) < 0.5, "-", "+")
    t = n // 2
    upstream = np.where(strand[:, None] == "+", np.arange(n) < t, np.arange(n) > t)  # by hand, per gene
    y = ((x[:, :, 0] * upstream).sum(1) + 0.3 * rng.normal(size=genes)).astype(np.float32)
    train, test = np.arange(genes) < 400, np.arange(genes) >= 400
    minus = test & (strand == "-")
    rho = {}
    for name, order in (("blind", ["+"] * genes), ("aware", strand)):
        h = transcript_order(x, order, "reference")
        head = fit_head(h[train], y[train], mode)
        with torch.no_grad():
            pred = head(torch.from_numpy(h))[0].numpy()
        rho[name] = stats.spearmanr(pred[minus], y[minus]).statistic
    assert rho["aware"] > 0.85
    assert rho["blind"] < rho["aware"] - 0.2


def test_training_feeds_minus_strand_genes_reversed(tmp_path, data_files, backbone_dir, monkeypatch):  # noqa: F811
    """The model's forward sees each gene's bins in transcript order, in training and from GTAModel."""
    d = data_files[0]
    seen = []
    original = GTA.forward

    def spy(self, features, *a, **kw):
        seen.append(features.detach().cpu().numpy().copy())
        return original(self, features, *a, **kw)

    monkeypatch.setattr(GTA, "forward", spy)
    run(tmp_path, data_files, backbone_dir, epochs=1, batch_size=500, autocast="float32")
    ds = load_dataset(d / "features.h5", d / "targets.tsv", d / "prompts.jsonl", 5, d / "tss.tsv")
    last = seen[-1]  # the final pass: every gene in one batch (in the genes' canonical order)
    assert last.shape == ds.x.shape
    # by hand: minus-strand genes' bins reversed, the others as stored; each gene's rows found in the batch
    want = [ds.x[i, ::-1] if ds.strand[i] == "-" else ds.x[i] for i in range(len(ds.x))]
    assert sorted(np.ascontiguousarray(r).tobytes() for r in want) == sorted(r.tobytes() for r in last)
    assert any(not np.array_equal(r, ds.x[i]) for i, r in enumerate(want))  # some genes are reversed
    assert (ds.strand[ds.idx["train"]] == "-").any()
    with pytest.raises(GTAError, match="reference orientation: give the TSS table") as e:
        load_dataset(d / "features.h5", d / "targets.tsv", d / "prompts.jsonl", 5)
    assert e.value.input == "tss"


# ----------------------------------------------------------------------------- a trained model


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_files, backbone_dir):  # noqa: F811
    folder, pred = run(tmp_path_factory.mktemp("strand"), data_files, backbone_dir, epochs=2, autocast="float32")
    return folder, pred, GTAModel.from_pretrained(folder, device="cpu")


def test_predicting_a_minus_strand_gene_is_predicting_its_reversed_bins(trained, data_files):  # noqa: F811
    folder, pred, model = trained
    d = data_files[0]
    gene_id, _, x = load_features(d / "features.h5", 5)
    prompts = [f"# Task : Gene Expression {' '.join(['protein'] * (i % 5) + ['kinase'])} # Data :" for i in range(8)]
    strand = strands(len(gene_id))[:8]
    assert config_bins(folder) == "transcript order" and model.orient == "reference"
    got = model.predict(x[:8], prompts, strand=strand)
    as_plus = model.predict(transcript_order(x[:8], strand, "reference"), prompts, strand=["+"] * 8)
    np.testing.assert_array_equal(got, as_plus)
    # plus-strand genes: exactly the module on the features as stored (no reordering)
    plus = np.flatnonzero(strand == "+")
    with torch.no_grad():
        raw = model.module(torch.from_numpy(x[plus]), model.encode([prompts[i] for i in plus])).numpy()
    np.testing.assert_allclose(got[plus], raw * model.y_std + model.y_mean, rtol=1e-6, atol=1e-6 * model.y_std)
    minus = np.flatnonzero(strand == "-")
    assert not np.allclose(got[minus], model.predict(x[minus], [prompts[i] for i in minus], strand=["+"] * len(minus)))
    # and they are the training run's own predictions (written with %.6g)
    written = pred.set_index("gene_id")["predicted"]
    for i in range(8):
        if gene_id[i] in written.index:
            assert got[i] == pytest.approx(written[gene_id[i]], rel=1e-5, abs=1e-6 * model.y_std)
    with pytest.raises(GTAError, match="give each gene's strand"):
        model.predict(x[:2], prompts[:2])
    with pytest.raises(GTAError, match="give the TSS table") as e:  # a stage that applies the model names its tss
        explain_genes(folder, d / "features.h5", d / "prompts.jsonl", ["G100"], d.parent / "none", device="cpu")
    assert e.value.input == "tss"


def config_bins(folder) -> str:
    return json.loads((folder / "config.json").read_text())["bins"]


def test_a_model_folder_without_the_bin_order_is_refused(trained, tmp_path):
    folder = trained[0]
    old = tmp_path / "old"
    old.mkdir()
    for f in folder.iterdir():
        (old / f.name).write_bytes(f.read_bytes())
    config = json.loads((old / "config.json").read_text())
    del config["bins"]
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(GTAError, match="older gta that read minus-strand genes' bins backwards; retrain") as e:
        GTAModel.from_pretrained(old, device="cpu")
    assert e.value.input == "model"


# ----------------------------------------------------------------------------- the upstream grammar


def planted(n_genes: int, n: int, bins: dict[int, int]) -> np.ndarray:
    """z (genes, n, 5) all zero (no promoter, CTCF or polycomb) but E5 = 3 at bins[g] for gene g."""
    z = np.zeros((n_genes, n, len(GRAMMAR_CLASSES)))
    for g, b in bins.items():
        z[g, b, 1] = 3.0
    return z


def test_upstream_grammar_counts_upstream_enhancers_only():
    n, t = 11, 5
    z = planted(3, n, {0: t - 3, 1: t + 3, 2: t})  # upstream, downstream, at the TSS (transcript order)
    demo = grammar_terms(z, t)["enhancer"]
    up = grammar_terms(z, t, upstream_only=True)["enhancer"]
    contact = 1.0 / (1.0 + 3 / 10)  # by hand: activity 3 - 2 = 1, three bins away
    np.testing.assert_allclose(demo, [contact, contact, 0.0])
    np.testing.assert_allclose(up, [contact, 0.0, 0.0])


def test_upstream_grammar_reads_minus_strand_genes_from_the_right():
    """In reference order a minus-strand gene's upstream is on the right: simulating it equals simulating
    its reversed bins as a plus-strand gene, and an enhancer left of its TSS does nothing."""
    rng = np.random.default_rng(3)
    genes, n = 60, 11
    scores = rng.normal(size=(genes, n, len(GRAMMAR_CLASSES)))
    strand = np.where(np.arange(genes) % 2 == 0, "+", "-")
    ids = np.arange(genes) + 1
    args = (ids, n // 2, 0.8, 0)
    obs, sig = simulate(scores, *args, name="upstream", strand=strand, orient="reference")
    flipped = transcript_order(scores, strand, "reference")
    obs2, sig2 = simulate(flipped, *args, name="upstream", strand=["+"] * genes, orient="reference")
    np.testing.assert_allclose(sig, sig2, atol=1e-12)
    np.testing.assert_allclose(obs, obs2, atol=1e-12)
    same, _ = simulate(flipped, *args, name="upstream", strand=strand, orient="transcript")
    np.testing.assert_allclose(same, obs, atol=1e-12)
    with pytest.raises(GTAError, match="give each gene's strand"):
        simulate(scores, *args, name="upstream")
    # the demo grammar is symmetric: strand makes no difference to it
    np.testing.assert_allclose(simulate(scores, *args)[1], simulate(flipped, *args)[1], atol=1e-12)


# ----------------------------------------------------------------------------- per-strand evaluation


def test_strand_spearman_and_table1_columns(tmp_path):
    tgt = write_targets(tmp_path / "targets.tsv")
    rng = np.random.default_rng(2)
    strand = pd.Series(np.where(np.arange(len(tgt)) % 2 == 0, "+", "-"), index=tgt["gene_id"])
    plus = (strand == "+").to_numpy()
    # good on plus-strand genes, noise on minus-strand ones
    predicted = np.where(plus, tgt["value"] + 0.1 * rng.normal(size=len(tgt)), rng.normal(size=len(tgt)))
    write_pred(tmp_path / "p.tsv", tgt, predicted)
    pred = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    test = tgt.loc[tgt["split"] == "test", "gene_id"]
    got = strand_spearman(pred, test, strand)
    for s, mask in (("+", plus), ("-", ~plus)):
        sub = pred[mask & pred["gene_id"].isin(test).to_numpy()]
        assert got[s] == pytest.approx(sub["observed"].rank().corr(sub["predicted"].rank()))  # by ranks, by hand
    assert got["+"] > 0.8 and abs(got["-"]) < got["+"] - 0.3
    tss = pd.DataFrame(
        {
            "gene_id": tgt["gene_id"],
            "symbol": tgt["symbol"],
            "ensembl_gene": "",
            "name": "",
            "chrom": "chr1",
            "tss": 1000,
            "strand": strand.to_numpy(),
        }
    )
    tss.to_csv(tmp_path / "tss.tsv", sep="\t", index=False)
    write_features_attrs(tmp_path / "features.h5", 51, 4096)
    args = ([["GTA", 51, tmp_path / "p.tsv"]], tmp_path / "targets.tsv", tmp_path / "features.h5")
    table = make_table1(*args, tmp_path / "t1.tsv", n_boot=50, tss=tmp_path / "tss.tsv")
    assert list(table.columns[-2:]) == ["spearman_plus", "spearman_minus"]
    assert table["spearman_plus"].iloc[0] == f"{got['+']:.4f}" and table["spearman_minus"].iloc[0] == f"{got['-']:.4f}"
    assert "spearman_plus" not in make_table1(*args, tmp_path / "t0.tsv", n_boot=50).columns  # without tss
