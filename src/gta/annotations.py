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
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import os
import re
import socket
import time
import urllib.error
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import pandas as pd

from . import GTAError
from .io import atomic_path, require_file

log = logging.getLogger("gta.annotations")

ANNOTATION_FIELDS = ["gene_id", "symbol", "name", "aliases", "designations", "summary", "source"]
SOURCES = ("entrez", "entrez-current", "mane-fallback", "mane")
TOOL = "gta"
# NCBI: at most 3 requests/s without an API key, 10 with one (a little slack on each).
MIN_INTERVAL = 0.37
MIN_INTERVAL_WITH_KEY = 0.11
RETRY_HTTP = {429, 500, 502, 503, 504}
MAX_BACKOFF = 60.0
OFFLINE_HINT = "set annotations.source: mane to build the annotations offline from MANE symbols and names"

# EntrezClient's defaults, looked up when a client is made (tests put a fake clock here).
_sleep = time.sleep
_clock = time.monotonic

_ERROR_TAG = re.compile(rb"<ERROR>(.*?)</ERROR>", re.S | re.I)


# ----------------------------------------------------------------------------- prompt

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
    if value is None:
        return ""
    return " ".join(str(value).split())


# ----------------------------------------------------------------------------- esummary replies

def _split_list(text: str | None, sep: str) -> list[str]:
    if not text:
        return []
    return [x for x in (_one_line(p) for p in text.split(sep)) if x]


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


class ReplyError(Exception):
    """An esummary reply that is not a complete DocumentSummarySet (truncated, an HTML page, an ERROR)."""


def parse_esummary(data: bytes) -> dict[int, dict]:
    """An NCBI esummary reply (db=gene, version 2.0 XML) -> {GeneID: cache record}.

    Records have `gene_id`, `status` ("live", "replaced", "discontinued" or "not_found"),
    `ncbi_status`, `current_id`, `symbol`, `name`, `aliases`, `designations`, `summary`, and
    `error` (NCBI's message) for genes it does not know. Raises ReplyError when the reply is not a
    complete document (cut short, not XML, or NCBI's top-level ERROR).
    """
    from Bio import Entrez

    if not data.strip():
        raise ReplyError("empty reply")
    try:
        # validate=False: NCBI adds elements to its DocSums over time; unknown ones are skipped
        parsed = Entrez.read(io.BytesIO(data), validate=False, ignore_errors=True)
    except Exception as e:  # Bio.Entrez.Parser raises CorruptedXMLError/NotXMLError/ValueError
        raise ReplyError(f"unreadable reply ({_first_line(e)})") from None
    docset = parsed.get("DocumentSummarySet") if hasattr(parsed, "get") else None
    if docset is None:
        m = _ERROR_TAG.search(data)
        detail = _one_line(m.group(1).decode("utf-8", "replace"))[:200] if m else "no DocumentSummarySet"
        raise ReplyError(f"NCBI answered without summaries ({detail})")
    records = {}
    for doc in docset.get("DocumentSummary", []):
        uid = _int_or_none(getattr(doc, "attributes", {}).get("uid"))
        if uid is None:
            continue
        if "error" in doc:
            records[uid] = {"gene_id": uid, "status": "not_found", "error": _one_line(doc["error"])}
            continue
        ncbi_status = _int_or_none(doc.get("Status"))
        current = _int_or_none(doc.get("CurrentID")) or None
        status = {1: "replaced", 2: "discontinued"}.get(ncbi_status, "live")
        records[uid] = {
            "gene_id": uid,
            "status": status,
            "ncbi_status": ncbi_status,
            "current_id": current,
            "symbol": _one_line(doc.get("Name") or doc.get("NomenclatureSymbol")),
            "name": _one_line(doc.get("Description") or doc.get("NomenclatureName")),
            "aliases": _split_list(doc.get("OtherAliases"), ","),
            "designations": _split_list(doc.get("OtherDesignations"), "|"),
            "summary": _one_line(doc.get("Summary")),
        }
    return records


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


# ----------------------------------------------------------------------------- client

class EntrezClient:
    """NCBI esummary for db=gene through Bio.Entrez: rate limit, retries with exponential backoff.

    `api_key` is used for requests only; it never appears in a message or log line of this client.
    `sleep` and `clock` default to time.sleep / time.monotonic.
    """

    def __init__(self, email: str, api_key: str | None = None, *, tool: str = TOOL,
                 max_retries: int = 5, timeout: float = 60.0, backoff: float = 1.0,
                 max_backoff: float = MAX_BACKOFF, sleep=None, clock=None):
        self.email = check_email(email)
        self._api_key = api_key or None
        self.tool = tool
        self.max_retries = int(max_retries)
        self.timeout = float(timeout)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._sleep = sleep or _sleep
        self._clock = clock or _clock
        self._last_request: float | None = None
        self.requests = 0

    def __repr__(self) -> str:
        return f"EntrezClient(email={self.email!r}, api_key={'set' if self._api_key else 'unset'})"

    @property
    def has_key(self) -> bool:
        return self._api_key is not None

    @property
    def min_interval(self) -> float:
        """Seconds between request starts: 3 requests/s without an API key, 10 with one."""
        return MIN_INTERVAL_WITH_KEY if self.has_key else MIN_INTERVAL

    def redact(self, text: str) -> str:
        """`text` with the API key (if any) replaced by a placeholder."""
        if self._api_key:
            text = text.replace(self._api_key, "<api key>")
        return text

    def esummary(self, ids: Sequence[int]) -> dict[int, dict]:
        """Summaries of `ids` (see parse_esummary); retries transient failures, then raises EntrezError."""
        ids = [int(i) for i in ids]
        failures = []
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                delay = max(delay, min(self.max_backoff, failures[-1][1] or 0.0))
                log.warning("esummary try %d/%d failed (%s); retrying in %.1f s",
                            attempt, self.max_retries + 1, failures[-1][0], delay)
                self._sleep(delay)
            try:
                data = self._request(ids)
                return parse_esummary(data)
            except urllib.error.HTTPError as e:
                reason = self.redact(f"HTTP {e.code} {e.reason}")
                if e.code not in RETRY_HTTP:
                    raise EntrezError(reason, attempt + 1, retryable=False) from None
                failures.append((reason, _retry_after(e)))
            except (ReplyError, OSError, http.client.HTTPException) as e:
                # OSError covers URLError (connection, DNS), socket timeouts and resets
                failures.append((self.redact(_describe(e)), None))
        raise EntrezError(failures[-1][0], len(failures), retryable=True)

    def _request(self, ids: list[int]) -> bytes:
        from Bio import Entrez

        self._wait_turn()
        self.requests += 1
        with _entrez_settings(self.email, self.tool, self._api_key, self.timeout):
            handle = Entrez.esummary(db="gene", id=",".join(map(str, ids)), version="2.0", retmode="xml")
            try:
                return handle.read()
            finally:
                handle.close()

    def _wait_turn(self) -> None:
        now = self._clock()
        if self._last_request is not None:
            wait = self._last_request + self.min_interval - now
            if wait > 0:
                self._sleep(wait)
                now = self._clock()
        self._last_request = now


class EntrezError(Exception):
    """esummary failed: `reason` of the last try, after `tries` tries."""

    def __init__(self, reason: str, tries: int, retryable: bool):
        super().__init__(reason)
        self.reason = reason
        self.tries = tries
        self.retryable = retryable


def _describe(e: BaseException) -> str:
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        inner = e.reason
        if isinstance(inner, (TimeoutError, socket.timeout)):
            return "timed out"
        return f"connection failed ({inner})"
    if isinstance(e, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(e, http.client.IncompleteRead):
        return f"reply cut short ({len(e.partial)} bytes read)"
    if isinstance(e, ReplyError):
        return str(e)
    return _first_line(e)


def _retry_after(e: urllib.error.HTTPError) -> float | None:
    value = e.headers.get("Retry-After") if e.headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@contextmanager
def _entrez_settings(email: str, tool: str, api_key: str | None, timeout: float) -> Iterator[None]:
    """Bio.Entrez's module settings and the socket timeout for one request; restored afterwards.

    Bio.Entrez retries on its own (fixed 15 s sleeps, no retry of truncated replies): max_tries=1
    leaves the retrying to EntrezClient.
    """
    from Bio import Entrez

    saved = (Entrez.email, Entrez.tool, Entrez.api_key, Entrez.max_tries, socket.getdefaulttimeout())
    Entrez.email, Entrez.tool, Entrez.api_key, Entrez.max_tries = email, tool, api_key, 1
    socket.setdefaulttimeout(timeout)
    try:
        yield
    finally:
        Entrez.email, Entrez.tool, Entrez.api_key, Entrez.max_tries = saved[:4]
        socket.setdefaulttimeout(saved[4])


def check_email(email: str | None) -> str:
    """`email` if it looks like an address NCBI accepts, else GTAError naming annotations.email."""
    email = (email or "").strip()
    if not email or "@" not in email or any(c.isspace() for c in email):
        got = f" (got {email!r})" if email else ""
        raise GTAError("annotations.email must be your e-mail address when annotations.source is 'entrez': "
                       f"NCBI asks for one with every request{got}. Set annotations.email in your config, "
                       f"or {OFFLINE_HINT}")
    return email


def api_key_from_env(name: str | None) -> str | None:
    """The NCBI API key held in the environment variable `name` (None when unset or empty)."""
    if not name:
        return None
    value = os.environ.get(name, "").strip()
    return value or None


# ----------------------------------------------------------------------------- cache

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
            raise GTAError(f"annotation cache file {path} is unreadable ({e}); delete it so the gene is fetched again") from None
        if not isinstance(record, dict) or record.get("gene_id") != int(gene_id) or "status" not in record:
            raise GTAError(f"annotation cache file {path} is not a record of GeneID {gene_id}; "
                           "delete it so the gene is fetched again")
        return record

    def put(self, record: Mapping[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path(record["gene_id"]), suffix=".json") as tmp:
            tmp.write_text(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


def fetch_to_cache(gene_ids: Sequence[int], cache: AnnotationCache, client: EntrezClient,
                   batch_size: int = 200) -> list[int]:
    """Fetch every gene of `gene_ids` not yet in `cache`, batch by batch; returns the GeneIDs NCBI left out.

    Each batch's records are cached as soon as it arrives, so a later failure loses nothing already
    fetched. NCBI's "not found" answers are cached too (delete the file to ask again). A GeneID
    missing from a complete reply is reported and not cached. After the last retry of a batch,
    raises GTAError saying what failed.
    """
    todo = [int(g) for g in dict.fromkeys(gene_ids) if int(g) not in cache]
    if not todo:
        return []
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    log.info("fetching %d genes from NCBI esummary in %d batches of <= %d (%s requests/s at most)",
             len(todo), len(batches), batch_size, 10 if client.has_key else 3)
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
                f"so far are kept in {cache.folder} and will not be fetched again: rerun later, or {OFFLINE_HINT}"
            ) from None
        for gene_id in batch:
            if gene_id in records:
                cache.put(records[gene_id])
            else:
                left_out.append(gene_id)
        done += len(batch)
        elapsed = time.perf_counter() - start
        log.info("batch %d/%d: %d genes; %d/%d fetched in %.1f s (%.1f genes/s)",
                 b, len(batches), len(batch), done, len(todo), elapsed, done / max(elapsed, 1e-9))
    if left_out:
        log.warning("NCBI's replies left out %d GeneIDs (first: %s); not cached, asked again next run",
                    len(left_out), _preview(left_out))
    return left_out


def _preview(ids: Sequence[int], n: int = 5) -> str:
    ids = list(ids)
    head = ", ".join(str(i) for i in ids[:n])
    return head + (f", ... (+{len(ids) - n})" if len(ids) > n else "")


# ----------------------------------------------------------------------------- annotations

def mane_annotation(gene_id: int, symbol: str, name: str, source: str = "mane") -> dict:
    """An annotation record with MANE's symbol and full name only."""
    return {"gene_id": int(gene_id), "symbol": symbol or "", "name": name or "", "aliases": [],
            "designations": [], "summary": "", "source": source}


def _entrez_annotation(gene_id: int, record: Mapping, mane_name: str, source: str) -> dict:
    return {"gene_id": int(gene_id), "symbol": record.get("symbol") or "", "name": record.get("name") or mane_name or "",
            "aliases": list(record.get("aliases") or []), "designations": list(record.get("designations") or []),
            "summary": record.get("summary") or "", "source": source}


def annotations_from_mane(genes: pd.DataFrame) -> list[dict]:
    """One `mane` record per row of a tss.tsv table, in its order."""
    return [mane_annotation(g, s, n) for g, s, n in zip(genes["gene_id"], genes["symbol"], genes["name"])]


def annotations_from_entrez(genes: pd.DataFrame, cache: AnnotationCache, client: EntrezClient,
                            batch_size: int = 200) -> list[dict]:
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
        log.info("%d GeneIDs were replaced by newer NCBI records (%s); using the current records",
                 len(replaced), ", ".join(f"{a}->{b}" for a, b in list(replaced.items())[:5]))
        fetch_to_cache(sorted(set(replaced.values())), cache, client, batch_size)

    out = []
    fallback: dict[str, list[int]] = {"does not know": [], "withdrew": [], "has no live record replacing": []}
    for g, symbol, name in zip(ids, genes["symbol"], genes["name"]):
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
            log.warning("NCBI %s %d GeneIDs (first: %s); using their MANE symbol and name",
                        what, len(genes_), _preview(genes_))
    counts = pd.Series([r["source"] for r in out]).value_counts().to_dict()
    log.info("annotations by source: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return out


# ----------------------------------------------------------------------------- files

def write_jsonl(records: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> int:
    """Write one JSON object per line (UTF-8), atomically; returns the number written."""
    n = 0
    with atomic_path(path, suffix=".jsonl") as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
    return n


def read_jsonl(path: str | os.PathLike, fields: Sequence[str], what: str) -> list[dict]:
    """Records of a JSONL file, each checked for `fields`; GTAError naming the file and line otherwise."""
    path = require_file(path, what)
    out = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise GTAError(f"{what} {path} line {i} is not JSON ({e}); rerun the rule that writes it") from None
            missing = [f for f in fields if not isinstance(rec, dict) or f not in rec]
            if missing:
                raise GTAError(f"{what} {path} line {i} lacks {missing}; rerun the rule that writes it")
            out.append(rec)
    return out


def read_annotations(path: str | os.PathLike) -> list[dict]:
    """annotations.jsonl -> list of records (gene order kept)."""
    return read_jsonl(path, ANNOTATION_FIELDS, "annotations file")


def read_prompts(path: str | os.PathLike) -> dict[int, str]:
    """prompts.jsonl -> {GeneID: prompt}, in file order."""
    return {int(r["gene_id"]): r["prompt"] for r in read_jsonl(path, ["gene_id", "prompt"], "prompts file")}


# ----------------------------------------------------------------------------- stages

def run_fetch(tss: str | os.PathLike, out: str | os.PathLike, source: str = "mane", *,
              email: str | None = None, api_key_env: str | None = "NCBI_API_KEY",
              cache: str | os.PathLike = "results/annotations/cache", batch_size: int = 200,
              max_retries: int = 5, timeout: float = 60.0) -> list[dict]:
    """CLI body of `gta annotations`: tss.tsv -> annotations.jsonl from `source` ('entrez' or 'mane')."""
    from .tss import read_tss

    genes = read_tss(require_file(tss, "TSS table", "run the mane_tss rule first"))
    if genes.empty:
        raise GTAError(f"TSS table {tss} has no genes")
    if source == "mane":
        records = annotations_from_mane(genes)
    elif source == "entrez":
        if not 1 <= int(batch_size) <= 500 or int(max_retries) < 0 or float(timeout) <= 0:
            raise GTAError(f"annotations.batch_size must be 1..500 (got {batch_size}), annotations.max_retries "
                           f">= 0 (got {max_retries}) and annotations.timeout > 0 (got {timeout})")
        key = api_key_from_env(api_key_env)
        client = EntrezClient(email, key, max_retries=max_retries, timeout=timeout)
        log.info("NCBI E-utilities as %s, tool %s, %s", client.email, client.tool,
                 f"API key from ${api_key_env}" if key else f"no API key (${api_key_env} unset)")
        records = annotations_from_entrez(genes, AnnotationCache(cache), client, batch_size)
        log.info("%d esummary requests", client.requests)
    else:
        raise GTAError(f"annotations.source must be 'entrez' or 'mane' (got {source!r})")
    write_jsonl(records, out)
    log.info("wrote %d gene annotations (%s) to %s", len(records), source, out)
    return records


def run_prompts(annotations: str | os.PathLike, out: str | os.PathLike, cell_type: str) -> int:
    """CLI body of `gta prompts`: annotations.jsonl -> prompts.jsonl (gene_id, prompt), same order."""
    if not _one_line(cell_type):
        raise GTAError("annotations.cell_type is empty; name the cell type of the expression data")
    records = read_annotations(annotations)
    n = write_jsonl(({"gene_id": int(r["gene_id"]), "prompt": format_prompt(r, cell_type)} for r in records), out)
    log.info("wrote %d prompts to %s", n, out)
    return n
