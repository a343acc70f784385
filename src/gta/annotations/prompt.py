"""Annotation records and the prompt text made from them.

An annotation record has the keys of `ANNOTATION_FIELDS`; its ``source`` is one of `SOURCES`.
`mane_annotation` and `annotations_from_mane` build records from MANE's symbol and full name
(no network); `_entrez_annotation` builds one from an NCBI cache record (see `gta.annotations.entrez`).
`format_prompt` writes the GTA paper's Figure 4 prompt from one record.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Mapping

import pandas as pd

ANNOTATION_FIELDS = ["gene_id", "symbol", "name", "aliases", "designations", "summary", "source"]
SOURCES = ("entrez", "entrez-current", "mane-fallback", "mane")


def format_prompt(annotation: Mapping[str, Any], cell_type: str) -> str:
    """The Figure 4 prompt of one gene: task line, symbol, full name, aliases, designations, summary, data.

    Aliases are joined with ", ", designations with "|"; a line whose value is missing (absent,
    None, empty) is left out. Each value is kept on its line (runs of whitespace become one space).
    No newline follows the final "# Data:" line.
    """
    lines = [f"# Task: Gene Expression Prediction on {_one_line(cell_type)}."]
    fields = [
        ("Official Gene Symbol", annotation.get("symbol"), None),
        ("Official Gene Full Name", annotation.get("name"), None),
        ("Other Gene Aliases", annotation.get("aliases"), ", "),
        ("Other Gene Designations", annotation.get("designations"), "|"),
        ("Gene NCBI Summary Description", annotation.get("summary"), None),
    ]
    for label, value, sep in fields:
        if isinstance(value, (list, tuple)):
            value = sep.join(v for v in (_one_line(x) for x in value) if v)
        text = _one_line(value)
        if text:
            lines.append(f"# {label}: {text}")
    lines.append("# Data:")
    return "\n".join(lines)


def _one_line(value: Any) -> str:
    """`value` as text on one line: runs of whitespace become one space; None becomes ""."""
    if value is None:
        return ""
    return " ".join(str(value).split())


def mane_annotation(gene_id: int, symbol: str, name: str, source: str = "mane") -> dict:
    """An annotation record with MANE's symbol and full name only."""
    return {
        "gene_id": int(gene_id),
        "symbol": symbol or "",
        "name": name or "",
        "aliases": [],
        "designations": [],
        "summary": "",
        "source": source,
    }


def _entrez_annotation(gene_id: int, record: Mapping, mane_name: str, source: str) -> dict:
    """An annotation record from a live NCBI cache record; MANE's full name where NCBI gives none."""
    return {
        "gene_id": int(gene_id),
        "symbol": record.get("symbol") or "",
        "name": record.get("name") or mane_name or "",
        "aliases": list(record.get("aliases") or []),
        "designations": list(record.get("designations") or []),
        "summary": record.get("summary") or "",
        "source": source,
    }


def annotations_from_mane(genes: pd.DataFrame) -> list[dict]:
    """One `mane` record per row of a tss.tsv table, in its order."""
    return [mane_annotation(g, s, n) for g, s, n in zip(genes["gene_id"], genes["symbol"], genes["name"], strict=False)]
