"""MANE parsing and the TSS table, against hand-computed expectations."""

import gzip
import subprocess
import sys

import pandas as pd
import pytest

from gta import GTAError
from gta import tss as T

HEADER = "\t".join(T.MANE_COLUMNS)


def mane_row(gene_id, symbol, acc, start, end, strand, status="MANE Select", ens="ENSG00000000001.5"):
    return "\t".join(
        [
            f"GeneID:{gene_id}",
            ens,
            f"HGNC:{gene_id}",
            symbol,
            f"{symbol} protein",
            "NM_1.1",
            "NP_1.1",
            "ENST1.1",
            "ENSP1.1",
            status,
            acc,
            str(start),
            str(end),
            strand,
        ]
    )


ROWS = [
    mane_row(30, "MINUS1", "NC_000001.11", 1000, 5000, "-"),
    mane_row(10, "PLUS1", "NC_000001.11", 2001, 3000, "+", ens="ENSG00000121410.14"),
    mane_row(20, "XGENE", "NC_000023.11", 501, 900, "+"),
    mane_row(25, "YGENE", "NC_000024.10", 100, 400, "-"),
    mane_row(40, "PATCHED", "NW_009646201.1", 76358, 101295, "-"),
    mane_row(50, "DUP", "NC_000002.12", 700, 800, "+"),
    mane_row(50, "DUP", "NC_000002.12", 650, 900, "+", status="MANE Plus Clinical"),
]


@pytest.fixture
def mane_file(tmp_path):
    path = tmp_path / "mane.summary.txt.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(HEADER + "\n" + "\n".join(ROWS) + "\n")
    return path


def write_fasta(path, names, length=10_000):
    path.write_text("".join(f">{n}\n{'A' * length}\n" for n in names))
    return path


def test_accessions_map_to_primary_chromosomes():
    assert T.accession_to_chrom("NC_000001.11") == "1"
    assert T.accession_to_chrom("NC_000022.11") == "22"
    assert T.accession_to_chrom("NC_000023.11") == "X"
    assert T.accession_to_chrom("NC_000024.10") == "Y"
    assert T.accession_to_chrom("NC_000025.1") is None
    assert T.accession_to_chrom("NT_187633.1") is None
    assert T.accession_to_chrom("NW_009646201.1") is None


ALL_UCSC = [f"chr{c}" for c in T.PRIMARY]


@pytest.mark.parametrize(
    "naming,names",
    [("ucsc", ALL_UCSC + ["chrM", "chr1_KI270706v1_random"]), ("ensembl", T.PRIMARY + ["MT", "KI270706.1"])],
)
def test_tss_table_positions_naming_duplicates_and_patches(mane_file, naming, names):
    table = T.build_tss_table(T.read_mane(mane_file), names)
    assert list(table.columns) == T.TSS_COLUMNS
    # sorted by GeneID, patch dropped, Plus Clinical duplicate folded into its Select row
    assert list(table.gene_id) == [10, 20, 25, 30, 50]
    by = table.set_index("symbol")
    prefix = "chr" if naming == "ucsc" else ""
    # 0-based first transcribed base: chr_start - 1 on +, chr_end - 1 on -
    assert by.loc["PLUS1", "tss"] == 2000 and by.loc["PLUS1", "chrom"] == f"{prefix}1"
    assert by.loc["MINUS1", "tss"] == 4999 and by.loc["MINUS1", "strand"] == "-"
    assert by.loc["XGENE", "chrom"] == f"{prefix}X" and by.loc["XGENE", "tss"] == 500
    assert by.loc["YGENE", "chrom"] == f"{prefix}Y" and by.loc["YGENE", "tss"] == 399
    assert by.loc["DUP", "tss"] == 699  # the Select row, not the Plus Clinical one
    assert by.loc["PLUS1", "ensembl_gene"] == "ENSG00000121410"  # version stripped


def test_chromosome_filter_and_max_genes(mane_file):
    mane = T.read_mane(mane_file)
    names = ALL_UCSC
    assert list(T.build_tss_table(mane, names, ["chr1"]).symbol) == ["PLUS1", "MINUS1"]
    assert list(T.build_tss_table(mane, names, "all", max_genes=2).gene_id) == [10, 20]
    assert list(T.build_tss_table(mane, names, ["chr1", "chr2"], max_genes=2).gene_id) == [10, 30]


def test_missing_chromosome_is_an_error_not_a_drop(mane_file):
    mane = T.read_mane(mane_file)
    with pytest.raises(GTAError, match=r"chr3.*absent from the FASTA") as e:
        T.build_tss_table(mane, ["chr1", "chr2", "chrX", "chrY"], ["chr1", "chr3"])
    assert e.value.inputs == ("chromosomes", "fasta")
    with pytest.raises(GTAError, match="absent from the FASTA"):  # 'all' but the FASTA lacks chrY
        T.build_tss_table(mane, ALL_UCSC[:-1])
    with pytest.raises(GTAError, match="'1'-style"):  # asked with the wrong naming
        T.build_tss_table(mane, ["1", "2", "X", "Y"], ["chr1"])


def test_plain_text_mane_and_bad_columns(tmp_path):
    plain = tmp_path / "mane.txt"
    plain.write_text(HEADER + "\n" + "\n".join(ROWS) + "\n")
    assert len(T.read_mane(plain)) == len(ROWS)
    bad = tmp_path / "bad.txt"
    bad.write_text("gene\tchrom\nA\t1\n")
    with pytest.raises(GTAError, match="lacks columns"):
        T.read_mane(bad)


def test_packaged_mane_v15_counts():
    mane = T.read_mane(T.packaged_mane_path())
    assert (mane["MANE_status"] == "MANE Select").sum() == 19363
    sel = T.mane_select(mane)
    # docs/formats.md (tss.tsv): 19,299 MANE Select genes on the primary assembly (patch-only genes dropped)
    assert len(sel) == 19299 and sel["gene_id"].is_unique
    a1bg = sel.set_index("symbol").loc["A1BG"]
    assert (a1bg.chrom, a1bg.tss, a1bg.strand) == ("19", 58353492 - 1, "-")


def test_cli_missing_inputs_leave_no_output(tmp_path, mane_file):
    fasta = write_fasta(tmp_path / "g.fa", ["chr1", "chr2", "chrX", "chrY"])
    out = tmp_path / "out" / "tss.tsv"

    def gta(*args):
        return subprocess.run(
            [sys.executable, "-m", "gta.cli", "mane-tss", *args, "--out", str(out)], capture_output=True, text=True
        )

    r = gta("--mane", str(tmp_path / "nope.txt.gz"), "--fasta", str(fasta))
    assert r.returncode == 1 and "MANE summary not found" in r.stderr and "(--mane)" in r.stderr
    r = gta("--mane", str(mane_file), "--fasta", str(tmp_path / "nope.fa"))
    assert r.returncode == 1 and "genome FASTA not found" in r.stderr and "(--fasta)" in r.stderr
    assert not out.parent.exists() or not any(out.parent.iterdir())  # not even a temporary file
    r = gta("--mane", str(mane_file), "--fasta", str(fasta), "--chromosomes", "chr1", "chr9")
    assert r.returncode == 1 and "chr9" in r.stderr and "(--chromosomes, --fasta)" in r.stderr and not out.exists()
    r = gta("--mane", str(mane_file), "--fasta", str(fasta), "--chromosomes", "chr1")
    assert r.returncode == 0
    assert list(pd.read_csv(out, sep="\t").symbol) == ["PLUS1", "MINUS1"]


@pytest.mark.workflow
def test_workflow_tss_with_a_user_fasta_and_mane(tmp_path, mane_file):
    """snakemake results/genes/tss.tsv on a config naming a user FASTA (Ensembl naming) and MANE file."""
    import yaml

    from conftest import run_snakemake

    fasta = write_fasta(tmp_path / "genome.fa", T.PRIMARY)
    cfg = tmp_path / "user.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "genes": {"mane_summary": str(mane_file), "chromosomes": ["1", "X"]},
                "genome": {"fasta": str(fasta)},
                "window": {"n_bins": 11},
                "evaluate": {"context_bins": [5, 11]},
            }
        )
    )
    r = run_snakemake(tmp_path, "--cores", "1", "results/genes/tss.tsv", config=cfg)
    assert r.returncode == 0, r.stdout[-3000:]
    table = pd.read_csv(tmp_path / "results/genes/tss.tsv", sep="\t", dtype={"chrom": str})
    assert list(table.symbol) == ["PLUS1", "XGENE", "MINUS1"] and list(table.chrom) == ["1", "X", "1"]
    assert not (tmp_path / "results/genome").exists()  # no synthetic genome for a user FASTA
