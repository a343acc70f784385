"""Applying a trained model: gene predictions on a FASTA (gta.predict) and VCF variant scores (gta.scoring).

One module-scoped chain builds a tiny genome (chr21, chr22), a MANE-format summary of its genes, the TSS
table, a demo Sei checkpoint, features.h5 from the Sei stage and a model trained for two epochs; the
tests check what predict_genes and score_variants compute against independent computations.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from gta import GTAError
from gta.cli import main as cli_main
from gta.genome import open_fasta
from gta.options import ModelConfig, TrainConfig
from gta.provenance import sequence_sha256
from gta.predict import FeatureCache, SeiScorer, predict_genes, resolve_genes
from gta.pretrained import GTAModel, config_sha256
from gta.scoring import chunk_range, merge_variant_scores, score_variants
from gta.demo.sei import build_demo_sei, make_demo_projection
from gta.sei import KEPT, save_sei
from gta.sei import inference
from gta.sei.features import merge_features
from gta.testing import write_tiny_backbone
from gta.tss import MANE_COLUMNS, build_tss_table, read_mane, write_tss
from gta.train import load_features, train_gta
from gta.variants import ref_bin

N_BINS, BIN = 5, 4096
SPAN = N_BINS * BIN
LENGTHS = {"chr21": 200_000, "chr22": 160_000}
ACCESSION = {"chr21": "NC_000021.9", "chr22": "NC_000022.11"}
# (GeneID, symbol, chromosome, 0-based TSS, strand): overlapping windows, both strands, both chromosome ends
GENES = [
    (1001, "GA", "chr21", 30_000, "+"),
    (1002, "GB", "chr21", 36_500, "-"),
    (1003, "GC", "chr21", 41_000, "+"),
    (1004, "GD", "chr21", 70_000, "-"),
    (1005, "GE", "chr21", 95_000, "+"),
    (1006, "GF", "chr21", 99_000, "+"),
    (1007, "GG", "chr21", 130_000, "-"),
    (1008, "GH", "chr21", 160_000, "+"),
    (1009, "GQ", "chr21", 165_000, "-"),
    (1010, "GI", "chr21", 195_000, "-"),
    (2001, "GJ", "chr22", 5_000, "+"),
    (2002, "GK", "chr22", 40_000, "-"),
    (2003, "GL", "chr22", 44_000, "+"),
    (2004, "GM", "chr22", 80_000, "+"),
    (2005, "GN", "chr22", 110_000, "-"),
    (2006, "GR", "chr22", 120_000, "+"),
    (2007, "GO", "chr22", 140_000, "+"),
]
# in the MANE summary but not in the features file: half its window's bins are a features-file gene's
EXTRA = (3001, "GX", "chr21", 50_000, "+")


def window_start(tss: int) -> int:
    """Genome grid: the middle bin is the grid bin holding the TSS (written out, not gta.genome's)."""
    return (tss // BIN) * BIN - (N_BINS // 2) * BIN


def other(base: str) -> str:
    return next(b for b in "ACGT" if b != base)


# ----------------------------------------------------------------------------- fixture chain


def sei_stage(d: Path, tss: Path, fasta: Path, ckpt: Path, proj: Path) -> Path:
    """features.h5 in `d` from the Sei stage (float32, genome grid) on the genes of `tss`."""
    shard = inference.predict_sei(
        str(tss),
        str(fasta),
        str(ckpt),
        str(proj),
        str(d / "sei/1-of-1.h5"),
        N_BINS,
        BIN,
        "reference",
        "genome",
        device="cpu",
        dtype="float32",
        batch_size=8,
    )
    return merge_features(tss, [shard], d / "features.h5")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Every input and output the tests need, built once: a dict of paths and tables."""
    d = tmp_path_factory.mktemp("apply")
    rng = np.random.default_rng(5)
    seqs = {c: "".join(np.array(list("ACGT"))[rng.integers(0, 4, n)]) for c, n in LENGTHS.items()}
    fasta = d / "genome.fa"
    with open(fasta, "w") as fh:
        for c, s in seqs.items():
            fh.write(f">{c}\n" + "\n".join(s[i : i + 80] for i in range(0, len(s), 80)) + "\n")

    # a MANE summary of the genes (1-based chr_start/chr_end; the TSS is chr_start on +, chr_end on -)
    rows = []
    for gid, sym, chrom, tss, strand in GENES + [EXTRA]:
        start, end = (tss + 1, tss + 3000) if strand == "+" else (tss - 2999, tss + 1)
        rows.append(
            {
                "#NCBI_GeneID": f"GeneID:{gid}",
                "Ensembl_Gene": f"ENSG{gid:011d}.1",
                "HGNC_ID": f"HGNC:{gid}",
                "symbol": sym,
                "name": f"{sym} protein kinase",
                "RefSeq_nuc": "NM_1.1",
                "RefSeq_prot": "NP_1.1",
                "Ensembl_nuc": "ENST1.1",
                "Ensembl_prot": "ENSP1.1",
                "MANE_status": "MANE Select",
                "GRCh38_chr": ACCESSION[chrom],
                "chr_start": start,
                "chr_end": end,
                "chr_strand": strand,
            }
        )
    mane = d / "mane.summary.txt"
    pd.DataFrame(rows, columns=MANE_COLUMNS).to_csv(mane, sep="\t", index=False)
    every = build_tss_table(read_mane(mane), list(LENGTHS), list(LENGTHS))
    genes = every[every["gene_id"] != EXTRA[0]].reset_index(drop=True)
    assert len(genes) == len(GENES) and (genes["tss"].to_numpy() == [g[3] for g in sorted(GENES)]).all()
    tss = d / "tss.tsv"
    write_tss(genes, tss)

    # Sei: a demo checkpoint and projection, and the Sei stage on the genes
    ckpt, proj = d / "sei.pth", d / "projvec.npy"
    save_sei(build_demo_sei(1 / 64, 64, seed=3), ckpt)
    np.save(proj, make_demo_projection(64, seed=3))
    features = sei_stage(d, tss, fasta, ckpt, proj)

    # targets (train/val/test) in another order than the features file, and prompts in the backbone's words
    order = rng.permutation(len(genes))
    split = ["train"] * 11 + ["val"] * 3 + ["test"] * 3
    targets = d / "targets.tsv"
    pd.DataFrame(
        {
            "gene_id": genes["gene_id"].to_numpy()[order],
            "symbol": genes["symbol"].to_numpy()[order],
            "value": rng.normal(size=len(genes)),
            "split": split,
        }
    ).to_csv(targets, sep="\t", index=False)
    prompts = d / "prompts.jsonl"
    with open(prompts, "w") as fh:
        for i, g in enumerate(genes["gene_id"]):
            words = " ".join(["protein"] * (i % 4) + ["kinase"] * (i % 3))
            fh.write(json.dumps({"gene_id": int(g), "prompt": f"# Task : Gene Expression {words} # Data :"}) + "\n")

    # a tiny random Llama backbone with a word-level tokenizer, and two epochs of training
    backbone = write_tiny_backbone(
        d / "backbone",
        hidden=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    mcfg = ModelConfig(
        backbone=str(backbone), layers=1, prototypes_vocab=4, prototypes_classes=4, heads=2, d_k=4, top_k=3, context=64
    )
    tcfg = TrainConfig(epochs=2, batch_size=4, lr=3e-3, patience=5, threads=1, autocast="float32", device="cpu")
    model_dir, predictions = d / "model", d / "predictions.tsv"
    train_gta(
        str(features),
        str(targets),
        str(prompts),
        str(model_dir),
        str(predictions),
        N_BINS,
        mcfg,
        tcfg,
        tss=str(tss),
        resume_dir=str(d / "resume"),
    )
    return {
        "dir": d,
        "fasta": fasta,
        "seqs": seqs,
        "mane": mane,
        "genes": genes,
        "every": every,
        "tss": tss,
        "sei": {"checkpoint": str(ckpt), "projection": str(proj), "device": "cpu", "dtype": "float32"},
        "features": features,
        "targets": targets,
        "prompts": prompts,
        "model": model_dir,
        "predictions": pd.read_csv(predictions, sep="\t"),
    }


@pytest.fixture(scope="module")
def scorer(world):
    return SeiScorer.load(**world["sei"])


@pytest.fixture(scope="module")
def gta_model(world):
    return GTAModel.from_pretrained(world["model"], device="cpu")


@pytest.fixture(scope="module")
def stored(world):
    """{gene_id: (n_bins, 40) float32} of the features file."""
    with h5py.File(world["features"]) as f:
        return dict(zip(f["gene_id"][()].tolist(), f["features"][()].astype(np.float32), strict=False))


# ----------------------------------------------------------------------------- 1. Sei on single bins


def test_recomputed_ref_bins_equal_the_features_file(world, scorer, stored):
    fa = open_fasta(world["fasta"])
    genes = world["genes"].set_index("gene_id")
    picks = [1001, 1010, 2001, 2005]  # includes windows running past both chromosome ends
    seqs, want = [], []
    for g in picks:
        ws = window_start(int(genes.at[g, "tss"]))
        for b in range(N_BINS):
            seqs.append(ref_bin(fa, genes.at[g, "chrom"], ws + b * BIN, BIN))
            want.append(stored[g][b])
    assert seqs[0] == world["seqs"]["chr21"][window_start(30_000) : window_start(30_000) + BIN]
    assert seqs[N_BINS * 2].startswith("N" * BIN) and "N" not in seqs[-1]  # GJ's bin 0 lies before chr22
    got = scorer.scores(seqs)
    assert got.shape == (len(seqs), 40) and got.dtype == np.float32
    np.testing.assert_array_equal(got, np.stack(want))
    np.testing.assert_array_equal(got, got.astype(np.float16).astype(np.float32))  # float16-rounded
    assert np.abs(np.diff(got, axis=0)).max() > 0  # bins differ
    scorer.check_features(world["features"])  # made by this Sei: accepted
    other_strands = SeiScorer(scorer.model, scorer.unit, reverse_complement=False)
    with pytest.raises(
        GTAError, match="computed with Sei reverse_complement True, but the Sei given here has False"
    ) as e:
        other_strands.check_features(world["features"])
    assert e.value.inputs == ("sei.reverse_complement", "features")


# ----------------------------------------------------------------------------- 2. predict_genes


def test_feature_cache_holds_every_distinct_bin(world, stored):
    cache = FeatureCache(world["features"], world["tss"])
    starts = {
        (c, window_start(t) + b * BIN)
        for c, t in zip(world["genes"]["chrom"], world["genes"]["tss"], strict=False)
        for b in range(N_BINS)
    }
    assert len(cache.keys) == len(starts) < N_BINS * len(world["genes"])  # grid bins are shared
    chroms = ["chr21", "chr22"]
    ws = window_start(41_000)  # GC: its 5 bins are found, the bin after them (in no window) is not
    starts = ws + BIN * np.arange(N_BINS + 1)
    rows = cache.lookup(chroms, np.zeros(N_BINS + 1, int), starts, np.zeros(N_BINS + 1, bool))
    assert rows[-1] == -1 and (rows[:-1] >= 0).all()
    np.testing.assert_array_equal(cache.values[rows[:-1]], stored[1003])
    # the same start on chr22 is GL's bin 0; a chr22 start in no window is not found
    on22 = cache.lookup(chroms, np.ones(2, int), np.array([ws, 20_480]), np.zeros(2, bool))
    assert on22[1] == -1 and on22[0] != rows[0]
    np.testing.assert_array_equal(cache.values[on22[0]], stored[2003][0])


def test_predict_genes_with_and_without_cache_and_against_training(world, gta_model):
    d = world["dir"]
    common = dict(mane=world["mane"], prompts=world["prompts"], device="cpu")
    pred = world["predictions"]
    symbols = list(pred["symbol"])  # every gene, in the training run's order (same batches as its final pass)
    cached = predict_genes(
        world["model"],
        symbols,
        world["fasta"],
        d / "p_cache.tsv",
        features=world["features"],
        tss=world["tss"],
        **common,
    )
    fresh = predict_genes(world["model"], symbols, world["fasta"], d / "p_sei.tsv", sei=world["sei"], **common)
    assert list(cached["gene_id"]) == list(pred["gene_id"])
    np.testing.assert_array_equal(cached["predicted"].to_numpy(), fresh["predicted"].to_numpy())
    assert [f"{v:.6g}" for v in cached["predicted"]] == [f"{v:.6g}" for v in pred["predicted"]]
    written = pd.read_csv(d / "p_cache.tsv", sep="\t")
    assert list(written.columns) == ["gene_id", "symbol", "chrom", "tss", "strand", "predicted"]
    assert [f"{v:.6g}" for v in written["predicted"]] == [f"{v:.6g}" for v in pred["predicted"]]
    # a gene with half its bins in the file: cache plus Sei equals Sei alone
    few = ["GX", "GC", "2005"]  # symbols and a GeneID
    mixed = predict_genes(
        world["model"],
        few,
        world["fasta"],
        d / "m1.tsv",
        features=world["features"],
        tss=world["tss"],
        sei=world["sei"],
        **common,
    )
    alone = predict_genes(world["model"], few, world["fasta"], d / "m2.tsv", sei=world["sei"], **common)
    assert list(mixed["gene_id"]) == [3001, 1003, 2005]
    np.testing.assert_array_equal(mixed["predicted"].to_numpy(), alone["predicted"].to_numpy())
    with pytest.raises(GTAError, match="in no features file"):  # GX's new bins need Sei
        predict_genes(
            world["model"],
            ["GX"],
            world["fasta"],
            d / "m3.tsv",
            features=world["features"],
            tss=world["tss"],
            **common,
        )


def test_a_folder_from_before_align_temperature_predicts_as_before(world, tmp_path):
    """config.json without model.align_temperature (folders written before the key) reads as 1, the paper's scale."""
    old = shutil.copytree(world["model"], tmp_path / "model")
    config = json.loads((old / "config.json").read_text())
    assert config["model"].pop("align_temperature") == 1.0
    config["config_sha256"] = config_sha256(config)
    (old / "config.json").write_text(json.dumps(config))
    common = dict(mane=world["mane"], prompts=world["prompts"], device="cpu", features=world["features"])
    symbols = list(world["predictions"]["symbol"])[:6]
    before = predict_genes(old, symbols, world["fasta"], tmp_path / "old.tsv", tss=world["tss"], **common)
    now = predict_genes(world["model"], symbols, world["fasta"], tmp_path / "now.tsv", tss=world["tss"], **common)
    np.testing.assert_array_equal(before["predicted"].to_numpy(), now["predicted"].to_numpy())
    assert GTAModel.from_pretrained(old, device="cpu").module.align.temperature == 1.0


def test_predict_genes_from_a_bed_and_unknown_genes(world):
    d = world["dir"]
    common = dict(
        mane=world["mane"],
        prompts=world["prompts"],
        device="cpu",
        features=world["features"],
        tss=world["tss"],
        sei=world["sei"],
    )
    genes = world["genes"].iloc[[4, 0, 13, 6]]  # both strands, both chromosomes
    by_list = predict_genes(world["model"], list(genes["symbol"]), world["fasta"], d / "l.tsv", **common)
    bed = d / "tss.bed"
    lines = ["track name=tss"] + [
        f"{c}\t{t}\t{t + 1}\t{s}\t0\t{st}"
        for c, t, s, st in zip(genes["chrom"], genes["tss"], genes["symbol"], genes["strand"], strict=False)
    ]
    bed.write_text("\n".join(lines) + "\n")
    by_bed = predict_genes(world["model"], str(bed), world["fasta"], d / "b.tsv", **common)
    cols = ["gene_id", "symbol", "chrom", "tss", "strand"]
    assert by_bed[cols].equals(by_list[cols])
    np.testing.assert_array_equal(by_bed["predicted"].to_numpy(), by_list["predicted"].to_numpy())
    # a BED name that is no MANE symbol: a negative id, a prompt from its name, the same windows
    bed.write_text(f"chr22\t{40_000}\t{40_001}\tnovel1\t0\t-\n")
    novel = resolve_genes(str(bed), world["mane"], world["fasta"])
    assert novel[cols].values.tolist() == [[-1, "novel1", "chr22", 40_000, "-"]]
    bed.write_text("track name=none\n# nothing\n")
    with pytest.raises(GTAError, match="has no rows") as e:
        resolve_genes(str(bed), world["mane"], world["fasta"])
    assert e.value.input == "genes"
    bed.write_text("chr22\t40000\t40001\tnovel1\nchr22\t40000\t40001\tnovel2\t0\t-\n")
    with pytest.raises(GTAError, match="same columns"):
        resolve_genes(str(bed), world["mane"], world["fasta"])
    # the MANE summary itself: all its genes
    everything = resolve_genes(str(world["mane"]), world["mane"], world["fasta"])
    assert sorted(everything["gene_id"]) == sorted([g[0] for g in GENES] + [EXTRA[0]])
    with pytest.raises(GTAError, match="NOPE1") as e:
        predict_genes(world["model"], ["GA", "NOPE1"], world["fasta"], d / "x.tsv", **common)
    assert e.value.input == "genes"
    assert not (d / "x.tsv").exists()


# ----------------------------------------------------------------------------- 3. score_variants


@pytest.fixture(scope="module")
def vcf(world):
    """Records (CHROM, POS, ID, REF, ALT) of every kind score_variants meets; REF from the genome unless noted."""
    s21, s22 = world["seqs"]["chr21"], world["seqs"]["chr22"]
    records = [
        ("chr21", 34_000, "snv", s21[33_999], other(s21[33_999])),  # windows of GA, GB, GC
        ("chr21", 96_000, "ins", s21[95_999], s21[95_999] + "GTA"),  # GE, GF
        ("chr21", 98_303, "del", s21[98_302:98_307], s21[98_302]),  # across a bin boundary
        ("chr22", 42_000, "multi", s22[41_999], ",".join(b for b in "ACGT" if b != s22[41_999])[:3]),
        ("chr21", 70_000, "sv", s21[69_999], "<DEL>"),  # symbolic: skipped
        ("chr21", 145_000, "far", s21[144_999], other(s21[144_999])),  # in no window
        ("chr21", 131_000, "bad", other(s21[130_999]), s21[130_999]),  # REF mismatch
        ("21", 162_000, "alias", s21[161_999], other(s21[161_999])),  # Ensembl naming
        ("chr22", 5_500, "same", s22[5_499], s22[5_499]),  # ALT == REF
    ]
    path = world["dir"] / "variants.vcf"
    header = ["##fileformat=VCFv4.2"] + [f"##contig=<ID={c},length={n}>" for c, n in LENGTHS.items()]
    header += ["##contig=<ID=21,length=200000>", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    path.write_text("\n".join(header + ["\t".join(map(str, r)) + "\t.\t.\t." for r in records]) + "\n")
    return path, records


def expected_pairs(world, records, skip_mismatch: bool) -> set:
    """(id, alt, gene_id, first bin, bins touched) for every variant and gene whose window its REF span touches."""
    out = set()
    for chrom, pos, vid, ref, alts in records:
        chrom = "chr21" if chrom == "21" else chrom
        for alt in alts.split(","):
            if alt.startswith("<") or (skip_mismatch and vid == "bad"):
                continue
            s, e = pos - 1, pos - 1 + len(ref)
            for g in world["genes"].itertuples():
                ws = window_start(g.tss)
                if g.chrom == chrom and s < ws + SPAN and e > ws:
                    first, last = max((s - ws) // BIN, 0), min((e - 1 - ws) // BIN, N_BINS - 1)
                    out.add((vid, alt, g.gene_id, first, last - first + 1))
    return out


def score(world, vcf_path, out, use: dict | None = None, **kw):
    """score_variants with the world's model, features and Sei, or those of `use`."""
    use = use or world
    counts = out.with_name(out.stem + ".counts.tsv")
    table = score_variants(
        use["model"],
        vcf_path,
        use["features"],
        world["tss"],
        world["fasta"],
        use["sei"],
        out,
        prompts=world["prompts"],
        device="cpu",
        out_counts=counts,
        **kw,
    )
    return table, dict(pd.read_csv(counts, sep="\t").values.tolist())


@pytest.fixture(scope="module")
def flagged(world, vcf):
    return score(world, vcf[0], world["dir"] / "scores_flag.parquet", ref_check="flag")


def test_score_variants_counts_and_ref_check(world, vcf, flagged):
    table, counts = flagged
    assert {
        k: counts[k] for k in ("records", "multiallelic", "symbolic", "ref_mismatch", "outside_windows", "variants")
    } == {"records": 9, "multiallelic": 1, "symbolic": 1, "ref_mismatch": 1, "outside_windows": 1, "variants": 9}
    assert counts["chunk_variants"] == 9 and counts["scored_pairs"] == len(table)
    assert table.loc[table["id"] == "bad", "ref_mismatch"].tolist() == [True]
    assert not table.loc[table["id"] != "bad", "ref_mismatch"].any()
    with pytest.raises(GTAError, match=str(vcf[0])):
        score(world, vcf[0], world["dir"] / "scores_stop.tsv")
    assert not (world["dir"] / "scores_stop.tsv").exists()
    skipped, counts = score(world, vcf[0], world["dir"] / "scores_skip.tsv", ref_check="skip")
    assert "bad" not in set(skipped["id"]) and counts["ref_mismatch"] == 1 and counts["variants"] == 8
    got = {(r.id, r.alt, r.gene_id, r.bin + N_BINS // 2, r.bins_touched) for r in skipped.itertuples()}
    assert got == expected_pairs(world, vcf[1], skip_mismatch=True)


def test_one_row_per_variant_and_touched_window(world, vcf, flagged):
    table, _ = flagged
    assert len(pd.read_parquet(world["dir"] / "scores_flag.parquet")) == len(table)
    got = [(r.id, r.alt, r.gene_id, r.bin + N_BINS // 2, r.bins_touched) for r in table.itertuples()]
    assert len(got) == len(set(got)) == 15
    assert set(got) == expected_pairs(world, vcf[1], skip_mismatch=False)
    alias = table[table["id"] == "alias"]
    assert set(alias["chrom"]) == {"chr21"} and set(alias["gene_id"]) == {1008, 1009}
    assert (table.loc[table["id"] == "del", "bins_touched"] == 2).all()
    assert set(table.loc[table["id"] == "multi", "alt"]) == set(vcf[1][3][4].split(","))
    tss = world["genes"].set_index("gene_id")["tss"]
    np.testing.assert_array_equal(table["distance"], table["pos"] - 1 - tss[table["gene_id"]].to_numpy())


def test_predictions_and_deltas(world, vcf, flagged, gta_model):
    table, _ = flagged
    np.testing.assert_array_equal(table["alt_prediction"], table["ref_prediction"] + table["delta"])
    same = table[table["id"] == "same"]
    assert len(same) == 1 and same["delta"].iloc[0] == 0.0
    assert same["alt_prediction"].iloc[0] == same["ref_prediction"].iloc[0]
    # (a bin the selector leaves out of its top_k may change nothing, so only some deltas must differ)
    assert (table.loc[table["id"] != "same", "delta"] != 0).any()
    # REF: the model on the features file's features of each gene
    gene_id, _, x = load_features(world["features"], N_BINS)
    prompts = read_prompts(world)
    strand = world["genes"].set_index("gene_id")["strand"]
    ref_pred = gta_model.predict(x, [prompts[g] for g in gene_id], strand=strand[gene_id].to_numpy())
    ref = dict(zip(gene_id.tolist(), ref_pred, strict=False))
    # equal up to float32 rounding: prompts padded to another batch's longest one move the last bits
    np.testing.assert_allclose(table["ref_prediction"], [ref[g] for g in table["gene_id"]], rtol=1e-6, atol=0)
    for _, values in table.groupby("gene_id")["ref_prediction"]:
        assert values.nunique() == 1  # one REF prediction per gene


def read_prompts(world) -> dict[int, str]:
    lines = Path(world["prompts"]).read_text().splitlines()
    return {int(r["gene_id"]): r["prompt"] for r in map(json.loads, lines)}


def sei_by_hand(sei: dict, seqs: list[str]) -> np.ndarray:
    """(len(seqs), kept classes) float64: Sei in float32 on both strands, one-hot and reverse complement
    written out here, projected onto the 40 unit-length class vectors."""
    from gta.sei.checkpoint import load_sei

    onehot = np.stack([np.array([[c == b for c in s] for b in "ACGT"], np.float32) for s in seqs])
    x = np.concatenate([onehot, onehot[:, ::-1, ::-1]])  # reverse complement: A<->T, C<->G, reversed
    with torch.no_grad():
        y = load_sei(sei["checkpoint"])(torch.from_numpy(np.ascontiguousarray(x))).double().numpy()
    y = (y[: len(seqs)] + y[len(seqs) :]) / 2
    proj = np.load(sei["projection"]).astype(np.float64)[:40]
    return (y @ (proj / np.linalg.norm(proj, axis=1, keepdims=True)).T)[:, KEPT]


@pytest.fixture(scope="module")
def quiet(world):
    """The fixtures' demo Sei made insensitive (its last layer's weights x 0.02) with a projection of
    positive weights, so that class scores are about 3 (a float16 step of 0.002) and an SNV moves them
    by less than that; its own features file, and the trained model with its feature statistics taken
    from those features (so that it reads them as it reads the ones it was trained on)."""

    from safetensors.torch import load_file, save_file

    from gta.sei.checkpoint import load_sei

    d = world["dir"] / "quiet"
    d.mkdir()
    sei = load_sei(world["sei"]["checkpoint"])
    sei.classifier[2].weight.data *= 0.02
    ckpt, proj = d / "sei.pth", d / "projvec.npy"
    save_sei(sei, ckpt)
    np.save(proj, np.abs(np.load(world["sei"]["projection"])))
    features = sei_stage(d, world["tss"], world["fasta"], ckpt, proj)
    gene_id, _, x = load_features(features, N_BINS)
    model = shutil.copytree(world["model"], d / "model")
    weights = load_file(model / "weights.safetensors")
    flat = torch.from_numpy(x.reshape(-1, x.shape[-1]))
    weights["feature_mean"], weights["feature_std"] = flat.mean(0), flat.std(0)
    save_file(weights, model / "weights.safetensors")
    config = json.loads((model / "config.json").read_text())  # the changed weights' hash, as training writes it
    config["weights_sha256"] = hashlib.sha256((model / "weights.safetensors").read_bytes()).hexdigest()
    config["config_sha256"] = config_sha256(config)
    (model / "config.json").write_text(json.dumps(config))
    return {
        "sei": dict(world["sei"], checkpoint=str(ckpt), projection=str(proj)),
        "features": features,
        "model": model,
        "windows": dict(zip(gene_id.tolist(), x, strict=False)),
    }


@pytest.fixture(scope="module")
def small_snv(world, quiet):
    """An SNV in a bin of gene GC's window whose effect on every class score (quiet Sei) is below one
    float16 step of that score, so float16 features move each class by 0 or by one whole step, and whose
    effect on the model's prediction is still well above float32's resolution (1e-6 against steps of
    ~3e-8). Returns (0-based position, REF, ALT, window bin, (2, kept classes) REF and ALT scores by hand)."""
    s21 = world["seqs"]["chr21"]
    model = GTAModel.from_pretrained(quiet["model"], device="cpu")
    prompt, strand = read_prompts(world)[1003], world["genes"].set_index("gene_id").at[1003, "strand"]
    for b in sorted(range(N_BINS), key=lambda b: abs(b - N_BINS // 2)):  # the TSS bin first
        start = window_start(41_000) + b * BIN
        ref = s21[start : start + BIN]
        for off in range(100, BIN, 97):
            alt = ref[:off] + other(ref[off]) + ref[off + 1 :]
            scores = sei_by_hand(quiet["sei"], [ref, alt])
            step = np.spacing(np.abs(scores[0]).astype(np.float16)).astype(np.float64)
            if not ((scores[0] != scores[1]).any() and (np.abs(scores[1] - scores[0]) < step).all()):
                continue
            windows = np.stack([quiet["windows"][1003]] * 2)
            windows[:, b] = scores
            y = model.predict(windows, [prompt] * 2, strand=[strand] * 2, autocast="float32")
            if abs(y[1] - y[0]) > 1e-6:
                return start + off, ref[off], alt[off], b, scores
    raise AssertionError("no SNV below the float16 step in GC's window that the model responds to")


def test_delta_equals_the_model_on_hand_built_windows(world, quiet, small_snv):
    """delta = model(ALT window) - model(REF window), both windows built here (the FASTA string edited,
    Sei by hand, the stored features elsewhere), the model in float32; the SNV's effect is below one
    float16 step of every class score, so float16 features would move each class by 0 or a whole step."""
    start0, r, a, b, scores = small_snv
    path = world["dir"] / "small.vcf"
    head = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    path.write_text(head + f"chr21\t{start0 + 1}\tsmall\t{r}\t{a}\t.\t.\t.\n")
    table, _ = score(world, path, world["dir"] / "small.parquet", use=quiet)
    row = table.set_index("gene_id").loc[1003]
    assert row["bin"] == b - N_BINS // 2 and row["bins_touched"] == 1  # GC is on the plus strand
    windows = np.stack([quiet["windows"][1003]] * 2)
    windows[:, b] = scores
    model = GTAModel.from_pretrained(quiet["model"], device="cpu")
    strand = [world["genes"].set_index("gene_id").at[1003, "strand"]] * 2
    ref, alt = model.predict(windows, [read_prompts(world)[1003]] * 2, strand=strand, autocast="float32")
    assert abs(alt - ref) > 1e-6  # the model's float32 output near 0.3 has steps of 3e-8 (x the target's sd)
    assert row["delta"] == pytest.approx(alt - ref, rel=1e-3, abs=0)
    # through float16 features (the stored REF bin, the ALT bin rounded as the features file stores bins)
    windows[:, b] = scores.astype(np.float16)
    ref16, alt16 = model.predict(windows, [read_prompts(world)[1003]] * 2, strand=strand, autocast="float32")
    assert abs((alt16 - ref16) - (alt - ref)) > 0.5 * abs(alt - ref)  # each class 0 or a whole step: far off


def test_a_delta_does_not_depend_on_the_other_variants(world, vcf):
    """The SNV's deltas scored alone, among the fixture's variants and 40 more SNVs, whole or in chunks of
    that VCF: bit-identical; each gene has one REF prediction in the merged chunks."""
    d = world["dir"]
    rng = np.random.default_rng(11)
    s21 = world["seqs"]["chr21"]
    more = [("chr21", int(p) + 1, f"r{p}", s21[p], other(s21[p])) for p in sorted(rng.integers(20_000, 199_000, 40))]
    head = [line for line in vcf[0].read_text().splitlines() if line.startswith("#")]

    def write(name, records):
        path = d / name
        path.write_text("\n".join(head + ["\t".join(map(str, r)) + "\t.\t.\t." for r in records]) + "\n")
        return path

    alone, _ = score(world, write("alone.vcf", vcf[1][:1]), d / "alone.parquet")
    crowd = write("crowd.vcf", more[:20] + vcf[1] + more[20:])
    whole, _ = score(world, crowd, d / "crowd.parquet", ref_check="flag")
    parts = [d / f"crowd{i}.parquet" for i in (1, 2, 3)]
    tables = [score(world, crowd, p, ref_check="flag", chunk=f"{i}-of-3")[0] for i, p in enumerate(parts, 1)]
    merge_variant_scores(
        parts, [p.with_name(p.stem + ".counts.tsv") for p in parts], d / "crowd_m.parquet", d / "m.tsv"
    )
    merged = pd.read_parquet(d / "crowd_m.parquet")
    for table in (whole, merged):
        snv = table[table["id"] == "snv"].reset_index(drop=True)
        assert list(snv["gene_id"]) == list(alone["gene_id"]) == [1001, 1002, 1003]
        np.testing.assert_array_equal(snv["delta"], alone["delta"])
        assert (snv["delta"] != 0).any()
    pd.testing.assert_frame_equal(merged, whole)
    chunks_of = pd.concat([t.assign(chunk=i) for i, t in enumerate(tables)]).groupby("gene_id")["chunk"].nunique()
    assert (chunks_of > 1).sum() >= 5  # genes whose variants fall in several chunks
    assert (merged.groupby("gene_id")["ref_prediction"].nunique() == 1).all()


# ----------------------------------------------------------------------------- 4. chunks


def test_chunks_merge_to_the_whole(world, vcf):
    d = world["dir"]
    whole, whole_counts = score(world, vcf[0], d / "whole.tsv", ref_check="flag")
    parts = [d / f"part{i}.parquet" for i in (1, 2)]
    for i, p in enumerate(parts, 1):
        score(world, vcf[0], p, ref_check="flag", chunk=f"{i}-of-2")
    merge_variant_scores(
        parts, [p.with_name(p.stem + ".counts.tsv") for p in parts], d / "merged.tsv", d / "merged.counts.tsv"
    )
    merged, written = pd.read_csv(d / "merged.tsv", sep="\t"), pd.read_csv(d / "whole.tsv", sep="\t")
    pd.testing.assert_frame_equal(merged, written)
    assert len(merged) == len(whole) == 15
    assert dict(pd.read_csv(d / "merged.counts.tsv", sep="\t").values.tolist()) == whole_counts
    # the chunks split the variants (ALT alleles, so the multi-allelic record's two fall in different chunks)
    first, second = ({(i, a) for i, a in zip(t["id"], t["alt"], strict=False)} for t in map(pd.read_parquet, parts))
    assert {i for i, _ in first} == {"snv", "ins", "del", "multi"} and first.isdisjoint(second)
    assert len({a for i, a in first | second if i == "multi"}) == 2


def test_more_chunks_than_variants_count_the_vcf_once(world, vcf):
    """With one variant and two chunks the first chunk is empty; the VCF's counts still add up once."""
    d = world["dir"]
    path = d / "one.vcf"
    text = vcf[0].read_text().splitlines()
    path.write_text("\n".join([line for line in text if line.startswith("#")] + [text[-9]]) + "\n")  # the SNV
    assert chunk_range(1, "1-of-2") == (0, 0) and chunk_range(1, "2-of-2") == (0, 1)
    _, whole = score(world, path, d / "one.tsv")
    parts = [d / f"one{i}.tsv" for i in (1, 2)]
    for i, p in enumerate(parts, 1):
        score(world, path, p, chunk=f"{i}-of-2")
    merge_variant_scores(
        parts, [p.with_name(p.stem + ".counts.tsv") for p in parts], d / "onem.tsv", d / "onem.counts.tsv"
    )
    assert dict(pd.read_csv(d / "onem.counts.tsv", sep="\t").values.tolist()) == whole
    assert whole["records"] == 1 and whole["scored_pairs"] == 3
    pd.testing.assert_frame_equal(pd.read_csv(d / "onem.tsv", sep="\t"), pd.read_csv(d / "one.tsv", sep="\t"))


# ----------------------------------------------------------------------------- 5. provenance


def write_genome(path: Path, seqs: dict[str, str], width: int = 80) -> Path:
    with open(path, "w") as fh:
        for c, s in seqs.items():
            fh.write(f">{c}\n" + "\n".join(s[i : i + width] for i in range(0, len(s), width)) + "\n")
    return path


def sha256_of(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_recorded_provenance_equals_an_independent_computation(world):
    """features.h5 and its shard record each chromosome's sha256 (of the sequence written out here), the
    Sei files' sha256 and every gene's coordinates; the fingerprint ignores case and line width."""
    want = {c: hashlib.sha256(s.encode()).hexdigest() for c, s in world["seqs"].items()}
    genes = world["genes"].sort_values("gene_id").reset_index(drop=True)
    for path in (world["features"], world["dir"] / "sei/1-of-1.h5"):
        with h5py.File(path) as f:
            assert json.loads(f.attrs["fasta_sha256"]) == want
            assert f.attrs["sei_checkpoint_sha256"] == sha256_of(world["sei"]["checkpoint"])
            assert f.attrs["sei_projection_sha256"] == sha256_of(world["sei"]["projection"])
            got = pd.DataFrame(
                {
                    "gene_id": f["gene_id"][()],
                    "chrom": f["chrom"].asstr()[()],
                    "tss": f["tss"][()],
                    "strand": f["strand"].asstr()[()],
                }
            )
        got = got.sort_values("gene_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, genes[got.columns], check_dtype=False)
    soft = {c: s[:1000].lower() + s[1000:] for c, s in world["seqs"].items()}
    assert sequence_sha256(write_genome(world["dir"] / "soft.fa", soft, 61), ["chr22"]) == {"chr22": want["chr22"]}


@pytest.fixture(scope="module")
def other_fasta(world):
    """The genome with GC's whole window (chr21) replaced by other bases; chr22 unchanged."""
    seqs = dict(world["seqs"])
    ws = window_start(41_000)
    new = "".join(np.random.default_rng(9).choice(list("ACGT"), SPAN))
    seqs["chr21"] = seqs["chr21"][:ws] + new + seqs["chr21"][ws + SPAN :]
    return write_genome(world["dir"] / "other.fa", seqs)


@pytest.fixture(scope="module")
def other_sei(world):
    """A demo Sei of the fixtures' width and targets, with other weights (seed 7)."""
    ckpt = world["dir"] / "sei_seed7.pth"
    save_sei(build_demo_sei(1 / 64, 64, seed=7), ckpt)
    return dict(world["sei"], checkpoint=str(ckpt))


def test_predict_genes_does_not_reuse_bins_of_another_fasta(world, other_fasta, caplog):
    """B4: with a FASTA that differs in GC's window the features file's chr21 bins are not reused: the
    result is that of a run without the features file; its chr22 bins (GJ's) still are."""
    d = world["dir"]
    common = dict(mane=world["mane"], prompts=world["prompts"], device="cpu")
    cache = dict(features=world["features"], tss=world["tss"])
    few = ["GC", "GJ"]
    with caplog.at_level(logging.INFO, logger="gta"):
        reused = predict_genes(world["model"], few, other_fasta, d / "o1.tsv", sei=world["sei"], **cache, **common)
    fresh = predict_genes(world["model"], few, other_fasta, d / "o2.tsv", sei=world["sei"], **common)
    old = predict_genes(world["model"], few, world["fasta"], d / "o3.tsv", **cache, **common)
    assert old["predicted"].iloc[0] != fresh["predicted"].iloc[0]  # the change reaches GC's prediction
    assert old["predicted"].iloc[1] == fresh["predicted"].iloc[1]  # GJ (chr22) is untouched
    np.testing.assert_array_equal(reused["predicted"].to_numpy(), fresh["predicted"].to_numpy())
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert f"computed on another sequence than the FASTA {other_fasta} (chr21:" in text
    assert f"10 distinct bins, 5 from {world['features']}" in text  # GJ's chr22 bins
    with pytest.raises(GTAError, match="give the Sei checkpoint") as e:  # no Sei to recompute them: stop
        predict_genes(world["model"], few, other_fasta, d / "o4.tsv", **cache, **common)
    assert str(world["features"]) in str(e.value) and str(other_fasta) in str(e.value)
    assert not (d / "o4.tsv").exists()


def test_another_sei_is_never_mixed_with_the_features(world, other_sei, vcf):
    """B5: a Sei of the same width with other weights: predict-genes (GX needs new bins) and score-variants
    stop, naming both checkpoints' sha256 and both files, and write nothing."""
    d = world["dir"]
    common = dict(mane=world["mane"], prompts=world["prompts"], device="cpu")
    want = [sha256_of(world["sei"]["checkpoint"]), sha256_of(other_sei["checkpoint"]), str(world["features"])]
    with pytest.raises(GTAError, match="sei_checkpoint_sha256") as e:
        predict_genes(
            world["model"], ["GX"], world["fasta"], d / "s1.tsv", features=world["features"], tss=world["tss"],
            sei=other_sei, **common,
        )  # fmt: skip
    assert all(w in str(e.value) for w in want + [other_sei["checkpoint"]]), str(e.value)
    assert e.value.inputs == ("sei.checkpoint", "features") and not (d / "s1.tsv").exists()
    with pytest.raises(GTAError, match="sei_checkpoint_sha256") as e:
        score(world, vcf[0], d / "s2.tsv", use=dict(world, sei=other_sei), ref_check="flag")
    assert all(w in str(e.value) for w in want), str(e.value)
    assert not (d / "s2.tsv").exists()


def test_a_tss_table_that_moves_a_window_is_refused(world, vcf):
    """B6: score-variants (and explain) with GC's TSS one bin off its features' window: an error naming GC;
    a TSS moved within its genome-grid bin keeps the window and is accepted."""
    from gta.explain import explain_genes

    d = world["dir"]
    genes = world["genes"].copy()
    gc = genes["symbol"] == "GC"
    genes.loc[gc, "tss"] += BIN
    write_tss(genes, d / "shifted.tsv")
    args = (world["model"], vcf[0], world["features"], d / "shifted.tsv", world["fasta"], world["sei"], d / "t.tsv")
    with pytest.raises(GTAError, match=r"GC \(GeneID 1003\): TSS chr21:45,096 \(\+\)") as e:
        score_variants(*args, prompts=world["prompts"], device="cpu", ref_check="flag")
    assert e.value.inputs == ("tss", "features") and str(world["features"]) in str(e.value)
    assert not (d / "t.tsv").exists()
    with pytest.raises(GTAError, match=r"GC \(GeneID 1003\)"):
        explain_genes(world["model"], world["features"], world["prompts"], ["GC"], d / "ex", tss=d / "shifted.tsv")
    genes.loc[gc, "tss"] = 41_001  # same grid bin as 41,000
    write_tss(genes, d / "shifted.tsv")
    table = score_variants(*args, prompts=world["prompts"], device="cpu", ref_check="flag")
    assert len(table)


@pytest.fixture(scope="module")
def bare_features(world):
    """The features file without its provenance, as one made elsewhere may be."""

    path = shutil.copy(world["features"], world["dir"] / "bare.h5")
    with h5py.File(path, "r+") as f:
        for key in ("fasta_sha256", "sei_checkpoint_sha256", "sei_projection_sha256"):
            del f.attrs[key]
        for key in ("chrom", "tss", "strand"):
            del f[key]
    return Path(path)


def test_features_without_provenance(world, bare_features, caplog):
    """Accepted where its bins are used alone (training's reader, with a note); predict-genes computes every
    bin with Sei instead of reusing it (the same numbers as without the file)."""
    from gta.formats import check_features

    with caplog.at_level(logging.INFO, logger="gta"):
        check_features(bare_features)
    assert any("records no fasta_sha256" in r.getMessage() for r in caplog.records)
    d = world["dir"]
    common = dict(mane=world["mane"], prompts=world["prompts"], device="cpu", sei=world["sei"])
    few = ["GC", "GJ"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gta"):
        got = predict_genes(
            world["model"], few, world["fasta"], d / "n1.tsv", features=bare_features, tss=world["tss"], **common
        )
    want = predict_genes(world["model"], few, world["fasta"], d / "n2.tsv", **common)
    np.testing.assert_array_equal(got["predicted"].to_numpy(), want["predicted"].to_numpy())
    assert any(f"10 distinct bins, 0 from {bare_features}" in r.getMessage() for r in caplog.records)


def cli_score(world, vcf, out: Path, **change) -> list[str]:
    """`gta score-variants` arguments on the world's inputs, some replaced."""
    given = dict(
        model=world["model"], vcf=vcf[0], features=world["features"], tss=world["tss"], fasta=world["fasta"],
        checkpoint=world["sei"]["checkpoint"], projection=world["sei"]["projection"], prompts=world["prompts"],
    ) | change  # fmt: skip
    args = ["score-variants", "--out", str(out), "--ref-check", "flag", "--device", "cpu", "--sei-device", "cpu"]
    args += ["--sei-dtype", "float32"]
    return args + [a for k, v in given.items() for a in (f"--{k}", str(v))]


def cli_predict(world, out: Path, **change) -> list[str]:
    given = dict(
        model=world["model"], genes="GX", fasta=world["fasta"], features=world["features"], tss=world["tss"],
        mane=world["mane"], prompts=world["prompts"], checkpoint=world["sei"]["checkpoint"],
        projection=world["sei"]["projection"],
    ) | change  # fmt: skip
    args = ["predict-genes", "--out", str(out), "--device", "cpu", "--sei-device", "cpu", "--sei-dtype", "float32"]
    return args + [a for k, v in given.items() for a in (f"--{k}", str(v))]


# name: (arguments given the world, the vcf, the other FASTA and Sei, the output; words the one error must hold)
PROVENANCE_CASES = {
    "score-variants on another FASTA": (
        lambda w, v, fa, sei, out: cli_score(w, v, out, fasta=fa),
        ["{features}", "{other_fasta}", "chr21", "(--fasta, --features)"],
    ),
    "score-variants with another Sei": (
        lambda w, v, fa, sei, out: cli_score(w, v, out, checkpoint=sei["checkpoint"]),
        ["{features}", "{other_sei}", "sei_checkpoint_sha256", "(--checkpoint, --features)"],
    ),
    "score-variants with a TSS a bin off": (
        lambda w, v, fa, sei, out: cli_score(w, v, out, tss=w["dir"] / "shifted.tsv"),
        ["{features}", "GC (GeneID 1003)", "(--tss, --features)"],
    ),
    "score-variants on features without provenance": (
        lambda w, v, fa, sei, out: cli_score(w, v, out, features=w["dir"] / "bare.h5"),
        ["{dir}/bare.h5", "records no fasta_sha256", "predict_sei", "(--features)"],
    ),
    "predict-genes with another Sei": (
        lambda w, v, fa, sei, out: cli_predict(w, out, checkpoint=sei["checkpoint"]),
        ["{features}", "{other_sei}", "never mixed", "(--checkpoint, --features)"],
    ),
}


@pytest.mark.parametrize("case", list(PROVENANCE_CASES))
def test_provenance_mismatch_cli(case, world, vcf, other_fasta, other_sei, bare_features, tmp_path, caplog):
    genes = world["genes"].copy()
    genes.loc[genes["symbol"] == "GC", "tss"] += BIN
    write_tss(genes, world["dir"] / "shifted.tsv")
    make, words = PROVENANCE_CASES[case]
    out = tmp_path / "out.tsv"
    with caplog.at_level(logging.ERROR, logger="gta"):
        assert cli_main(make(world, vcf, other_fasta, other_sei, out)) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    names = dict(
        features=world["features"], other_fasta=other_fasta, other_sei=other_sei["checkpoint"], dir=world["dir"]
    )
    for word in words:
        assert word.format(**names) in errors[0], (word, errors[0])
    assert not out.exists() and not list(tmp_path.iterdir())
