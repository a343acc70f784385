"""Bad input, one table: each case stops with one message naming the input and the fix, and leaves
nothing under the output's final name. Then what no config value may do (run a command), where
config values come from (a --configfile replaces the demo), rules without the venv on PATH, and the
Sei shard bookkeeping (mostly-N windows, stale shards, a second writer)."""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gta import GTAError, tss as T
from gta.cli import main as cli_main
from gta.demo.sei import build_demo_sei, make_demo_projection
from gta.sei.features import merge_features, write_features
from gta.sei.inference import WindowSpec, partial_path, run_shard

from conftest import run_snakemake
from test_train import backbone_dir, content_sha256, data_files, perturb_block0, run, sha256  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[1]
RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))
TINY = REPO / "tests" / "configs" / "tiny.yaml"
# a value that runs three commands if a shell ever sees it unquoted
PAYLOAD = "v$(touch m1)`touch m2`;touch m3 &x"
MARKERS = ("m1", "m2", "m3")


# ----------------------------------------------------------------------------- small inputs


def chr22_genes(n: int = 8) -> pd.DataFrame:
    """The first n MANE Select genes of chr22 as tss.tsv rows ('chr22' naming)."""
    genes = T.mane_select(T.read_mane(T.packaged_mane_path()))
    genes = genes[genes["chrom"] == "22"].head(n).copy()
    genes["chrom"] = "chr22"
    return genes[T.TSS_COLUMNS].reset_index(drop=True)


def write_fasta(path: Path, seqs: dict[str, str]) -> Path:
    path.write_text(
        "".join(
            f">{name}\n" + "\n".join(s[i : i + 60] for i in range(0, len(s), 60)) + "\n" for name, s in seqs.items()
        )
    )
    return path


def random_seq(n: int, seed: int = 0) -> str:
    return "".join(np.array(list("ACGT"))[np.random.default_rng(seed).integers(0, 4, n)])


def index_only_fasta(path: Path) -> Path:
    """A FASTA whose .fai claims the GRCh38 chr22 length: enough for `gta mane-tss`, which reads only the index."""
    path.write_text(">chr22\nACGT\n")
    Path(f"{path}.fai").write_text("chr22\t50818468\t7\t4\t5\n")
    return path


def targets_inputs(tmp: Path, values: dict) -> list[str]:
    """tss.tsv, features.h5 for 8 chr22 genes and a long expression table {identifier: value text}."""
    genes = chr22_genes()
    genes.to_csv(tmp / "tss.tsv", sep="\t", index=False)
    rng = np.random.default_rng(0)
    write_features(
        tmp / "features.h5",
        rng.standard_normal((len(genes), 3, 40)).astype(np.float16),
        genes["gene_id"].to_numpy(),
        list(genes["symbol"]),
    )
    (tmp / "expr.tsv").write_text("gene\tvalue\n" + "".join(f"{g}\t{v}\n" for g, v in values.items()))
    return [
        "make-targets",
        "--tss",
        str(tmp / "tss.tsv"),
        "--features",
        str(tmp / "features.h5"),
        "--table",
        str(tmp / "expr.tsv"),
        "--out",
        str(tmp / "out.tsv"),
    ]


def gene_symbols(n: int = 8) -> list[str]:
    return list(chr22_genes(n)["symbol"])


# ----------------------------------------------------------------------------- the cases


def short_fasta_tss(tmp):
    write_fasta(tmp / "short.fa", {"chr22": random_seq(10_000)})
    return [
        "mane-tss",
        "--mane",
        "packaged",
        "--fasta",
        str(tmp / "short.fa"),
        "--chromosomes",
        "chr22",
        "--max-genes",
        "5",
        "--out",
        str(tmp / "out.tsv"),
    ]


def short_fasta_windows(tmp):
    chr22_genes(3).to_csv(tmp / "tss.tsv", sep="\t", index=False)
    write_fasta(tmp / "short.fa", {"chr22": random_seq(10_000)})
    return [
        "extract-windows",
        "--tss",
        str(tmp / "tss.tsv"),
        "--fasta",
        str(tmp / "short.fa"),
        "--n-bins",
        "3",
        "--out",
        str(tmp / "out.tsv"),
    ]


def gzip_fasta(tmp):
    with gzip.open(tmp / "genome.fa.gz", "wt") as fh:
        fh.write(">chr22\n" + random_seq(1000) + "\n")
    return [
        "mane-tss",
        "--mane",
        "packaged",
        "--fasta",
        str(tmp / "genome.fa.gz"),
        "--chromosomes",
        "chr22",
        "--out",
        str(tmp / "out.tsv"),
    ]


def bad_mane_coordinate(tmp):
    mane = pd.read_csv(T.packaged_mane_path(), sep="\t", dtype=str).head(20)
    mane.loc[3, "chr_start"] = "12x"
    mane.to_csv(tmp / "mane.txt", sep="\t", index=False)
    return [
        "mane-tss",
        "--mane",
        str(tmp / "mane.txt"),
        "--fasta",
        str(index_only_fasta(tmp / "g.fa")),
        "--out",
        str(tmp / "out.tsv"),
    ]


def constant_expression(tmp):
    return targets_inputs(tmp, {s: "2.5" for s in gene_symbols()})


def every_gene_held_out(tmp):
    args = targets_inputs(tmp, {s: str(i) for i, s in enumerate(gene_symbols())})
    (tmp / "test_genes.txt").write_text("\n".join(gene_symbols()) + "\n")
    return args + ["--test-genes", str(tmp / "test_genes.txt")]


def nan_in_features(tmp):
    scores = np.random.default_rng(0).standard_normal((3, 5, 40)).astype(np.float32)
    scores[1, 2, 7] = np.nan
    write_features(tmp / "features.h5", scores, np.array([2, 1, 22]), ["A2M", "A1BG", "ABCB7"])
    return [
        "tss-from-features",
        "--features",
        str(tmp / "features.h5"),
        "--mane",
        "packaged",
        "--out",
        str(tmp / "out.tsv"),
    ]


def merge_args(tmp: Path, tss: Path, shards: list[Path]) -> list[str]:
    return ["merge-features", "--tss", str(tss), "--shards", *map(str, shards), "--out", str(tmp / "out.tsv")]


def shards_of_two_fastas(tmp):
    """Shard 1 of 2 computed on gapped.fa, shard 2 on a copy with one base changed."""
    fasta, tss = gapped_genome(tmp)
    seq = "".join(fasta.read_text().split("\n")[1:])
    other = write_fasta(tmp / "other.fa", {"chrA": seq[:-1] + ("A" if seq[-1] != "A" else "C")})
    model = build_demo_sei(1 / 60, 20, seed=1), make_demo_projection(20, seed=1)
    shards = [tmp / "shards/1-of-2.h5", tmp / "shards/2-of-2.h5"]
    run_shard(tss, fasta, *model, shards[0], WindowSpec(3), 1, 2)
    run_shard(tss, other, *model, shards[1], WindowSpec(3), 2, 2)
    return merge_args(tmp, tss, shards)


def shard_of_another_tss(tmp):
    """A shard computed for gapped.fa's genes, then OK3's TSS moved by two bins in tss.tsv."""
    fasta, tss = gapped_genome(tmp)
    shard = tmp / "shards/1-of-1.h5"
    run_shard(tss, fasta, build_demo_sei(1 / 60, 20, seed=1), make_demo_projection(20, seed=1), shard, WindowSpec(3))
    genes = pd.read_csv(tss, sep="\t")
    genes.loc[genes["symbol"] == "OK3", "tss"] += 2 * 4096
    genes.to_csv(tss, sep="\t", index=False)
    return merge_args(tmp, tss, [shard])


def predict_bed(rows: list[str], name: str = "tss.bed"):
    """predict-genes on a BED of `rows` (chrom, start, end, name, score, strand) and a FASTA whose index says
    chr22 is 50,818,468 bp: the genes are checked before the model is read, so the model need not exist."""

    def make(tmp):
        (tmp / name).write_text("".join(r + "\n" for r in rows))
        return [
            "predict-genes",
            "--model",
            str(tmp / "no-model"),
            "--genes",
            str(tmp / name),
            "--fasta",
            str(index_only_fasta(tmp / "g.fa")),
            "--out",
            str(tmp / "out.tsv"),
        ]

    return make


def duplicate_genes(tmp):
    (tmp / "genes.txt").write_text("ACO2\nNDUFA6\naco2\n")
    return predict_bed([])(tmp)[:4] + [str(tmp / "genes.txt")] + predict_bed([])(tmp)[5:]


def score_vcf(records: list[bytes], compress: bool = False):
    """score-variants on a VCF of `records` (tab-separated lines) against a 2-kb chr22: the VCF is read
    before the model, so no model, features or Sei files are needed for it to stop."""

    def make(tmp):
        seq = random_seq(2000, seed=3)
        write_fasta(tmp / "g.fa", {"chr22": seq})
        head = b"##fileformat=VCFv4.2\n##contig=<ID=chr22,length=2000>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        body = head + b"".join(r.replace(b"{REF}", seq[9].encode()) + b"\n" for r in records)
        vcf = tmp / ("calls.vcf.gz" if compress else "calls.vcf")
        vcf.write_bytes(gzip.compress(body) if compress else body)
        missing = [str(tmp / n) for n in ("model", "features.h5", "tss.tsv", "sei.pth", "proj.npy")]
        return [
            "score-variants",
            *("--model", missing[0], "--vcf", str(vcf), "--features", missing[1], "--tss", missing[2]),
            *("--fasta", str(tmp / "g.fa"), "--checkpoint", missing[3], "--projection", missing[4]),
            *("--out", str(tmp / "out.tsv"), "--out-counts", str(tmp / "counts.tsv")),
        ]

    return make


def alt_case(alt: str, words: list[str]):
    return (score_vcf([b"chr22\t10\t.\t{REF}\t" + alt.encode("latin-1") + b"\t.\t.\t."]), words)


def explain_into_a_file(tmp):
    (tmp / "afile").write_text("not a folder\n")
    missing = [str(tmp / n) for n in ("model", "features.h5", "prompts.jsonl")]
    return ["explain-genes", "--model", missing[0], "--features", missing[1], "--prompts", missing[2]] + [
        *("--genes", "ACO2", "--out-dir", str(tmp / "afile")),
    ]


def output_below_a_file(tmp):
    (tmp / "afile").write_text("not a folder\n")
    args = predict_bed(["chr22\t100\t101\tOK\t0\t+"])(tmp)
    return args[: args.index("--out") + 1] + [str(tmp / "afile/out.tsv")]


def synthetic_genome_seed(seed: int):
    def make(tmp):
        args = ["synthetic-genome", "--mane", "packaged", "--chromosomes", "chr22", "--out", str(tmp / "out.tsv")]
        return [*args, "--seed", str(seed)]

    return make


def training_seed(tmp):
    """train-gta with a seed torch cannot take: TrainConfig stops before any file is read."""
    missing = [str(tmp / n) for n in ("features.h5", "targets.tsv", "prompts.jsonl")]
    args = ["train-gta", "--features", missing[0], "--targets", missing[1], "--prompts", missing[2]]
    return [*args, "--n-bins", "5", "--out-model", str(tmp / "model"), "--out-predictions", str(tmp / "out.tsv")] + [
        *("--seed", str(2**70)),
    ]


def huge_window(tmp):
    chr22_genes(3).to_csv(tmp / "tss.tsv", sep="\t", index=False)
    args = ["extract-windows", "--tss", str(tmp / "tss.tsv"), "--fasta", str(index_only_fasta(tmp / "g.fa"))]
    return [*args, "--n-bins", "1000000001", "--out", str(tmp / "out.tsv")]


SEED_RANGE = "not an integer from 0 to 4,294,967,295"
CLI_CASES = {
    # name: (arguments of `gta`, words the error must hold ({tmp} = the case's folder))
    "fasta shorter than the genes (tss)": (
        short_fasta_tss,
        ["{tmp}/short.fa", "beyond the end of chr22", "GeneID", "GRCh38", "(--fasta)"],
    ),
    "fasta shorter than the genes (windows)": (
        short_fasta_windows,
        ["{tmp}/short.fa", "beyond the end of chr22", "GeneID", "(--tss, --fasta)"],
    ),
    "gzip, not bgzip, fasta": (gzip_fasta, ["{tmp}/genome.fa.gz", "gunzip", "bgzip", "(--fasta)"]),
    "non-numeric MANE coordinate": (
        bad_mane_coordinate,
        ["{tmp}/mane.txt", "line 5", "'chr_start'", "'12x'", "(--mane)"],
    ),
    "expression without variance": (constant_expression, ["{tmp}/expr.tsv", "same value", "(--table)"]),
    "every gene a test gene": (
        every_gene_held_out,
        ["{tmp}/test_genes.txt", "leaves genes out", "(--test-genes, --table)"],
    ),
    "BED TSS beyond the chromosome end": (
        predict_bed(["chr22\t60000000\t60000001\tFAR\t0\t+"]),
        ["FAR", "chr22:60,000,001", "beyond the end of chr22", "{tmp}/g.fa", "50,818,468", "(--genes, --fasta)"],
    ),
    "BED with a negative start": (
        predict_bed(["chr22\t-5\t1\tNEG\t0\t+"]),
        ["{tmp}/tss.bed", "row 1", "NEG", "negative start", "(--genes)"],
    ),
    "BED end before start": (
        predict_bed(["chr22\t100\t101\tOK\t0\t+", "chr22\t500\t400\tBACK\t0\t-"]),
        ["{tmp}/tss.bed", "row 2", "BACK", "end before its start", "(--genes)"],
    ),
    "BED chromosome absent from the FASTA": (
        predict_bed(["chr9\t100\t101\tELSEWHERE\t0\t+"]),
        ["ELSEWHERE", "chr9", "{tmp}/g.fa", "lacks", "(--genes, --fasta)"],
    ),
    "duplicate genes to predict": (
        duplicate_genes,
        ["2 name a gene that another identifier also names", "ACO2, aco2", "give each gene once", "(--genes)"],
    ),
    "plain-gzip VCF": (
        score_vcf([b"chr22\t10\t.\t{REF}\tA\t.\t.\t."], compress=True),
        ["{tmp}/calls.vcf.gz", "not with bgzip", "bgzip", "gunzip", "(--vcf)"],
    ),
    "non-ASCII ALT": alt_case(
        "\xc4", ["{tmp}/calls.vcf", "record 1 (chr22:10)", "ALT", "non-ASCII", "(--vcf, --ref-check)"]
    ),
    "IUPAC ALT": alt_case("R", ["{tmp}/calls.vcf", "ALT 'R'", "IUPAC", "bad_alt", "(--vcf, --ref-check)"]),
    "X in ALT": alt_case("AX", ["{tmp}/calls.vcf", "ALT 'AX'", "bad_alt", "(--vcf, --ref-check)"]),
    "digit in ALT": alt_case("A1", ["{tmp}/calls.vcf", "ALT 'A1'", "bad_alt", "(--vcf, --ref-check)"]),
    "REF '-'": (
        score_vcf([b"chr22\t10\t.\t-\tA\t.\t.\t."]),
        ["{tmp}/calls.vcf", "REF '-'", "bad_ref", "(--vcf, --ref-check)"],
    ),
    "POS 0": (
        score_vcf([b"chr22\t0\t.\tA\tC\t.\t.\t."]),
        ["{tmp}/calls.vcf", "POS 0", "telomere", "bad_pos", "(--vcf, --ref-check)"],
    ),
    "malformed VCF line": (
        score_vcf([b"chr22\t10\t.\t{REF}\tA\t.\t.\t.", b"chr22\t11\t.\tA"]),
        ["{tmp}/calls.vcf", "line 5", "4 tab-separated column(s)", "at least 8", "(--vcf)"],
    ),
    "explain --out-dir an existing file": (
        explain_into_a_file,
        ["output {tmp}/afile is a file", "give a folder", "(--out-dir)"],
    ),
    "output below a file (checked before the work)": (
        output_below_a_file,
        ["cannot write output {tmp}/afile/out.tsv", "{tmp}/afile", "choose a writable location", "(--out)"],
    ),
    "seed -1": (synthetic_genome_seed(-1), ["seed -1", SEED_RANGE, "(--seed)"]),
    "seed 2**70": (synthetic_genome_seed(2**70), ["seed 1180591620717411303424", SEED_RANGE, "(--seed)"]),
    "training seed 2**70": (training_seed, ["seed 1180591620717411303424", SEED_RANGE, "(--seed)"]),
    "window of 1,000,000,001 bins": (
        huge_window,
        ["1,000,000,001 bins of 4,096 bp", "longest human chromosome", "at most 60,780 bins", "(--n-bins)"],
    ),
    "NaN in precomputed features": (
        nan_in_features,
        ["{tmp}/features.h5", "NaN", "dataset 'features'", "recompute", "(--features)"],
    ),
    "Sei shards from two FASTAs": (
        shards_of_two_fastas,
        ["{tmp}/shards/1-of-2.h5", "{tmp}/shards/2-of-2.h5", "different sequences of chrA", "(--shards)"],
    ),
    "Sei shard made for another TSS": (
        shard_of_another_tss,
        ["{tmp}/shards/1-of-1.h5", "{tmp}/tss.tsv", "OK3 (GeneID 3)", "chrA:58,192", "(--shards, --tss)"],
    ),
}


def one_error(args: list[str], words: list[str], tmp_path: Path, caplog) -> str:
    """Run `gta args`: it fails with one error holding `words` and leaves no out.tsv, nor a temporary file."""
    with caplog.at_level(logging.ERROR, logger="gta"):
        assert cli_main(args) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    for word in words:
        assert word.format(tmp=tmp_path) in errors[0], (word, errors[0])
    assert not (tmp_path / "out.tsv").exists() and not (tmp_path / "counts.tsv").exists()
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    return errors[0]


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_bad_input_cli(case, tmp_path, caplog):
    make, words = CLI_CASES[case]
    error = one_error(make(tmp_path), words, tmp_path, caplog)
    if case == "every gene a test gene":
        assert "test_fraction" not in error  # it does nothing when a test gene list is given


def test_a_full_disk_is_one_clear_error(tmp_path, monkeypatch, caplog):
    """A disk that fills up while the outputs are written: one error line naming the problem and the fix,
    no traceback, and nothing under the outputs' names (they are written under temporary names)."""
    import errno

    import gta.scoring

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".scores.tmp"))

    monkeypatch.setattr(gta.scoring, "write_counts", full)
    for name in ("1-of-1.tsv", "1-of-1.counts.tsv"):
        (tmp_path / name).write_text("what\tn\nrecords\t1\n" if "counts" in name else "id\tdelta\nv\t0.5\n")
    args = ["merge-variant-scores", "--scores", str(tmp_path / "1-of-1.tsv"), "--counts"]
    args += [str(tmp_path / "1-of-1.counts.tsv"), "--out", str(tmp_path / "out.tsv")]
    with caplog.at_level(logging.ERROR, logger="gta"):
        assert cli_main(args + ["--out-counts", str(tmp_path / "counts.tsv")]) == 1
    (message,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "No space left on device" in message and "free space or choose another output location" in message
    assert not (tmp_path / "out.tsv").exists() and not (tmp_path / "counts.tsv").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_a_read_only_output_folder_stops_before_the_work(tmp_path, monkeypatch, caplog):
    """A read-only output folder is found by the pre-check's probe file, whose creation fails with EROFS
    (EACCES without write permission). Root ignores mode bits (a folder of mode 0o500 takes root's files),
    so the test makes the probe's creation in that folder fail as a read-only file system makes it fail."""
    import errno
    import tempfile

    real = tempfile.TemporaryFile
    (tmp_path / "ro").mkdir()

    def probe(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == tmp_path / "ro":
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", probe)
    args = predict_bed(["chr22\t100\t101\tOK\t0\t+"])(tmp_path)
    args[args.index("--out") + 1] = str(tmp_path / "ro/out.tsv")
    words = ["cannot write output {tmp}/ro/out.tsv", "{tmp}/ro: Read-only file system", "writable location", "(--out)"]
    one_error(args, words, tmp_path, caplog)
    assert list((tmp_path / "ro").iterdir()) == []


# ----------------------------------------------------------------------------- model folders


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_files, backbone_dir):
    """Two tiny models (seeds 0 and 1) trained on tests/test_train.py's data and backbone."""
    tmp = tmp_path_factory.mktemp("models")
    return [run(tmp / str(seed), data_files, backbone_dir, epochs=1, seed=seed)[0] for seed in (0, 1)]


def resealed(edit):
    """An edit of config.json and the weights, with the hashes rewritten as train_gta would: past the
    checks that tie the files together, down to the ones on the values."""

    def change(config, folder):
        edit(config, folder)
        config["weights_sha256"] = sha256((folder / "weights.safetensors").read_bytes())
        config["config_sha256"] = content_sha256(config)

    return change


def nan_head_weight(config, folder):
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "weights.safetensors")
    name = next(k for k in sorted(state) if k.startswith("head.") and state[k].is_floating_point())
    state[name][0] = float("nan")
    save_file(state, folder / "weights.safetensors", metadata={"format": "gta-model-2"})


def scaled_past_float(config, folder):
    # mean + std * output overflows for an output below -0.004: this seeded model's outputs are -0.04 to -0.01
    config["target"] = {"mean": -1.79e308, "std": 1.79e308}


def other_weights(config, folder):
    shutil.copy(folder.parent / "other" / "weights.safetensors", folder / "weights.safetensors")


MODEL_CASES = {
    # name: (edit(config, folder) of a copy of the model folder, words of the error); {tmp}/model is the copy
    "weights of another model (B8)": (other_weights, ["{tmp}/model/weights.safetensors", "weights_sha256", "another"]),
    "n_bins edited (B9)": (lambda c, f: c.update(n_bins=7), ["{tmp}/model/config.json", "edited", "config_sha256"]),
    "model.prompt edited (B9)": (lambda c, f: c["model"].update(prompt=False), ["{tmp}/model/config.json", "edited"]),
    "window removed (B9)": (lambda c, f: c.pop("window"), ["model folder {tmp}/model", "'window' is missing"]),
    "target.std not a number": (lambda c, f: c["target"].update(std="abc"), ["{tmp}/model", "'target.std' is 'abc'"]),
    "model a string": (lambda c, f: c.update(model="x"), ["{tmp}/model", "'model' is 'x', not an object"]),
    "train.seed missing": (lambda c, f: c["train"].pop("seed"), ["{tmp}/model", "'train.seed' is missing"]),
    "train.seed 2**70": (lambda c, f: c["train"].update(seed=2**70), ["{tmp}/model", "'train.seed' is 1180591"]),
    "NaN target.mean (B7)": (
        lambda c, f: c["target"].update(mean=float("nan")),
        ["{tmp}/model", "'target.mean' is nan"],
    ),
    "NaN head weight (B7)": (resealed(nan_head_weight), ["{tmp}/model/weights.safetensors", "tensor 'head.", "NaN"]),
    "infinite predictions (B7)": (resealed(scaled_past_float), ["model {tmp}/model predicts -inf for gene G"]),
    "format version 1": (lambda c, f: c.update(version=1), ["{tmp}/model/config.json", "version 1", "retrain"]),
}


@pytest.mark.parametrize("case", [*MODEL_CASES, "backbone with block 0 perturbed (B10)"])
def test_bad_model_folder(case, tmp_path, caplog, trained, data_files, backbone_dir):
    d, folder = data_files[0], tmp_path / "model"
    shutil.copytree(trained[0], folder)
    shutil.copytree(trained[1], tmp_path / "other")
    backbone = backbone_dir
    if case in MODEL_CASES:
        edit, words = MODEL_CASES[case]
        config = json.loads((folder / "config.json").read_text())
        edit(config, folder)
        (folder / "config.json").write_text(json.dumps(config))
        words = [*words, "(--model)"]
    else:
        backbone = perturb_block0(backbone_dir, tmp_path / "perturbed")
        words = ["{tmp}/perturbed", "sha256 of its loaded tensors", "(--backbone)"]
    args = ["ablate-context", "--model", str(folder), "--backbone", str(backbone), "--device", "cpu"]
    args += ["--features", str(d / "features.h5"), "--targets", str(d / "targets.tsv")]
    args += ["--prompts", str(d / "prompts.jsonl"), "--tss", str(d / "tss.tsv"), "--keep-bins", "3"]
    one_error([*args, "--out", str(tmp_path / "out.tsv")], words, tmp_path, caplog)


def features_of_other_bins(tmp: Path, features: Path) -> Path:
    """A copy of the model's training features whose bins are 2,048 bp (grid recorded, as predict-genes needs)."""
    import h5py

    shutil.copy(features, tmp / "features.h5")
    with h5py.File(tmp / "features.h5", "a") as f:
        f.attrs.update(bin_size=2048, grid="tss")
    return tmp / "features.h5"


@pytest.mark.parametrize("command", ["predict-genes", "ablate-context"])
def test_features_of_other_bins_than_the_model(command, tmp_path, caplog, trained, data_files, backbone_dir):
    """The model was trained on 4,096-bp bins, the features file has 2,048-bp ones: the error names both
    (the file and its bin_size, the model and its), not the features file alone."""
    d, folder = data_files[0], tmp_path / "model"
    shutil.copytree(trained[0], folder)
    features = features_of_other_bins(tmp_path, d / "features.h5")
    args = [command, "--model", str(folder), "--backbone", str(backbone_dir), "--device", "cpu"]
    args += ["--features", str(features), "--tss", str(d / "tss.tsv"), "--out", str(tmp_path / "out.tsv")]
    if command == "predict-genes":  # one gene of the features file, on a chr1 the FASTA index says is 2 Mb
        (tmp_path / "genes.bed").write_text("chr1\t1000000\t1000001\tG100\t0\t+\n")
        (tmp_path / "g.fa").write_text(">chr1\nACGT\n")
        (tmp_path / "g.fa.fai").write_text("chr1\t2000000\t6\t4\t5\n")
        args += ["--genes", str(tmp_path / "genes.bed"), "--fasta", str(tmp_path / "g.fa")]
    else:
        args += ["--targets", str(d / "targets.tsv"), "--prompts", str(d / "prompts.jsonl"), "--keep-bins", "3"]
    words = [
        "features file {tmp}/features.h5 has window bin_size 2048",
        "model {tmp}/model was trained on bin_size 4096",
    ]
    one_error(args, [*words, "window.bin_size: 4096", "(--features, --model)"], tmp_path, caplog)


def test_dropped_expression_rows_are_counted(tmp_path, caplog):
    symbols = gene_symbols()
    values = {s: str(i) for i, s in enumerate(symbols[:5])}
    values.update({symbols[5]: "NaN", symbols[6]: "", symbols[7]: "inf", "NOT_A_GENE": "1"})
    args = targets_inputs(tmp_path, values)
    with open(tmp_path / "expr.tsv", "a") as fh:
        fh.write(f"{symbols[0].lower()}\t9\n")  # a second row for the first gene: a duplicate
    with caplog.at_level(logging.INFO, logger="gta"):
        assert cli_main(args + ["--test-fraction", "0.3"]) == 0
    text = "\n".join(r.getMessage() for r in caplog.records)
    line = next(x for x in text.splitlines() if "kept as targets" in x)
    assert "10 rows, 4 kept as targets" in line, line
    for count in ["1 unmatched identifier", "2 duplicate", "2 missing value", "1 infinite value"]:
        assert count in line, (count, line)
    assert len(pd.read_csv(tmp_path / "out.tsv", sep="\t")) == 4


def test_backbone_path_that_does_not_exist(tmp_path, monkeypatch):
    from gta.model.spec import backbone_kind

    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    for spec in ["models/llama-3", "./llama-3", "~/no-such-model-dir/x", "/no/such/model"]:
        with pytest.raises(GTAError, match=r"looks like a local path.*hub id") as e:
            backbone_kind(spec)
        assert repr(spec) in str(e.value) and e.value.input == "backbone"
    assert backbone_kind("meta-llama/Meta-Llama-3-8B") == "hub"


# ----------------------------------------------------------------------------- the workflow


def tiny(**changes) -> dict:
    cfg = yaml.safe_load(TINY.read_text())
    for key, value in changes.items():
        section, name = key.split("__")
        cfg.setdefault(section, {})[name] = value
    return cfg


CONFIG_CASES = {
    # name: (config changes, words of the error)
    "code in a chromosome name": ({"genes__chromosomes": ["chr22$(touch m1)"]}, ["chromosomes", "^[A-Za-z0-9_.-]+$"]),
    "code in sei.device": ({"sei__device": "cpu$(touch m1)"}, ["device", "does not match", "cuda"]),
    "code in train.device": ({"train__device": "cpu;touch m1"}, ["device", "does not match", "cuda"]),
    "code in sei.sha256": ({"sei__sha256": "`touch m1`"}, ["sha256", "does not match"]),
    "code in annotations.api_key_env": (
        {"annotations__api_key_env": "K $(touch m1)"},
        ["api_key_env", "does not match"],
    ),
    "bin size Sei cannot take": ({"window__bin_size": 2048}, ["window.bin_size", "4,096", "set window.bin_size: 4096"]),
    "backbone folder that does not exist": (
        {"backbone__model": "models/llama-3"},
        ["backbone.model", "'models/llama-3'", "looks like a local path"],
    ),
}


@pytest.mark.workflow
@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config(case, tmp_path):
    changes, words = CONFIG_CASES[case]
    (tmp_path / "models").mkdir()
    r = run_snakemake(tmp_path, "--cores", "1", "results/genes/tss.tsv", config=tiny(**changes), timeout=600)
    assert r.returncode != 0
    for word in words:
        assert word in r.stdout, (word, r.stdout[-3000:])
    assert not any((tmp_path / m).exists() for m in MARKERS)
    assert not (tmp_path / "results").exists()


def payload_config(tmp: Path) -> dict:
    """The tiny config with PAYLOAD in every free-text config string that reaches a shell command
    (files named by it exist, so that the DAG builds)."""
    d = tmp / PAYLOAD
    d.mkdir()
    (d / "backbone").mkdir()
    for name in ["mane.txt.gz", "genome.fa", "genes.txt", "expr.tsv", "sei.pth", "proj.npy"]:
        (d / f"{PAYLOAD}{name}").write_text("placeholder\n")
    shutil.copy(T.packaged_mane_path(), d / "mane.gz")
    (d / "preds.csv").write_text("gene,Xpresso\na1bg,0\n")
    cfg = tiny(
        genes__mane_summary=str(d / "mane.gz"),
        genes__test_genes=str(d / f"{PAYLOAD}genes.txt"),
        genome__fasta=str(d / f"{PAYLOAD}genome.fa"),
        sei__checkpoint=str(d / f"{PAYLOAD}sei.pth"),
        sei__projection=str(d / f"{PAYLOAD}proj.npy"),
        annotations__source="entrez",
        annotations__email=PAYLOAD,
        annotations__cache=PAYLOAD,
        annotations__cell_type=PAYLOAD,
        backbone__model=str(d / "backbone"),
        expression__table=str(d / f"{PAYLOAD}expr.tsv"),
        evaluate__baseline_predictions=str(d / "preds.csv"),
    )
    return cfg


@pytest.mark.workflow
def test_no_config_value_reaches_a_shell(tmp_path):
    """Every rule runs its stage through a script that hands it typed params (gta.rule): no rule has a
    shell command that a config value could reach. A dry run of the whole DAG with PAYLOAD in every
    free-text config string plans every job, prints no shell command and runs nothing."""
    for path in RULE_FILES:
        text = path.read_text()
        assert "shell:" not in text and text.count("script:") == len(re.findall(r"^\s*rule \w+:", text, re.M)), path
    r = run_snakemake(tmp_path, "-n", "-p", "--forceall", config=payload_config(tmp_path), timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    assert [c for c in re.findall(r"^Shell command: (.*)$", r.stdout, re.M) if c != "None"] == []
    jobs = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", r.stdout, re.M)}
    for rule in ["fetch_annotations", "make_prompts", "make_targets", "train_gta", "make_figures", "mane_tss"]:
        assert jobs.get(rule, 0) >= 1, rule  # the rules the payload reaches are planned
    assert not any((tmp_path / m).exists() for m in MARKERS)


@pytest.mark.workflow
def test_payload_in_a_path_runs_nothing(tmp_path):
    """A real run: a FASTA whose path holds shell code gives a TSS table and runs no code."""
    fasta = index_only_fasta(tmp_path / f"{PAYLOAD}.fa")
    cfg = tiny(genome__fasta=str(fasta), genes__max_genes=3)
    r = run_snakemake(tmp_path, "--cores", "1", "results/genes/tss.tsv", config=cfg, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    assert len(pd.read_csv(tmp_path / "results/genes/tss.tsv", sep="\t")) == 3
    assert not any((tmp_path / m).exists() for m in MARKERS)


@pytest.mark.workflow
def test_rules_need_no_venv_on_path(tmp_path):
    """`.venv/bin/snakemake` run with a PATH that lacks the venv: rules still find the package."""
    cfg = tiny(genome__fasta=str(index_only_fasta(tmp_path / "g.fa")), genes__max_genes=3)
    env = dict(os.environ, PATH="/usr/bin:/bin")
    r = run_snakemake(tmp_path, "--cores", "1", "results/genes/tss.tsv", config=cfg, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    assert len(pd.read_csv(tmp_path / "results/genes/tss.tsv", sep="\t")) == 3


@pytest.mark.workflow
def test_user_configfile_replaces_the_demo_config(tmp_path):
    """A user file holding only `train` and `genome.fasta` gets the schema defaults, none of the demo's
    values: its gene table asks for every chromosome (the default 'all'), not the demo's three."""
    demo = yaml.safe_load((REPO / "config/config.yaml").read_text())
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"]
    assert schema["genes"]["properties"]["chromosomes"]["default"] == "all"
    fasta = index_only_fasta(tmp_path / "g.fa")  # chr22 only: 'all' asks for chromosomes it lacks
    user = tmp_path / "user.yaml"
    user.write_text(f"train: {{epochs: 3}}\ngenome: {{fasta: {fasta}}}\n")
    r = run_snakemake(tmp_path / "run", "--cores", "1", "results/genes/tss.tsv", "--configfile", str(user))
    assert r.returncode != 0
    text = (tmp_path / "run/results/logs/mane_tss.log").read_text()
    assert "the chromosomes asked for include chr1, chr2, chr3, chr4, chr5 and 18 more" in text, text
    assert text.rstrip().endswith("(config keys genes.chromosomes, genome.fasta)"), text  # added by the rule
    assert not any(c in text for c in demo["genes"]["chromosomes"])
    # from the repository root without --configfile the demo config is read: its synthetic genome is planned
    r = run_snakemake(REPO, "-n", "--forceall", "results/genes/tss.tsv", directory=False, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    assert demo["genome"]["fasta"] == "synthetic" and re.search(r"^synthetic_genome\s+1$", r.stdout, re.M)


def test_schema_defaults_validate_and_hold_together():
    import jsonschema

    from snakemake.utils import validate

    path = REPO / "workflow/schemas/config.schema.yaml"
    cfg: dict = {}
    validate(cfg, str(path), set_default=True)
    jsonschema.Draft202012Validator(yaml.safe_load(path.read_text())).validate(cfg)
    assert cfg["window"]["bin_size"] == 4096 and cfg["window"]["n_bins"] % 2 == 1
    assert max(cfg["evaluate"]["context_bins"]) <= cfg["window"]["n_bins"]
    # the default backbone has 30 blocks: no default Table 2 depth may exceed it
    assert cfg["backbone"]["model"] == "smollm2-135m" and all(n <= 30 for n in cfg["evaluate"]["ablation_layers"])


# ----------------------------------------------------------------------------- Sei shards


@pytest.fixture(scope="module")
def sei_model():
    return build_demo_sei(1 / 60, 20, seed=1), make_demo_projection(20, seed=1)


def gapped_genome(tmp: Path) -> tuple[Path, Path]:
    """chrA: 60 kb whose first 40 kb are N; three genes, two of them inside the gap."""
    seq = "N" * 40_000 + random_seq(20_000)
    fasta = write_fasta(tmp / "gapped.fa", {"chrA": seq})
    genes = pd.DataFrame(
        {
            "gene_id": [1, 2, 3],
            "symbol": ["GAP1", "GAP2", "OK3"],
            "ensembl_gene": "",
            "name": "gene",
            "chrom": "chrA",
            "tss": [10_000, 20_000, 50_000],
            "strand": "+",
        }
    )
    genes.to_csv(tmp / "tss.tsv", sep="\t", index=False)
    return fasta, tmp / "tss.tsv"


def test_mostly_n_windows_stop_the_merge(tmp_path, sei_model, caplog):
    fasta, tss = gapped_genome(tmp_path)
    shard = tmp_path / "shards/1-of-1.h5"
    with caplog.at_level(logging.INFO, logger="gta"):
        run_shard(tss, fasta, *sei_model, shard, WindowSpec(3))
    assert any("2 of 3 genes have a mostly-N window" in r.getMessage() for r in caplog.records)
    out = tmp_path / "features.h5"

    def merge(fraction):
        args = ["--tss", str(tss), "--shards", str(shard), "--max-mostly-n-fraction", str(fraction), "--out", str(out)]
        return cli_main(["merge-features", *args])

    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="gta"):
        assert merge(0.1) == 1
    message = caplog.records[-1].getMessage()
    for word in ["2 of 3 genes", str(fasta), "GAP1", "GRCh38", "(--max-mostly-n-fraction)"]:
        assert word in message, (word, message)
    assert not out.exists()
    assert merge(0.7) == 0


def test_merge_removes_shards_of_an_earlier_setting(tmp_path, sei_model):
    fasta, tss = gapped_genome(tmp_path)
    d = tmp_path / "shards"
    for name in ["1-of-2.h5", "2-of-2.h5", ".2-of-3.h5.partial"]:  # from sei.shards: 2, and a killed 3
        d.mkdir(exist_ok=True)
        (d / name).write_text("old")
    (d / "notes.txt").write_text("not a shard")
    run_shard(tss, fasta, *sei_model, d / "1-of-1.h5", WindowSpec(3))
    merge_features(tss, [d / "1-of-1.h5"], tmp_path / "features.h5")
    assert sorted(p.name for p in d.iterdir()) == ["1-of-1.h5", "notes.txt"]


def test_second_writer_leaves_the_first_ones_shard_alone(tmp_path, sei_model):
    fasta, tss = gapped_genome(tmp_path)
    out = tmp_path / "shards/1-of-1.h5"
    out.parent.mkdir()
    partial_path(out).write_bytes(b"the first job's work")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from gta.sei.inference import shard_lock\n"
            f"with shard_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
    )
    try:
        # a hang guard, not a timing assertion: without it a holder that never prints would block forever
        ready, _, _ = select.select([holder.stdout], [], [], 120)
        assert ready, "the lock-holding subprocess printed nothing in 120 s"
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(GTAError, match="another job is writing") as e:
            run_shard(tss, fasta, *sei_model, out, WindowSpec(3))
        assert str(partial_path(out)) in str(e.value) and "wait for it" in str(e.value)
    finally:
        holder.kill()
        holder.wait()
    assert partial_path(out).read_bytes() == b"the first job's work"
    assert not out.exists()
