"""JSONL files of the annotation stages: annotations.jsonl and prompts.jsonl.

`write_jsonl` writes one JSON object per line, atomically; `read_jsonl` reads them back, checking
each for the fields its readers need. `read_annotations` and `read_prompts` read the two files the
`gta fetch-annotations` and `gta make-prompts` stages write.
"""

from __future__ import annotations

import json
import os
from typing import Any
from collections.abc import Iterable, Mapping, Sequence

from .. import GTAError
from ..io import atomic_path, require_file
from .prompt import ANNOTATION_FIELDS


def write_jsonl(records: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> int:
    """Write one JSON object per line (UTF-8), atomically; returns the number written."""
    n = 0
    with atomic_path(path, suffix=".jsonl") as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(
    path: str | os.PathLike,
    fields: Sequence[str],
    what: str,
    fix: str = "rerun the stage that writes it",
    input: str | None = None,
) -> list[dict]:
    """Records of a JSONL file, each checked for `fields`; GTAError naming the file and line otherwise
    (`fix`: what to do about a bad line; `input`: GTAError.input)."""
    path = require_file(path, what, input=input)
    out = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise GTAError(f"{what} {path} line {i} is not JSON ({e}); {fix}", input=input) from None
            missing = [f for f in fields if not isinstance(rec, dict) or f not in rec]
            if missing:
                raise GTAError(f"{what} {path} line {i} lacks {missing}; {fix}", input=input)
            out.append(rec)
    return out


def read_annotations(path: str | os.PathLike) -> list[dict]:
    """annotations.jsonl -> list of records (gene order kept)."""
    return read_jsonl(path, ANNOTATION_FIELDS, "annotations file", "rerun fetch_annotations", input="annotations")


def read_prompts(path: str | os.PathLike) -> dict[int, str]:
    """prompts.jsonl -> {GeneID: prompt}, in file order."""
    records = read_jsonl(path, ["gene_id", "prompt"], "prompts file", "rerun make_prompts", input="prompts")
    return {int(r["gene_id"]): r["prompt"] for r in records}
