"""features.h5: merging Sei shards, checking a (precomputed) file's layout, and its gene table."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import pandas as pd

from .. import GTAError
from ..io import atomic_path, require_file
from ..tss import TSS_COLUMNS, chrom_name, detect_naming, fasta_names, mane_select, read_mane, read_tss, \
    resolve_mane, write_tss
from .classes import CLASS_LABELS, N_CLASSES

log = logging.getLogger("gta.sei.features")

REQUIRED_ATTRS = ("bin_size", "n_bins", "tss_bin", "orient")
_STR = h5py.string_dtype("utf-8")


def _strings(ds) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in ds[()]]


def merge_shards(tss: str | Path, shards: Sequence[str | Path], out: str | Path,
                 max_mostly_n_fraction: float | None = None) -> Path:
    """Write features.h5 (CONTRACT section 3) in tss.tsv order from complete shard files, atomically.

    More than `max_mostly_n_fraction` of the genes with a mostly-N window (window.max_mostly_n_fraction)
    is an error. Afterwards, shard files beside the given ones that are not in the set (left by an
    earlier sei.shards setting) are removed.
    """
    genes = read_tss(tss)
    n = len(genes)
    if not shards:
        raise GTAError("no Sei shard files to merge")
    features = None
    filled = np.zeros(n, bool)
    n_fraction = np.zeros(n, np.float32)
    attrs0 = None
    for path in shards:
        require_file(path, "Sei shard", "rerun the predict_sei rule")
        with h5py.File(path, "r") as f:
            a = dict(f.attrs)
            if not a.get("complete") or int(a["done"]) != len(f["row"]):
                raise GTAError(f"Sei shard {path} is incomplete ({a.get('done')} of {len(f['row'])} genes)")
            if int(a["n_genes_total"]) != n:
                raise GTAError(f"Sei shard {path} was made from a gene table of {a['n_genes_total']} genes, "
                               f"but {tss} has {n}; rerun the predict_sei rule")
            keys = ("n_bins", "bin_size", "orient", "grid", "shards", "precision", "reverse_complement")
            if attrs0 is None:
                attrs0 = a
                features = np.zeros((n, int(a["n_bins"]), N_CLASSES), np.float16)
            elif any(str(a[k]) != str(attrs0[k]) for k in keys):
                raise GTAError(f"Sei shard {path} was made with other settings than {shards[0]} "
                               f"({ {k: a[k] for k in keys} } vs { {k: attrs0[k] for k in keys} })")
            rows = f["row"][()]
            if (rows < 0).any() or (rows >= n).any() or filled[rows].any():
                raise GTAError(f"Sei shard {path} has rows outside the gene table or already filled by another shard")
            if not np.array_equal(f["gene_id"][()], genes["gene_id"].to_numpy()[rows]):
                raise GTAError(f"Sei shard {path} holds other genes than {tss}; rerun the predict_sei rule")
            features[rows] = f["features"][()]
            if "n_fraction" in f:
                n_fraction[rows] = f["n_fraction"][()]
            filled[rows] = True
    if not filled.all():
        raise GTAError(f"the Sei shards cover {int(filled.sum())} of {n} genes; expected "
                       f"{attrs0['shards']} shards, got {len(shards)}")
    _check_mostly_n(genes, n_fraction, attrs0, max_mostly_n_fraction)
    write_features(out, features, genes["gene_id"].to_numpy(np.int64), list(genes["symbol"]),
                   bin_size=int(attrs0["bin_size"]), orient=str(attrs0["orient"]), grid=str(attrs0["grid"]),
                   extra={k: attrs0[k] for k in ("sei_channels", "sei_targets", "reverse_complement", "precision")
                          if k in attrs0})
    log.info("wrote %s: %d genes x %d bins x %d classes from %d shards", out, n, features.shape[1], N_CLASSES,
             len(shards))
    remove_stale_shards(shards)
    return Path(out)


def _check_mostly_n(genes: pd.DataFrame, n_fraction: np.ndarray, attrs: dict, limit: float | None) -> None:
    from .inference import MOSTLY_N

    mostly = n_fraction > MOSTLY_N
    share = float(mostly.mean()) if len(mostly) else 0.0
    fasta = attrs.get("fasta", "the genome FASTA")
    log.info("%d of %d genes (%.1f%%) have a mostly-N window (more than %d%% N bases) in %s", int(mostly.sum()),
             len(mostly), 100 * share, round(100 * MOSTLY_N), fasta)
    if limit is not None and share > limit:
        examples = ", ".join(genes["symbol"].to_numpy()[mostly][:5])
        raise GTAError(f"{int(mostly.sum())} of {len(mostly)} genes ({100 * share:.1f}%) have windows that are more "
                       f"than {round(100 * MOSTLY_N)}% N in the genome FASTA {fasta} (e.g. {examples}), more than "
                       f"window.max_mostly_n_fraction = {limit} allows: their features would be noise. Check that "
                       "genome.fasta is the complete GRCh38 assembly the genes are placed on; raise "
                       "window.max_mostly_n_fraction only if so many gaps are expected")


_SHARD_NAME = re.compile(r"^\.?\d+-of-\d+\.h5(\.partial)?$")


def remove_stale_shards(shards: Sequence[str | Path]) -> list[Path]:
    """Delete shard files ('I-of-N.h5' and their partial files) beside `shards` that are not among them."""
    keep = {Path(p).resolve() for p in shards}
    keep |= {(p.parent / f".{p.name}.partial") for p in keep}
    removed = []
    for folder in {Path(p).resolve().parent for p in shards}:
        for path in folder.iterdir():
            if _SHARD_NAME.match(path.name) and path.resolve() not in keep and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        log.info("removed %d shard files of an earlier sei.shards setting: %s", len(removed),
                 ", ".join(p.name for p in sorted(removed)))
    return removed


def write_features(out: str | Path, features: np.ndarray, gene_id: np.ndarray, symbol: Sequence[str],
                   bin_size: int = 4096, orient: str = "reference", grid: str = "tss", extra: dict | None = None) -> None:
    """Write a features file with the CONTRACT section 3 layout (atomically)."""
    with atomic_path(out, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("features", data=features, chunks=(max(1, min(len(features), 256)),) + features.shape[1:]
                             if len(features) else None)
            f.create_dataset("gene_id", data=np.asarray(gene_id, np.int64))
            f.create_dataset("symbol", data=list(symbol), dtype=_STR)
            f.create_dataset("class_names", data=CLASS_LABELS, dtype=_STR)
            f.attrs.update({"bin_size": bin_size, "n_bins": features.shape[1], "tss_bin": features.shape[1] // 2,
                            "orient": orient, "grid": grid, **(extra or {})})


def check_features(path: str | Path, min_bins: int | None = None) -> dict:
    """Check a features file against the CONTRACT layout; return its attributes, gene ids and symbols.

    Every problem is a GTAError naming the dataset or attribute that is off.
    """
    path = require_file(path, "features file (features.precomputed)", "point features.precomputed at a features.h5")
    where = f"features file {path} (features.precomputed)"
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise GTAError(f"{where} is not a readable HDF5 file: {e}") from e
    with f:
        for name in ("features", "gene_id", "symbol", "class_names"):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise GTAError(f"{where} lacks the dataset '{name}' (layout: CONTRACT section 3)")
        feats = f["features"]
        if feats.ndim != 3 or feats.shape[2] != N_CLASSES:
            raise GTAError(f"{where}: dataset 'features' must be (genes, n_bins, {N_CLASSES}), got {feats.shape}")
        if feats.dtype not in (np.float16, np.float32):
            raise GTAError(f"{where}: dataset 'features' must be float16 or float32, got {feats.dtype}")
        g, n_bins = feats.shape[:2]
        step = max(1, 4_000_000 // max(1, n_bins * N_CLASSES))
        for s in range(0, g, step):
            block = feats[s:s + step]
            bad = ~np.isfinite(block)
            if bad.any():
                i, b, c = (int(v[0]) for v in bad.nonzero())
                raise GTAError(f"{where}: dataset 'features' holds NaN or infinite values (the first at gene row "
                               f"{s + i}, bin {b}, class {CLASS_LABELS[c]}: {block[i, b, c]}); recompute those "
                               "genes' scores, or leave those genes out of the file")
        gid = f["gene_id"]
        if gid.shape != (g,) or not np.issubdtype(gid.dtype, np.integer):
            raise GTAError(f"{where}: dataset 'gene_id' must be integers of shape ({g},), got {gid.dtype} {gid.shape}")
        gene_id = gid[()].astype(np.int64)
        if len(np.unique(gene_id)) != g:
            dup = pd.Series(gene_id)[pd.Series(gene_id).duplicated()].head(5).tolist()
            raise GTAError(f"{where}: dataset 'gene_id' has duplicates, e.g. {dup}")
        if f["symbol"].shape != (g,) or f["symbol"].dtype.kind not in "OS":
            raise GTAError(f"{where}: dataset 'symbol' must be ({g},) strings, got {f['symbol'].dtype} "
                           f"{f['symbol'].shape}")
        names = _strings(f["class_names"])
        if names != CLASS_LABELS:
            raise GTAError(f"{where}: dataset 'class_names' must be the 40 Sei class labels in the official order "
                           f"(PC1, L1, TN1, ...), got {names[:4]}... ({len(names)})")
        attrs = {}
        for key in REQUIRED_ATTRS:
            if key not in f.attrs:
                raise GTAError(f"{where} lacks the attribute '{key}'")
            attrs[key] = f.attrs[key]
        attrs["orient"] = attrs["orient"].decode() if isinstance(attrs["orient"], bytes) else str(attrs["orient"])
        if int(attrs["n_bins"]) != n_bins:
            raise GTAError(f"{where}: attribute 'n_bins' is {attrs['n_bins']} but dataset 'features' has {n_bins} bins")
        if n_bins % 2 == 0:
            raise GTAError(f"{where}: attribute 'n_bins' must be odd (got {n_bins})")
        if int(attrs["tss_bin"]) != n_bins // 2:
            raise GTAError(f"{where}: attribute 'tss_bin' must be n_bins // 2 = {n_bins // 2}, got {attrs['tss_bin']}")
        if attrs["orient"] not in ("reference", "transcript"):
            raise GTAError(f"{where}: attribute 'orient' must be 'reference' or 'transcript', got {attrs['orient']!r}")
        if int(attrs["bin_size"]) < 1:
            raise GTAError(f"{where}: attribute 'bin_size' must be positive, got {attrs['bin_size']}")
        # optional beyond the CONTRACT layout: 'genome' = windows snapped to the genome-wide bin grid
        grid = f.attrs.get("grid", "tss")
        grid = grid.decode() if isinstance(grid, bytes) else str(grid)
        if grid not in ("tss", "genome"):
            raise GTAError(f"{where}: attribute 'grid' must be 'tss' (CONTRACT bins centred on the TSS) or "
                           f"'genome' (bins on the genome-wide grid), got {grid!r}")
        if min_bins is not None and n_bins < min_bins:
            raise GTAError(f"{where}: attribute 'n_bins' is {n_bins}, fewer than the {min_bins} bins "
                           "evaluate.context_bins asks for; lower evaluate.context_bins")
        symbols = _strings(f["symbol"])
    return {"n_genes": g, "n_bins": n_bins, "bin_size": int(attrs["bin_size"]), "orient": attrs["orient"],
            "tss_bin": int(attrs["tss_bin"]), "grid": grid, "gene_id": gene_id, "symbol": symbols}


def tss_from_features(features: str | Path, mane: str, out: str | Path, fasta: str | Path | None = None,
                      min_bins: int | None = None) -> pd.DataFrame:
    """tss.tsv for a precomputed features file: its genes in its order, MANE supplying the other columns.

    Chromosomes are named like `fasta` when given, else 'chr1'-style. A gene id absent from MANE Select is
    an error.
    """
    info = check_features(features, min_bins)
    sel = mane_select(read_mane(resolve_mane(mane))).set_index("gene_id")
    ids = info["gene_id"]
    absent = [int(i) for i in ids if i not in sel.index]
    if absent:
        raise GTAError(f"features file {features} (features.precomputed): {len(absent)} gene ids of dataset "
                       f"'gene_id' are not MANE Select genes on the primary assembly, e.g. {absent[:5]}; "
                       "the file must hold NCBI GeneIDs of MANE Select genes (or set genes.mane_summary)")
    naming = "ucsc"
    if fasta is not None and Path(fasta).is_file():
        naming = detect_naming(fasta_names(fasta))
    elif fasta is not None:
        log.warning("genome.fasta %s not found; naming chromosomes 'chr1'-style", fasta)
    table = sel.loc[ids].reset_index()
    table["chrom"] = [chrom_name(c, naming) for c in table["chrom"]]
    differ = [(s, m) for s, m in zip(info["symbol"], table["symbol"]) if s and s != m]
    if differ:
        log.warning("%d symbols in %s differ from MANE (e.g. %s); using MANE's", len(differ), features, differ[:3])
    write_tss(table[TSS_COLUMNS], out)
    log.info("wrote %s: %d genes from %s (%d bins of %d bp, orient %s)", out, len(table), features,
             info["n_bins"], info["bin_size"], info["orient"])
    return table[TSS_COLUMNS]
