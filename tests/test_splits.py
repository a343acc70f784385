"""Splits without leakage: genes whose windows are (nearly) the same input never straddle train/val/test.

Each property is checked on make_targets' output (targets.tsv) against an independent computation: a
brute-force loop over gene pairs, a union-find over all pairs, or hand-placed genes.
"""

import logging

import h5py
import numpy as np
import pandas as pd
import pytest

from gta import GTAError
from gta.expression import make_targets
from gta.splits import assign_splits, window_groups
from gta.tss import mane_select, packaged_mane_path, read_mane

BIN = 4096


def demo_genes() -> pd.DataFrame:
    """The demo's genes: MANE v1.5 Select genes on chr19, chr21 and chr22, named 'chr19'-style."""
    genes = mane_select(read_mane(packaged_mane_path()))
    genes = genes[genes["chrom"].isin(["19", "21", "22"])].reset_index(drop=True)
    return genes.assign(chrom="chr" + genes["chrom"])


def placed_genes(chrom_tss: list[tuple[str, int]], first_id: int = 1) -> pd.DataFrame:
    """A TSS table of hand-placed genes, GeneIDs first_id, first_id + 1, ... in the order given."""
    ids = np.arange(first_id, first_id + len(chrom_tss))
    return pd.DataFrame(
        {
            "gene_id": ids,
            "symbol": [f"G{i}" for i in ids],
            "ensembl_gene": "",
            "name": "",
            "chrom": [c for c, _ in chrom_tss],
            "tss": [t for _, t in chrom_tss],
            "strand": "+",
        }
    )


def targets(tmp_path, genes: pd.DataFrame, grid: str = "genome", **kwargs) -> pd.DataFrame:
    """make_targets on `genes` (features: one bin of `grid`, random values as an observed table); the
    written targets.tsv joined with the genes' chrom and tss."""
    genes.to_csv(tmp_path / "tss.tsv", sep="\t", index=False)
    ids = genes["gene_id"].to_numpy()
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["features"] = np.zeros((len(ids), 1, 40), np.float16)
        f["gene_id"] = ids.astype(np.int64)
        f.create_dataset("symbol", data=list(genes["symbol"]), dtype=h5py.string_dtype())
        f.attrs.update(bin_size=BIN, n_bins=1, tss_bin=0, orient="reference", grid=grid)
    values = np.random.default_rng(0).normal(size=len(ids))
    pd.DataFrame({"gene": ids, "value": values}).to_csv(tmp_path / "expr.tsv", sep="\t", index=False)
    make_targets(tmp_path / "tss.tsv", tmp_path / "f.h5", str(tmp_path / "expr.tsv"), tmp_path / "t.tsv", **kwargs)
    out = pd.read_csv(tmp_path / "t.tsv", sep="\t")
    return out.merge(genes[["gene_id", "chrom", "tss"]], on="gene_id", validate="one_to_one")


def linked_pairs(genes: pd.DataFrame, grid: str) -> list[tuple[int, int]]:
    """Brute force over all gene pairs: (i, j) on one chromosome that share their central bin, or whose
    TSSs lie within one bin, or (genome grid) whose central grid bins are neighbours."""
    chrom, tss = genes["chrom"].to_numpy(), genes["tss"].to_numpy(np.int64)
    pairs = []
    for i in range(len(genes)):  # gene i against every later gene j
        j = np.arange(i + 1, len(genes))
        near = np.abs(tss[j] - tss[i]) <= BIN
        if grid == "genome":
            near |= np.abs(tss[j] // BIN - tss[i] // BIN) <= 1
        pairs += [(i, int(k)) for k in j[near & (chrom[j] == chrom[i])]]
    return pairs


# ----------------------------------------------------------------------------- on the demo's genes


@pytest.mark.parametrize("grid", ["genome", "tss"])
def test_window_twins_never_straddle_splits_on_mane_genes(tmp_path, grid):
    genes = demo_genes()
    t = targets(tmp_path, genes, grid, test_fraction=0.2, val_fraction=0.2, seed=0)
    split = t.set_index("gene_id").loc[genes["gene_id"], "split"].to_numpy()
    pairs = linked_pairs(genes, grid)
    same_bin = [(i, j) for i, j in pairs if genes["tss"][i] // BIN == genes["tss"][j] // BIN]
    assert len(pairs) > 150 and len(same_bin) > 100  # the check has pairs to check
    straddling = [(i, j) for i, j in pairs if split[i] != split[j]]
    assert len(straddling) == 0
    counts = pd.Series(split).value_counts()
    assert abs(counts["test"] - 0.2 * len(genes)) <= 4  # whole groups of at most 4 genes: close to 20%
    assert abs(counts["val"] - 0.2 * (len(genes) - counts["test"])) <= 4


def test_window_groups_are_the_connected_components_of_all_pairs():
    genes = demo_genes()
    parent = list(range(len(genes)))  # union-find over the brute-force pairs

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in linked_pairs(genes, "genome"):
        parent[root(i)] = root(j)
    roots = np.array([root(i) for i in range(len(genes))])
    expected = genes["gene_id"].groupby(roots).transform("min").to_numpy()
    got = window_groups(genes["gene_id"], genes["chrom"], genes["tss"], BIN, "genome")
    assert np.array_equal(got, expected)
    perm = np.random.default_rng(1).permutation(len(genes))
    shuffled = window_groups(genes["gene_id"][perm], genes["chrom"][perm], genes["tss"][perm], BIN, "genome")
    assert np.array_equal(shuffled, expected[perm])


# ----------------------------------------------------------------------------- hand-placed genes


def fillers(n: int = 60) -> list[tuple[str, int]]:
    """Genes 1 Mb apart: each its own group."""
    return [("chr1", 10_000_000 + k * 1_000_000) for k in range(n)]


def test_grouping_is_transitive(tmp_path):
    # A~B (3 kb), B~C (3 kb), A and C 6 kb apart: more than a bin, still one group
    genes = placed_genes([("chr1", 100_000), ("chr1", 103_000), ("chr1", 106_000), *fillers()])
    for seed in range(8):
        t = targets(tmp_path, genes, "tss", seed=seed).set_index("gene_id")
        assert t.loc[[1, 2, 3], "split"].nunique() == 1, seed


def test_listed_test_genes_pull_their_window_twins_into_test(tmp_path, caplog):
    # gene 1 is listed; 2 shares its grid bin (100); 3 lies in bin 101, 3.9 kb from 2; 4 in bin 103, 8.2 kb from 3
    genes = placed_genes(
        [("chr1", 409_700), ("chr1", 409_900), ("chr1", 413_800), ("chr1", 422_000), *fillers()], first_id=1
    )
    listed = [1, 10, 20, 30]
    (tmp_path / "test.txt").write_text("".join(f"{g}\n" for g in listed))
    with caplog.at_level(logging.INFO, logger="gta.expression"):
        t = targets(tmp_path, genes, "genome", test_genes=tmp_path / "test.txt", val_fraction=0.3)
    assert set(t.loc[t["split"] == "test", "gene_id"]) == {1, 2, 3, 10, 20, 30}
    assert "2 genes share a window group with a listed test gene" in caplog.text


def test_test_chromosomes_hold_out_exactly_those_chromosomes(tmp_path):
    chroms = [f"chr{k}" for k in (1, 2, 3)]
    genes = placed_genes([(c, 1_000_000 + k * 500_000) for c in chroms for k in range(30)])
    t = targets(tmp_path, genes, "genome", test_chromosomes=["chr2"], val_fraction=0.25)
    assert set(t.loc[t["split"] == "test", "chrom"]) == {"chr2"}
    assert set(t.loc[t["chrom"] == "chr2", "split"]) == {"test"}
    assert (t["split"] == "val").sum() == 15  # a quarter of the 60 others, one gene per group


def test_test_chromosomes_errors(tmp_path):
    genes = placed_genes([(c, 1_000_000 + k * 500_000) for c in ("chr1", "chr2") for k in range(10)])
    (tmp_path / "test.txt").write_text("G1\nG2\nG3\n")
    with pytest.raises(GTAError, match="give only one of them") as e:
        targets(tmp_path, genes, test_genes=tmp_path / "test.txt", test_chromosomes=["chr2"])
    assert e.value.inputs == ("test_genes", "test_chromosomes")
    with pytest.raises(GTAError, match=r"test chromosomes \['2'\] have no genes") as e:
        targets(tmp_path, genes, test_chromosomes=["2"])
    assert e.value.inputs == ("test_chromosomes", "features")
    with pytest.raises(GTAError, match="the train split is empty") as e:
        targets(tmp_path, genes, test_chromosomes=["chr1", "chr2"])
    assert e.value.inputs == ("test_chromosomes", "table")
    assert not (tmp_path / "t.tsv").exists()


# ----------------------------------------------------------------------------- seeds and order


def test_grouped_splits_are_seeded_and_order_free():
    genes = demo_genes()
    ids = genes["gene_id"].to_numpy()
    groups = window_groups(ids, genes["chrom"], genes["tss"], BIN, "genome")
    split = assign_splits(ids, None, 0.2, 0.2, 0, groups)
    perm = np.random.default_rng(0).permutation(len(ids))
    assert np.array_equal(assign_splits(ids[perm], None, 0.2, 0.2, 0, groups[perm]), split[perm])
    assert np.array_equal(assign_splits(ids, None, 0.2, 0.2, 0, groups), split)
    assert (assign_splits(ids, None, 0.2, 0.2, 1, groups) != split).sum() > 300
    # without groups every gene is its own: the per-gene splits of before
    assert np.array_equal(assign_splits(ids, None, 0.2, 0.2, 0, ids), assign_splits(ids, None, 0.2, 0.2, 0))
