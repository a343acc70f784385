"""The NCBI E-utilities client: esummary (db=gene, version 2.0) through Bio.Entrez.

`EntrezClient` keeps to NCBI's rate limit (3 requests/s without an API key, 10 with one) and
retries transient failures (HTTP 429/5xx, timeouts, dropped connections, cut-short or non-XML
replies) with exponential backoff, honouring Retry-After; it raises `EntrezError` after its last
try. `parse_esummary` turns one reply into cache records (raising `ReplyError` on an incomplete
one). `check_email` and `api_key_from_env` read the settings NCBI asks for.

Tests replace `_sleep` and `_clock` of this module (the client's defaults, looked up when a client
is made) with a fake clock, and `Bio.Entrez.urlopen` with recorded replies.
"""

from __future__ import annotations

import http.client
import io
import logging
import os
import re
import socket
import time
import urllib.error
from contextlib import contextmanager
from typing import Any
from collections.abc import Iterator, Sequence

from .. import GTAError
from .prompt import _one_line

log = logging.getLogger("gta.annotations")

TOOL = "gta"
# NCBI: at most 3 requests/s without an API key, 10 with one (a little slack on each).
MIN_INTERVAL = 0.37
MIN_INTERVAL_WITH_KEY = 0.11
RETRY_HTTP = {429, 500, 502, 503, 504}
MAX_BACKOFF = 60.0
OFFLINE_HINT = "use the 'mane' source to build the annotations offline from MANE symbols and names"

# EntrezClient's defaults, looked up when a client is made (tests put a fake clock here).
_sleep = time.sleep
_clock = time.monotonic

_ERROR_TAG = re.compile(rb"<ERROR>(.*?)</ERROR>", re.S | re.I)


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

    def __init__(
        self,
        email: str,
        api_key: str | None = None,
        *,
        tool: str = TOOL,
        max_retries: int = 5,
        timeout: float = 60.0,
        backoff: float = 1.0,
        max_backoff: float = MAX_BACKOFF,
        sleep=None,
        clock=None,
    ):
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
                log.warning(
                    "esummary try %d/%d failed (%s); retrying in %.1f s",
                    attempt,
                    self.max_retries + 1,
                    failures[-1][0],
                    delay,
                )
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


# ----------------------------------------------------------------------------- settings


def check_email(email: str | None) -> str:
    """`email` if it looks like an address NCBI accepts, else GTAError naming the input `email`."""
    email = (email or "").strip()
    if not email or "@" not in email or any(c.isspace() for c in email):
        got = f" (got {email!r})" if email else ""
        raise GTAError(
            "the 'entrez' source needs your e-mail address (email): "
            f"NCBI asks for one with every request{got}. Give your e-mail address, "
            f"or {OFFLINE_HINT}",
            input="email",
        )
    return email


def api_key_from_env(name: str | None) -> str | None:
    """The NCBI API key held in the environment variable `name` (None when unset or empty)."""
    if not name:
        return None
    value = os.environ.get(name, "").strip()
    return value or None
