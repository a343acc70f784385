"""Train/validation/test splits of the genes and the nested training subsets of a training-set-size sweep.

Both are seeded and depend on each gene's GeneID only, never on the genes' order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from . import GTAError

SPLITS = ("train", "val", "test")


def _rank_key(seed: int, stage: str, gene_ids: np.ndarray) -> np.ndarray:
    """A seeded pseudo-random 64-bit key per gene, independent of the genes' order."""
    keys = [
        int.from_bytes(hashlib.blake2b(f"{seed}:{stage}:{int(g)}".encode(), digest_size=8).digest(), "little")
        for g in gene_ids
    ]
    return np.array(keys, dtype=np.uint64)


def _take_fraction(gene_ids: np.ndarray, fraction: float, seed: int, stage: str) -> np.ndarray:
    """Boolean mask of round(fraction * n) genes (at least 1 and at most n - 1 when n >= 2)."""
    n = len(gene_ids)
    k = int(round(fraction * n))
    if n >= 2:
        k = min(max(k, 1), n - 1)
    order = np.lexsort((gene_ids, _rank_key(seed, stage, gene_ids)))
    mask = np.zeros(n, bool)
    mask[order[:k]] = True
    return mask


def assign_splits(
    gene_ids: Sequence[int],
    test_ids: Iterable[int] | None = None,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> np.ndarray:
    """'train' / 'val' / 'test' per gene, deterministic for a seed and independent of gene order.

    `test_ids` are the test genes; without them a seeded `test_fraction` is held out. The rest is
    split by a seeded `val_fraction` into validation and training genes.
    """
    ids = np.asarray(gene_ids, dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise GTAError("assign_splits: gene ids must be unique")
    split = np.full(len(ids), "train", dtype=object)
    if test_ids is None:
        test = _take_fraction(ids, test_fraction, seed, "test")
    else:
        test = np.isin(ids, np.fromiter(test_ids, np.int64))
    split[test] = "test"
    rest = np.flatnonzero(~test)
    val = _take_fraction(ids[rest], val_fraction, seed, "val")
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
