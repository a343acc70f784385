"""Genome access: FASTA opening, TSS-centred windows, bins, reverse complement and the windows BED file.

The synthetic demo genome is in `gta.demo.genome`.
"""

from __future__ import annotations

from typing import Literal

import logging
from pathlib import Path
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyfaidx

from . import GTAError
from .io import atomic_path

log = logging.getLogger("gta.genome")

_COMPLEMENT = str.maketrans("ACGTNRYSWKMBDHVacgtnryswkmbdhv", "TGCANYRSWMKVHDBtgcanyrswmkvhdb")

ORIENTS = ("reference", "transcript")
GRIDS = ("tss", "genome")
# GRCh38 chr1, the longest human chromosome: no window may be longer (60,780 bins of 4,096 bp)
LONGEST_CHROMOSOME = 248_956_422


def check_window_size(n_bins: int, bin_size: int) -> None:
    """Stop on a window (n_bins x bin_size bp) longer than the longest human chromosome: its bins past every
    chromosome's ends would all be N, and its arrays would be allocated for nothing (GTAError.input n_bins)."""
    if n_bins * bin_size > LONGEST_CHROMOSOME:
        raise GTAError(
            f"a window of {n_bins:,} bins of {bin_size:,} bp ({n_bins * bin_size:,} bp) is longer than the longest "
            f"human chromosome (GRCh38 chr1, {LONGEST_CHROMOSOME:,} bp); use at most "
            f"{LONGEST_CHROMOSOME // bin_size:,} bins of {bin_size:,} bp (the paper uses 251)",
            input="n_bins",
        )


def reverse_complement(seq: str) -> str:
    """Reverse complement, IUPAC-aware, case kept."""
    return seq.translate(_COMPLEMENT)[::-1]


def plain_gzip(path: str | Path) -> bool:
    """Whether the file is gzip-compressed but not bgzip (blocked gzip), which htslib cannot read by position."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    # BGZF: gzip with the FEXTRA flag and a 'BC' extra subfield (SAM/BAM specification, section 4.1)
    return head[:2] == b"\x1f\x8b" and not (len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC")


def check_fasta_compression(path: str | Path, input: str = "fasta") -> None:
    """A gzip FASTA that is not bgzip (blocked gzip) cannot be indexed: stop with the fix (`input`: GTAError.input)."""
    if plain_gzip(path):
        raise GTAError(
            f"genome FASTA {path} is gzip-compressed, which cannot be read by position; "
            f"decompress it (`gunzip {path}`) or recompress it with bgzip "
            f"(`zcat {path} | bgzip > {str(path).removesuffix('.gz')}.bgz`) and use the result",
            input=input,
        )


def open_fasta(fasta: str | Path | pyfaidx.Fasta, input: str = "fasta") -> pyfaidx.Fasta:
    """An open pyfaidx.Fasta for a path (index built if missing) or the object itself (`input`: GTAError.input)."""
    if isinstance(fasta, pyfaidx.Fasta):
        return fasta
    path = Path(fasta)
    if not path.is_file():
        raise GTAError(f"genome FASTA not found: {path} (point it at a GRCh38 FASTA)", input=input)
    check_fasta_compression(path, input)
    return pyfaidx.Fasta(str(path), as_raw=True, sequence_always_upper=True, rebuild=False)


def check_tss_in_chromosomes(
    genes: pd.DataFrame, lengths: Mapping[str, int], fasta: str | Path, table: str | None = "tss"
) -> None:
    """Every gene's TSS must lie on its chromosome as the FASTA has it; else stop naming gene and FASTA.

    `table` is the input the gene table comes from (GTAError.input, beside `fasta`); None when it cannot be
    at fault (MANE's own genes).
    """
    at_fault = ("fasta",) if table is None else (table, "fasta")
    for g in genes.itertuples(index=False):
        length = lengths.get(g.chrom)
        if length is None:
            raise GTAError(
                f"gene {g.symbol} (GeneID {g.gene_id}) is on {g.chrom}, which the genome FASTA {fasta} "
                "lacks; use the genome FASTA the gene table was made for, with its chromosome names",
                input=at_fault,
            )
        if not 0 <= int(g.tss) < length:
            raise GTAError(
                f"gene {g.symbol} (GeneID {g.gene_id}) has its TSS at {g.chrom}:{int(g.tss) + 1:,}, "
                f"beyond the end of {g.chrom} in the genome FASTA {fasta} ({length:,} bp): "
                "the FASTA must be the complete GRCh38 assembly the MANE genes are placed on"
                + ("" if table is None else ", or the gene's TSS in the gene table must be corrected"),
                input=at_fault,
            )


def window_start(tss: int | np.ndarray, n_bins: int, bin_size: int = 4096, grid: str = "tss"):
    """First base (0-based) of a gene's window.

    grid='tss' (the paper): the TSS sits at the centre of the middle bin, bin i covers
    [tss - (n_bins//2)*bin_size - bin_size//2 + i*bin_size, +bin_size).
    grid='genome': windows snap to the genome-wide bin_size grid; the middle bin is the
    grid bin containing the TSS, so genes share bins and each is computed once.
    """
    check_window_size(n_bins, bin_size)
    if grid == "tss":
        return tss - (n_bins // 2) * bin_size - bin_size // 2
    if grid == "genome":
        return (tss // bin_size) * bin_size - (n_bins // 2) * bin_size
    raise GTAError(f"the bin grid must be one of {GRIDS}, got {grid!r}", input="grid")


def read_padded(fa: pyfaidx.Fasta, chrom: str, start: int, end: int, upper: bool = True) -> str:
    """Sequence of [start, end) on `chrom`, with N where it runs past either end; upper case unless `upper`
    is False (then as the FASTA has it)."""
    if chrom not in fa:
        raise GTAError(
            f"chromosome {chrom!r} is not in the FASTA {fa.filename}; name chromosomes as the FASTA does (chr1 or 1)",
            input="fasta",
        )
    length = len(fa[chrom])
    s, e = max(start, 0), min(end, length)
    if e <= s:  # wholly before the start (e.g. a run of bins of a window near it) or past the end
        return "N" * (end - start)
    seq = str(fa[chrom][s:e])
    return "N" * (s - start) + (seq.upper() if upper else seq) + "N" * (end - e)


def extract_window(
    fasta: str | Path | pyfaidx.Fasta,
    chrom: str,
    tss: int,
    n_bins: int,
    bin_size: int = 4096,
    strand: str = "+",
    orient: str = "reference",
    grid: str = "tss",
) -> str:
    """The n_bins*bin_size window around `tss`, upper case, N past the chromosome ends.

    With orient='transcript', a minus-strand gene's window is reverse-complemented, so bin 0
    is the farthest upstream bin in transcript direction.
    """
    if orient not in ORIENTS:
        raise GTAError(f"the window orientation must be one of {ORIENTS}, got {orient!r}", input="orient")
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


def windows_bed_lines(
    genes: pd.DataFrame, lengths: Mapping[str, int], n_bins: int, bin_size: int = 4096, grid: str = "tss"
) -> list[str]:
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
        lines.append(
            f"{g.chrom}\t{cs}\t{ce}\t{g.symbol}|{g.gene_id}\t0\t{g.strand}\t{thick_s}\t{thick_e}"
            f"\t0\t{len(blocks)}\t{sizes}\t{starts}"
        )
    return lines


def write_windows_bed(
    genes: pd.DataFrame, fasta: str | Path, out: str | Path, n_bins: int, bin_size: int = 4096, grid: str = "tss"
) -> int:
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


def extract_windows(
    tss: str | Path,
    fasta: str | Path,
    out: str | Path,
    n_bins: int,
    bin_size: int = 4096,
    grid: Literal["tss", "genome"] = "tss",
) -> int:
    """Stage extract_windows (rule, `gta extract-windows`): tss.tsv -> windows.bed (BED12: each gene's
    window, one block per bin)."""
    from .tss import read_tss

    n = write_windows_bed(read_tss(tss), fasta, out, n_bins, bin_size, grid)
    log.info("wrote %d gene windows of %d bins to %s", n, n_bins, out)
    return n
