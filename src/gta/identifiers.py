"""Gene identifiers: matching symbols, Ensembl ids and NCBI GeneIDs to the genes of tss.tsv, and gene lists.

An identifier is matched by symbol (case-insensitive), Ensembl gene id (with or without version) or
NCBI GeneID (`123` or `GeneID:123`). Used by the expression tables, the baselines and prediction.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import GTAError
from .io import require_file

log = logging.getLogger("gta.identifiers")

_ENSEMBL = re.compile(r"^(ENSG\d+)(\.\d+)?$", re.IGNORECASE)
_GENEID = re.compile(r"^(?:GeneID:)?(\d+)$", re.IGNORECASE)


@dataclass
class GeneIndex:
    """Look-up of tss.tsv genes by symbol (lower case), Ensembl id (no version) and GeneID."""

    by_symbol: dict[str, list[int]]
    by_ensembl: dict[str, list[int]]
    ids: set[int]

    @classmethod
    def from_tss(cls, tss: pd.DataFrame) -> GeneIndex:
        by_symbol: dict[str, list[int]] = {}
        by_ensembl: dict[str, list[int]] = {}
        for gid, sym, ens in zip(tss["gene_id"], tss["symbol"], tss["ensembl_gene"], strict=False):
            if isinstance(sym, str) and sym:
                by_symbol.setdefault(sym.lower(), []).append(int(gid))
            if isinstance(ens, str) and ens:
                by_ensembl.setdefault(ens.split(".")[0].upper(), []).append(int(gid))
        return cls(by_symbol, by_ensembl, {int(g) for g in tss["gene_id"]})

    def lookup(self, identifier: str) -> list[int]:
        """GeneIDs an identifier names (empty: unknown; several: ambiguous)."""
        ident = str(identifier).strip()
        m = _ENSEMBL.match(ident)
        if m:
            return list(self.by_ensembl.get(m.group(1).upper(), []))
        m = _GENEID.match(ident)
        if m:
            gid = int(m.group(1))
            return [gid] if gid in self.ids else []
        return list(self.by_symbol.get(ident.lower(), []))


def match_identifiers(identifiers: Sequence[str], tss: pd.DataFrame, what: str) -> np.ndarray:
    """GeneID per identifier, -1 where it matches no gene or is ambiguous.

    Ambiguous: an identifier that names several genes, or several identifiers that name the same
    gene (all of them are dropped). Counts and examples go to the log, labelled `what`.
    """
    index = GeneIndex.from_tss(tss)
    hits = [index.lookup(i) for i in identifiers]
    out = np.full(len(identifiers), -1, np.int64)
    single = [h[0] if len(h) == 1 else -1 for h in hits]
    counts: dict[int, int] = {}
    for g in single:
        if g >= 0:
            counts[g] = counts.get(g, 0) + 1
    unmatched = [i for i, h in zip(identifiers, hits, strict=False) if not h]
    multi = [i for i, h in zip(identifiers, hits, strict=False) if len(h) > 1]
    shared = [i for i, g in zip(identifiers, single, strict=False) if g >= 0 and counts[g] > 1]
    for j, g in enumerate(single):
        if g >= 0 and counts[g] == 1:
            out[j] = g
    log.info(
        "%s: %d identifiers, %d matched to a gene, %d unmatched, %d ambiguous "
        "(%d naming several genes, %d naming a gene another identifier also names)",
        what,
        len(identifiers),
        int((out >= 0).sum()),
        len(unmatched),
        len(multi) + len(shared),
        len(multi),
        len(shared),
    )
    if unmatched:
        log.info("%s: unmatched examples: %s", what, ", ".join(map(str, unmatched[:8])))
    if multi or shared:
        log.warning("%s: ambiguous identifiers dropped, e.g. %s", what, ", ".join(map(str, (multi + shared)[:8])))
    return out


def read_gene_list(path: str | Path, what: str = "gene list", input: str | None = "genes") -> list[str]:
    """Identifiers from a gene list: one per line, first comma/tab/space-separated field; '#' comments.

    `what` names the list in errors, `input` is their GTAError.input (the caller's parameter)."""
    path = require_file(path, what, "one symbol, Ensembl id or GeneID per line", input=input)
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.append(re.split(r"[,\t ]", line, maxsplit=1)[0].strip())
    if not out:
        raise GTAError(f"{what} {path} names no gene", input=input)
    return out
