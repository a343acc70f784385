"""features.precomputed: layout checks (each names the dataset or attribute that is off) and its gene table."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from gta import GTAError
from gta.sei import CLASS_LABELS
from gta.sei.features import check_features, tss_from_features, write_features
from gta.tss import read_tss

from conftest import run_snakemake

IDS = [2, 1, 22]  # A2M (chr12, -), A1BG (chr19, -), ABCB7 (chrX, -): deliberately not sorted


@pytest.fixture
def features_file(tmp_path):
    path = tmp_path / "features.h5"
    rng = np.random.default_rng(0)
    write_features(
        path,
        rng.standard_normal((3, 7, 40)).astype(np.float16),
        np.array(IDS),
        ["A2M", "A1BG", "ABCB7"],
        bin_size=4096,
        orient="transcript",
    )
    return path


def test_check_accepts_contract_layout(features_file):
    info = check_features(features_file)
    assert info["n_genes"] == 3 and info["n_bins"] == 7 and info["tss_bin"] == 3
    assert info["orient"] == "transcript" and list(info["gene_id"]) == IDS


def test_tss_from_features_uses_file_order_and_mane(features_file, tmp_path):
    out = tmp_path / "tss.tsv"
    tss_from_features(features_file, "packaged", out)
    t = read_tss(out)
    assert list(t["gene_id"]) == IDS
    assert list(t["symbol"]) == ["A2M", "A1BG", "ABCB7"]
    assert list(t["chrom"]) == ["chr12", "chr19", "chrX"]
    a1bg = t.set_index("gene_id").loc[1]
    # MANE v1.5: NM_130786.4, chr19:58345178-58353492 (-), so the 0-based TSS is 58353491
    assert a1bg["tss"] == 58353491 and a1bg["strand"] == "-" and a1bg["ensembl_gene"] == "ENSG00000121410"
    # Ensembl naming when a FASTA with '1'-style names is given
    fa = tmp_path / "e.fa"
    fa.write_text(">12\nACGT\n>19\nACGT\n>X\nACGT\n")
    tss_from_features(features_file, "packaged", out, fasta=fa)
    assert list(read_tss(out)["chrom"]) == ["12", "19", "X"]


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda f: f.__delitem__("symbol"), "dataset 'symbol'"),
        (lambda f: f.__delitem__("class_names"), "dataset 'class_names'"),
        (
            lambda f: (f.__delitem__("class_names"), f.create_dataset("class_names", data=CLASS_LABELS[::-1])),
            "dataset 'class_names'",
        ),
        (
            lambda f: (f.__delitem__("features"), f.create_dataset("features", data=np.zeros((3, 7, 33)))),
            "dataset 'features'",
        ),
        (
            lambda f: (f.__delitem__("features"), f.create_dataset("features", data=np.zeros((3, 7, 40)))),
            "dataset 'features' must be float16 or float32",
        ),
        (lambda f: (f.__delitem__("gene_id"), f.create_dataset("gene_id", data=[1, 1, 2])), "dataset 'gene_id'"),
        (lambda f: (f.__delitem__("gene_id"), f.create_dataset("gene_id", data=[1.0, 2.0, 3.0])), "dataset 'gene_id'"),
        (lambda f: f.attrs.__delitem__("bin_size"), "attribute 'bin_size'"),
        (lambda f: f.attrs.__setitem__("tss_bin", 2), "attribute 'tss_bin'"),
        (lambda f: f.attrs.__setitem__("n_bins", 9), "attribute 'n_bins'"),
        (lambda f: f.attrs.__setitem__("orient", "sideways"), "attribute 'orient'"),
    ],
)
def test_layout_errors_name_what_is_off(features_file, edit, match):
    _edit(features_file, edit)
    with pytest.raises(GTAError, match=match) as e:
        check_features(features_file)
    assert str(e.value).startswith(f"features file {features_file}")
    assert e.value.input == "features"


def test_other_precomputed_errors(features_file, tmp_path):
    with pytest.raises(GTAError, match="n_bins") as e:
        check_features(features_file, min_bins=9)
    assert e.value.inputs == ("features", "min_bins")
    with pytest.raises(GTAError, match="not found") as e:
        check_features(tmp_path / "nope.h5")
    assert e.value.input == "features"
    noth5 = tmp_path / "not.h5"
    noth5.write_text("hello")
    with pytest.raises(GTAError, match="not a readable HDF5"):
        check_features(noth5)
    unknown = tmp_path / "unknown.h5"
    write_features(unknown, np.zeros((2, 3, 40), np.float16), np.array([1, 999_999_999]), ["A1BG", "X"])
    with pytest.raises(GTAError, match=r"999999999.*MANE") as e:
        tss_from_features(unknown, "packaged", tmp_path / "tss.tsv")
    assert e.value.inputs == ("features", "mane")
    assert not (tmp_path / "tss.tsv").exists()


@pytest.mark.workflow
def test_workflow_uses_precomputed_features(features_file, tmp_path):
    """With features.precomputed the gene table comes from the file; genome and Sei rules never run."""
    cfg = tmp_path / "pre.yaml"
    cfg.write_text(
        f"features:\n  precomputed: {features_file}\nwindow:\n  n_bins: 7\nevaluate:\n  context_bins: [3, 7]\n"
    )
    work = tmp_path / "work"
    r = run_snakemake(work, "--cores", "1", "results/genes/tss.tsv", config=cfg, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "tss_from_features" in r.stdout and "mane_tss" not in r.stdout and "synthetic_genome" not in r.stdout
    assert list(read_tss(work / "results/genes/tss.tsv")["gene_id"]) == IDS


def test_cli_features_check(features_file, tmp_path):
    from gta.cli import main

    assert main(["features-check", "--features", str(features_file)]) == 0
    assert main(["features-check", "--features", str(features_file), "--min-bins", "9"]) == 1
    out = tmp_path / "cli_tss.tsv"
    assert (
        main(
            ["tss-from-features", "--features", str(features_file), "--mane", "packaged", "--fasta=", "--out", str(out)]
        )
        == 0
    )
    assert list(read_tss(out)["gene_id"]) == IDS
