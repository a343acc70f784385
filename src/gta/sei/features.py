"""features.h5 from the Sei shards (merge_features), and the gene table of a precomputed features file.

The features file's layout, writer and validator live in gta.formats (docs/formats.md, features.h5);
`write_features` and `check_features` are imported from there and stay importable from here.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from collections.abc import Sequence

import h5py
import numpy as np
import pandas as pd

from .. import GTAError
from ..formats import FASTA_ATTR, SEI_ATTRS, check_features, read_gene_coords, write_features  # noqa: F401
from ..io import require_file
from ..provenance import check_gene_windows, merge_fasta_sha256
from ..tss import (
    TSS_COLUMNS,
    chrom_name,
    detect_naming,
    fasta_names,
    mane_select,
    read_mane,
    read_tss,
    resolve_mane,
    write_tss,
)
from .classes import N_CLASSES

log = logging.getLogger("gta.sei.features")

# shard attributes that must agree between the shards of one merge
SHARD_SETTINGS = (
    "n_bins",
    "bin_size",
    "orient",
    "grid",
    "shards",
    "precision",
    "reverse_complement",
    "sei_checkpoint_sha256",
    "sei_projection_sha256",
)


def merge_features(
    tss: str | Path, shards: Sequence[str | Path], out: str | Path, max_mostly_n_fraction: float | None = None
) -> Path:
    """Stage merge_features (rule, `gta merge-features`): write features.h5 (docs/formats.md, features.h5) in
    tss.tsv order from complete shard files, atomically.

    More than `max_mostly_n_fraction` of the genes with a mostly-N window is an error. Afterwards, shard
    files beside the given ones that are not in the set (left by an earlier run with another number of
    shards) are removed.

    Args:
        tss: tss.tsv (gene order of the output)
        shards: complete shard files
        out: output features.h5
        max_mostly_n_fraction: largest share of genes whose window is more than half N
    """
    genes = read_tss(tss)
    if not shards:
        raise GTAError("no Sei shard files to merge", input="shards")
    features, n_fraction, attrs, coords = _read_shards(genes, tss, shards)
    attrs0 = attrs[0]
    _check_mostly_n(genes, n_fraction, attrs0, max_mostly_n_fraction)
    fasta = merge_fasta_sha256([(str(p), a.get(FASTA_ATTR)) for p, a in zip(shards, attrs, strict=True)])
    write_features(
        out,
        features,
        genes["gene_id"].to_numpy(np.int64),
        list(genes["symbol"]),
        bin_size=int(attrs0["bin_size"]),
        orient=str(attrs0["orient"]),
        grid=str(attrs0["grid"]),
        extra={k: attrs0[k] for k in SEI_ATTRS if k in attrs0} | ({FASTA_ATTR: fasta} if fasta else {}),
        coords=genes if coords else None,
    )
    log.info(
        "wrote %s: %d genes x %d bins x %d classes from %d shards",
        out,
        len(genes),
        features.shape[1],
        N_CLASSES,
        len(shards),
    )
    remove_stale_shards(shards)
    return Path(out)


def _read_shards(
    genes: pd.DataFrame, tss: str | Path, shards: Sequence[str | Path]
) -> tuple[np.ndarray, np.ndarray, list[dict], bool]:
    """(features (genes, n_bins, 40) float16, n_fraction (genes,), each shard's attrs, whether every shard
    records its genes' coordinates) from every shard; each gene must come from exactly one shard, and a
    shard's recorded coordinates must be those of `tss`."""
    n = len(genes)
    features = None
    filled = np.zeros(n, bool)
    n_fraction = np.zeros(n, np.float32)
    attrs0 = None
    every, coords = [], True
    for path in shards:
        require_file(path, "Sei shard", "rerun predict_sei", input="shards")
        with h5py.File(path, "r") as f:
            a = dict(f.attrs)
            _check_shard_complete(f, a, path)
            _check_shard_table(a, path, tss, n)
            if attrs0 is None:
                attrs0 = a
                features = np.zeros((n, int(a["n_bins"]), N_CLASSES), np.float16)
            else:
                _check_shard_settings(a, attrs0, path, shards[0])
            rows = _shard_rows(f, genes, filled, path, tss)
            recorded = read_gene_coords(f)
            coords &= recorded is not None
            window = {"genes": recorded, "n_bins": int(a["n_bins"]), "bin_size": int(a["bin_size"]), "grid": a["grid"]}
            check_gene_windows(path, genes, tss, window, ("shards", "tss"), f"Sei shard {path}")
            every.append(a)
            features[rows] = f["features"][()]
            if "n_fraction" in f:
                n_fraction[rows] = f["n_fraction"][()]
            filled[rows] = True
    _check_coverage(filled, attrs0, shards)
    return features, n_fraction, every, coords


def _check_shard_complete(f: h5py.File, attrs: dict, path: str | Path) -> None:
    """The shard is marked complete and holds all its genes."""
    if not attrs.get("complete") or int(attrs["done"]) != len(f["row"]):
        raise GTAError(
            f"Sei shard {path} is incomplete ({attrs.get('done')} of {len(f['row'])} genes); rerun predict_sei",
            input="shards",
        )


def _check_shard_table(attrs: dict, path: str | Path, tss: str | Path, n: int) -> None:
    """The shard was made from a gene table as long as `tss`."""
    if int(attrs["n_genes_total"]) != n:
        raise GTAError(
            f"Sei shard {path} was made from a gene table of {attrs['n_genes_total']} genes, "
            f"but {tss} has {n}; rerun predict_sei",
            input=("shards", "tss"),
        )


def _check_shard_settings(attrs: dict, first: dict, path: str | Path, first_path: str | Path) -> None:
    """The shard's SHARD_SETTINGS are the first shard's."""
    keys = SHARD_SETTINGS
    if any(str(attrs.get(k)) != str(first.get(k)) for k in keys):
        raise GTAError(
            f"Sei shard {path} was made with other settings than {first_path} "
            f"({ {k: attrs.get(k) for k in keys} } vs { {k: first.get(k) for k in keys} })",
            input="shards",
        )


def _shard_rows(f: h5py.File, genes: pd.DataFrame, filled: np.ndarray, path: str | Path, tss: str | Path) -> np.ndarray:
    """The gene-table rows the shard fills: inside the table, not filled yet, holding the table's genes."""
    n = len(genes)
    rows = f["row"][()]
    if (rows < 0).any() or (rows >= n).any() or filled[rows].any():
        raise GTAError(
            f"Sei shard {path} has rows outside the gene table or already filled by another shard",
            input=("shards", "tss"),
        )
    if not np.array_equal(f["gene_id"][()], genes["gene_id"].to_numpy()[rows]):
        raise GTAError(f"Sei shard {path} holds other genes than {tss}; rerun predict_sei", input=("shards", "tss"))
    return rows


def _check_coverage(filled: np.ndarray, attrs0: dict, shards: Sequence[str | Path]) -> None:
    """Every gene of the table came from a shard."""
    if not filled.all():
        raise GTAError(
            f"the Sei shards cover {int(filled.sum())} of {len(filled)} genes; expected "
            f"{attrs0['shards']} shards, got {len(shards)}",
            input="shards",
        )


def _check_mostly_n(genes: pd.DataFrame, n_fraction: np.ndarray, attrs: dict, limit: float | None) -> None:
    from .inference import MOSTLY_N

    mostly = n_fraction > MOSTLY_N
    share = float(mostly.mean()) if len(mostly) else 0.0
    fasta = attrs.get("fasta", "the genome FASTA")
    log.info(
        "%d of %d genes (%.1f%%) have a mostly-N window (more than %d%% N bases) in %s",
        int(mostly.sum()),
        len(mostly),
        100 * share,
        round(100 * MOSTLY_N),
        fasta,
    )
    if limit is not None and share > limit:
        examples = ", ".join(genes["symbol"].to_numpy()[mostly][:5])
        raise GTAError(
            f"{int(mostly.sum())} of {len(mostly)} genes ({100 * share:.1f}%) have windows that are more "
            f"than {round(100 * MOSTLY_N)}% N in the genome FASTA {fasta} (e.g. {examples}), more than "
            f"the largest share allowed, {limit}: their features would be noise. Check that the FASTA "
            "is the complete GRCh38 assembly the genes are placed on; allow a larger share only if so "
            "many gaps are expected",
            input="max_mostly_n_fraction",
        )


_SHARD_NAME = re.compile(r"^\.?\d+-of-\d+\.h5(\.partial)?$")


def remove_stale_shards(shards: Sequence[str | Path], pattern: re.Pattern = _SHARD_NAME) -> list[Path]:
    """Delete shard files ('I-of-N.h5' and their partial files; names matching `pattern`) beside `shards` that
    are not among them: the files of an earlier number of shards (or chunks), which no rule reads again."""
    keep = {Path(p).resolve() for p in shards}
    keep |= {(p.parent / f".{p.name}.partial") for p in keep}
    removed = []
    for folder in {Path(p).resolve().parent for p in shards}:
        for path in folder.iterdir():
            if pattern.match(path.name) and path.resolve() not in keep and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        log.info(
            "removed %d shard files of an earlier number of shards: %s",
            len(removed),
            ", ".join(p.name for p in sorted(removed)),
        )
    return removed


def tss_from_features(
    features: str | Path, mane: str, out: str | Path, fasta: str | Path | None = None, min_bins: int | None = None
) -> pd.DataFrame:
    """Stage tss_from_features (rule, `gta tss-from-features`): tss.tsv for a precomputed features file: its
    genes in its order, MANE supplying the other columns.

    Chromosomes are named like `fasta` when given, else 'chr1'-style. A gene id absent from MANE Select is
    an error.

    Args:
        features: precomputed features.h5 (checked first)
        mane: MANE summary file or 'packaged'
        out: output tss.tsv
        fasta: FASTA whose naming (chr1 vs 1) to use; none or '' = 'chr1'-style
        min_bins: fail if the file has fewer bins
    """
    info = check_features(features, min_bins)
    sel = mane_select(read_mane(resolve_mane(mane))).set_index("gene_id")
    ids = info["gene_id"]
    absent = [int(i) for i in ids if i not in sel.index]
    if absent:
        raise GTAError(
            f"features file {features}: {len(absent)} gene ids of dataset "
            f"'gene_id' are not MANE Select genes on the primary assembly, e.g. {absent[:5]}; "
            "the file must hold NCBI GeneIDs of MANE Select genes (or use the MANE summary it was made with)",
            input=("features", "mane"),
        )
    naming = "ucsc"
    if fasta is not None and Path(fasta).is_file():
        naming = detect_naming(fasta_names(fasta))
    elif fasta is not None:
        log.warning("genome FASTA %s not found; naming chromosomes 'chr1'-style", fasta)
    table = sel.loc[ids].reset_index()
    table["chrom"] = [chrom_name(c, naming) for c in table["chrom"]]
    differ = [(s, m) for s, m in zip(info["symbol"], table["symbol"], strict=False) if s and s != m]
    if differ:
        log.warning("%d symbols in %s differ from MANE (e.g. %s); using MANE's", len(differ), features, differ[:3])
    write_tss(table[TSS_COLUMNS], out)
    log.info(
        "wrote %s: %d genes from %s (%d bins of %d bp, orient %s)",
        out,
        len(table),
        features,
        info["n_bins"],
        info["bin_size"],
        info["orient"],
    )
    return table[TSS_COLUMNS]
