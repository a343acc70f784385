"""The files that pass between the workflow's stages: one reader, writer and validator per artifact.

docs/formats.md is the written contract; this module is its code. Torch-free (numpy, pandas, h5py),
so every light step may import it. Sections, in workflow order:

- tss.tsv (`TSS_COLUMNS`, `read_tss`, `write_tss`, `check_tss`), written by `gta mane-tss` / `gta tss-from-features`;
- features.h5 (`write_features`, `check_features`, `FeaturesFile` and the stage readers `read_feature_genes`,
  `read_feature_classes`, `load_features`, `read_kept_scores`, `features_bins`, `feature_window`,
  `read_feature_cache`, `read_provenance`), written by `gta merge-features` (gta.sei.features.merge_features);
- targets.tsv and simulation.tsv (`TARGET_COLUMNS`, `read_targets`, `write_targets`, `read_simulation`);
- predictions (`PREDICTION_COLUMNS`, `read_predictions`, `write_predictions`);
- results tables (`TABLE1_COLUMNS`, `TABLE2_COLUMNS`, `TABLE3_COLUMNS`, `TRAIN_SIZE_COLUMNS`,
  `PROMPT_CONTROL_COLUMNS`, `write_table`;
  `SEED_COLUMNS`, `DELTA_COLUMNS`: the columns of models trained once per seed).

Owned elsewhere and only pointed at here: the Sei shard files (gta.sei.inference writes them,
gta.sei.features.merge_features reads them), annotations.jsonl and prompts.jsonl (gta.annotations), the
trained model folder (gta.pretrained: `save_model` / `load_model`, docs/model-folder.md), the variant
scores (gta.scoring.SCORE_COLUMNS) and `gta predict-genes`' table (gta.predict.PREDICT_COLUMNS).

h5py is imported inside the functions that need it, so importing this module (and gta.tss) stays cheap.
"""

from __future__ import annotations

import logging
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import GTAError
from .io import atomic_path, require_file
from .sei.classes import CLASS_LABELS, KEPT, N_CLASSES

log = logging.getLogger("gta.formats")

FEATURES_DOC = "see docs/formats.md (features.h5)"


def _text(value):
    """An HDF5 string (bytes or str) as str; anything else unchanged."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _strings(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


# ============================================================================= tss.tsv

TSS_COLUMNS = ["gene_id", "symbol", "ensembl_gene", "name", "chrom", "tss", "strand"]
TSS_DTYPES = {
    "gene_id": "int64",
    "tss": "int64",
    "chrom": str,
    "symbol": str,
    "name": str,
    "ensembl_gene": str,
    "strand": str,
}


def check_tss(table: pd.DataFrame, path: str | Path, input: str = "tss") -> pd.DataFrame:
    """A TSS table must have every column of TSS_COLUMNS (more are allowed); `input`: GTAError.input."""
    missing = [c for c in TSS_COLUMNS if c not in table.columns]
    if missing:
        raise GTAError(
            f"TSS table {path} lacks columns {missing}; expected {TSS_COLUMNS} "
            "(see docs/formats.md (tss.tsv); rerun mane_tss)",
            input=input,
        )
    return table


def read_tss(path: str | Path, input: str = "tss") -> pd.DataFrame:
    """Read `tss.tsv` with the right dtypes (empty text stays '', never NaN); `input`: the caller's name for it."""
    path = require_file(path, "TSS table", "make it with mane_tss", input=input)
    return check_tss(pd.read_csv(path, sep="\t", dtype=TSS_DTYPES, keep_default_na=False), path, input)


def write_tss(genes: pd.DataFrame, path: str | Path) -> None:
    """Write `tss.tsv` (the TSS_COLUMNS, in that order) atomically."""
    with atomic_path(path) as tmp:
        genes[TSS_COLUMNS].to_csv(tmp, sep="\t", index=False)


def gene_strands(tss: str | Path, gene_id: Sequence[int], what: str = "genes") -> np.ndarray:
    """The strand ('+' or '-') of each of `gene_id` from a TSS table; every gene must be in it."""
    genes = read_tss(tss).drop_duplicates("gene_id").set_index("gene_id")["strand"]
    absent = [int(g) for g in gene_id if g not in genes.index]
    if absent:
        raise GTAError(
            f"{len(absent)} {what} are missing from the TSS table {tss} (first: {absent[:5]}); give the tss.tsv "
            "the features file was made from",
            input="tss",
        )
    return genes.loc[list(gene_id)].to_numpy(str)


# ============================================================================= features.h5

FEATURES_DATASETS = ("features", "gene_id", "symbol", "class_names")
REQUIRED_ATTRS = ("bin_size", "n_bins", "tss_bin", "orient")
ORIENTS = ("reference", "transcript")
GRIDS = ("tss", "genome")
# attributes merge_features copies from the Sei shards when they have them
SEI_ATTRS = (
    "sei_channels",
    "sei_targets",
    "reverse_complement",
    "precision",
    "sei_checkpoint_sha256",
    "sei_projection_sha256",
)
# provenance (gta.provenance): the FASTA fingerprint attribute (JSON {chromosome: sha256}) and the datasets
# of each gene's coordinates, from tss.tsv
FASTA_ATTR = "fasta_sha256"
GENE_DATASETS = ("chrom", "tss", "strand")
WINDOW_ATTRS = ("bin_size", "grid", "orient")  # recorded in a model folder (feature_window)
FEATURES_HINT = "compute it with predict_sei and merge_features, or give a features.h5 computed elsewhere"
_BLOCK_ELEMENTS = 4_000_000  # values read at once when scanning the whole 'features' dataset


def write_features(
    out: str | Path,
    features: np.ndarray,
    gene_id: np.ndarray,
    symbol: Sequence[str],
    bin_size: int = 4096,
    orient: str = "reference",
    grid: str = "tss",
    extra: dict | None = None,
    coords: pd.DataFrame | None = None,
) -> None:
    """Write a features file (docs/formats.md, features.h5) atomically.

    `features` (genes, n_bins, 40); n_bins and tss_bin = n_bins // 2 are taken from its shape, `extra`
    attributes (the SEI_ATTRS, provenance) are added as given; `coords` (the genes' rows of tss.tsv, in
    order) become the GENE_DATASETS.
    """
    import h5py

    text = h5py.string_dtype("utf-8")
    with atomic_path(out, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset(
            "features",
            data=features,
            chunks=(max(1, min(len(features), 256)),) + features.shape[1:] if len(features) else None,
        )
        f.create_dataset("gene_id", data=np.asarray(gene_id, np.int64))
        f.create_dataset("symbol", data=list(symbol), dtype=text)
        f.create_dataset("class_names", data=CLASS_LABELS, dtype=text)
        if coords is not None:
            write_gene_coords(f, coords)
        f.attrs.update(
            {
                "bin_size": bin_size,
                "n_bins": features.shape[1],
                "tss_bin": features.shape[1] // 2,
                "orient": orient,
                "grid": grid,
                **(extra or {}),
            }
        )


def write_gene_coords(f, genes: pd.DataFrame) -> None:
    """The GENE_DATASETS of an open features or shard file: each gene's chrom, tss and strand (tss.tsv's)."""
    import h5py

    text = h5py.string_dtype("utf-8")
    f.create_dataset("chrom", data=[str(c) for c in genes["chrom"]], dtype=text)
    f.create_dataset("tss", data=genes["tss"].to_numpy(np.int64))
    f.create_dataset("strand", data=[str(c) for c in genes["strand"]], dtype=text)


def read_gene_coords(f) -> pd.DataFrame | None:
    """(gene_id, chrom, tss, strand) recorded in an open features or shard file, None when it has none."""
    if not all(k in f for k in GENE_DATASETS):
        return None
    return pd.DataFrame(
        {
            "gene_id": f["gene_id"][()].astype(np.int64),
            "chrom": _strings(f["chrom"][()]),
            "tss": f["tss"][()].astype(np.int64),
            "strand": _strings(f["strand"][()]),
        }
    )


class FeaturesFile:
    """A features file open for reading: `with FeaturesFile(path) as ff: ...`.

    `what` and `hint` word the error for a missing file (gta.io.require_file); `input` is the input the
    file came as (GTAError.input). The readers below are what the stages call; this class is their
    common ground.
    """

    def __init__(
        self, path: str | Path, what: str = "features file", hint: str = FEATURES_HINT, input: str = "features"
    ):
        import h5py

        self.input = input
        self.path = require_file(path, what, hint, input=input)
        self.file = h5py.File(self.path, "r")
        self._attrs: dict | None = None

    def __enter__(self) -> FeaturesFile:
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    @property
    def attrs(self) -> dict:
        """All attributes, HDF5 strings decoded to str."""
        if self._attrs is None:
            self._attrs = {k: _text(v) for k, v in self.file.attrs.items()}
        return self._attrs

    def require(self, datasets: Sequence[str] = (), attrs: Sequence[str] = ()) -> FeaturesFile:
        """Error naming the first of `datasets`, then of `attrs`, that the file lacks."""
        for key in datasets:
            if key not in self.file:
                raise GTAError(f"features file {self.path} lacks dataset {key!r}; {FEATURES_DOC}", input=self.input)
        for key in attrs:
            if key not in self.attrs:
                raise GTAError(f"features file {self.path} lacks attribute {key!r}; {FEATURES_DOC}", input=self.input)
        return self

    def gene_id(self) -> np.ndarray:
        return self.file["gene_id"][:].astype(np.int64)

    def symbol(self) -> list[str]:
        return _strings(self.file["symbol"][:])

    def scores(self, bins: slice = slice(None), classes: Sequence[int] | None = None) -> np.ndarray:
        """float32 scores (genes, bins, classes) of a slice of bins and some classes (all when None)."""
        x = self.file["features"][:, bins]
        return (x if classes is None else x[:, :, list(classes)]).astype(np.float32)

    def class_blocks(self, classes: Sequence[int]) -> np.ndarray:
        """float32 scores (genes, all bins, len(classes)) of some classes, read a block of genes at a time."""
        ds = self.file["features"]
        if ds.ndim != 3 or ds.shape[2] != N_CLASSES:
            raise GTAError(
                f"features file {self.path}: dataset 'features' must be (genes, n_bins, {N_CLASSES}), got {ds.shape}",
                input=self.input,
            )
        out = np.empty((ds.shape[0], ds.shape[1], len(classes)), np.float32)
        step = max(1, _BLOCK_ELEMENTS // max(1, ds.shape[1] * N_CLASSES))
        for s in range(0, ds.shape[0], step):
            out[s : s + step] = ds[s : s + step][:, :, list(classes)]
        return out


def centred_slice(stored: int, n: int, input: str = "n_bins", stored_input: str | None = None) -> slice:
    """Bins of an N-bin window inside the stored window (both centred on the TSS bin).

    `input` names where `n` comes from, `stored_input` where the stored bins do (GTAError.input)."""
    if n < 1 or n % 2 == 0:
        raise GTAError(f"a window of {n} bins has no middle bin for the TSS; use an odd number of bins", input=input)
    if n > stored:
        raise GTAError(
            f"{n} bins asked for, but only {stored} bins are stored; use features with at least {n} bins, "
            "or ask for fewer",
            input=(input, stored_input) if stored_input else input,
        )
    start = stored // 2 - n // 2
    return slice(start, start + n)


def transcript_order(x: np.ndarray, strand: Sequence[str] | None, orient: str, input: str = "strand") -> np.ndarray:
    """Features (genes, N, classes) in transcript order: bin 0 the farthest upstream, TSS bin in the middle.

    GTA models always read their bins in transcript order. A features file in 'reference' orientation
    (bin 0 = leftmost on the + strand) holds a minus-strand gene's upstream bins on the right: those
    genes' bin axis is reversed (a copy; plus-strand genes are unchanged). With 'transcript' orientation
    the bins are already in that order and `x` is returned as it is. Only the bin order changes: the
    shipped configs average Sei's class scores over both strands (sei.reverse_complement), so a bin's
    scores do not depend on the strand it is read on.
    """
    if orient == "transcript":
        return x
    if orient != "reference":
        raise GTAError(f"features orient must be 'reference' or 'transcript', got {orient!r}", input="features")
    if strand is None:
        raise GTAError(
            "the features are in reference orientation: give each gene's strand (from tss.tsv) so that "
            "minus-strand genes are read upstream first",
            input=input,
        )
    strand = np.asarray(strand, dtype=str)
    if strand.shape != (len(x),):
        raise GTAError(f"{len(strand)} strands for {len(x)} genes", input=input)
    bad = ~np.isin(strand, ["+", "-"])
    if bad.any():
        raise GTAError(f"strands must be '+' or '-'; got {sorted(set(strand[bad]))[:5]}", input=input)
    minus = strand == "-"
    out = np.array(x, copy=True)
    out[minus] = out[minus, ::-1]
    return out


# ----------------------------------------------------------------------------- stage readers


def read_feature_genes(path: str | Path) -> tuple[np.ndarray, dict]:
    """(gene_id, decoded attrs) of a features file; it must have n_bins, tss_bin and bin_size (targets, oracle)."""
    with FeaturesFile(path) as ff:
        ff.require(datasets=("features", "gene_id"), attrs=("n_bins", "tss_bin", "bin_size"))
        return ff.gene_id(), ff.attrs


def read_feature_classes(path: str | Path, classes: Sequence[int]) -> np.ndarray:
    """Scores (genes, bins, len(classes)) float32 of some of the 40 classes, in the order given (simulation)."""
    with FeaturesFile(path) as ff:
        return ff.class_blocks(classes)


def load_features(
    path: str | Path, n_bins: int, bins_input: str = "n_bins"
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(gene_id, symbol, features (genes, n_bins, 33) float32): the centred N-bin slice, kept classes (training).

    `bins_input` is the input `n_bins` comes from (GTAError.input): a parameter, or `model` for a model's bins."""
    with FeaturesFile(path, hint="") as ff:
        ff.require(attrs=("n_bins",))
        sl = centred_slice(int(ff.attrs["n_bins"]), n_bins, bins_input, ff.input)
        return ff.gene_id(), ff.symbol(), ff.scores(sl, KEPT)


def read_kept_scores(path: str | Path, tss_bin_only: bool = False):
    """(gene_id, kept-class scores (genes, bins, 33) float32, tss_bin, n_bins, bin_size, orient) (baselines).

    With `tss_bin_only` the scores hold the TSS bin alone (genes, 1, 33); orient defaults to 'reference'.
    """
    with FeaturesFile(path) as ff:
        ff.require(datasets=("features", "gene_id"), attrs=("tss_bin", "n_bins", "bin_size"))
        a = ff.attrs
        tss_bin, n_bins, bin_size = int(a["tss_bin"]), int(a["n_bins"]), int(a["bin_size"])
        bins = slice(tss_bin, tss_bin + 1) if tss_bin_only else slice(None)
        return ff.gene_id(), ff.scores(bins, KEPT), tss_bin, n_bins, bin_size, str(a.get("orient", "reference"))


def features_bins(path: str | Path) -> tuple[int, int]:
    """(n_bins, bin_size) stored in a features file's attributes."""
    with FeaturesFile(path) as ff:
        ff.require(attrs=("n_bins", "bin_size"))
        return int(ff.attrs["n_bins"]), int(ff.attrs["bin_size"])


def feature_window(path: str | Path) -> dict:
    """How the features file's windows were cut (those of bin_size, grid, orient it has): recorded in a model folder."""
    import h5py

    with h5py.File(path, "r") as f:
        return {k: (v.item() if hasattr(v, "item") else str(v)) for k, v in f.attrs.items() if k in WINDOW_ATTRS}


def read_feature_cache(path: str | Path, what: str = "features file to reuse bins from") -> dict:
    """Everything `gta predict-genes` reuses bins from: window attrs (n_bins, bin_size, orient, grid),
    reverse_complement (default True), gene_id and the whole 'features' array as stored."""
    with FeaturesFile(path, what, hint="") as ff:
        ff.require(attrs=("n_bins", "bin_size", "orient", "grid"))
        a = ff.attrs
        return {
            "n_bins": int(a["n_bins"]),
            "bin_size": int(a["bin_size"]),
            "orient": str(a["orient"]),
            "grid": str(a["grid"]),
            "reverse_complement": bool(a.get("reverse_complement", True)),
            "gene_id": ff.gene_id(),
            "features": ff.file["features"][()],
        }


def read_sei_settings(path: str | Path) -> dict:
    """The SEI_ATTRS a features file records (those it has), as stored."""
    with FeaturesFile(path, hint="") as ff:
        return {k: ff.file.attrs[k] for k in SEI_ATTRS if k in ff.file.attrs}


def read_provenance(path: str | Path, input: str = "features") -> dict:
    """What a features file records of its making (docs/formats.md, features.h5, provenance): `fasta_sha256`
    ({chromosome: sha256}), `sei_checkpoint_sha256`, `sei_projection_sha256` (None where absent), `genes`
    (read_gene_coords) and the window attrs n_bins, bin_size, grid."""
    import json

    with FeaturesFile(path, input=input) as ff:
        a = ff.attrs
        fasta = a.get(FASTA_ATTR)
        return {
            FASTA_ATTR: json.loads(fasta) if fasta else None,
            **{k: a.get(k) or None for k in ("sei_checkpoint_sha256", "sei_projection_sha256")},
            "genes": read_gene_coords(ff.file),
            "n_bins": int(a.get("n_bins", 0)),
            "bin_size": int(a.get("bin_size", 0)),
            "grid": str(a.get("grid", "tss")),
        }


# ----------------------------------------------------------------------------- the validator


def check_features(path: str | Path, min_bins: int | None = None) -> dict:
    """Check a (precomputed) features file against docs/formats.md (features.h5).

    Returns n_genes, n_bins, bin_size, orient, tss_bin, grid, gene_id and symbol. Every problem is a
    GTAError naming the dataset or attribute that is off; the checks run in the order below.
    """
    import h5py

    path = require_file(path, "features file", "point it at a features.h5", input="features")
    where = f"features file {path}"
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise GTAError(f"{where} is not a readable HDF5 file: {e}", input="features") from e
    with f:
        _check_datasets(f, where)
        g, n_bins = _check_scores_shape(f["features"], where)
        _check_finite(f["features"], where)
        gene_id = _check_gene_ids(f["gene_id"], g, where)
        _check_symbols(f["symbol"], g, where)
        _check_class_names(f["class_names"], where)
        attrs = _required_attrs(f, where)
        _check_bins(attrs, n_bins, where)
        _check_orient(attrs["orient"], where)
        _check_bin_size(attrs["bin_size"], where)
        grid = _check_grid(f, where)
        _check_min_bins(n_bins, min_bins, where)
        symbols = _strings(f["symbol"][()])
        missing = [k for k in (FASTA_ATTR, "sei_checkpoint_sha256", *GENE_DATASETS) if k not in f.attrs and k not in f]
    if missing:
        log.info(
            "note: %s records no %s (made elsewhere, or before these were recorded): accepted for training, "
            "baselines and evaluation; gta predict-genes does not reuse its bins and gta score-variants refuses it",
            path,
            ", ".join(missing),
        )
    return {
        "n_genes": g,
        "n_bins": n_bins,
        "bin_size": int(attrs["bin_size"]),
        "orient": attrs["orient"],
        "tss_bin": int(attrs["tss_bin"]),
        "grid": grid,
        "gene_id": gene_id,
        "symbol": symbols,
    }


def features_check(features: str, min_bins: int | None = None) -> dict:
    """Stage features-check (`gta features-check`): check a features.h5 against docs/formats.md (features.h5)
    and log its layout.

    Args:
        features: the features.h5 to check
        min_bins: fail if the file has fewer bins
    """
    info = check_features(features, min_bins)
    log.info(
        "%s: %d genes x %d bins of %d bp, orient %s: layout OK",
        features,
        info["n_genes"],
        info["n_bins"],
        info["bin_size"],
        info["orient"],
    )
    return info


def _check_datasets(f, where: str) -> None:
    """Every dataset of FEATURES_DATASETS is there and is a dataset."""
    import h5py

    for name in FEATURES_DATASETS:
        if name not in f or not isinstance(f[name], h5py.Dataset):
            raise GTAError(
                f"{where} lacks the dataset '{name}' (layout: docs/formats.md, features.h5)", input="features"
            )


def _check_scores_shape(feats, where: str) -> tuple[int, int]:
    """'features' is (genes, n_bins, 40) float16 or float32; returns (genes, n_bins)."""
    if feats.ndim != 3 or feats.shape[2] != N_CLASSES:
        raise GTAError(
            f"{where}: dataset 'features' must be (genes, n_bins, {N_CLASSES}), got {feats.shape}", input="features"
        )
    if feats.dtype not in (np.float16, np.float32):
        raise GTAError(f"{where}: dataset 'features' must be float16 or float32, got {feats.dtype}", input="features")
    return feats.shape[0], feats.shape[1]


def _check_finite(feats, where: str) -> None:
    """No NaN or infinite score; the first one found is named (gene row, bin, class)."""
    g, n_bins = feats.shape[:2]
    step = max(1, _BLOCK_ELEMENTS // max(1, n_bins * N_CLASSES))
    for s in range(0, g, step):
        block = feats[s : s + step]
        bad = ~np.isfinite(block)
        if bad.any():
            i, b, c = (int(v[0]) for v in bad.nonzero())
            raise GTAError(
                f"{where}: dataset 'features' holds NaN or infinite values (the first at gene row "
                f"{s + i}, bin {b}, class {CLASS_LABELS[c]}: {block[i, b, c]}); recompute those "
                "genes' scores, or leave those genes out of the file",
                input="features",
            )


def _check_gene_ids(gid, g: int, where: str) -> np.ndarray:
    """'gene_id' is g distinct integers; returns them as int64."""
    if gid.shape != (g,) or not np.issubdtype(gid.dtype, np.integer):
        raise GTAError(
            f"{where}: dataset 'gene_id' must be integers of shape ({g},), got {gid.dtype} {gid.shape}",
            input="features",
        )
    gene_id = gid[()].astype(np.int64)
    if len(np.unique(gene_id)) != g:
        dup = pd.Series(gene_id)[pd.Series(gene_id).duplicated()].head(5).tolist()
        raise GTAError(f"{where}: dataset 'gene_id' has duplicates, e.g. {dup}", input="features")
    return gene_id


def _check_symbols(sym, g: int, where: str) -> None:
    """'symbol' is g strings."""
    if sym.shape != (g,) or sym.dtype.kind not in "OS":
        raise GTAError(
            f"{where}: dataset 'symbol' must be ({g},) strings, got {sym.dtype} {sym.shape}", input="features"
        )


def _check_class_names(ds, where: str) -> None:
    """'class_names' is the 40 Sei class labels in the official order."""
    names = _strings(ds[()])
    if names != CLASS_LABELS:
        raise GTAError(
            f"{where}: dataset 'class_names' must be the 40 Sei class labels in the official order "
            f"(PC1, L1, TN1, ...), got {names[:4]}... ({len(names)})",
            input="features",
        )


def _required_attrs(f, where: str) -> dict:
    """The REQUIRED_ATTRS as stored, 'orient' decoded to str."""
    attrs = {}
    for key in REQUIRED_ATTRS:
        if key not in f.attrs:
            raise GTAError(f"{where} lacks the attribute '{key}'", input="features")
        attrs[key] = f.attrs[key]
    attrs["orient"] = str(_text(attrs["orient"]))
    return attrs


def _check_bins(attrs: dict, n_bins: int, where: str) -> None:
    """n_bins agrees with the dataset and is odd; tss_bin is the centre bin."""
    if int(attrs["n_bins"]) != n_bins:
        raise GTAError(
            f"{where}: attribute 'n_bins' is {attrs['n_bins']} but dataset 'features' has {n_bins} bins",
            input="features",
        )
    if n_bins % 2 == 0:
        raise GTAError(f"{where}: attribute 'n_bins' must be odd (got {n_bins})", input="features")
    if int(attrs["tss_bin"]) != n_bins // 2:
        raise GTAError(
            f"{where}: attribute 'tss_bin' must be n_bins // 2 = {n_bins // 2}, got {attrs['tss_bin']}",
            input="features",
        )


def _check_orient(orient: str, where: str) -> None:
    if orient not in ORIENTS:
        raise GTAError(
            f"{where}: attribute 'orient' must be 'reference' or 'transcript', got {orient!r}", input="features"
        )


def _check_bin_size(bin_size, where: str) -> None:
    if int(bin_size) < 1:
        raise GTAError(f"{where}: attribute 'bin_size' must be positive, got {bin_size}", input="features")


def _check_grid(f, where: str) -> str:
    """The optional 'grid' attribute (default 'tss'): 'tss' or 'genome' (windows snapped to the genome-wide grid)."""
    grid = str(_text(f.attrs.get("grid", "tss")))
    if grid not in GRIDS:
        raise GTAError(
            f"{where}: attribute 'grid' must be 'tss' (bins centred on the TSS) or "
            f"'genome' (bins on the genome-wide grid), got {grid!r}",
            input="features",
        )
    return grid


def _check_min_bins(n_bins: int, min_bins: int | None, where: str) -> None:
    if min_bins is not None and n_bins < min_bins:
        raise GTAError(
            f"{where}: attribute 'n_bins' is {n_bins}, fewer than the {min_bins} bins asked for; "
            f"use features with at least {min_bins} bins, or ask for fewer",
            input=("features", "min_bins"),
        )


# ============================================================================= targets.tsv, simulation.tsv

TARGET_COLUMNS = ["gene_id", "symbol", "value", "split"]
SPLITS = ("train", "val", "test")
SIMULATION_COLUMNS = ["gene_id", "signal"]


def read_targets(path: str | Path) -> pd.DataFrame:
    """Read a targets file (targets.tsv: gene_id, symbol, value, split); value as float64."""
    path = require_file(path, "targets table", "rerun make_targets", input="targets")
    df = pd.read_csv(path, sep="\t", dtype={"gene_id": "int64", "symbol": str, "split": str}, keep_default_na=False)
    check_targets(df, path)
    df["value"] = df["value"].astype(np.float64)
    return df


def target_rows(tgt: pd.DataFrame, gene_id, targets: str | Path, features: str | Path) -> np.ndarray:
    """The row of each gene of the targets table `tgt` (read from `targets`) in a features file's `gene_id`
    (read from `features`), in the table's order; an error names the genes the file lacks."""
    pos = {int(g): i for i, g in enumerate(gene_id)}
    missing = [g for g in tgt["gene_id"] if g not in pos]
    if missing:
        raise GTAError(
            f"{len(missing)} genes of {targets} are not in the features file {features} "
            f"(first: {missing[:5]}); rerun make_targets",
            input=("targets", "features"),
        )
    return np.array([pos[g] for g in tgt["gene_id"]], np.int64)


def check_targets(df: pd.DataFrame, path: str | Path, input: str = "targets") -> None:
    """A targets table has the TARGET_COLUMNS (`input`: GTAError.input)."""
    if not set(TARGET_COLUMNS) <= set(df.columns):
        raise GTAError(f"targets table {path} needs columns {', '.join(TARGET_COLUMNS)}", input=input)


def write_targets(genes: pd.DataFrame, path: str | Path) -> None:
    """Write targets.tsv (the TARGET_COLUMNS; values with 8 significant digits) atomically."""
    with atomic_path(path) as tmp:
        genes[TARGET_COLUMNS].to_csv(tmp, sep="\t", index=False, float_format="%.8g")


def read_simulation(path: str | Path) -> pd.DataFrame:
    """Read simulation.tsv (gene_id, signal: the noiseless simulated expression)."""
    sim = pd.read_csv(require_file(path, "simulation signal", "rerun make_targets", input="simulation"), sep="\t")
    if not set(SIMULATION_COLUMNS) <= set(sim.columns):
        raise GTAError(f"simulation file {path} needs columns {', '.join(SIMULATION_COLUMNS)}", input="simulation")
    return sim


# ============================================================================= predictions

PREDICTION_COLUMNS = ["gene_id", "symbol", "split", "observed", "predicted"]


IMPORTED_INDEX = "models.tsv"  # in the folder of imported predictions: model, predictions (file name), in order


def write_imported_index(folder: str | Path, files: dict[str, Path]) -> None:
    """The index of a folder of imported predictions: one row per model, in the source's column order."""
    rows = pd.DataFrame({"model": list(files), "predictions": [Path(p).name for p in files.values()]})
    with atomic_path(Path(folder) / IMPORTED_INDEX) as tmp:
        rows.to_csv(tmp, sep="\t", index=False)


def read_imported_index(folder: str | Path) -> list[tuple[str, Path]]:
    """(model, predictions file) of a folder of imported predictions, in order."""
    path = require_file(
        Path(folder) / IMPORTED_INDEX,
        "index of imported predictions",
        "rerun import_baseline_predictions",
        input="imported",
    )
    rows = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return [(m, Path(folder) / f) for m, f in zip(rows["model"], rows["predictions"], strict=True)]


def read_predictions(path: str | Path, input: str = "predictions") -> pd.DataFrame:
    """Read a predictions file (one model's predictions of every gene) and check its columns.

    observed and predicted become numbers; empty, NA or NaN cells are NaN. `input`: the caller's name for it.
    """
    path = require_file(path, "predictions file", "rerun the stage that writes it", input=input)
    try:
        df = pd.read_csv(
            path,
            sep="\t",
            dtype={"gene_id": "int64", "symbol": str, "split": str},
            keep_default_na=False,
            na_values=["", "NA", "NaN", "nan"],
        )
    except Exception as e:
        raise GTAError(f"cannot read predictions file {path}: {e}", input=input) from e
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise GTAError(f"predictions file {path} lacks columns {missing}; expected {PREDICTION_COLUMNS}", input=input)
    for col in ("observed", "predicted"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def write_predictions(df: pd.DataFrame, path: str | Path) -> None:
    """Write a predictions table (PREDICTION_COLUMNS, sorted by gene_id, 6 significant digits) atomically."""
    out = df[PREDICTION_COLUMNS].sort_values("gene_id")
    with atomic_path(path) as tmp:
        out.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


# ============================================================================= results tables

# the spread of a model trained once per seed (evaluate.seeds), after the contract's columns; Table 3 adds
# each control's difference from GTA, paired by seed
SEED_COLUMNS = ["spearman_sd", "n_seeds", "seed_spearman"]
DELTA_COLUMNS = ["delta_vs_gta", "delta_sd", "delta_ci"]
TABLE1_COLUMNS = ["model", "n_bins", "context_bp", "spearman", "ci", "n_genes", *SEED_COLUMNS]
TABLE2_COLUMNS = ["layers", "spearman", "ci", "n_genes"]
TABLE3_COLUMNS = ["model", "description", "spearman", "ci", "n_genes", *SEED_COLUMNS, *DELTA_COLUMNS]
TRAIN_SIZE_COLUMNS = ["model", "train_fraction", "n_train", "spearman", "ci", "n_genes"]
PROMPT_CONTROL_COLUMNS = ["model", "text_signal", "spearman", "ci", "n_genes", *SEED_COLUMNS]


def write_table(records: list[dict], columns: list[str], out: str | Path) -> pd.DataFrame:
    """Write one results table (TSV, the cells as given: formatted text) atomically and return it."""
    table = pd.DataFrame(records, columns=columns)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    log.info("wrote %d rows to %s", len(table), out)
    return table


def read_table(path: str | Path, columns: list[str]) -> pd.DataFrame:
    """Read a results table as text (empty cells stay ''), checking it has `columns`."""
    path = require_file(path, "results table", "rerun the stage that writes it")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise GTAError(f"results table {path} lacks columns {missing}; expected {columns}")
    return table
