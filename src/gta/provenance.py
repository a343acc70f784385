"""What a features file and each Sei shard were made from, and the checks of the stages that read them.

Recorded (docs/formats.md, features.h5, provenance):

- `fasta_sha256`: a JSON object {chromosome: sha256 hex digest} over the sequence of each chromosome the
  file's genes lie on, as the Sei stage reads it: upper case, without line breaks or the FASTA header
  (so a soft-masked and an unmasked copy of one assembly agree, and so do differently wrapped files);
- `sei_checkpoint_sha256`, `sei_projection_sha256`: sha256 of the Sei checkpoint and projection files;
- datasets `chrom`, `tss`, `strand`: each gene's coordinates as in the tss.tsv it was computed for.

The window spec (`n_bins`, `bin_size`, `grid`, `orient`) is recorded as before. Readers that mix the
file's bins with bins computed now (gta predict-genes, gta score-variants) compare these with their own
inputs; training, baselines and evaluation do not need them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from collections.abc import Iterable

import numpy as np
import pandas as pd

from . import GTAError
from .formats import FASTA_ATTR, read_provenance
from .genome import open_fasta, window_start
from .io import sha256sum

log = logging.getLogger("gta.provenance")

_CHUNK = 1 << 24  # bases hashed at a time


@functools.lru_cache(maxsize=512)
def _chrom_sha256(path: str, size: int, mtime_ns: int, chrom: str) -> str:
    """sha256 of one chromosome's upper-case sequence; the file's size and mtime key the cache."""
    fa = open_fasta(path)
    if chrom not in fa:
        raise GTAError(f"chromosome {chrom!r} is not in the FASTA {path}", input="fasta")
    h = hashlib.sha256()
    n = len(fa[chrom])
    for s in range(0, n, _CHUNK):
        h.update(str(fa[chrom][s : min(s + _CHUNK, n)]).upper().encode("ascii"))
    return h.hexdigest()


def sequence_sha256(fasta: str | os.PathLike, chroms: Iterable[str]) -> dict[str, str]:
    """{chromosome: sha256 of its upper-case sequence} for `chroms` of `fasta` (each hashed once per process)."""
    path = Path(getattr(fasta, "filename", fasta)).resolve()
    st = path.stat()
    return {c: _chrom_sha256(str(path), st.st_size, st.st_mtime_ns, c) for c in sorted(set(chroms))}


def provenance_attrs(fasta, chroms: Iterable[str], checkpoint=None, projection=None) -> dict:
    """The provenance attributes of a shard made from `fasta` (on `chroms`) and the Sei files given."""
    out = {FASTA_ATTR: json.dumps(sequence_sha256(fasta, chroms), sort_keys=True)}
    if checkpoint is not None:
        out["sei_checkpoint_sha256"] = sha256sum(checkpoint)
    if projection is not None:
        out["sei_projection_sha256"] = sha256sum(projection)
    return out


def merge_fasta_sha256(records: Iterable[tuple[str, str | None]]) -> str | None:
    """The shards' `fasta_sha256` ((shard path, attribute) pairs) joined into one, None if any shard lacks
    it; one chromosome with two fingerprints is an error naming both shards (made from different FASTAs)."""
    merged: dict[str, tuple[str, str]] = {}
    for path, text in records:
        if not text:
            return None
        for chrom, digest in json.loads(text).items():
            first, where = merged.setdefault(chrom, (digest, path))
            if first != digest:
                raise GTAError(
                    f"Sei shards {where} and {path} were computed on different sequences of {chrom} (sha256 "
                    f"{first} and {digest}): different FASTAs; rerun predict_sei for every shard on one FASTA",
                    input="shards",
                )
    return json.dumps({c: d for c, (d, _) in merged.items()}, sort_keys=True)


def missing_provenance(prov: dict, sei: bool = True) -> list[str]:
    """The provenance records a features file lacks (`sei`: the Sei hashes count)."""
    keys = [FASTA_ATTR] + (["sei_checkpoint_sha256", "sei_projection_sha256"] if sei else [])
    return [k for k in keys if not prov[k]] + (["chrom, tss, strand"] if prov["genes"] is None else [])


def fasta_differences(prov: dict, fasta, chroms: Iterable[str]) -> dict[str, tuple[str, str]]:
    """{chromosome: (recorded sha256, `fasta`'s)} for those of `chroms` the file records whose sequence
    in `fasta` differs."""
    recorded = prov[FASTA_ATTR] or {}
    mine = sequence_sha256(fasta, [c for c in chroms if c in recorded])
    return {c: (recorded[c], h) for c, h in mine.items() if recorded[c] != h}


def describe_differences(features, fasta, diff: dict[str, tuple[str, str]]) -> str:
    """One sentence naming both sides of each differing chromosome."""
    parts = [f"{c}: sha256 {a[:12]}... in {features}, {b[:12]}... in {fasta}" for c, (a, b) in sorted(diff.items())]
    return f"the features file {features} was computed on another sequence than the FASTA {fasta} ({'; '.join(parts)})"


def check_fasta(features, fasta, chroms: Iterable[str], prov: dict | None = None) -> None:
    """Error naming both files when `fasta` differs from the one `features` was computed on, on `chroms`."""
    prov = prov or read_provenance(features)
    diff = fasta_differences(prov, fasta, chroms)
    if diff:
        raise GTAError(
            describe_differences(features, fasta, diff) + "; give the FASTA the features were made from, or "
            "recompute the features on this one (predict_sei, merge_features)",
            input=("fasta", "features"),
        )


def check_gene_windows(
    features, genes: pd.DataFrame, tss, prov: dict | None = None, input=("tss", "features"), recorded_in=None
) -> None:
    """Every gene of `genes` (tss.tsv rows, read from `tss`) that `features` records must have the window
    it was computed for: the same chromosome, window start (from its TSS under the file's n_bins,
    bin_size and grid) and strand. An error names the first genes that differ; a file recording no
    coordinates is not checked here (see `missing_provenance`). `recorded_in` names the file in words."""
    prov = prov or read_provenance(features)
    rec = prov["genes"]
    if rec is None:
        return
    both = genes[["gene_id", "symbol", "chrom", "tss", "strand"]].merge(rec, on="gene_id", suffixes=("", "_rec"))
    n, size, grid = prov["n_bins"], prov["bin_size"], prov["grid"]
    start = window_start(both["tss"].to_numpy(np.int64), n, size, grid)
    start_rec = window_start(both["tss_rec"].to_numpy(np.int64), n, size, grid)
    bad = (both["chrom"] != both["chrom_rec"]) | (start != start_rec) | (both["strand"] != both["strand_rec"])
    if not bad.any():
        return
    rows = both[bad.to_numpy()]
    examples = "; ".join(
        f"{r.symbol} (GeneID {r.gene_id}): TSS {r.chrom}:{r.tss:,} ({r.strand}) in {tss}, "
        f"{r.chrom_rec}:{r.tss_rec:,} ({r.strand_rec}) in {recorded_in or features}"
        for r in rows.head(3).itertuples()
    )
    raise GTAError(
        f"{len(rows)} genes have another window in {tss} than the one {recorded_in or features} was computed "
        f"for ({n} bins of {size} bp, grid {grid}): {examples}; give the tss.tsv the features were made from, "
        "or recompute the features for this one",
        input=input,
    )
