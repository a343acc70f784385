"""Batched Sei inference: gene windows from a FASTA -> 40 class scores per bin, one resumable HDF5 shard per job.

A shard is a contiguous run of genes in genome order (chromosomes as in the FASTA index, then TSS), so
that genes whose windows overlap share their bins. Every distinct bin ("unit": chromosome, start,
strand flip) is computed once per shard, in the order genes first need it; a gene is written as soon
as all its bins (and those of every earlier gene) are done. The shard file is written under a
temporary name with a progress counter and renamed when complete; a rerun of a killed job continues
from the last flushed gene.
"""

from __future__ import annotations

from typing import Literal

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from collections.abc import Callable, Iterator, Sequence

import h5py
import numpy as np
import pandas as pd
import torch

from .. import GTAError
from ..genome import (
    GRIDS,
    ORIENTS,
    check_tss_in_chromosomes,
    check_window_size,
    chrom_lengths,
    open_fasta,
    read_padded,
    window_start,
)
from ..formats import write_gene_coords
from ..io import file_id
from ..provenance import provenance_attrs
from ..hardware import autocast, resolve_device, resolve_dtype, tune_malloc
from ..tss import read_tss
from .checkpoint import load_projection, load_sei
from .model import N_CLASSES, ONE_HOT_TABLE, Sei, one_hot_codes, predict, projection_matrix

log = logging.getLogger("gta.sei.inference")

SHARD_FORMAT = 2  # 2: per-gene 'n_fraction' dataset
SEI_INPUT = 4096  # Sei's input length in bp
MOSTLY_N = 0.5  # a window with more than this share of N bases is "mostly N"


# ----------------------------------------------------------------------------- windows and shards


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """How each gene's window is cut (window.n_bins, window.bin_size, window.orient, window.grid)."""

    n_bins: int
    bin_size: int = 4096
    orient: str = "reference"
    grid: str = "tss"

    def __post_init__(self):
        if self.n_bins < 1 or self.n_bins % 2 == 0:
            raise GTAError(
                f"a window needs a positive odd number of bins, so that the TSS bin is the middle one "
                f"(got {self.n_bins})",
                input="n_bins",
            )
        if self.bin_size < 1:
            raise GTAError(f"the bin size must be a positive number of bp (got {self.bin_size})", input="bin_size")
        check_window_size(self.n_bins, self.bin_size)
        if self.orient not in ORIENTS:
            raise GTAError(f"the window orientation must be one of {ORIENTS} (got {self.orient!r})", input="orient")
        if self.grid not in GRIDS:
            raise GTAError(f"the bin grid must be one of {GRIDS} (got {self.grid!r})", input="grid")


def parse_shard(text: str, input: str = "shard") -> tuple[int, int]:
    """'2-of-4' -> (2, 4): shard numbers are 1-based. `input`: the caller's name for `text` (GTAError.input)."""
    try:
        i, n = (int(v) for v in text.split("-of-"))
    except ValueError:
        raise GTAError(f"a shard is written 'I-of-N', e.g. '1-of-4' (got {text!r})", input=input) from None
    if not 1 <= i <= n:
        raise GTAError(f"shard {text!r}: need 1 <= I <= N", input=input)
    return i, n


def shard_rows(
    genes: pd.DataFrame,
    chrom_order: Sequence[str],
    shard: int,
    shards: int,
    spec: WindowSpec | None = None,
    reverse_complement: bool = True,
) -> np.ndarray:
    """tss.tsv row indices of shard `shard` (1-based) of `shards`, in processing (genome) order.

    Genes are sorted by chromosome (in `chrom_order`) and TSS, then cut into `shards` contiguous runs,
    so that grid-mode bin sharing is lost only at the cuts. With `spec` the runs hold near-equal numbers
    of distinct bins (the work), else near-equal numbers of genes.
    """
    rank = {c: i for i, c in enumerate(chrom_order)}
    missing = sorted(set(genes["chrom"]) - set(rank))
    if missing:
        raise GTAError(
            f"chromosomes {missing[:5]} of the gene table are not in the FASTA; use the genome FASTA the "
            "gene table was made for",
            input=("tss", "fasta"),
        )
    if not 1 <= shard <= shards:
        raise GTAError(f"shard {shard} of {shards} does not exist", input="shard")
    key_chrom = genes["chrom"].map(rank).to_numpy()
    order = np.lexsort((np.arange(len(genes)), genes["tss"].to_numpy(), key_chrom))
    if spec is None or not len(order):
        bounds = np.linspace(0, len(genes), shards + 1).round().astype(int)
    else:
        work = np.cumsum(plan_units(genes.iloc[order], spec, chrom_order, reverse_complement).new_units + 1e-3)
        bounds = np.searchsorted(work, work[-1] * np.arange(shards + 1) / shards, side="right")
        bounds[0], bounds[-1] = 0, len(order)
    return order[bounds[shard - 1] : bounds[shard]]


@dataclasses.dataclass
class Plan:
    """The distinct bins (units) a shard computes, and which unit each output bin of each gene takes."""

    chrom: np.ndarray  # (U,) index into `chroms`
    start: np.ndarray  # (U,) 0-based first base (may be < 0 or run past the end: N padding)
    flip: np.ndarray  # (U,) bool: compute the reverse complement of the bin
    gene_units: np.ndarray  # (G, n_bins) unit id of each output bin
    ready_at: np.ndarray  # (G,) genes [0, g] are complete once units [0, ready_at[g]) are done
    new_units: np.ndarray  # (G,) units each gene is the first to need
    chroms: list[str]

    @property
    def n_units(self) -> int:
        return len(self.start)

    def first_unit(self, gene: int) -> int:
        """Smallest unit id any gene from `gene` on needs."""
        return int(self.gene_units[gene:].min()) if gene < len(self.gene_units) else self.n_units

    def ring_size(self, batch_size: int) -> int:
        """Units that must stay in memory so each gene can be gathered when it completes."""
        if not len(self.gene_units):
            return batch_size
        return int((self.ready_at - self.gene_units.min(1)).max()) + batch_size


def plan_units(genes: pd.DataFrame, spec: WindowSpec, chroms: Sequence[str], reverse_complement: bool = True) -> Plan:
    """The unit plan of `genes` (in processing order) under `spec`.

    With reverse-complement averaging Sei is strand symmetric, so orient='transcript' only reverses the
    bin order of minus-strand genes; without it their bins are computed on the reverse strand.
    """
    chroms = list(chroms)
    rank = {c: i for i, c in enumerate(chroms)}
    g, n = len(genes), spec.n_bins
    tss = genes["tss"].to_numpy(np.int64)
    minus = (genes["strand"].to_numpy() == "-") & (spec.orient == "transcript")
    starts = (
        np.asarray(window_start(tss, n, spec.bin_size, spec.grid), np.int64)[:, None]
        + spec.bin_size * np.arange(n, dtype=np.int64)[None, :]
    )
    chrom = np.repeat(genes["chrom"].map(rank).to_numpy(np.int64)[:, None], n, 1)
    flip = np.repeat((minus & (not reverse_complement))[:, None], n, 1)
    key = (((chrom * 2 + flip) << 42) + (starts + (1 << 41))).ravel()
    uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    by_first = np.argsort(first, kind="stable")  # unit ids in order of first use
    unit_id = np.empty(len(uniq), np.int64)
    unit_id[by_first] = np.arange(len(uniq))
    gene_units = unit_id[inverse.ravel()].reshape(g, n)
    picks = first[by_first]
    gene_units[minus] = gene_units[minus][:, ::-1]  # transcript orientation: bin 0 is farthest upstream
    ready = np.maximum.accumulate(gene_units.max(1) + 1) if g else np.zeros(0, np.int64)
    return Plan(
        chrom=chrom.ravel()[picks],
        start=starts.ravel()[picks],
        flip=flip.ravel()[picks],
        gene_units=gene_units,
        ready_at=ready,
        new_units=np.bincount(picks // n, minlength=g),
        chroms=chroms,
    )


# ----------------------------------------------------------------------------- streaming windows


def unit_codes(fa, plan: Plan, lo: int, hi: int, bin_size: int) -> np.ndarray:
    """ASCII codes (hi - lo, bin_size) of units [lo, hi), read in runs of adjacent bins."""
    out = np.empty((hi - lo, bin_size), np.uint8)
    i = lo
    while i < hi:
        j = i + 1
        while (
            j < hi
            and plan.chrom[j] == plan.chrom[i]
            and plan.flip[j] == plan.flip[i]
            and plan.start[j] == plan.start[j - 1] + bin_size
        ):
            j += 1
        s = int(plan.start[i])
        seq = read_padded(fa, plan.chroms[plan.chrom[i]], s, s + (j - i) * bin_size)
        out[i - lo : j - lo] = np.frombuffer(seq.encode("ascii"), np.uint8).reshape(j - i, bin_size)
        i = j
    return out


def _prepare_batch(
    fa, plan: Plan, lo: int, hi: int, bin_size: int, pin: bool = False
) -> tuple[int, int, torch.Tensor, np.ndarray]:
    """(lo, hi, one-hot (hi - lo, 4, bin_size), share of N bases per unit) for units [lo, hi); the units
    to flip are reverse-complemented, the tensor pinned for a copy to the GPU with `pin`."""
    codes = unit_codes(fa, plan, lo, hi, bin_size)
    n_share = (codes == ord("N")).mean(axis=1, dtype=np.float64).astype(np.float32)
    x = one_hot_codes(codes)
    flip = plan.flip[lo:hi]
    if flip.any():
        x[flip] = x[flip][:, ::-1, ::-1]
    t = torch.from_numpy(x)
    if pin:
        t = t.pin_memory()
    return lo, hi, t, n_share


def _hand_over(q: queue.Queue, stop: threading.Event, item) -> bool:
    """Hand `item` to the consumer unless it has stopped listening; False when it has."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.5)
            return True
        except queue.Full:
            continue
    return False


def _produce(
    q: queue.Queue, stop: threading.Event, fasta, plan: Plan, start: int, batch_size: int, bin_size: int, pin: bool
) -> None:
    """The prefetch thread: every batch from unit `start` on, then None; an exception instead, if one is raised."""
    try:
        fa = open_fasta(fasta)
        for lo in range(start, plan.n_units, batch_size):
            hi = min(lo + batch_size, plan.n_units)
            if not _hand_over(q, stop, _prepare_batch(fa, plan, lo, hi, bin_size, pin)):
                return
        _hand_over(q, stop, None)
    except BaseException as e:  # handed to the consumer
        _hand_over(q, stop, e)


def _consume(q: queue.Queue) -> Iterator[tuple[int, int, torch.Tensor, np.ndarray]]:
    """The batches the prefetch thread hands over, up to its None; an exception it hands over is raised here."""
    while True:
        item = q.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def iter_batches(
    fasta, plan: Plan, start: int, batch_size: int, bin_size: int, prefetch: int = 3, pin: bool = False
) -> Iterator[tuple[int, int, torch.Tensor, np.ndarray]]:
    """(lo, hi, one-hot (hi - lo, 4, bin_size), share of N bases per unit) for units [start, n_units),
    prepared in a background thread (`readers: 0`)."""
    q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()
    thread = threading.Thread(
        target=_produce, args=(q, stop, fasta, plan, start, batch_size, bin_size, pin), name="sei-prefetch", daemon=True
    )
    thread.start()
    try:
        yield from _consume(q)
    finally:
        stop.set()
        thread.join(timeout=10)


# byte -> byte of the complementary base (A<->T, C<->G, both cases); every other byte stays (N stays N)
_COMPLEMENT = np.arange(256, dtype=np.uint8)
for _a, _b in (b"AT", b"TA", b"CG", b"GC", b"at", b"ta", b"cg", b"gc"):
    _COMPLEMENT[_a] = _b


class _UnitCodes(torch.utils.data.Dataset):
    """Batch `i` of a shard's units from unit `start` on, read in a reader process: (lo, hi, ASCII codes
    (hi - lo, bin_size) uint8 with the units to flip already reverse-complemented, share of N bases per unit).

    An exception is returned, not raised, as a GTAError that names the FASTA (one that pickles, so it
    reaches the consumer whole); the consumer raises it. The FASTA is opened in each reader process.
    """

    def __init__(self, fasta, plan: Plan, start: int, batch_size: int, bin_size: int):
        self.fasta = str(fasta.filename if hasattr(fasta, "filename") else fasta)
        # the plan without its per-gene tables: what a reader needs, and less to copy to it
        self.plan = dataclasses.replace(plan, gene_units=np.empty((0, 0), np.int64), ready_at=plan.ready_at[:0])
        self.n_units, self.start, self.batch_size, self.bin_size = plan.n_units, start, batch_size, bin_size
        self.fa = None

    def __len__(self) -> int:
        return max(0, -(-(self.n_units - self.start) // self.batch_size))

    def __getitem__(self, i: int):
        lo = self.start + i * self.batch_size
        hi = min(lo + self.batch_size, self.n_units)
        try:
            if self.fa is None:
                self.fa = open_fasta(self.fasta)
            codes = unit_codes(self.fa, self.plan, lo, hi, self.bin_size)
            n_share = (codes == ord("N")).mean(axis=1, dtype=np.float64).astype(np.float32)
            flip = self.plan.flip[lo:hi]
            if flip.any():
                codes[flip] = _COMPLEMENT[codes[flip][:, ::-1]]
            return lo, hi, torch.from_numpy(codes), n_share
        except GTAError as e:
            return GTAError(str(e), input=e.input)
        except Exception as e:  # noqa: BLE001  (handed to the consumer, which raises it)
            return GTAError(
                f"reading units {lo}-{hi} of the genome FASTA {self.fasta} failed in a reader process: "
                f"{type(e).__name__}: {e}",
                input="fasta",
            )


def iter_codes(
    fasta,
    plan: Plan,
    start: int,
    batch_size: int,
    bin_size: int,
    readers: int = 1,
    prefetch: int = 4,
) -> Iterator[tuple[int, int, torch.Tensor, np.ndarray]]:
    """(lo, hi, ASCII codes (hi - lo, bin_size) uint8, share of N bases per unit) for units [start, n_units),
    in order, read by `readers` processes (torch's DataLoader) so that the reading never holds the GIL of
    the process that runs the model. The units to flip come reverse-complemented; `encode` makes the
    one-hot on the model's device (a GPU gets 1 byte per base, not 16).

    The readers are forked: they read the FASTA only (each opens its own handle) and never touch torch
    threads, CUDA or HDF5. A reader that raises stops the run with its GTAError; one that dies with a
    GTAError saying so (the DataLoader notices a dead worker within seconds); either way no batch after
    the failed one is used.
    """
    ctx = "fork" if "fork" in torch.multiprocessing.get_all_start_methods() else None
    loader = torch.utils.data.DataLoader(
        _UnitCodes(fasta, plan, start, batch_size, bin_size),
        batch_size=None,
        shuffle=False,
        num_workers=readers,
        prefetch_factor=prefetch,
        multiprocessing_context=ctx,
    )
    it = iter(loader)
    try:
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except RuntimeError as e:  # a reader process died (killed, out of memory)
                raise GTAError(
                    f"a FASTA reader process stopped unexpectedly ({e}); rerun the shard (it resumes where it "
                    "stopped), or with readers 0 to read in a thread of the job's own process",
                    input="readers",
                ) from e
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


def encode(codes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """One-hot (batch, 4, L) float32 of (batch, L) uint8 ASCII codes on their device, `table` the (4, 256)
    transposed ONE_HOT_TABLE there: the same numbers as `one_hot_codes`, in one gather (a strided view:
    predict's reverse-complement copy makes it contiguous)."""
    n, length = codes.shape
    return table.index_select(1, codes.reshape(-1).int()).view(4, n, length).transpose(0, 1)


# ----------------------------------------------------------------------------- the shard file


def partial_path(out: str | Path) -> Path:
    """Where an unfinished shard lives (not a Snakemake output, so a killed job's work survives)."""
    out = Path(out)
    return out.with_name(f".{out.name}.partial")


def lock_path(out: str | Path) -> Path:
    """The lock file a job writing shard `out` holds (an exclusive flock) while it runs."""
    out = Path(out)
    return out.with_name(f".{out.name}.lock")


def _busy(out: Path) -> GTAError:
    return GTAError(
        f"another job is writing {partial_path(out)} (it holds {lock_path(out)}); wait for it to "
        "finish or stop it, then rerun this shard. Its partial file is left as it is"
    )


@contextlib.contextmanager
def shard_lock(out: str | Path) -> Iterator[None]:
    """Hold the shard's lock while writing it; a second writer gets a GTAError and touches nothing."""
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a")  # noqa: SIM115  (held, and locked, until the caller's block ends)
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise _busy(Path(out)) from None
            raise
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # still held: a job starting now takes a fresh lock file
    finally:
        fh.close()


def fingerprint(
    genes: pd.DataFrame, spec: WindowSpec, fasta, checkpoint, projection, reverse_complement: bool, dtype: torch.dtype
) -> str:
    """Identity of everything a shard's numbers depend on: a partial file with another one is discarded."""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            [
                SHARD_FORMAT,
                dataclasses.asdict(spec),
                file_id(fasta),
                file_id(checkpoint),
                file_id(projection),
                bool(reverse_complement),
                str(dtype),
            ]
        ).encode()
    )
    h.update(pd.util.hash_pandas_object(genes[["gene_id", "chrom", "tss", "strand"]], index=False).to_numpy().tobytes())
    return h.hexdigest()


def _open_partial(path: Path, fp: str, n_genes: int, n_bins: int) -> h5py.File | None:
    """Reopen a partial shard with the same fingerprint, or None (a damaged or stale one is removed)."""
    if not path.exists():
        return None
    try:
        f = h5py.File(path, "r+")
    except OSError as e:
        if "lock" in str(e).lower() or getattr(e, "errno", None) in (errno.EAGAIN, errno.EACCES):
            raise _busy(path.with_name(path.name.removeprefix(".").removesuffix(".partial"))) from e
        log.warning("discarding unreadable partial shard %s (%s); starting the shard again", path, e)
        path.unlink(missing_ok=True)
        return None
    try:
        ok = (
            f.attrs.get("fingerprint") == fp
            and f["features"].shape == (n_genes, n_bins, N_CLASSES)
            and 0 <= int(f.attrs["done"]) <= n_genes
        )
        if ok:
            return f
        f.close()
        log.info("discarding %s: it was made from other inputs or settings", path)
    except Exception as e:  # a job killed mid-write can leave a damaged file
        f.close()
        log.warning("discarding unreadable partial shard %s (%s); starting the shard again", path, e)
    path.unlink(missing_ok=True)
    return None


def _new_partial(
    path: Path,
    fp: str,
    rows: np.ndarray,
    genes: pd.DataFrame,
    spec: WindowSpec,
    shard: int,
    shards: int,
    n_total: int,
    meta: dict,
) -> h5py.File:
    path.parent.mkdir(parents=True, exist_ok=True)
    f = h5py.File(path, "w")
    g = len(rows)
    f.create_dataset(
        "features",
        (g, spec.n_bins, N_CLASSES),
        np.float16,
        chunks=(max(1, min(g, 64)), spec.n_bins, N_CLASSES) if g else None,
    )
    f.create_dataset("row", data=rows.astype(np.int64))
    f.create_dataset("gene_id", data=genes["gene_id"].to_numpy(np.int64))
    f.create_dataset("n_fraction", (g,), np.float32)  # share of N bases in each gene's window
    f.attrs.update(
        {
            "fingerprint": fp,
            "done": 0,
            "shard": shard,
            "shards": shards,
            "n_genes_total": n_total,
            "n_bins": spec.n_bins,
            "bin_size": spec.bin_size,
            "tss_bin": spec.n_bins // 2,
            "orient": spec.orient,
            "grid": spec.grid,
            "format": SHARD_FORMAT,
            **meta,
        }
    )
    f.flush()
    return f


def run_shard(
    tss: str | Path | pd.DataFrame,
    fasta: str | Path,
    model: Sei,
    projvec: np.ndarray,
    out: str | Path,
    spec: WindowSpec,
    shard: int = 1,
    shards: int = 1,
    *,
    reverse_complement: bool = True,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    batch_size: int = 32,
    flush_seconds: float = 10.0,
    checkpoint_path: str | Path | None = None,
    projection_path: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    readers: int = 1,
) -> Path:
    """Compute the Sei class scores of one shard's genes into `out` (HDF5), resuming a partial run.

    `readers`: processes reading the FASTA (`iter_codes`), 0 = a prefetch thread of this process.
    `progress(done_genes, n_genes)` is called after every flush (tests use it to interrupt a run).
    A second job on the same shard stops with a GTAError and leaves the first one's partial file alone.
    """
    out = Path(out)
    if readers < 0:
        raise GTAError(f"readers must be 0 or more (got {readers})", input="readers")
    with shard_lock(out):
        genes_all = read_tss(tss) if not isinstance(tss, pd.DataFrame) else tss
        device = torch.device(device)
        unit = _class_projection(projvec, model, device)
        rows, genes, plan = _shard_plan(genes_all, fasta, spec, shard, shards, reverse_complement)
        n_genes = len(genes)
        fp = _shard_fingerprint(genes, spec, fasta, model, checkpoint_path, projection_path, reverse_complement, dtype)
        part = partial_path(out)
        meta = _shard_meta(model, fasta, reverse_complement, dtype)
        f, done = _open_or_start(
            part,
            fp,
            len(genes),
            spec.n_bins,
            lambda: _new_partial(part, fp, rows, genes, spec, shard, shards, len(genes_all), meta),
        )
        model = model.to(device).eval()
        first = (plan.first_unit(done) // batch_size) * batch_size  # batch-aligned: same batches as a fresh run
        log.info(
            "shard %d of %d: %d genes, %d bins each, %d distinct bins (%.2f per gene-bin) on %s, %s%s; "
            "%d bins to compute",
            shard,
            shards,
            n_genes,
            spec.n_bins,
            plan.n_units,
            plan.n_units / max(1, n_genes * spec.n_bins),
            device,
            str(dtype).replace("torch.", ""),
            ", reverse-complement averaged" if reverse_complement else "",
            plan.n_units - first,
        )
        try:
            done, computed, t0 = _compute(
                f,
                done,
                fasta,
                plan,
                model,
                unit,
                first,
                batch_size,
                spec.bin_size,
                reverse_complement=reverse_complement,
                device=device,
                dtype=dtype,
                flush_seconds=flush_seconds,
                progress=progress,
                readers=readers,
            )
            _record_provenance(f, genes, fasta, checkpoint_path, projection_path)
            mostly_n = _complete(f, done, n_genes)
        finally:
            f.close()
        log.info(
            "%d of %d genes have a mostly-N window (more than %d%% N bases, e.g. past a chromosome end or in "
            "an assembly gap of %s)",
            mostly_n,
            n_genes,
            round(100 * MOSTLY_N),
            fasta,
        )
        os.replace(part, out)
        el = time.perf_counter() - t0
        log.info(
            "wrote %s: %d genes, %d windows in %.1f s (%.1f windows/s)",
            out,
            n_genes,
            computed,
            el,
            computed / max(el, 1e-9),
        )
        return out


def _class_projection(projvec: np.ndarray, model: Sei, device: torch.device) -> torch.Tensor:
    """The (targets, 40) matrix taking Sei's target predictions to class scores, on `device`."""
    unit = torch.from_numpy(projection_matrix(projvec).T.astype(np.float32)).to(device)  # (T, 40)
    if unit.shape[0] != model.n_targets:
        raise GTAError(
            f"the Sei projection matrix has {unit.shape[0]} columns but the checkpoint predicts "
            f"{model.n_targets} targets; use the projection that belongs to the checkpoint",
            input=("projection", "checkpoint"),
        )
    return unit


def _shard_plan(
    genes_all: pd.DataFrame, fasta, spec: WindowSpec, shard: int, shards: int, reverse_complement: bool
) -> tuple[np.ndarray, pd.DataFrame, Plan]:
    """(rows of `genes_all` in the shard, those genes in processing order, their unit plan)."""
    fa = open_fasta(fasta)
    chroms = list(fa.keys())
    check_tss_in_chromosomes(genes_all, chrom_lengths(fa), fasta)
    rows = shard_rows(genes_all, chroms, shard, shards, spec, reverse_complement)
    genes = genes_all.iloc[rows].reset_index(drop=True)
    return rows, genes, plan_units(genes, spec, chroms, reverse_complement)


def _shard_fingerprint(
    genes: pd.DataFrame,
    spec: WindowSpec,
    fasta,
    model: Sei,
    checkpoint_path,
    projection_path,
    reverse_complement: bool,
    dtype: torch.dtype,
) -> str:
    """`fingerprint`, with the weights of a model passed in memory (no checkpoint file) part of the identity."""
    fp = fingerprint(genes, spec, fasta, checkpoint_path or fasta, projection_path or fasta, reverse_complement, dtype)
    if checkpoint_path is None:  # a model passed in memory: its weights are part of the identity
        h = hashlib.sha256(fp.encode())
        for p in model.state_dict().values():
            h.update(p.detach().cpu().numpy().tobytes())
        fp = h.hexdigest()
    return fp


def _shard_meta(model: Sei, fasta, reverse_complement: bool, dtype: torch.dtype) -> dict:
    """The shard file's attributes describing the Sei run that made it."""
    return {
        "sei_channels": list(model.channels),
        "sei_targets": model.n_targets,
        "reverse_complement": bool(reverse_complement),
        "precision": str(dtype).replace("torch.", ""),
        "fasta": str(fasta),
    }


def _record_provenance(f: h5py.File, genes: pd.DataFrame, fasta, checkpoint_path, projection_path) -> None:
    """Record in the shard what it was made from (gta.provenance): its genes' coordinates, the sequence
    fingerprint of their chromosomes, the Sei files' sha256 (none for a model passed in memory). Done
    when the shard completes, so a resumed partial file gets them too."""
    if "tss" not in f:
        write_gene_coords(f, genes)
    f.attrs.update(provenance_attrs(fasta, genes["chrom"], checkpoint_path, projection_path))


def _open_or_start(
    part: Path, fp: str, n_genes: int, n_bins: int, new_file: Callable[[], h5py.File]
) -> tuple[h5py.File, int]:
    """(the partial shard file, genes already done in it): a matching partial file reopened, else `new_file()`."""
    f = _open_partial(part, fp, n_genes, n_bins)
    if f is None:
        return new_file(), 0
    done = int(f.attrs["done"])
    log.info("resuming %s: %d of %d genes already done", part, done, n_genes)
    return f, done


def _compute(
    f: h5py.File,
    done: int,
    fasta,
    plan: Plan,
    model: Sei,
    unit: torch.Tensor,
    first: int,
    batch_size: int,
    bin_size: int,
    *,
    reverse_complement: bool,
    device: torch.device,
    dtype: torch.dtype,
    flush_seconds: float,
    progress,
    readers: int = 1,
) -> tuple[int, int, float]:
    """Units from `first` on through Sei, each gene written to `f` once its bins are done; the progress
    counter flushed every `flush_seconds` and at the end. (genes done, units computed, start time).

    Each batch's class scores are read back after the next batch is launched, so that a GPU always has
    the next batch queued while the host writes the last one."""
    n_genes = len(plan.gene_units)  # the shard's genes
    ring = np.empty((plan.ring_size(batch_size), N_CLASSES), np.float32)
    unit_n = np.zeros(plan.n_units, np.float32)  # share of N bases per distinct bin
    t0 = last_log = last_flush = time.perf_counter()
    computed = 0
    if readers > 0:  # uint8 codes from reader processes, the one-hot made on the device
        batches = iter_codes(fasta, plan, first, batch_size, bin_size, readers)
        to_device = _CodesToDevice(device, batch_size, bin_size)
    else:  # the one-hot made in a prefetch thread of this process
        batches = iter_batches(fasta, plan, first, batch_size, bin_size, pin=device.type == "cuda")
        to_device = None
    pending = None
    stream = _with_end(batches)
    with torch.inference_mode(), contextlib.closing(stream):  # closed at once on an error: readers stop
        for lo, hi, x, n_share in stream:
            if lo is not None:
                x = to_device(x) if to_device is not None else x.to(device, non_blocking=True)
                scores = _class_scores(model, x, unit, reverse_complement, device, dtype)
            if pending is not None:
                p_lo, p_hi, p_scores, p_n = pending
                unit_n[p_lo:p_hi] = p_n
                ring[np.arange(p_lo, p_hi) % len(ring)] = p_scores.cpu().numpy()
                computed += p_hi - p_lo
                done = _write_genes(f, plan, ring, unit_n, done, p_hi)
                now = time.perf_counter()
                if now - last_flush >= flush_seconds or done == n_genes:
                    _flush(f, done, n_genes, progress)
                    last_flush = now
                if now - last_log >= 30 or p_hi == plan.n_units:
                    _log_progress(plan, p_hi, done, n_genes, computed / (now - t0))
                    last_log = now
            pending = (lo, hi, scores, n_share) if lo is not None else None
    return done, computed, t0


def _with_end(batches: Iterator[tuple]) -> Iterator[tuple]:
    """The batches, then one (None, None, None, None): the signal to read back the last one."""
    yield from batches
    yield None, None, None, None


class _CodesToDevice:
    """Batches of uint8 codes -> one-hot float32 on `device`. On a GPU the codes go through a few pinned
    host buffers allocated once (a buffer is refilled only after its last copy has finished), then the
    one-hot is made there (`encode`); on a CPU it is made in place."""

    def __init__(self, device: torch.device, batch_size: int, bin_size: int, depth: int = 3):
        self.device = device
        self.table = torch.from_numpy(ONE_HOT_TABLE.T.copy()).to(device)  # (4, 256)
        self.slot = 0
        if device.type == "cuda":
            shape = (batch_size, bin_size)
            self.pinned = [torch.empty(shape, dtype=torch.uint8, pin_memory=True) for _ in range(depth)]
            self.copied = [None] * depth
        else:
            self.pinned = None

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        if self.pinned is None:
            return encode(codes.to(self.device), self.table)
        k, n = self.slot, codes.shape[0]
        self.slot = (k + 1) % len(self.pinned)
        if self.copied[k] is not None:
            self.copied[k].synchronize()
        buf = self.pinned[k][:n]
        buf.copy_(codes)
        on_device = buf.to(self.device, non_blocking=True)
        self.copied[k] = torch.cuda.Event()
        self.copied[k].record(torch.cuda.current_stream(self.device))
        return encode(on_device, self.table)


def _class_scores(
    model: Sei, x: torch.Tensor, unit: torch.Tensor, reverse_complement: bool, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Class scores (units, 40) of one batch on `device`: Sei at `dtype`, the class projection in fp32."""
    with autocast(device, dtype):
        p = predict(model, x, reverse_complement)
    return p.float() @ unit  # class projection in fp32


def _write_genes(f: h5py.File, plan: Plan, ring: np.ndarray, unit_n: np.ndarray, done: int, hi: int) -> int:
    """Write the genes that are complete once units [0, hi) are, from the ring; the genes now done."""
    new_done = int(np.searchsorted(plan.ready_at, hi, side="right"))
    if new_done <= done:
        return done
    block = ring[plan.gene_units[done:new_done] % len(ring)]
    f["features"][done:new_done] = block.astype(np.float16)
    f["n_fraction"][done:new_done] = unit_n[plan.gene_units[done:new_done]].mean(axis=1)
    return new_done


def _flush(f: h5py.File, done: int, n_genes: int, progress) -> None:
    """Record the genes done on disk, then tell `progress`."""
    f.attrs["done"] = done
    f.flush()
    if progress is not None:
        progress(done, n_genes)


def _log_progress(plan: Plan, hi: int, done: int, n_genes: int, rate: float) -> None:
    log.info(
        "%d/%d bins (%.1f%%), %d/%d genes, %.1f windows/s, %.0f s left",
        hi,
        plan.n_units,
        100 * hi / max(1, plan.n_units),
        done,
        n_genes,
        rate,
        (plan.n_units - hi) / max(rate, 1e-9),
    )


def _complete(f: h5py.File, done: int, n_genes: int) -> int:
    """Mark the shard file complete; the number of its genes with a mostly-N window."""
    if done != n_genes:
        raise GTAError(f"internal error: shard finished with {done} of {n_genes} genes")
    f.attrs["done"] = done
    f.attrs["complete"] = True
    f.flush()
    return int((f["n_fraction"][()] > MOSTLY_N).sum())


def predict_sei(
    tss: str,
    fasta: str,
    checkpoint: str,
    projection: str,
    out: str,
    n_bins: int,
    bin_size: int = SEI_INPUT,
    orient: Literal["reference", "transcript"] = "reference",
    grid: Literal["tss", "genome"] = "tss",
    shard: str = "1-of-1",
    sha256: str | None = None,
    reverse_complement: bool = True,
    device: str = "auto",
    dtype: Literal["auto", "float32", "bfloat16"] = "auto",
    batch_size: int = 32,
    threads: int | None = None,
    readers: int = 1,
) -> Path:
    """Stage predict_sei (rule, `gta predict-sei`): one shard of tss.tsv through Sei into an HDF5 shard file.

    Each gene's window is `n_bins` bins of `bin_size` bp (window.*); `sha256` None or '' = no check.

    Args:
        tss: tss.tsv
        fasta: genome FASTA
        checkpoint: sei.pth (official or demo)
        projection: projvec_targets.npy (official or demo)
        out: output shard .h5
        bin_size: must be 4096, Sei's input length
        shard: which shard, 'I-of-N' (1-based)
        sha256: expected sha256 of the checkpoint ('' = no check)
        reverse_complement: average each bin's outputs over both strands (Sei's own practice)
        device: 'auto', 'cpu', 'cuda' or 'cuda:N'
        threads: CPU threads (torch)
        readers: processes reading the FASTA beside the model (0 = a thread of the model's process)
    """
    spec = WindowSpec(n_bins, bin_size, orient, grid)
    i, n = parse_shard(shard)
    if spec.bin_size != SEI_INPUT:
        raise GTAError(
            f"bin_size is {spec.bin_size}, but Sei takes {SEI_INPUT}-bp inputs; use {SEI_INPUT}-bp bins "
            "(other bin sizes only with features computed elsewhere)",
            input="bin_size",
        )
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    if dev.type == "cpu":
        tune_malloc()
    dt = resolve_dtype(dtype, dev)
    model = load_sei(checkpoint, sha256=sha256 or None, device=dev)
    projvec = load_projection(projection, model.n_targets)
    return run_shard(
        tss,
        fasta,
        model,
        projvec,
        out,
        spec,
        i,
        n,
        reverse_complement=reverse_complement,
        device=dev,
        dtype=dt,
        batch_size=batch_size,
        checkpoint_path=checkpoint,
        projection_path=projection,
        readers=readers,
    )
