"""The annotation stages: `fetch_annotations` (`gta fetch-annotations`) and `make_prompts` (`gta make-prompts`).

`fetch_annotations` turns tss.tsv into annotations.jsonl from MANE (`annotations_from_mane`) or from NCBI
(`annotations_from_entrez`: through the cache, with MANE fallbacks); `make_prompts` turns
annotations.jsonl into prompts.jsonl.
"""

from __future__ import annotations

from typing import Literal

import logging
import os

import pandas as pd

from .. import GTAError
from ..io import require_file
from .cache import AnnotationCache, _preview, fetch_to_cache
from .entrez import EntrezClient, api_key_from_env
from .jsonl import read_annotations, write_jsonl
from .prompt import _entrez_annotation, _one_line, annotations_from_mane, format_prompt, mane_annotation

log = logging.getLogger("gta.annotations")


def annotations_from_entrez(
    genes: pd.DataFrame, cache: AnnotationCache, client: EntrezClient, batch_size: int = 200
) -> list[dict]:
    """One record per row of a tss.tsv table from NCBI (through `cache`), MANE where NCBI has none.

    A replaced GeneID (NCBI Status 1) takes the text of its CurrentID (fetched too); a GeneID NCBI
    does not know, or withdrew (Status 2), falls back to its MANE symbol and name.
    """
    ids = [int(g) for g in genes["gene_id"]]
    fetch_to_cache(ids, cache, client, batch_size)
    replaced = {}
    for g in ids:
        rec = cache.get(g)
        if rec and rec["status"] == "replaced" and rec.get("current_id"):
            replaced[g] = int(rec["current_id"])
    if replaced:
        log.info(
            "%d GeneIDs were replaced by newer NCBI records (%s); using the current records",
            len(replaced),
            ", ".join(f"{a}->{b}" for a, b in list(replaced.items())[:5]),
        )
        fetch_to_cache(sorted(set(replaced.values())), cache, client, batch_size)

    out = []
    fallback: dict[str, list[int]] = {"does not know": [], "withdrew": [], "has no live record replacing": []}
    for g, symbol, name in zip(ids, genes["symbol"], genes["name"], strict=False):
        rec = cache.get(g)
        source = "entrez"
        if rec is not None and g in replaced:
            rec, source = cache.get(replaced[g]), "entrez-current"
            if rec is None or rec["status"] != "live":
                fallback["has no live record replacing"].append(g)
                out.append(mane_annotation(g, symbol, name, source="mane-fallback"))
                continue
        if rec is not None and rec["status"] == "live":
            out.append(_entrez_annotation(g, rec, name, source))
            continue
        fallback["withdrew" if rec is not None and rec["status"] == "discontinued" else "does not know"].append(g)
        out.append(mane_annotation(g, symbol, name, source="mane-fallback"))
    for what, genes_ in fallback.items():
        if genes_:
            log.warning(
                "NCBI %s %d GeneIDs (first: %s); using their MANE symbol and name", what, len(genes_), _preview(genes_)
            )
    counts = pd.Series([r["source"] for r in out]).value_counts().to_dict()
    log.info("annotations by source: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return out


def fetch_annotations(
    tss: str | os.PathLike,
    out: str | os.PathLike,
    source: Literal["entrez", "mane"] = "mane",
    *,
    email: str | None = None,
    api_key_env: str | None = "NCBI_API_KEY",
    cache: str | os.PathLike | None = None,
    batch_size: int = 200,
    max_retries: int = 5,
    timeout: float = 60.0,
) -> list[dict]:
    """Stage fetch_annotations (rule, `gta fetch-annotations`): tss.tsv -> annotations.jsonl from `source`
    ('entrez' or 'mane').

    Args:
        tss: tss.tsv (gene order of the output)
        out: output annotations.jsonl
        email: your e-mail address, sent to NCBI (required for entrez)
        api_key_env: NAME of the environment variable holding an NCBI API key (the key itself is never logged)
        cache: folder of per-gene JSON records (needed with --source entrez)
        batch_size: GeneIDs per esummary request
        max_retries: retries per request (exponential backoff)
        timeout: seconds before a request counts as timed out
    """
    from ..tss import read_tss

    genes = read_tss(require_file(tss, "TSS table", "run mane_tss first", input="tss"))
    if genes.empty:
        raise GTAError(f"TSS table {tss} has no genes", input="tss")
    if source == "mane":
        records = annotations_from_mane(genes)
    elif source == "entrez":
        _check_entrez_settings(batch_size, max_retries, timeout)
        if not cache:
            raise GTAError("the 'entrez' source needs a folder to cache NCBI's answers in (cache)", input="cache")
        key = api_key_from_env(api_key_env)
        client = EntrezClient(email, key, max_retries=max_retries, timeout=timeout)
        log.info(
            "NCBI E-utilities as %s, tool %s, %s",
            client.email,
            client.tool,
            f"API key from ${api_key_env}" if key else f"no API key (${api_key_env} unset)",
        )
        records = annotations_from_entrez(genes, AnnotationCache(cache), client, batch_size)
        log.info("%d esummary requests", client.requests)
    else:
        raise GTAError(f"source must be 'entrez' or 'mane' (got {source!r})", input="source")
    write_jsonl(records, out)
    log.info("wrote %d gene annotations (%s) to %s", len(records), source, out)
    return records


def _check_entrez_settings(batch_size: int, max_retries: int, timeout: float) -> None:
    """GTAError naming the request settings of fetch_annotations that are out of range."""
    bad = {
        "batch_size": (not 1 <= int(batch_size) <= 500, f"batch_size must be 1..500 (got {batch_size})"),
        "max_retries": (int(max_retries) < 0, f"max_retries must be >= 0 (got {max_retries})"),
        "timeout": (float(timeout) <= 0, f"timeout must be > 0 seconds (got {timeout})"),
    }
    bad = {name: text for name, (wrong, text) in bad.items() if wrong}
    if bad:
        raise GTAError("; ".join(bad.values()), input=tuple(bad) if len(bad) > 1 else next(iter(bad)))


def make_prompts(annotations: str | os.PathLike, out: str | os.PathLike, cell_type: str) -> int:
    """Stage make_prompts (rule, `gta make-prompts`): annotations.jsonl -> prompts.jsonl (gene_id, prompt), same
    order.

    Args:
        annotations: annotations.jsonl
        out: output prompts.jsonl
        cell_type: cell type named in the task line
    """
    if not _one_line(cell_type):
        raise GTAError("the cell type is empty; name the cell type of the expression data", input="cell_type")
    records = read_annotations(annotations)
    n = write_jsonl(({"gene_id": int(r["gene_id"]), "prompt": format_prompt(r, cell_type)} for r in records), out)
    log.info("wrote %d prompts to %s", n, out)
    return n
