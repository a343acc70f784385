"""gta.explain: per-bin ablation effects, selector and alignment attention of one gene; files and CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gta import GTAError
from gta.annotations import read_prompts
from gta.cli import main
from gta.explain import explain_gene, explain_genes, find_genes, read_gene_list
from gta.pretrained import GTAModel
from gta.train import load_features
from test_train import backbone_dir, data_files, run, strands  # noqa: F401 (fixtures)

N = 5
STRAND = strands(1000)  # gene i's strand (features-file order)
BASE = ["bin", "offset", "distance_bp", "prediction", "ablated", "effect", "selector_logit", "selected"]


@pytest.fixture(scope="module", params=["float32", "bfloat16"])
def trained(request, tmp_path_factory, data_files, backbone_dir):  # noqa: F811
    """A tiny model trained for 2 epochs in each precision, loaded, with the features and prompts of its genes."""
    folder, pred = run(
        tmp_path_factory.mktemp("explain"), data_files, backbone_dir, n=N, epochs=2, autocast=request.param
    )
    d = data_files[0]
    model = GTAModel.from_pretrained(folder, device="cpu")
    gene_id, symbol, x = load_features(d / "features.h5", N)
    return folder, pred, model, gene_id, symbol, x, read_prompts(d / "prompts.jsonl")


def assert_close_to_the_training_run(got, written, model):
    """`got`, a gene predicted alone, equals what the training run wrote (%.6g) for it in a batch of other
    genes, up to that rounding and the precision: in float32 the last bits of a float32 (about 1e-7 of the
    target's sd; measured 2e-9); in bf16 more, because alone and in a batch the prompt keys are padded to
    other lengths and bf16 attention kernels round other block partitions differently (measured up to
    6.7e-6 of the sd over the 160 genes), so there the bound is 1e-4 of the sd."""
    bound = 1e-6 if model.config["precision"] == "float32" else 1e-4
    assert got == pytest.approx(written, rel=1e-5, abs=bound * model.y_std)


def columns(heads):
    return BASE + [c for h in range(heads) for c in (f"top_prototype_h{h}", f"attention_h{h}")]


def test_ablation_effects_equal_independent_predictions(trained):
    _, _, model, gene_id, _, x, prompts = trained
    heads = int(model.config["model"]["heads"])
    for i in (0, 17, 40):  # 40: a minus-strand gene
        table, attention = explain_gene(model, x[i], prompts[int(gene_id[i])], return_attention=True, strand=STRAND[i])
        assert list(table.columns) == columns(heads) and len(table) == N
        assert attention.shape[:2] == (heads, N)
        np.testing.assert_array_equal(table["bin"], np.arange(N))
        np.testing.assert_array_equal(table["offset"], np.arange(N) - N // 2)
        np.testing.assert_array_equal(table["distance_bp"], (np.arange(N) - N // 2) * 4096)
        for b in range(N):
            xb = x[i].copy()
            xb[b] = model.feature_mean
            alone = model.predict(xb[None], [prompts[int(gene_id[i])]], strand=[STRAND[i]])[0]
            assert table["ablated"].iloc[b] == pytest.approx(alone, abs=1e-6)
        np.testing.assert_array_equal(table["effect"], table["prediction"] - table["ablated"])
        assert (table["effect"] != 0).any()
        # with the gene's own features as background nothing changes
        own = explain_gene(model, x[i], prompts[int(gene_id[i])], background=x[i], strand=STRAND[i])
        assert (own["effect"] == 0).all()


def test_selector_attention_and_prediction_agree_with_the_model(trained):
    _, pred, model, gene_id, symbol, x, prompts = trained
    for i in (3, 40, 101):  # 40: a minus-strand gene, whose details come in transcript order
        g = int(gene_id[i])
        table, attention = explain_gene(model, x[i], prompts[g], return_attention=True, strand=STRAND[i])
        p, d = model.predict_details(x[i][None], [prompts[g]], strand=[STRAND[i]])
        back = slice(None, None, -1) if STRAND[i] == "-" else slice(None)  # the model's order -> the file's
        np.testing.assert_allclose(table["selector_logit"], d["selector_logits"][0][back], rtol=0, atol=0)
        assert set(np.flatnonzero(table["selected"])) == set(np.arange(N)[back][d["selected"][0]].tolist())
        assert table["selected"].sum() == min(int(model.config["model"]["top_k"]), N)
        np.testing.assert_array_equal(attention, d["attention"][0][:, back])
        for h in range(attention.shape[0]):
            np.testing.assert_array_equal(table[f"top_prototype_h{h}"], attention[h].argmax(-1))
            np.testing.assert_array_equal(table[f"attention_h{h}"], attention[h].max(-1))
        assert (table["prediction"] == table["prediction"].iloc[0]).all()
        v = table["prediction"].iloc[0]
        assert v == model.predict(x[i][None], [prompts[g]], strand=[STRAND[i]])[0] == p[0]
        row = pred.loc[pred["gene_id"] == g, "predicted"]
        if len(row):  # the training run's predictions file (%.6g), from batches of other genes
            assert_close_to_the_training_run(v, row.iloc[0], model)


def test_explain_writes_a_tsv_and_png_per_gene(trained, tmp_path, data_files):  # noqa: F811
    folder, pred, model, gene_id, symbol, x, _ = trained
    d = data_files[0]
    genes = [symbol[2], str(gene_id[9]), symbol[2].lower()]  # by symbol, by GeneID, a repeat ignoring case
    paths = explain_genes(
        folder,
        d / "features.h5",
        d / "prompts.jsonl",
        genes,
        tmp_path / "out",
        device="cpu",
        threads=1,
        label="test",
        tss=d / "tss.tsv",
    )
    expected = [tmp_path / "out" / f"{symbol[i]}.{ext}" for i in (2, 9) for ext in ("tsv", "png")]
    assert paths == expected
    heads = int(model.config["model"]["heads"])
    for i in (2, 9):
        t = pd.read_csv(tmp_path / "out" / f"{symbol[i]}.tsv", sep="\t")
        assert list(t.columns) == columns(heads) and len(t) == N
        assert t["selected"].dtype == bool
        assert (tmp_path / "out" / f"{symbol[i]}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        p = pred.loc[pred["gene_id"] == gene_id[i], "predicted"]
        if len(p):
            assert_close_to_the_training_run(t["prediction"].iloc[0], p.iloc[0], model)
    with pytest.raises(GTAError, match=r"not in the features file .*features.h5: NOPE1, 999999\. "):
        explain_genes(
            folder,
            d / "features.h5",
            d / "prompts.jsonl",
            [symbol[0], "NOPE1", "999999"],
            tmp_path / "bad",
            device="cpu",
            tss=d / "tss.tsv",
        )
    assert not (tmp_path / "bad").exists()


def test_gene_lists_and_lookup(tmp_path):
    f = tmp_path / "genes.txt"
    f.write_text("# genes\nG100\n\n  101  # by id\n")
    assert read_gene_list([str(f)]) == ["G100", "101"]
    assert read_gene_list(["G100", "G101"]) == ["G100", "G101"]
    (tmp_path / "empty.txt").write_text("# none\n")
    with pytest.raises(GTAError, match="names no genes"):
        read_gene_list([str(tmp_path / "empty.txt")])
    assert find_genes(["101", "g100", "G100"], np.array([100, 101]), ["G100", "G101"], "f.h5") == [1, 0]


def test_cli_explain(trained, tmp_path, data_files, backbone_dir):  # noqa: F811
    folder, _, model, _, symbol, _, _ = trained
    d = data_files[0]
    (tmp_path / "genes.txt").write_text(f"{symbol[5]}\n{symbol[6]}\n")
    common = [
        "explain-genes",
        "--model",
        str(folder),
        "--backbone",
        str(backbone_dir),
        "--features",
        str(d / "features.h5"),
        "--prompts",
        str(d / "prompts.jsonl"),
        "--tss",
        str(d / "tss.tsv"),
        "--device",
        "cpu",
        "--threads",
        "1",
    ]
    assert (
        main([*common, "--genes", str(tmp_path / "genes.txt"), "--out-dir", str(tmp_path / "o"), "--label", "cli"]) == 0
    )
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(
        f"{s}.{e}" for s in (symbol[5], symbol[6]) for e in ("png", "tsv")
    )
    t = pd.read_csv(tmp_path / "o" / f"{symbol[5]}.tsv", sep="\t")
    assert len(t) == N and list(t.columns)[: len(BASE)] == BASE
    assert main([*common, "--genes", "NOSUCH", "--out-dir", str(tmp_path / "x")]) == 1


def test_make_figures_entropy_and_ablation_panel(trained, tmp_path, data_files, backbone_dir):  # noqa: F811
    """make_figures' attention_entropy.tsv against the entropy of the test genes' attention worked out in a
    loop, and Figure 9's ablation panel against explain_gene run gene by gene on the seeded pick."""
    import matplotlib.pyplot as plt

    import gta.figures
    from gta.figures import ENTROPY_COLUMNS, make_figures

    folder, predictions, model, gene_id, _, x, prompts = trained
    d = data_files[0]
    pred = tmp_path / "pred.tsv"
    predictions.to_csv(pred, sep="\t", index=False)
    saved = {}
    real = gta.figures._save
    gta.figures._save = lambda fig, path: (saved.update({path.name[:4]: fig}), real(fig, path))
    try:
        make_figures(
            *(str(folder), str(backbone_dir), str(d / "features.h5"), str(pred), str(d / "prompts.jsonl")),
            str(tmp_path / "f"),
            device="cpu",
            n_boot=20,
            tss=str(d / "tss.tsv"),
            out_entropy=str(tmp_path / "entropy.tsv"),
            ablation_genes=3,
            seed=4,
        )
    finally:
        gta.figures._save = real
    table = pd.read_csv(tmp_path / "entropy.tsv", sep="\t")
    assert list(table.columns) == ENTROPY_COLUMNS
    test = pd.read_csv(pred, sep="\t").query("split == 'test'").reset_index(drop=True)
    rows = [int(np.flatnonzero(gene_id == g)[0]) for g in test["gene_id"]]
    strand = [STRAND[i] for i in rows]
    _, det = model.predict_details(x[rows], [prompts[g] for g in test["gene_id"]], strand=strand)
    att = det["attention"].astype(np.float64)  # (genes, heads, N, P)
    for h in range(att.shape[1]):
        ent = [-sum(p * np.log(p) for p in att[g, h, b] if p > 0) for g in range(len(att)) for b in range(N)]
        assert table.loc[h, "entropy"] == pytest.approx(np.mean(ent), abs=5e-3)  # (bf16: batches differ)
        assert table.loc[h, "max_entropy"] == pytest.approx(np.log(att.shape[-1]), abs=1e-4)
    pick = np.sort(np.random.default_rng(4).permutation(len(test))[:3])
    effects = []
    for i in pick:
        e = explain_gene(model, x[rows[i]], prompts[test["gene_id"][i]], strand=strand[i])["effect"].to_numpy()
        effects.append(e[::-1] if strand[i] == "-" else e)  # the figure's transcript order (reference features)
    bars = saved["fig9"].axes[-1].patches
    np.testing.assert_allclose([b.get_height() for b in bars], np.abs(effects).mean(axis=0), rtol=1e-5, atol=1e-7)
    plt.close("all")
