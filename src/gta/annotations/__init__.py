"""Gene annotations (NCBI Gene summaries through Bio.Entrez, or MANE names), their cache, and the prompt text.

Two sources fill `annotations.jsonl` (one record per gene of `tss.tsv`, in its order):

- ``entrez``: NCBI esummary (db=gene, version 2.0) by GeneID, batched, rate-limited, retried with
  exponential backoff. Every answer NCBI gives is kept in a cache folder (one JSON file per GeneID,
  written atomically), so an interrupted or repeated run never asks for a gene twice.
- ``mane``: symbol and full name from the MANE columns of `tss.tsv`; no network.

Each record's ``source`` says where its text came from:

- ``entrez``: the gene's own NCBI record;
- ``entrez-current``: NCBI replaced the GeneID (Status 1); the text is that of its CurrentID;
- ``mane-fallback``: NCBI does not know the GeneID, or withdrew it (Status 2), or replaced it by a
  record it does not know; MANE symbol and name;
- ``mane``: `annotations.source: mane`.

`format_prompt` writes the GTA paper's Figure 4 prompt from one record.

Modules (every name below is also importable from `gta.annotations` itself):

- `prompt`: the records and their text: `ANNOTATION_FIELDS`, `SOURCES`, `format_prompt`,
  `mane_annotation`, `annotations_from_mane` (and `_one_line`, `_entrez_annotation`);
- `entrez`: the NCBI E-utilities client: `EntrezClient`, `EntrezError`, `ReplyError`,
  `parse_esummary`, `check_email`, `api_key_from_env`, the rate limits (`MIN_INTERVAL`,
  `MIN_INTERVAL_WITH_KEY`), retry settings (`RETRY_HTTP`, `MAX_BACKOFF`), `TOOL`, `OFFLINE_HINT`,
  and the client's default `_sleep` / `_clock` (patch them in `gta.annotations.entrez`);
- `cache`: `AnnotationCache` (one JSON file per GeneID) and `fetch_to_cache` (batched fetch);
- `jsonl`: `write_jsonl`, `read_jsonl`, `read_annotations`, `read_prompts`;
- `stage`: the stage entry points `fetch_annotations` (`gta fetch-annotations`), `make_prompts`
  (`gta make-prompts`) and `annotations_from_entrez`.

Nothing here imports torch; Bio.Entrez is imported only when NCBI is asked or a reply is parsed.
"""

from __future__ import annotations

from .cache import AnnotationCache, fetch_to_cache
from .entrez import (
    MAX_BACKOFF,
    MIN_INTERVAL,
    MIN_INTERVAL_WITH_KEY,
    OFFLINE_HINT,
    RETRY_HTTP,
    TOOL,
    EntrezClient,
    EntrezError,
    ReplyError,
    api_key_from_env,
    check_email,
    parse_esummary,
)
from .jsonl import read_annotations, read_jsonl, read_prompts, write_jsonl
from .prompt import ANNOTATION_FIELDS, SOURCES, annotations_from_mane, format_prompt, mane_annotation
from .stage import annotations_from_entrez, fetch_annotations, make_prompts

__all__ = [
    "ANNOTATION_FIELDS",
    "SOURCES",
    "format_prompt",
    "mane_annotation",
    "annotations_from_mane",
    "TOOL",
    "MIN_INTERVAL",
    "MIN_INTERVAL_WITH_KEY",
    "RETRY_HTTP",
    "MAX_BACKOFF",
    "OFFLINE_HINT",
    "EntrezClient",
    "EntrezError",
    "ReplyError",
    "parse_esummary",
    "check_email",
    "api_key_from_env",
    "AnnotationCache",
    "fetch_to_cache",
    "write_jsonl",
    "read_jsonl",
    "read_annotations",
    "read_prompts",
    "annotations_from_entrez",
    "fetch_annotations",
    "make_prompts",
]
