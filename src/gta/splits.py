"""Train/validation/test splits of the genes and the nested training subsets of a training-set-size sweep.

Both are seeded and depend on each gene's GeneID only, never on the genes' order. Genes whose windows
are (nearly) the same input go to the same split together (`window_groups`), so no test gene has a
twin among the training or validation genes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from . import GTAError

SPLITS = ("train", "val", "test")


def _rank_key(seed: int, stage: str, gene_ids: np.ndarray) -> np.ndarray:
    """A seeded pseudo-random 64-bit key per gene, independent of the genes' order."""
    keys = [
        int.from_bytes(hashlib.blake2b(f"{seed}:{stage}:{int(g)}".encode(), digest_size=8).digest(), "little")
        for g in gene_ids
    ]
    return np.array(keys, dtype=np.uint64)


def window_groups(
    gene_ids: Sequence[int], chrom: Sequence[str], tss: Sequence[int], bin_size: int, grid: str = "tss"
) -> np.ndarray:
    """Per gene, the smallest GeneID of its window group: genes on one chromosome whose central bins start
    at most one bin apart are linked (their windows are the same, or the same shifted by at most one bin),
    and a group is a connected component of these links (A~B and B~C put A and C together however far
    apart A and C are). This covers genes that share their central bin and genes whose TSSs lie within
    bin_size of each other, on either grid. Independent of the genes' order.
    """
    from .genome import window_start

    ids = np.asarray(gene_ids, dtype=np.int64)
    chrom = np.asarray(chrom, dtype=str)
    start = window_start(np.asarray(tss, dtype=np.int64), 1, bin_size, grid)  # the central bin's first base
    if not len(ids) == len(chrom) == len(start):
        raise GTAError("window_groups: gene_ids, chrom and tss must have one entry per gene", input="tss")
    order = np.lexsort((ids, start, chrom))
    new = np.ones(len(ids), bool)  # a sorted sweep: a group ends where the chromosome changes or a gap > bin_size
    new[1:] = (chrom[order][1:] != chrom[order][:-1]) | (np.diff(start[order]) > bin_size)
    component = np.empty(len(ids), np.int64)
    component[order] = np.cumsum(new)
    return pd.Series(ids).groupby(component).transform("min").to_numpy(np.int64)


def _take_fraction(groups: np.ndarray, fraction: float, seed: int, stage: str) -> np.ndarray:
    """Boolean mask of whole groups (`groups`: a label per gene, the group's smallest GeneID) holding about
    round(fraction * n) of the n genes: groups are taken in a seeded order while the middle of the next
    group stays below that count (exactly that count when every group is one gene); at least one group
    and at most all but one when there are two or more groups."""
    labels, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    k = int(round(fraction * len(groups)))
    order = np.lexsort((labels, _rank_key(seed, stage, labels)))
    ordered = sizes[order]
    take = int(np.count_nonzero(np.cumsum(ordered) - ordered / 2 < k))
    if len(labels) >= 2:
        take = min(max(take, 1), len(labels) - 1)
    chosen = np.zeros(len(labels), bool)
    chosen[order[:take]] = True
    return chosen[inverse]


def assign_splits(
    gene_ids: Sequence[int],
    test_ids: Iterable[int] | None = None,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    seed: int = 0,
    groups: Sequence[int] | None = None,
) -> np.ndarray:
    """'train' / 'val' / 'test' per gene, deterministic for a seed and independent of gene order.

    `groups` labels each gene with its group's smallest GeneID (`window_groups`; default: every gene its
    own group); a group always lands in one split. `test_ids` are the test genes, and every gene grouped
    with one of them is a test gene too; without them a seeded `test_fraction` of the genes is held out,
    by group. The rest is split by a seeded `val_fraction`, by group, into validation and training genes.
    """
    ids = np.asarray(gene_ids, dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise GTAError("assign_splits: gene ids must be unique")
    groups = ids if groups is None else np.asarray(groups, dtype=np.int64)
    if len(groups) != len(ids):
        raise GTAError("assign_splits: groups must have one label per gene", input="groups")
    split = np.full(len(ids), "train", dtype=object)
    if test_ids is None:
        test = _take_fraction(groups, test_fraction, seed, "test")
    else:
        listed = np.isin(ids, np.fromiter(test_ids, np.int64))
        test = np.isin(groups, groups[listed])
    split[test] = "test"
    rest = np.flatnonzero(~test)
    val = _take_fraction(groups[rest], val_fraction, seed, "val")
    split[rest[val]] = "val"
    return split.astype(str)


def train_subset(gene_ids: Sequence[int], fraction: float, seed: int = 0) -> np.ndarray:
    """Mask of the training genes kept at `fraction` (a training-set-size sweep): the first
    round(fraction * n) genes (at least 2) in a seeded order of their GeneIDs.

    The order depends on the seed and each GeneID only, so the subsets are nested (a smaller
    fraction keeps a subset of a larger one's genes) and fraction 1.0 keeps every gene.
    """
    ids = np.asarray(gene_ids, dtype=np.int64)
    if not 0.0 < fraction <= 1.0:
        raise GTAError(f"train_fraction must be in (0, 1], got {fraction}", input="train_fraction")
    if fraction >= 1.0:
        return np.ones(len(ids), bool)
    k = min(len(ids), max(2, int(round(fraction * len(ids)))))
    order = np.lexsort((ids, _rank_key(seed, "train_fraction", ids)))
    mask = np.zeros(len(ids), bool)
    mask[order[:k]] = True
    return mask
