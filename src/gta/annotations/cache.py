"""The cache of NCBI answers, and the batched fetch that fills it.

`AnnotationCache` is a folder of `<GeneID>.json` records (as `gta.annotations.entrez.parse_esummary`
makes them), one per gene NCBI answered for, each written atomically. `fetch_to_cache` asks an
`EntrezClient` for every gene not yet cached, batch by batch, caching each batch as it arrives, so
an interrupted or repeated run never asks for a gene twice.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

from .. import GTAError
from ..io import atomic_path
from .entrez import OFFLINE_HINT, EntrezClient, EntrezError

log = logging.getLogger("gta.annotations")


class AnnotationCache:
    """A folder of `<GeneID>.json` records, one per gene NCBI answered for (written atomically)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def path(self, gene_id: int) -> Path:
        return self.folder / f"{int(gene_id)}.json"

    def __contains__(self, gene_id: int) -> bool:
        return self.path(gene_id).is_file()

    def get(self, gene_id: int) -> dict | None:
        """The cached record of `gene_id`, or None."""
        path = self.path(gene_id)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise GTAError(
                f"annotation cache file {path} is unreadable ({e}); delete it so the gene is fetched again",
                input="cache",
            ) from None
        if not isinstance(record, dict) or record.get("gene_id") != int(gene_id) or "status" not in record:
            raise GTAError(
                f"annotation cache file {path} is not a record of GeneID {gene_id}; "
                "delete it so the gene is fetched again",
                input="cache",
            )
        return record

    def put(self, record: Mapping[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path(record["gene_id"]), suffix=".json") as tmp:
            tmp.write_text(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


def fetch_to_cache(
    gene_ids: Sequence[int], cache: AnnotationCache, client: EntrezClient, batch_size: int = 200
) -> list[int]:
    """Fetch every gene of `gene_ids` not yet in `cache`, batch by batch; returns the GeneIDs NCBI left out.

    Each batch's records are cached as soon as it arrives, so a later failure loses nothing already
    fetched. NCBI's "not found" answers are cached too (delete the file to ask again). A GeneID
    missing from a complete reply is reported and not cached. After the last retry of a batch,
    raises GTAError saying what failed.
    """
    todo = [int(g) for g in dict.fromkeys(gene_ids) if int(g) not in cache]
    if not todo:
        return []
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    log.info(
        "fetching %d genes from NCBI esummary in %d batches of <= %d (%s requests/s at most)",
        len(todo),
        len(batches),
        batch_size,
        10 if client.has_key else 3,
    )
    start = time.perf_counter()
    done = 0
    left_out: list[int] = []
    for b, batch in enumerate(batches, 1):
        try:
            records = client.esummary(batch)
        except EntrezError as e:
            kept = sum(int(g) in cache for g in dict.fromkeys(gene_ids))
            what = "failed" if e.retryable else "was refused"
            raise GTAError(
                f"NCBI esummary {what} for batch {b}/{len(batches)} ({len(batch)} GeneIDs: {_preview(batch)}) "
                f"after {e.tries} {'try' if e.tries == 1 else 'tries'}: {e.reason}. The {kept} genes fetched "
                f"so far are kept in {cache.folder} and will not be fetched again: rerun later, or {OFFLINE_HINT}",
                input="source",
            ) from None
        for gene_id in batch:
            if gene_id in records:
                cache.put(records[gene_id])
            else:
                left_out.append(gene_id)
        done += len(batch)
        elapsed = time.perf_counter() - start
        log.info(
            "batch %d/%d: %d genes; %d/%d fetched in %.1f s (%.1f genes/s)",
            b,
            len(batches),
            len(batch),
            done,
            len(todo),
            elapsed,
            done / max(elapsed, 1e-9),
        )
    if left_out:
        log.warning(
            "NCBI's replies left out %d GeneIDs (first: %s); not cached, asked again next run",
            len(left_out),
            _preview(left_out),
        )
    return left_out


def _preview(ids: Sequence[int], n: int = 5) -> str:
    """The first `n` of `ids`, comma-separated, and how many more there are."""
    ids = list(ids)
    head = ", ".join(str(i) for i in ids[:n])
    return head + (f", ... (+{len(ids) - n})" if len(ids) > n else "")
