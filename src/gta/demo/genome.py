"""The synthetic demo genome: a deterministic stand-in for GRCh38 at its real chromosome lengths.

Random bases with isochores and CpG depletion, soft-masked interspersed and tandem repeats, CpG
islands at the genes' TSSs, and assembly gaps (N) at the telomeres, around an alpha-satellite-like
centromere and on acrocentric short arms, as in the real assembly. Nothing in it is real sequence.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .. import GTAError
from ..io import atomic_path

log = logging.getLogger("gta.demo.genome")

# GRCh38 primary-assembly lengths (UCSC hg38 chrom.sizes).
GRCH38_LENGTHS = {
    "1": 248956422,
    "2": 242193529,
    "3": 198295559,
    "4": 190214555,
    "5": 181538259,
    "6": 170805979,
    "7": 159345973,
    "8": 145138636,
    "9": 138394717,
    "10": 133797422,
    "11": 135086622,
    "12": 133275309,
    "13": 114364328,
    "14": 107043718,
    "15": 101991189,
    "16": 90338345,
    "17": 83257441,
    "18": 80373285,
    "19": 58617616,
    "20": 64444167,
    "21": 46709983,
    "22": 50818468,
    "X": 156040895,
    "Y": 57227415,
}
# Approximate GRCh38 centromere midpoints (Mb); acrocentric chromosomes also have an unplaced p arm.
_CENTROMERE_MB = {
    "1": 123.4,
    "2": 93.9,
    "3": 90.9,
    "4": 50.0,
    "5": 48.8,
    "6": 59.8,
    "7": 60.1,
    "8": 45.2,
    "9": 43.0,
    "10": 39.8,
    "11": 53.4,
    "12": 35.5,
    "13": 17.7,
    "14": 17.2,
    "15": 19.0,
    "16": 36.8,
    "17": 25.1,
    "18": 18.5,
    "19": 26.2,
    "20": 28.1,
    "21": 12.0,
    "22": 15.0,
    "X": 60.6,
    "Y": 10.4,
}
_ACROCENTRIC = {"13", "14", "15", "21", "22"}


def _chrom_key(name: str) -> str:
    key = name[3:] if name.startswith("chr") else name
    if key not in GRCH38_LENGTHS:
        raise GTAError(
            f"the synthetic genome knows GRCh38 chromosomes 1-22, X, Y (named '1' or 'chr1'); "
            f"got {name!r} among the chromosomes",
            input="chromosomes",
        )
    return key


def _random_bases(rng: np.random.Generator, gc: np.ndarray) -> np.ndarray:
    """Bases coded 0=A 1=C 2=G 3=T with per-position GC probability `gc`."""
    r = rng.random(gc.shape[0], dtype=np.float32)
    half = gc * 0.5
    at_mid = gc + (1.0 - gc) * 0.5
    return np.where(r < half, 1, np.where(r < gc, 2, np.where(r < at_mid, 0, 3))).astype(np.uint8)


def _segments(rng: np.random.Generator, length: int, mean: float, values: np.ndarray) -> np.ndarray:
    """Per-position values from piecewise-constant segments with exponential lengths."""
    n = int(length / mean * 2) + 8
    bounds = np.cumsum(rng.exponential(mean, n).astype(np.int64) + 1)
    bounds = bounds[bounds < length]
    seg_len = np.diff(np.concatenate([[0], bounds, [length]]))
    return np.repeat(values[rng.integers(0, len(values), len(seg_len))], seg_len)


def _isochore_bases(rng: np.random.Generator, length: int) -> np.ndarray:
    """Base codes 0-3 with isochores: ~300 kb domains of distinct GC, with ~20 kb local jitter."""
    gc = _segments(rng, length, 3e5, np.array([0.36, 0.39, 0.42, 0.46, 0.52, 0.57], np.float32))
    gc += _segments(rng, length, 2e4, np.linspace(-0.04, 0.04, 9, dtype=np.float32))
    codes = np.empty(length, np.uint8)
    step = 1 << 23
    for s in range(0, length, step):
        codes[s : s + step] = _random_bases(rng, gc[s : s + step])
    return codes


def _deplete_cpg(rng: np.random.Generator, codes: np.ndarray) -> None:
    """CpG depletion (methylated C deaminates to T): most CG become TG or CA, as in real DNA."""
    cg = np.flatnonzero((codes[:-1] == 1) & (codes[1:] == 2))
    cg = cg[rng.random(cg.shape[0]) < 0.8]
    to_tg = rng.random(cg.shape[0]) < 0.5
    codes[cg[to_tg]] = 3
    codes[cg[~to_tg] + 1] = 0


def _add_interspersed_repeats(rng: np.random.Generator, codes: np.ndarray, lower: np.ndarray) -> None:
    """Interspersed repeats (lower case): SINE-like (~300 bp, GC-rich) and LINE-like (1-6 kb, AT-rich)."""
    length = len(codes)
    sizes = [(rng.integers(280, 320), 0.55) for _ in range(6)] + [(rng.integers(1000, 6000), 0.38) for _ in range(6)]
    families = [_random_bases(rng, np.full(int(n), g, np.float32)) for n, g in sizes]
    n_copies = int(length * 0.25 / 1500)
    fam = rng.integers(0, len(families), n_copies)
    pos = rng.integers(0, length, n_copies)
    for f, p in zip(fam, pos, strict=True):
        unit = families[f]
        frag = unit[rng.integers(0, max(1, len(unit) // 2)) :]  # 5'-truncated copies, like real LINEs
        e = min(p + len(frag), length)
        copy = frag[: e - p].copy()
        mut = rng.random(copy.shape[0]) < 0.12  # diverged copies
        copy[mut] = rng.integers(0, 4, int(mut.sum()))
        codes[p:e] = copy
        lower[p:e] = True


def _add_tandem_repeats(rng: np.random.Generator, codes: np.ndarray, lower: np.ndarray) -> None:
    """Simple tandem repeats (lower case), e.g. (CA)n, (TTA)n."""
    length = len(codes)
    n_str = int(length / 20000)
    starts, periods, copies = rng.integers(0, length, n_str), rng.integers(1, 4, n_str), rng.integers(10, 60, n_str)
    for p, k, n in zip(starts, periods, copies, strict=True):
        unit = rng.integers(0, 4, int(k)).astype(np.uint8)
        e = min(int(p) + int(k) * int(n), length)
        codes[p:e] = np.tile(unit, int(n))[: e - p]
        lower[p:e] = True


def _add_cpg_islands(rng: np.random.Generator, codes: np.ndarray, lower: np.ndarray, tss: np.ndarray) -> None:
    """CpG islands around TSSs: GC-rich, CpG-dense, never masked."""
    length = len(codes)
    for t in tss:
        s, e = max(int(t) - int(rng.integers(400, 1200)), 0), min(int(t) + int(rng.integers(300, 900)), length)
        island = _random_bases(rng, np.full(e - s, 0.68, np.float32))
        cg = np.arange(0, e - s - 1, int(rng.integers(8, 14)))
        island[cg], island[cg + 1] = 1, 2
        codes[s:e], lower[s:e] = island, False


def _clear_of_genes(protected: np.ndarray, s: int, e: int, margin: int = 20000) -> bool:
    """True when no TSS of the sorted `protected` lies within `margin` of [s, e)."""
    i = np.searchsorted(protected, s - margin)
    return i >= len(protected) or protected[i] >= e + margin


def _add_centromere(
    rng: np.random.Generator, codes: np.ndarray, lower: np.ndarray, key: str, protected: np.ndarray
) -> tuple[int, list[tuple[int, int]]]:
    """An alpha-satellite-like array (171-bp monomers, masked) at the centromere, unless it would cover a
    TSS; returns the array's start and the gaps flanking it."""
    length = len(codes)
    cen = int(_CENTROMERE_MB[key] * 1e6 * length / GRCH38_LENGTHS[key])
    half = int(rng.integers(5e5, 1.5e6))
    cs, ce = max(cen - half, 10000), min(cen + half, length - 10000)
    if not _clear_of_genes(protected, cs, ce, 0):
        return cs, []
    monomer = _random_bases(rng, np.full(171, 0.38, np.float32))
    sat = np.tile(monomer, (ce - cs) // 171 + 1)[: ce - cs]
    mut = rng.random(sat.shape[0]) < 0.03
    sat[mut] = rng.integers(0, 4, int(mut.sum()))
    codes[cs:ce], lower[cs:ce] = sat, True
    return cs, [(cs - 50000, cs), (ce, ce + 50000)]


def _add_gaps(rng: np.random.Generator, codes: np.ndarray, lower: np.ndarray, key: str, tss: np.ndarray) -> None:
    """Assembly gaps (N): telomeres, centromere flanks around an alpha-satellite-like array, the unplaced
    short arm of acrocentric chromosomes, and a few scattered gaps away from genes."""
    length = len(codes)
    protected = np.sort(tss)
    telomeres = [(0, 10000), (length - 10000, length)]
    cs, flanks = _add_centromere(rng, codes, lower, key, protected)
    gaps = telomeres + flanks
    if key in _ACROCENTRIC:
        gaps.append((10000, int(0.6 * cs)))
    for s in rng.integers(0, length, max(2, length // 10_000_000)):
        e = int(s) + int(rng.integers(20000, 100000))
        gaps.append((int(s), e))
    for s, e in gaps:
        s, e = max(s, 0), min(e, length)
        if e > s and (_clear_of_genes(protected, s, e) or (s, e) in telomeres):
            codes[s:e] = 4


def _synthesize_chrom(key: str, length: int, tss: np.ndarray, seed: int):
    """(codes, lower) for one chromosome: codes 0-3 = ACGT, 4 = N; lower marks repeats."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    codes = _isochore_bases(rng, length)
    _deplete_cpg(rng, codes)
    lower = np.zeros(length, bool)
    _add_interspersed_repeats(rng, codes, lower)
    _add_tandem_repeats(rng, codes, lower)
    _add_cpg_islands(rng, codes, lower, tss)
    _add_gaps(rng, codes, lower, key, tss)
    return codes, lower


def write_synthetic_genome(
    out: str | Path,
    chromosomes: Sequence[str],
    tss_by_chrom: Mapping[str, Iterable[int]],
    seed: int = 0,
    line_width: int = 60,
) -> None:
    """Write a deterministic synthetic genome (FASTA + .fai) at real GRCh38 chromosome lengths."""
    out = Path(out)
    ascii_upper = np.frombuffer(b"ACGTN", np.uint8)
    fai = []
    with atomic_path(out, suffix=".fa") as tmp:
        with open(tmp, "wb") as fh:
            for name in chromosomes:
                key = _chrom_key(name)
                length = GRCH38_LENGTHS[key]
                tss = np.asarray(sorted(int(t) for t in tss_by_chrom.get(name, ())), np.int64)
                codes, lower = _synthesize_chrom(key, length, tss, seed)
                seq = ascii_upper[codes]
                seq[lower & (codes < 4)] += 32  # soft-mask repeats
                header = f">{name}\n".encode()
                fh.write(header)
                offset = fh.tell()
                n_lines = -(-length // line_width)
                body = np.full((n_lines, line_width + 1), ord("\n"), np.uint8)
                padded = np.full(n_lines * line_width, ord("N"), np.uint8)
                padded[:length] = seq
                body[:, :line_width] = padded.reshape(n_lines, line_width)
                data = body.reshape(-1)
                last = length - (n_lines - 1) * line_width
                tail = (n_lines - 1) * (line_width + 1)
                fh.write(data[:tail].tobytes())
                fh.write(data[tail : tail + last].tobytes() + b"\n")
                fai.append(f"{name}\t{length}\t{offset}\t{line_width}\t{line_width + 1}\n")
                log.info(
                    "synthetic %s: %d bp, GC %.3f, %.1f%% masked, %.1f%% N",
                    name,
                    length,
                    float(np.isin(codes, (1, 2)).mean()),
                    100 * float(lower.mean()),
                    100 * float((codes == 4).mean()),
                )
        # the index must describe the final file: write it next to the temporary FASTA's final name
        with atomic_path(str(out) + ".fai") as tmp_fai:
            Path(tmp_fai).write_text("".join(fai))


def synthetic_genome(mane: str, chromosomes: Sequence[str] | str, out: str | Path, seed: int = 0) -> None:
    """Stage synthetic_genome (rule, `gta synthetic-genome`): the demo genome FASTA + .fai, with CpG islands
    at the MANE Select TSSs of `chromosomes` (names as the FASTA will have them, 'chr21' or '21' style, or
    'all').

    Args:
        mane: MANE summary file or 'packaged' (TSSs for CpG islands)
        chromosomes: names to write ('chr21' or '21' style), or 'all'
        out: output FASTA (index written beside it)
    """
    from .. import tss

    chroms = [f"chr{c}" for c in tss.PRIMARY] if chromosomes in ("all", ["all"]) else list(chromosomes)
    naming = "ucsc" if chroms[0].startswith("chr") else "ensembl"
    sel = tss.mane_select(tss.read_mane(tss.resolve_mane(mane)))
    names = [tss.chrom_name(c, naming) for c in sel["chrom"]]
    by_chrom = {c: sel["tss"].to_numpy()[[n == c for n in names]] for c in chroms}
    write_synthetic_genome(out, chroms, by_chrom, seed=seed)
