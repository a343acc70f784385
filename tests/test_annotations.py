"""Gene annotations: esummary parsing, the Entrez client behind a fake NCBI, the cache, the prompts.

No test touches the network: Bio.Entrez's `urlopen` is replaced by FakeNCBI, which answers from
the recorded replies in tests/data/entrez/ (see its README) or fails as a test script says.
"""

from __future__ import annotations

import email.message
import http.client
import io
import itertools
import json
import logging
import re
import subprocess
import sys
import types
import urllib.error
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
import yaml
from Bio import Entrez

from gta import GTAError
from gta import annotations as A
from gta.cli import main
from gta.tss import write_tss

from conftest import run_snakemake

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "entrez"
KEY = "k3y-5ECRET-0f-the-te5t-0123456789"
KEY_ENV = "GTA_TEST_NCBI_KEY"
EMAIL = "tester@example.org"

# The paper's Figure 4 (gene A1BG), byte for byte; no newline after "# Data:".
FIGURE4 = (
    "# Task: Gene Expression Prediction on GM12878 lymphoblastoid cells.\n"
    "# Official Gene Symbol: A1BG\n"
    "# Official Gene Full Name: alpha-1-B glycoprotein\n"
    "# Other Gene Aliases: A1B, ABG, GAB, HYST2477\n"
    "# Other Gene Designations: alpha-1B-glycoprotein|HEL-S-163pA|epididymis secretory sperm binding protein Li 163pA\n"
    "# Gene NCBI Summary Description: The protein encoded by this gene is a plasma glycoprotein of unknown "
    "function. The protein shows sequence similarity to the variable regions of some immunoglobulin supergene "
    "family member proteins. [provided by RefSeq, Jul 2008]\n"
    "# Data:"
)
A1BG = {
    "symbol": "A1BG",
    "name": "alpha-1-B glycoprotein",
    "aliases": ["A1B", "ABG", "GAB", "HYST2477"],
    "designations": ["alpha-1B-glycoprotein", "HEL-S-163pA", "epididymis secretory sperm binding protein Li 163pA"],
    "summary": "The protein encoded by this gene is a plasma glycoprotein of unknown function. The protein shows "
    "sequence similarity to the variable regions of some immunoglobulin supergene family member "
    "proteins. [provided by RefSeq, Jul 2008]",
}


# ----------------------------------------------------------------------------- fake NCBI


def _library() -> tuple[bytes, dict[int, bytes], bytes]:
    """Header, one DocumentSummary element per UID, and footer of the recorded replies."""
    docs = {}
    header = footer = b""
    for path in sorted(DATA.glob("esummary_*.xml")):
        data = path.read_bytes()
        for m in re.finditer(rb'<DocumentSummary uid="(\d+)">.*?</DocumentSummary>\n', data, re.S):
            docs[int(m.group(1))] = m.group(0)
        header = data[: data.index(b"<DocumentSummary ")]
        footer = data[data.rindex(b"</DocumentSummary>") + len(b"</DocumentSummary>\n") :]
    return header, docs, footer


HEADER, DOCS, FOOTER = _library()


def reply_for(ids) -> bytes:
    """NCBI's reply for `ids`: recorded DocumentSummary elements; an <error> one for unknown UIDs."""
    parts = [
        DOCS.get(
            i, b'<DocumentSummary uid="%d">\n\t<error>cannot get document summary</error>\n</DocumentSummary>\n' % i
        )
        for i in ids
    ]
    return HEADER + b"\n".join(parts) + FOOTER


class FakeResponse(io.BytesIO):
    def __init__(self, body: bytes, url: str, fail: BaseException | None = None):
        super().__init__(body)
        self.url = url
        self.headers = email.message.Message()
        self.headers["Content-Type"] = "text/xml; charset=UTF-8"
        self._fail = fail

    def read(self, *args):
        if self._fail is not None:
            raise self._fail
        return super().read(*args)


class Clock:
    """Fake time: sleep() records and advances; every request takes `latency` seconds."""

    def __init__(self, latency: float = 1.0):
        self.now = 1000.0
        self.latency = latency
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


class FakeNCBI:
    """Stands in for urllib's urlopen inside Bio.Entrez. `script`: one action per request, then "ok"."""

    def __init__(self, clock: Clock, script=()):
        self.clock = clock
        self.script = list(script)
        self.requests: list[dict] = []
        self.methods: list[str] = []

    def __call__(self, request, *args, **kwargs):
        query = request.data.decode() if request.data else urlsplit(request.full_url).query
        params = {k: v[0] for k, v in parse_qs(query).items()}
        self.requests.append(params)
        self.methods.append(request.get_method())
        self.clock.now += self.clock.latency
        ids = [int(x) for x in params["id"].split(",")]
        action = self.script.pop(0) if self.script else "ok"
        url = request.full_url
        body = reply_for(ids)
        if action == "ok":
            return FakeResponse(body, url)
        if action in ("429", "503", "400"):
            hdrs = email.message.Message()
            raise urllib.error.HTTPError(
                url,
                int(action),
                {"429": "Too Many Requests", "503": "Service Unavailable", "400": "Bad Request"}[action],
                hdrs,
                None,
            )
        if action.startswith("429-retry-after-"):
            hdrs = email.message.Message()
            hdrs["Retry-After"] = action.rsplit("-", 1)[1]
            raise urllib.error.HTTPError(url, 429, "Too Many Requests", hdrs, None)
        if action == "timeout":  # connect timeout, as urllib reports it
            raise urllib.error.URLError(TimeoutError("timed out"))
        if action == "read-timeout":
            return FakeResponse(body, url, fail=TimeoutError("timed out"))
        if action == "incomplete":
            return FakeResponse(body, url, fail=http.client.IncompleteRead(body[:100], len(body) - 100))
        if action == "truncated":
            return FakeResponse(body[: int(len(body) * 0.6)], url)
        if action == "html":
            return FakeResponse(b"<html><body><h1>502 Bad Gateway</h1></body></html>", url)
        raise AssertionError(f"unknown action {action}")

    def ids(self) -> list[list[int]]:
        return [[int(x) for x in r["id"].split(",")] for r in self.requests]


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr("gta.annotations.entrez._sleep", c.sleep)  # EntrezClient's default clock
    monkeypatch.setattr("gta.annotations.entrez._clock", c.clock)
    # Bio.Entrez's own 3-per-second wait reads the real clock: give it one that never makes it wait
    ticks = itertools.count(step=1000)
    monkeypatch.setattr(Entrez, "time", types.SimpleNamespace(time=lambda: float(next(ticks)), sleep=lambda s: None))
    return c


@pytest.fixture
def ncbi(monkeypatch, clock):
    fake = FakeNCBI(clock)
    monkeypatch.setattr(Entrez, "urlopen", fake)
    return fake


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("no request may be made")

    monkeypatch.setattr(Entrez, "urlopen", refuse)


GENES = [  # gene_id, MANE symbol, MANE name
    (1, "A1BG", "alpha-1-B glycoprotein"),
    (2, "A2M", "alpha-2-macroglobulin"),
    (3, "A2MP1", "alpha-2-macroglobulin pseudogene 1"),
    (8138, "MECL1old", "old name of 8138"),
    (100996442, "WITHDRAWN1", "MANE name of a withdrawn gene"),
    (999999999, "UNKNOWN1", "MANE name of an unknown gene"),
]


def make_tss(path: Path, genes=GENES) -> Path:
    df = pd.DataFrame(
        {
            "gene_id": [g for g, _, _ in genes],
            "symbol": [s for _, s, _ in genes],
            "ensembl_gene": [f"ENSG{g:011d}" for g, _, _ in genes],
            "name": [n for _, _, n in genes],
            "chrom": "chr19",
            "tss": [1000 * (i + 1) for i in range(len(genes))],
            "strand": "+",
        }
    )
    write_tss(df, path)
    return path


def fetch(tmp_path, **kw):
    kw.setdefault("email", EMAIL)
    kw.setdefault("api_key_env", KEY_ENV)
    kw.setdefault("cache", tmp_path / "cache")
    kw.setdefault("batch_size", 4)
    return A.fetch_annotations(
        kw.pop("tss", tmp_path / "tss.tsv"),
        kw.pop("out", tmp_path / "annotations.jsonl"),
        kw.pop("source", "entrez"),
        **kw,
    )


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ----------------------------------------------------------------------------- prompt


def test_format_prompt_is_figure4_byte_for_byte():
    prompt = A.format_prompt(A1BG, "GM12878 lymphoblastoid cells")
    assert prompt.encode("utf-8") == FIGURE4.encode("utf-8")


def test_format_prompt_leaves_out_missing_lines_and_keeps_one_line_per_field():
    rec = {
        "symbol": "A2MP1",
        "name": "alpha-2-macroglobulin pseudogene 1",
        "aliases": [],
        "designations": [],
        "summary": "",
    }
    assert A.format_prompt(rec, "K562 cells").split("\n") == [
        "# Task: Gene Expression Prediction on K562 cells.",
        "# Official Gene Symbol: A2MP1",
        "# Official Gene Full Name: alpha-2-macroglobulin pseudogene 1",
        "# Data:",
    ]
    # absent keys and None count as missing; a summary with a line break stays on its line
    rec = {"name": "some name", "summary": "first line.\nsecond  line.", "aliases": None}
    assert A.format_prompt(rec, "x").split("\n") == [
        "# Task: Gene Expression Prediction on x.",
        "# Official Gene Full Name: some name",
        "# Gene NCBI Summary Description: first line. second line.",
        "# Data:",
    ]


# ----------------------------------------------------------------------------- parsing


def test_parse_recorded_batch_reply():
    recs = A.parse_esummary((DATA / "esummary_batch.xml").read_bytes())
    assert list(recs) == [1, 2, 3]
    assert {k: recs[1][k] for k in A1BG} == A1BG
    assert recs[1]["status"] == "live" and recs[1]["current_id"] is None
    assert "Alzheimer's disease" in recs[2]["summary"]  # &apos; decoded
    assert recs[2]["designations"] == [
        "alpha-2-macroglobulin",
        "C3 and PZP-like alpha-2-macroglobulin domain-containing protein 5",
        "alpha-2-M",
    ]
    assert (recs[3]["aliases"], recs[3]["designations"], recs[3]["summary"]) == ([], [], "")
    # the Figure 4 prompt, straight from the recorded reply
    assert A.format_prompt(recs[1], "GM12878 lymphoblastoid cells") == FIGURE4


def test_parse_replaced_withdrawn_and_unknown_genes():
    recs = A.parse_esummary((DATA / "esummary_status.xml").read_bytes())
    assert recs[8138]["status"] == "replaced" and recs[8138]["current_id"] == 5699
    assert recs[100996442]["status"] == "discontinued" and recs[100996442]["ncbi_status"] == 2
    assert recs[999999999] == {"gene_id": 999999999, "status": "not_found", "error": "cannot get document summary"}
    cur = A.parse_esummary((DATA / "esummary_current.xml").read_bytes())[5699]
    assert cur["symbol"] == "PSMB10" and "\n" not in cur["summary"] and "structure. Proteolytic" in cur["summary"]


@pytest.mark.parametrize("cut", [0.0, 0.02, 0.3, 0.6, 0.97])
def test_truncated_reply_is_an_error(cut):
    data = (DATA / "esummary_batch.xml").read_bytes()
    with pytest.raises(A.ReplyError):
        A.parse_esummary(data[: int(len(data) * cut)])


def test_reply_without_summaries_is_an_error_with_ncbis_message():
    data = (
        HEADER.split(b"<eSummaryResult>")[0] + b"<eSummaryResult>\n<ERROR>Database is not supported</ERROR>\n"
        b"</eSummaryResult>\n"
    )
    with pytest.raises(A.ReplyError, match="Database is not supported"):
        A.parse_esummary(data)
    with pytest.raises(A.ReplyError):
        A.parse_esummary(b"<html><body>502 Bad Gateway</body></html>")


# ----------------------------------------------------------------------------- entrez pipeline


def test_entrez_annotations_in_tss_order_with_fallbacks(tmp_path, ncbi, monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, KEY)
    make_tss(tmp_path / "tss.tsv")
    with caplog.at_level(logging.INFO, logger="gta"):
        records = fetch(tmp_path)
    out = read_lines(tmp_path / "annotations.jsonl")
    assert out == records
    assert [r["gene_id"] for r in out] == [g for g, _, _ in GENES]
    assert [r["source"] for r in out] == [
        "entrez",
        "entrez",
        "entrez",
        "entrez-current",
        "mane-fallback",
        "mane-fallback",
    ]
    assert all(list(r) == A.ANNOTATION_FIELDS for r in out)
    assert {k: out[0][k] for k in A1BG} == A1BG
    assert out[3]["symbol"] == "PSMB10" and out[3]["gene_id"] == 8138  # the current record's text
    assert out[4] == A.mane_annotation(100996442, "WITHDRAWN1", "MANE name of a withdrawn gene", "mane-fallback")
    assert out[5]["symbol"] == "UNKNOWN1" and out[5]["aliases"] == [] and out[5]["summary"] == ""
    # batches of 4 in tss order, then the replacement record
    assert ncbi.ids() == [[1, 2, 3, 8138], [100996442, 999999999], [5699]]
    assert ncbi.methods == ["GET"] * 3
    for req in ncbi.requests:
        assert (req["db"], req["version"], req["email"], req["tool"], req["api_key"]) == (
            "gene",
            "2.0",
            EMAIL,
            "gta",
            KEY,
        )
    assert "NCBI does not know 1 GeneIDs (first: 999999999)" in caplog.text
    assert "NCBI withdrew 1 GeneIDs (first: 100996442)" in caplog.text
    assert "8138->5699" in caplog.text


def test_cache_is_reused_without_a_second_request(tmp_path, ncbi):
    make_tss(tmp_path / "tss.tsv")
    first = fetch(tmp_path)
    n = len(ncbi.requests)
    first_bytes = (tmp_path / "annotations.jsonl").read_bytes()
    second = fetch(tmp_path)
    assert len(ncbi.requests) == n == 3
    assert second == first and (tmp_path / "annotations.jsonl").read_bytes() == first_bytes
    # NCBI's "not found" answer is cached too; an unasked gene is not
    cached = json.loads((tmp_path / "cache" / "999999999.json").read_text())
    assert cached["status"] == "not_found"
    assert sorted(int(p.stem) for p in (tmp_path / "cache").glob("*.json")) == sorted([g for g, _, _ in GENES] + [5699])


def test_no_api_key_means_no_key_sent_and_3_requests_per_second(tmp_path, ncbi, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    ncbi.clock.latency = 0.0
    make_tss(tmp_path / "tss.tsv")
    fetch(tmp_path, batch_size=1)
    assert len(ncbi.requests) == 7 and all("api_key" not in r for r in ncbi.requests)
    # requests are spaced by >= 1/3 s: the client waits for its turn
    assert ncbi.clock.sleeps == [A.MIN_INTERVAL] * 6 and A.MIN_INTERVAL >= 1 / 3


def test_api_key_allows_10_requests_per_second(clock, ncbi):
    clock.latency = 0.0
    client = A.EntrezClient(EMAIL, KEY)
    for ids in ([1], [2], [3]):
        client.esummary(ids)
    assert clock.sleeps == [A.MIN_INTERVAL_WITH_KEY] * 2 and A.MIN_INTERVAL_WITH_KEY >= 1 / 10


def test_large_batches_are_posted_and_chains_of_replacements_fall_back(tmp_path, ncbi, monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, KEY)
    genes = [(1, "A1BG", "a")] + [(10_000_000 + i, f"G{i}", f"gene {i}") for i in range(249)]
    make_tss(tmp_path / "tss.tsv", genes)
    with caplog.at_level(logging.INFO, logger="gta"):
        out = fetch(tmp_path, batch_size=250)
    assert ncbi.ids() == [[g for g, _, _ in genes]] and ncbi.methods == ["POST"]  # Bio.Entrez: >= 200 ids
    assert [r["source"] for r in out] == ["entrez"] + ["mane-fallback"] * 249
    assert (
        "NCBI does not know 249 GeneIDs (first: 10000000, 10000001, 10000002, 10000003, 10000004, ... (+244))"
        in caplog.text
    )
    # a replaced GeneID whose CurrentID NCBI does not know keeps its MANE text
    cache = A.AnnotationCache(tmp_path / "cache")
    cache.put({**cache.get(10_000_000), "status": "replaced", "current_id": 42, "symbol": "X"})
    out = fetch(tmp_path, batch_size=250)
    assert ncbi.ids()[-1] == [42] and out[1] == A.mane_annotation(10_000_000, "G0", "gene 0", "mane-fallback")


# ----------------------------------------------------------------------------- failures and retries


def test_429_then_success(clock, ncbi):
    ncbi.script = ["429"]
    recs = A.EntrezClient(EMAIL, max_retries=3).esummary([1, 2])
    assert sorted(recs) == [1, 2] and len(ncbi.requests) == 2
    assert clock.sleeps == [1.0]


def test_retry_after_header_is_honoured(clock, ncbi):
    ncbi.script = ["429-retry-after-7"]
    A.EntrezClient(EMAIL, max_retries=3).esummary([1])
    assert clock.sleeps == [7.0]


def test_timeouts_and_truncated_replies_are_retried_with_growing_delays(clock, ncbi):
    ncbi.script = ["timeout", "read-timeout", "truncated", "incomplete", "html", "503"]
    recs = A.EntrezClient(EMAIL, max_retries=6).esummary([1, 3])
    assert sorted(recs) == [1, 3] and len(ncbi.requests) == 7
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]  # no rate-limit waits: each request took 1 s


def test_backoff_is_capped(clock, ncbi):
    ncbi.script = ["503"] * 8
    A.EntrezClient(EMAIL, max_retries=8, max_backoff=10).esummary([1])
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]


def test_after_the_last_retry_the_error_says_what_failed(tmp_path, ncbi, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    make_tss(tmp_path / "tss.tsv")
    ncbi.script = ["503"] * 3
    with pytest.raises(GTAError) as err:
        fetch(tmp_path, max_retries=2)
    msg = str(err.value)
    assert "esummary failed" in msg and "batch 1/2" in msg and "1, 2, 3, 8138" in msg
    assert "3 tries" in msg and "HTTP 503 Service Unavailable" in msg
    assert "use the 'mane' source to build the annotations offline" in msg
    assert err.value.input == "source"
    assert ncbi.clock.sleeps == [1.0, 2.0]
    assert not (tmp_path / "annotations.jsonl").exists()
    assert not list(tmp_path.glob(".annotations.jsonl*"))


def test_bad_request_is_not_retried(clock, ncbi):
    ncbi.script = ["400"]
    with pytest.raises(A.EntrezError) as err:
        A.EntrezClient(EMAIL, max_retries=5).esummary([1])
    assert err.value.tries == 1 and not err.value.retryable and clock.sleeps == []


def test_failed_batch_loses_nothing_and_rerun_fetches_only_missing_genes(tmp_path, ncbi):
    make_tss(tmp_path / "tss.tsv")
    ncbi.script = ["ok"] + ["timeout"] * 3  # batch 1 arrives, batch 2 times out for good
    with pytest.raises(GTAError, match=r"batch 2/2 .* 4 genes fetched so far are kept"):
        fetch(tmp_path, max_retries=2)
    assert sorted(int(p.stem) for p in (tmp_path / "cache").glob("*.json")) == [1, 2, 3, 8138]
    assert not (tmp_path / "annotations.jsonl").exists()
    before = len(ncbi.requests)
    fetch(tmp_path)  # the "interrupted" run is repeated
    assert ncbi.ids()[before:] == [[100996442, 999999999], [5699]]
    assert [r["source"] for r in read_lines(tmp_path / "annotations.jsonl")][:4] == ["entrez"] * 3 + ["entrez-current"]


def test_api_key_never_appears_in_output_logs_cache_or_errors(tmp_path, ncbi, monkeypatch, capsys, caplog):
    monkeypatch.setenv(KEY_ENV, KEY)
    make_tss(tmp_path / "tss.tsv")
    args = [
        "-v",
        "fetch-annotations",
        "--tss",
        str(tmp_path / "tss.tsv"),
        "--source",
        "entrez",
        "--email",
        EMAIL,
        "--api-key-env",
        KEY_ENV,
        "--cache",
        str(tmp_path / "cache"),
        "--batch-size",
        "4",
        "--max-retries",
        "1",
        "--out",
        str(tmp_path / "annotations.jsonl"),
    ]
    with caplog.at_level(logging.DEBUG):
        ncbi.script = ["ok", "429", "503"]  # batch 2 fails after its retry: the error path
        assert main(args) == 1
        ncbi.script = ["timeout", "ok", "truncated", "ok"]  # retries, then success
        assert main(args) == 0
    assert all(r["api_key"] == KEY for r in ncbi.requests)  # the key was used...
    captured = capsys.readouterr()
    texts = {"stderr": captured.err, "stdout": captured.out, "log records": caplog.text}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_text(encoding="utf-8")
    assert "retrying" in caplog.text and "esummary failed" in caplog.text
    leaked = [name for name, text in texts.items() if KEY in text]
    assert not leaked  # ...and never written anywhere
    assert repr(A.EntrezClient(EMAIL, KEY)) == "EntrezClient(email='tester@example.org', api_key=set)"


# ----------------------------------------------------------------------------- config and offline


def test_mane_source_works_offline_without_email(tmp_path, no_network):
    make_tss(tmp_path / "tss.tsv")
    records = fetch(tmp_path, source="mane", email=None)
    assert records == [A.mane_annotation(g, s, n) for g, s, n in GENES]
    assert read_lines(tmp_path / "annotations.jsonl") == records
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("email", [None, "", "not-an-address", "a b@example.org"])
def test_entrez_without_a_valid_email_is_a_config_error(tmp_path, no_network, email):
    make_tss(tmp_path / "tss.tsv")
    with pytest.raises(GTAError, match=r"needs your e-mail address \(email\).*use the 'mane' source") as err:
        fetch(tmp_path, email=email)
    assert err.value.input == "email"
    assert not (tmp_path / "annotations.jsonl").exists()


def test_bad_stage_arguments_name_the_input(tmp_path, no_network):
    make_tss(tmp_path / "tss.tsv")
    with pytest.raises(GTAError, match="source must be 'entrez' or 'mane'") as err:
        fetch(tmp_path, source="ensembl")
    assert err.value.input == "source"
    with pytest.raises(GTAError, match="needs a folder to cache") as err:
        fetch(tmp_path, cache=None)
    assert err.value.input == "cache"
    with pytest.raises(GTAError, match=r"batch_size must be 1\.\.500 .*; timeout must be > 0") as err:
        fetch(tmp_path, batch_size=0, timeout=0)
    assert err.value.inputs == ("batch_size", "timeout")
    with pytest.raises(GTAError, match="TSS table not found") as err:
        fetch(tmp_path, tss=tmp_path / "missing.tsv")
    assert err.value.input == "tss"
    records = fetch(tmp_path, source="mane", email=None)
    with pytest.raises(GTAError, match="the cell type is empty") as err:
        A.make_prompts(tmp_path / "annotations.jsonl", tmp_path / "prompts.jsonl", " ")
    assert err.value.input == "cell_type"
    A.make_prompts(tmp_path / "annotations.jsonl", tmp_path / "prompts.jsonl", "cells")
    assert len(A.read_prompts(tmp_path / "prompts.jsonl")) == len(records)
    (tmp_path / "prompts.jsonl").write_text('{"gene_id": 1}\n')
    with pytest.raises(GTAError, match="prompts file .* line 1 lacks .*rerun make_prompts") as err:
        A.read_prompts(tmp_path / "prompts.jsonl")
    assert err.value.input == "prompts"


def test_command_line_error_ends_with_the_flag(tmp_path, no_network, caplog):
    make_tss(tmp_path / "tss.tsv")
    args = ["fetch-annotations", "--tss", str(tmp_path / "tss.tsv"), "--out", str(tmp_path / "a.jsonl")]
    with caplog.at_level(logging.ERROR, logger="gta"):
        assert main([*args, "--source", "entrez", "--cache", str(tmp_path / "cache")]) == 1
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "needs your e-mail address" in error and error.endswith("(--email)"), error
    assert "annotations." not in error


def test_unreadable_cache_file_is_named(tmp_path, ncbi):
    make_tss(tmp_path / "tss.tsv")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "2.json").write_text("{not json")
    with pytest.raises(GTAError, match=r"cache file .*2\.json.* delete it") as err:
        fetch(tmp_path)
    assert err.value.input == "cache"


# ----------------------------------------------------------------------------- prompts file


def test_prompts_file_follows_annotations_order(tmp_path, ncbi):
    make_tss(tmp_path / "tss.tsv")
    records = fetch(tmp_path)
    out = tmp_path / "prompts.jsonl"
    assert (
        main(
            [
                "make-prompts",
                "--annotations",
                str(tmp_path / "annotations.jsonl"),
                "--cell-type",
                "GM12878 lymphoblastoid cells",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    prompts = read_lines(out)
    assert [p["gene_id"] for p in prompts] == [r["gene_id"] for r in records]
    assert prompts[0]["prompt"] == FIGURE4
    assert prompts[5]["prompt"] == (
        "# Task: Gene Expression Prediction on GM12878 lymphoblastoid cells.\n"
        "# Official Gene Symbol: UNKNOWN1\n"
        "# Official Gene Full Name: MANE name of an unknown gene\n# Data:"
    )
    assert A.read_prompts(out) == {p["gene_id"]: p["prompt"] for p in prompts}


def test_malformed_annotations_file_is_named(tmp_path):
    path = tmp_path / "annotations.jsonl"
    path.write_text('{"gene_id": 1, "symbol": "A"}\n')
    with pytest.raises(GTAError, match=r"annotations file .* line 1 lacks .*rerun fetch_annotations") as err:
        A.make_prompts(path, tmp_path / "prompts.jsonl", "cells")
    assert err.value.input == "annotations"
    assert not (tmp_path / "prompts.jsonl").exists()


# ----------------------------------------------------------------------------- workflow


def tiny_config(workdir: Path, **annotations) -> dict:
    # the synthetic genome (seconds): a FASTA shorter than the genes' TSSs is now an error
    return {
        "genes": {"chromosomes": ["chr22"], "max_genes": 5},
        "genome": {"fasta": "synthetic"},
        "window": {"n_bins": 11},
        "evaluate": {"context_bins": [5, 11]},
        "annotations": {"source": "mane", **annotations},
    }


@pytest.mark.workflow
def test_workflow_entrez_without_email_stops_at_parse_time(tmp_path):
    r = run_snakemake(
        tmp_path, "-n", "results/annotations/prompts.jsonl", config=tiny_config(tmp_path, source="entrez")
    )
    assert r.returncode != 0
    assert "annotations.email" in r.stdout and "annotations.source: mane" in r.stdout


LOCALRULES = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
                      config_settings=ConfigSettings(configfiles=[Path(sys.argv[2])]),
                      snakefile=Path(sys.argv[1]), workdir=Path(sys.argv[3]))
    print(json.dumps(sorted(wf._workflow._localrules)))
"""


@pytest.mark.workflow  # parses the workflow with Snakemake's API
def test_workflow_fetch_rule_is_local(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tmp_path, source="entrez", email=EMAIL)))
    r = subprocess.run(
        [sys.executable, "-c", LOCALRULES, str(ROOT / "Snakefile"), str(cfg), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    local = json.loads(r.stdout.strip().splitlines()[-1])
    assert "fetch_annotations" in local and "make_prompts" not in local


@pytest.mark.workflow  # 12-22 s on 2 shared cores: three small snakemake runs
def test_workflow_mane_runs_and_reruns_exactly_what_a_config_edit_touches(tmp_path):
    cfg = tiny_config(tmp_path)
    r = run_snakemake(tmp_path, "--cores", "1", "results/annotations/prompts.jsonl", config=cfg)
    assert r.returncode == 0, r.stdout[-3000:]
    prompts = read_lines(tmp_path / "results/annotations/prompts.jsonl")
    tss = pd.read_csv(tmp_path / "results/genes/tss.tsv", sep="\t")
    assert [p["gene_id"] for p in prompts] == tss["gene_id"].tolist() and len(prompts) == 5
    assert prompts[0]["prompt"].startswith(
        "# Task: Gene Expression Prediction on GM12878 lymphoblastoid cells.\n"
        f"# Official Gene Symbol: {tss['symbol'][0]}\n"
    )
    # with source mane, the e-mail is not used: editing it reruns nothing
    r = run_snakemake(
        tmp_path,
        "-n",
        "results/annotations/prompts.jsonl",
        config={**cfg, "annotations": {**cfg["annotations"], "email": "x@example.org"}},
    )
    assert r.returncode == 0 and "Nothing to be done" in r.stdout, r.stdout[-2000:]
    # a new cell type reruns make_prompts only
    r = run_snakemake(
        tmp_path,
        "-n",
        "results/annotations/prompts.jsonl",
        config={**cfg, "annotations": {**cfg["annotations"], "cell_type": "K562 cells"}},
    )
    out = r.stdout
    assert r.returncode == 0 and "make_prompts" in out and "fetch_annotations:" not in out, out[-2000:]
