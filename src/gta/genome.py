"""Genome access: TSS-centred windows, bins, the windows BED file and the synthetic demo genome."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyfaidx

from . import GTAError
from .io import atomic_path

log = logging.getLogger("gta.genome")

# GRCh38 primary-assembly lengths (UCSC hg38 chrom.sizes).
GRCH38_LENGTHS = {
    "1": 248956422, "2": 242193529, "3": 198295559, "4": 190214555, "5": 181538259,
    "6": 170805979, "7": 159345973, "8": 145138636, "9": 138394717, "10": 133797422,
    "11": 135086622, "12": 133275309, "13": 114364328, "14": 107043718, "15": 101991189,
    "16": 90338345, "17": 83257441, "18": 80373285, "19": 58617616, "20": 64444167,
    "21": 46709983, "22": 50818468, "X": 156040895, "Y": 57227415,
}
# Approximate GRCh38 centromere midpoints (Mb); acrocentric chromosomes also have an unplaced p arm.
_CENTROMERE_MB = {
    "1": 123.4, "2": 93.9, "3": 90.9, "4": 50.0, "5": 48.8, "6": 59.8, "7": 60.1, "8": 45.2,
    "9": 43.0, "10": 39.8, "11": 53.4, "12": 35.5, "13": 17.7, "14": 17.2, "15": 19.0, "16": 36.8,
    "17": 25.1, "18": 18.5, "19": 26.2, "20": 28.1, "21": 12.0, "22": 15.0, "X": 60.6, "Y": 10.4,
}
_ACROCENTRIC = {"13", "14", "15", "21", "22"}
_COMPLEMENT = str.maketrans("ACGTNRYSWKMBDHVacgtnryswkmbdhv", "TGCANYRSWMKVHDBtgcanyrswmkvhdb")

ORIENTS = ("reference", "transcript")
GRIDS = ("tss", "genome")


def reverse_complement(seq: str) -> str:
    """Reverse complement, IUPAC-aware, case kept."""
    return seq.translate(_COMPLEMENT)[::-1]


def check_fasta_compression(path: str | Path) -> None:
    """A gzip FASTA that is not bgzip (blocked gzip) cannot be indexed: stop with the fix."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    # BGZF: gzip with the FEXTRA flag and a 'BC' extra subfield (SAM/BAM specification, section 4.1)
    if head[:2] == b"\x1f\x8b" and not (len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC"):
        raise GTAError(f"genome.fasta {path} is gzip-compressed, which cannot be read by position; "
                       f"decompress it (`gunzip {path}`) or recompress it with bgzip "
                       f"(`zcat {path} | bgzip > {str(path).removesuffix('.gz')}.bgz`) and point genome.fasta at the result")


def open_fasta(fasta: str | Path | pyfaidx.Fasta) -> pyfaidx.Fasta:
    """An open pyfaidx.Fasta for a path (index built if missing) or the object itself."""
    if isinstance(fasta, pyfaidx.Fasta):
        return fasta
    path = Path(fasta)
    if not path.is_file():
        raise GTAError(f"genome FASTA not found: {path} (set genome.fasta to a GRCh38 FASTA or 'synthetic')")
    check_fasta_compression(path)
    return pyfaidx.Fasta(str(path), as_raw=True, sequence_always_upper=True, rebuild=False)


def check_tss_in_chromosomes(genes: pd.DataFrame, lengths: Mapping[str, int], fasta: str | Path) -> None:
    """Every gene's TSS must lie on its chromosome as the FASTA has it; else stop naming gene and FASTA."""
    for g in genes.itertuples(index=False):
        length = lengths.get(g.chrom)
        if length is None:
            raise GTAError(f"gene {g.symbol} (GeneID {g.gene_id}) is on {g.chrom}, which the genome FASTA {fasta} "
                           "lacks; check genes.chromosomes and that genome.fasta is the genome the gene table "
                           "was made for")
        if not 0 <= int(g.tss) < length:
            raise GTAError(f"gene {g.symbol} (GeneID {g.gene_id}) has its TSS at {g.chrom}:{int(g.tss) + 1:,}, "
                           f"beyond the end of {g.chrom} in the genome FASTA {fasta} ({length:,} bp): "
                           "genome.fasta must be the complete GRCh38 assembly the MANE genes are placed on")


def window_start(tss: int | np.ndarray, n_bins: int, bin_size: int = 4096, grid: str = "tss"):
    """First base (0-based) of a gene's window.

    grid='tss' (the paper): the TSS sits at the centre of the middle bin, bin i covers
    [tss - (n_bins//2)*bin_size - bin_size//2 + i*bin_size, +bin_size).
    grid='genome': windows snap to the genome-wide bin_size grid; the middle bin is the
    grid bin containing the TSS, so genes share bins and each is computed once.
    """
    if grid == "tss":
        return tss - (n_bins // 2) * bin_size - bin_size // 2
    if grid == "genome":
        return (tss // bin_size) * bin_size - (n_bins // 2) * bin_size
    raise GTAError(f"window.grid must be one of {GRIDS}, got {grid!r}")


def read_padded(fa: pyfaidx.Fasta, chrom: str, start: int, end: int) -> str:
    """Upper-case sequence of [start, end) on `chrom`, with N where it runs past either end."""
    if chrom not in fa:
        raise GTAError(f"chromosome {chrom!r} is not in the FASTA {fa.filename}; "
                       "check genes.chromosomes and the FASTA's naming")
    length = len(fa[chrom])
    s, e = max(start, 0), min(end, length)
    seq = str(fa[chrom][s:e]).upper() if e > s else ""
    return "N" * (s - start) + seq + "N" * (end - max(e, s))


def extract_window(fasta: str | Path | pyfaidx.Fasta, chrom: str, tss: int, n_bins: int,
                   bin_size: int = 4096, strand: str = "+", orient: str = "reference",
                   grid: str = "tss") -> str:
    """The n_bins*bin_size window around `tss`, upper case, N past the chromosome ends.

    With orient='transcript', a minus-strand gene's window is reverse-complemented, so bin 0
    is the farthest upstream bin in transcript direction.
    """
    if orient not in ORIENTS:
        raise GTAError(f"window.orient must be one of {ORIENTS}, got {orient!r}")
    if strand not in ("+", "-"):
        raise GTAError(f"strand must be '+' or '-', got {strand!r}")
    start = int(window_start(int(tss), n_bins, bin_size, grid))
    seq = read_padded(open_fasta(fasta), chrom, start, start + n_bins * bin_size)
    if orient == "transcript" and strand == "-":
        seq = reverse_complement(seq)
    return seq


def chrom_lengths(fasta: str | Path) -> dict[str, int]:
    """Sequence lengths from the FASTA index."""
    fa = open_fasta(fasta)
    return {name: len(rec) for name, rec in fa.records.items()}


def windows_bed_lines(genes: pd.DataFrame, lengths: Mapping[str, int], n_bins: int,
                      bin_size: int = 4096, grid: str = "tss") -> list[str]:
    """BED12 lines: one per gene, its window (clipped to the chromosome) with one block per bin.

    thickStart/thickEnd mark the TSS bin; name is `symbol|gene_id`.
    """
    lines = []
    for g in genes.itertuples(index=False):
        start = int(window_start(int(g.tss), n_bins, bin_size, grid))
        length = lengths[g.chrom]
        blocks = []
        for i in range(n_bins):
            bs, be = max(start + i * bin_size, 0), min(start + (i + 1) * bin_size, length)
            if be > bs:
                blocks.append((bs, be))
        cs, ce = blocks[0][0], blocks[-1][1]
        mid = start + (n_bins // 2) * bin_size
        thick_s, thick_e = max(mid, 0), min(mid + bin_size, length)
        sizes = ",".join(str(be - bs) for bs, be in blocks)
        starts = ",".join(str(bs - cs) for bs, _ in blocks)
        lines.append(f"{g.chrom}\t{cs}\t{ce}\t{g.symbol}|{g.gene_id}\t0\t{g.strand}\t{thick_s}\t{thick_e}"
                     f"\t0\t{len(blocks)}\t{sizes}\t{starts}")
    return lines


def write_windows_bed(genes: pd.DataFrame, fasta: str | Path, out: str | Path, n_bins: int,
                      bin_size: int = 4096, grid: str = "tss") -> int:
    """Write `windows.bed` (BED12, sorted with bedtools) for inspection in a genome browser."""
    import pybedtools

    lengths = chrom_lengths(fasta)
    check_tss_in_chromosomes(genes, lengths, fasta)
    lines = windows_bed_lines(genes, lengths, n_bins, bin_size, grid)
    try:
        with atomic_path(out, suffix=".bed") as tmp:
            pybedtools.BedTool("\n".join(lines) + "\n", from_string=True).sort().saveas(str(tmp))
    finally:
        pybedtools.cleanup()
    return len(lines)


# --------------------------------------------------------------------------- synthetic genome

def _chrom_key(name: str) -> str:
    key = name[3:] if name.startswith("chr") else name
    if key not in GRCH38_LENGTHS:
        raise GTAError(f"the synthetic genome knows GRCh38 chromosomes 1-22, X, Y (named '1' or 'chr1'); "
                       f"got {name!r} in genes.chromosomes")
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


def _synthesize_chrom(key: str, length: int, tss: np.ndarray, seed: int):
    """(codes, lower) for one chromosome: codes 0-3 = ACGT, 4 = N; lower marks repeats."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    # isochores: ~300 kb domains of distinct GC, with ~20 kb local jitter
    gc = _segments(rng, length, 3e5, np.array([0.36, 0.39, 0.42, 0.46, 0.52, 0.57], np.float32))
    gc += _segments(rng, length, 2e4, np.linspace(-0.04, 0.04, 9, dtype=np.float32))
    codes = np.empty(length, np.uint8)
    step = 1 << 23
    for s in range(0, length, step):
        codes[s:s + step] = _random_bases(rng, gc[s:s + step])
    # CpG depletion (methylated C deaminates to T): most CG become TG or CA, as in real DNA
    cg = np.flatnonzero((codes[:-1] == 1) & (codes[1:] == 2))
    cg = cg[rng.random(cg.shape[0]) < 0.8]
    to_tg = rng.random(cg.shape[0]) < 0.5
    codes[cg[to_tg]] = 3
    codes[cg[~to_tg] + 1] = 0
    lower = np.zeros(length, bool)

    # interspersed repeats (lower case): SINE-like (~300 bp, GC-rich) and LINE-like (1-6 kb, AT-rich)
    families = [_random_bases(rng, np.full(int(n), g, np.float32)) for n, g in
                [(rng.integers(280, 320), 0.55) for _ in range(6)] + [(rng.integers(1000, 6000), 0.38) for _ in range(6)]]
    n_copies = int(length * 0.25 / 1500)
    fam = rng.integers(0, len(families), n_copies)
    pos = rng.integers(0, length, n_copies)
    for f, p in zip(fam, pos):
        unit = families[f]
        frag = unit[rng.integers(0, max(1, len(unit) // 2)):]  # 5'-truncated copies, like real LINEs
        e = min(p + len(frag), length)
        copy = frag[: e - p].copy()
        mut = rng.random(copy.shape[0]) < 0.12  # diverged copies
        copy[mut] = rng.integers(0, 4, int(mut.sum()))
        codes[p:e] = copy
        lower[p:e] = True
    # simple tandem repeats, e.g. (CA)n, (TTA)n
    n_str = int(length / 20000)
    for p, k, n in zip(rng.integers(0, length, n_str), rng.integers(1, 4, n_str), rng.integers(10, 60, n_str)):
        unit = rng.integers(0, 4, int(k)).astype(np.uint8)
        e = min(int(p) + int(k) * int(n), length)
        codes[p:e] = np.tile(unit, int(n))[: e - p]
        lower[p:e] = True

    # CpG islands around TSSs: GC-rich, CpG-dense, never masked
    for t in tss:
        s, e = max(int(t) - int(rng.integers(400, 1200)), 0), min(int(t) + int(rng.integers(300, 900)), length)
        island = _random_bases(rng, np.full(e - s, 0.68, np.float32))
        cg = np.arange(0, e - s - 1, int(rng.integers(8, 14)))
        island[cg], island[cg + 1] = 1, 2
        codes[s:e], lower[s:e] = island, False

    # assembly gaps (N): telomeres, centromere flanks around an alpha-satellite-like array,
    # the unplaced short arm of acrocentric chromosomes, and a few scattered gaps away from genes
    protected = np.sort(tss)

    def free(s: int, e: int, margin: int = 20000) -> bool:
        i = np.searchsorted(protected, s - margin)
        return i >= len(protected) or protected[i] >= e + margin

    gaps = [(0, 10000), (length - 10000, length)]
    cen = int(_CENTROMERE_MB[key] * 1e6 * length / GRCH38_LENGTHS[key])
    half = int(rng.integers(5e5, 1.5e6))
    cs, ce = max(cen - half, 10000), min(cen + half, length - 10000)
    if free(cs, ce, 0):
        monomer = _random_bases(rng, np.full(171, 0.38, np.float32))
        sat = np.tile(monomer, (ce - cs) // 171 + 1)[: ce - cs]
        mut = rng.random(sat.shape[0]) < 0.03
        sat[mut] = rng.integers(0, 4, int(mut.sum()))
        codes[cs:ce], lower[cs:ce] = sat, True
        gaps += [(cs - 50000, cs), (ce, ce + 50000)]
    if key in _ACROCENTRIC:
        gaps.append((10000, int(0.6 * cs)))
    for s in rng.integers(0, length, max(2, length // 10_000_000)):
        e = int(s) + int(rng.integers(20000, 100000))
        gaps.append((int(s), e))
    for s, e in gaps:
        s, e = max(s, 0), min(e, length)
        if e > s and (free(s, e) or (s, e) in ((0, 10000), (length - 10000, length))):
            codes[s:e] = 4
    return codes, lower


def write_synthetic_genome(out: str | Path, chromosomes: Sequence[str],
                           tss_by_chrom: Mapping[str, Iterable[int]], seed: int = 0,
                           line_width: int = 60) -> None:
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
                fh.write(data[: (n_lines - 1) * (line_width + 1)].tobytes())
                fh.write(data[(n_lines - 1) * (line_width + 1): (n_lines - 1) * (line_width + 1) + last].tobytes() + b"\n")
                fai.append(f"{name}\t{length}\t{offset}\t{line_width}\t{line_width + 1}\n")
                log.info("synthetic %s: %d bp, GC %.3f, %.1f%% masked, %.1f%% N", name, length,
                         float(np.isin(codes, (1, 2)).mean()), 100 * float(lower.mean()), 100 * float((codes == 4).mean()))
        # the index must describe the final file: write it next to the temporary FASTA's final name
        with atomic_path(str(out) + ".fai") as tmp_fai:
            Path(tmp_fai).write_text("".join(fai))
