"""Variants: read a VCF, check its REF alleles against the genome, place variants in gene windows
and build the ALT-haplotype sequence of one bin.

Coordinates: `Variant.pos` is the VCF's 1-based POS; everything else is 0-based, half-open, in
reference order (bin 0 is the leftmost bin of a window whatever the gene's strand).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from . import GTAError
from .genome import plain_gzip, read_padded, window_start

log = logging.getLogger("gta.variants")

REF_CHECK_MODES = ("stop", "flag", "skip")
# Mitochondrial names in use (UCSC chrM, Ensembl/NCBI MT, bare M); all map onto one key.
CHROM_ALIASES = {"M": "M", "MT": "M"}
# Keys of the Counter that read_vcf returns, in the order they are worth reporting.
COUNTER_KEYS = (
    "records",
    "multiallelic",
    "variants",
    "no_alt",
    "no_ref",
    "bad_ref",
    "bad_alt",
    "bad_pos",
    "duplicate",
    "unknown_chrom",
    "symbolic",
    "breakend",
    "spanning_deletion",
    "ref_mismatch",
)
# Bases an ALT allele may hold; a REF allele may hold any letter (it is compared with the FASTA, which may
# hold IUPAC codes).
ALT_BASES = re.compile(r"[ACGTN]+")
REF_BASES = re.compile(r"[A-Z]+")
PLACE_COLUMNS = ["variant", "gene_id", "symbol", "bin_first", "bin_last", "distance"]
# REF check: nearby variants share one FASTA read, a span of at most _REF_CHUNK bases in which no two
# neighbouring REF spans are more than _REF_GAP bases apart (a read costs about as much as ~4 kb of sequence)
_REF_CHUNK = 1 << 20
_REF_GAP = 4096


# --------------------------------------------------------------------------- chromosome names


def _chrom_key(name: str) -> str:
    """Naming-independent key: 'chr' prefix dropped (any case), upper case, MT/M -> M."""
    core = name[3:] if name[:3].lower() == "chr" else name
    core = core.upper()
    return CHROM_ALIASES.get(core, core)


def match_chrom(name: str, fasta_chroms: Iterable[str]) -> str | None:
    """The FASTA's name for the VCF chromosome `name`, or None when the FASTA has no such chromosome.

    An exact match wins; otherwise names are compared without a 'chr' prefix (in any case: chr, Chr,
    CHR) and with the mitochondrial aliases chrM = chrMT = MT = M, so '1' finds 'chr1', 'chrX'
    finds 'X' and 'MT' finds 'chrM'. When several FASTA names share the key, the first one listed
    in `fasta_chroms` is returned.
    """
    names = list(fasta_chroms)
    if name in names:
        return name
    key = _chrom_key(name)
    return next((n for n in names if _chrom_key(n) == key), None)


# --------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    """One ALT allele of a VCF record, on the FASTA's chromosome naming, alleles upper case.

    `ref_mismatch` is True only for a variant kept by ref_check='flag' whose REF differs from the
    FASTA; it is not part of equality.
    """

    chrom: str
    pos: int
    id: str
    ref: str
    alt: str
    ref_mismatch: bool = field(default=False, compare=False)

    @property
    def start0(self) -> int:
        """0-based first base of the REF allele (POS - 1)."""
        return self.pos - 1

    @property
    def end0(self) -> int:
        """0-based end (exclusive) of the REF allele: start0 + len(ref)."""
        return self.start0 + len(self.ref)


def _alt_kind(alt: str, pos: int = 1) -> str | None:
    """Why an ALT allele at POS `pos` cannot be applied to a sequence (a Counter key), or None if it can."""
    if alt.startswith("<") or alt.endswith(">"):
        return "symbolic"
    if "[" in alt or "]" in alt or (len(alt) > 1 and (alt.startswith(".") or alt.endswith("."))):
        return "breakend"  # mate breakends t[p[ / ]p]t and single breakends .t / t.
    if alt == "*":
        return "spanning_deletion"
    if alt == ".":
        return "no_alt"
    if not ALT_BASES.fullmatch(alt):
        return "bad_alt"
    return "bad_pos" if pos < 1 else None


# What a malformed allele or position is (read_vcf), by its Counter key.
MALFORMED = {
    "bad_ref": "REF {ref} is not a DNA sequence (letters only)",
    "bad_alt": "ALT {alt} holds a character other than A, C, G, T and N (an IUPAC code, X, a digit, '-' or non-ASCII)",
    "bad_pos": "POS {pos} is the VCF's telomere position, not a base that can change",
}


def read_vcf(
    path: str | Path, fasta_chroms: Iterable[str], ref_check: str = "stop", fasta=None
) -> tuple[list[Variant], Counter]:
    """Read a VCF, VCF.gz or BCF (with pysam) into one Variant per applicable ALT allele.

    Every record counts in 'records'. A record with several ALT alleles counts in 'multiallelic'
    and gives one Variant per ALT. Skipped, and counted per record: a record without ALT ('.')
    in 'no_alt', a record whose chromosome the FASTA lacks (after match_chrom) in 'unknown_chrom',
    a record without REF ('.') in 'no_ref'.
    Skipped, and counted per ALT allele: symbolic alleles (<DEL>, <CN0>, any <...>) in 'symbolic',
    breakends in 'breakend', '*' in 'spanning_deletion'. ALT equal to REF is kept (no change).
    A variant equal to an earlier one (chromosome, POS, REF, ALT; the ID aside) is scored once and
    counted in 'duplicate'. 'variants' counts the Variants returned. Samples, genotypes and FILTER
    are not used.

    Malformed alleles and positions: a REF with a character other than a letter (`-`, digits,
    non-ASCII) counts per record in 'bad_ref'; an ALT with a character other than A, C, G, T, N
    (IUPAC codes such as R or Y, X, digits, `-`, non-ASCII) per allele in 'bad_alt'; POS 0 (the
    VCF's telomere position) per allele in 'bad_pos'. With ref_check 'stop' the first of them
    stops the run (GTAError naming the VCF and the record); with 'flag' or 'skip' they are skipped.

    With `fasta` (a pyfaidx.Fasta) the REF alleles are checked against it by check_ref with mode
    `ref_check` ('stop', 'flag' or 'skip'; see check_ref), and 'ref_mismatch' counts the
    mismatches; without it REF is not checked and 'ref_mismatch' is 0.
    """
    if ref_check not in REF_CHECK_MODES:
        raise GTAError(f"ref_check must be one of {REF_CHECK_MODES}, got {ref_check!r}", input="ref_check")
    path = Path(path)
    names = list(fasta_chroms)
    chrom_map: dict[str, str | None] = {}
    counts = Counter({k: 0 for k in COUNTER_KEYS})
    variants: list[Variant] = []
    seen: set[tuple] = set()
    for rec in _records(path, counts):
        counts["records"] += 1
        if rec.chrom not in chrom_map:
            chrom_map[rec.chrom] = match_chrom(rec.chrom, names)
        for v in _record_variants(rec, chrom_map[rec.chrom], counts, ref_check == "stop", path):
            key = (v.chrom, v.pos, v.ref, v.alt)  # Variant equality without the ID
            if key in seen:
                counts["duplicate"] += 1
            else:
                seen.add(key)
                variants.append(v)
    unknown = sorted(c for c, m in chrom_map.items() if m is None)
    if unknown:
        log.warning(
            "%s: %d record(s) on chromosomes the FASTA lacks, skipped: %s",
            path,
            counts["unknown_chrom"],
            ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else ""),
        )
    if fasta is not None:
        variants, _, n_bad = check_ref(variants, fasta, ref_check, source=path)
        counts["ref_mismatch"] = n_bad
    counts["variants"] = len(variants)
    return variants, counts


UNPHASED_MODES = ("error", "as_phased")
# Keys of read_genotypes' counts beyond read_vcf's
GENOTYPE_KEYS = ("samples", "missing_calls", "unphased_calls", "haploid_calls")


def read_genotypes(
    path: str | Path,
    fasta_chroms: Iterable[str],
    samples: Sequence[str] | None = None,
    fasta=None,
    ref_check: str = "stop",
    unphased: str = "error",
) -> tuple[list[Variant], np.ndarray, list[str], Counter]:
    """A phased VCF's variants (read_vcf's rules) and, per variant, which haplotypes of which samples carry it.

    Returns (variants, carriers, samples, counts): carriers is bool (variants, samples, 2), True where
    haplotype h (the allele before | in GT, then the one after it) of the sample carries that ALT allele.
    `samples`: the samples to read, in this order (default: all, in the VCF's order); a sample the VCF
    lacks is an error. Calls:
      - a missing allele ('.', './.', '.|.', '0|.') is REF on its haplotype, counted per allele in
        'missing_calls';
      - an unphased heterozygous call (0/1) is an error with unphased 'error' (each haplotype needs its own
        alleles: phase the VCF first), and read in its written order with 'as_phased'; either way counted
        in 'unphased_calls' (unphased homozygous calls are unambiguous);
      - a haploid call (chrX, chrY in males) counts for both haplotypes, counted in 'haploid_calls'.
    A variant listed twice is carried where either record says so. With `fasta` the REF alleles are
    checked (`check_ref`): when most of them differ from the FASTA the VCF is on another genome build, an
    error whatever `ref_check`; otherwise `ref_check` decides ('stop', 'flag', 'skip').
    """
    for name, value, modes in (("unphased", unphased, UNPHASED_MODES), ("ref_check", ref_check, REF_CHECK_MODES)):
        if value not in modes:
            raise GTAError(f"{name} must be one of {modes}, got {value!r}", input=name)
    path = Path(path)
    names = list(fasta_chroms)
    chrom_map: dict[str, str | None] = {}
    counts = Counter({k: 0 for k in COUNTER_KEYS + GENOTYPE_KEYS})
    index: dict[Variant, int] = {}
    variants: list[Variant] = []
    rows: list[np.ndarray] = []
    columns, chosen = None, []
    for rec in _records(path, counts):
        if columns is None:
            in_vcf = list(rec.header.samples)
            chosen = _chosen_samples(in_vcf, samples, path)
            columns = [in_vcf.index(x) for x in chosen]
        counts["records"] += 1
        if rec.chrom not in chrom_map:
            chrom_map[rec.chrom] = match_chrom(rec.chrom, names)
        alleles = _record_alleles(rec, chrom_map[rec.chrom], counts, ref_check == "stop", path)
        if not alleles:
            continue
        gt = _record_genotypes(rec, columns, chosen, counts, unphased, path)
        for k, v in alleles:
            _add_carriers(v, gt == k, index, variants, rows, counts)
    if columns is None:
        raise GTAError(f"VCF {path} has no records (give a VCF with the samples' variants)", input="vcf")
    counts["samples"] = len(chosen)
    carriers = np.stack(rows) if rows else np.zeros((0, len(chosen), 2), bool)
    if fasta is not None and variants:
        variants, carriers, counts["ref_mismatch"] = _check_build(variants, carriers, fasta, ref_check, path)
    counts["variants"] = len(variants)
    return variants, carriers, chosen, counts


def _add_carriers(v: Variant, carried: np.ndarray, index: dict, variants: list, rows: list, counts: Counter) -> None:
    """Append a variant and its carriers, or, for a variant listed before, add its carriers to the first's."""
    key = replace(v, id="")
    if key in index:
        counts["duplicate"] += 1
        rows[index[key]] |= carried
    else:
        index[key] = len(variants)
        variants.append(v)
        rows.append(carried)


def _check_build(variants: list[Variant], carriers: np.ndarray, fasta, ref_check: str, path: Path):
    """(variants, carriers, n_mismatch) after the REF check of read_genotypes: most REF alleles differing from
    the FASTA is a VCF on another genome build, an error; otherwise `ref_check` decides (check_ref)."""
    _, flags, n_bad = check_ref(variants, fasta, "flag", source=path)
    if n_bad > len(variants) / 2:
        raise GTAError(
            f"VCF {path}: {n_bad:,} of {len(variants):,} variants have a REF allele that differs from the genome "
            f"FASTA {getattr(fasta, 'filename', '')}: the VCF is most likely on a different genome build (e.g. "
            "GRCh37 vs GRCh38); lift it over to the FASTA's build (e.g. `bcftools +liftover` or CrossMap with "
            "the UCSC chain file), or give the FASTA of the VCF's build",
            input=("vcf", "fasta"),
        )
    kept, _, _ = check_ref(variants, fasta, ref_check, source=path)
    return kept, carriers[~flags] if ref_check == "skip" else carriers, n_bad


def _chosen_samples(in_vcf: list[str], samples: Sequence[str] | None, path: Path) -> list[str]:
    if samples is None:
        return in_vcf
    missing = [s for s in samples if s not in set(in_vcf)]
    if missing:
        raise GTAError(
            f"VCF {path} lacks {len(missing)} of the {len(samples)} samples asked for: {', '.join(missing[:10])}"
            f"{' ...' if len(missing) > 10 else ''} (it has {len(in_vcf)}: {', '.join(in_vcf[:5])} ...); give "
            "samples the VCF holds",
            input=("samples", "vcf"),
        )
    if len(set(samples)) < len(samples):
        raise GTAError("the samples asked for name a sample twice; list each once", input="samples")
    return list(samples)


def _record_genotypes(rec, columns: list[int], chosen: list[str], counts: Counter, unphased: str, path: Path):
    """(samples, 2) allele indices of a record's chosen samples, -1 for a missing allele (REF)."""
    out = np.full((len(columns), 2), -1, np.int16)
    for row, col in enumerate(columns):
        call = rec.samples[col]
        gt = call.get("GT") or (None, None)
        if len(gt) == 1:
            gt = (gt[0], gt[0])
            counts["haploid_calls"] += 1
        if len(gt) != 2:
            raise GTAError(
                f"VCF {path}: sample {chosen[row]} at {rec.chrom}:{rec.pos} has a {len(gt)}-ploid genotype; "
                "give diploid (or haploid) calls",
                input="vcf",
            )
        a, b = gt
        if a is not None and b is not None and a != b and not call.phased:
            counts["unphased_calls"] += 1
            if unphased == "error":
                raise GTAError(
                    f"VCF {path}: sample {chosen[row]} at {rec.chrom}:{rec.pos} has the unphased genotype {a}/{b}; "
                    "a prediction per haplotype needs phased genotypes (0|1): phase the VCF first (e.g. SHAPEIT5, "
                    "Eagle2 or Beagle), or read unphased calls in their written order (unphased 'as_phased')",
                    input=("vcf", "unphased"),
                )
        counts["missing_calls"] += (a is None) + (b is None)
        out[row] = (-1 if a is None else a, -1 if b is None else b)
    return out


def _records(path: Path, counts: Counter):
    """The VCF's records (pysam), with errors that name the file and the record they follow."""
    import pysam

    if not path.is_file():
        raise GTAError(f"VCF not found: {path} (give an existing VCF, VCF.gz or BCF file)", input="vcf")
    if plain_gzip(path):
        raise GTAError(
            f"VCF {path} is gzip-compressed but not with bgzip, which htslib cannot read; give the plain VCF "
            f"(`gunzip {path}`) or recompress it with bgzip (`zcat {path} | bgzip > "
            f"{str(path).removesuffix('.gz')}.bgz.vcf.gz`)",
            input="vcf",
        )
    try:
        vf = pysam.VariantFile(str(path))
    except (OSError, ValueError) as e:
        raise GTAError(
            f"cannot read VCF {path}: {e} (it must be a VCF, bgzip-compressed VCF or BCF "
            "file with a '#CHROM' header line)",
            input="vcf",
        ) from e
    with vf:
        records = iter(vf)
        while True:
            try:
                yield next(records)
            except StopIteration:
                return
            except (OSError, ValueError) as e:
                raise GTAError(
                    f"cannot read VCF {path}: {_bad_line(path, counts['records'] + 1) or e} "
                    "(fix or remove that line; `bcftools view` shows what htslib reads)",
                    input="vcf",
                ) from e


def _bad_line(path: Path, record: int) -> str | None:
    """What is wrong with the text VCF's `record`-th record line (1-based), or None for a BCF or a line
    that looks right (then htslib's own error is the one to show)."""
    import gzip

    try:
        with (gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open)(path, "rt", errors="replace") as fh:
            lines = (x for x in enumerate(fh, 1) if not x[1].startswith("#"))
            number, line = next((x for k, x in enumerate(lines, 1) if k == record), (0, ""))
    except (OSError, UnicodeDecodeError, EOFError):
        return None
    fields = line.rstrip("\n").split("\t")
    what = (
        f"it has {len(fields)} tab-separated column(s), a VCF record needs at least 8 "
        "(CHROM, POS, ID, REF, ALT, QUAL, FILTER, INFO)"
        if len(fields) < 8
        else f"its POS {fields[1]!r} is not a whole number"
        if not fields[1].isdigit()
        else None
    )
    return what and f"line {number} ({line[:80].rstrip()!r}) is not a VCF record: {what}"


def _record_variants(rec, chrom: str | None, counts: Counter, stop: bool, path: Path) -> list[Variant]:
    """One Variant per applicable ALT allele of a record (`chrom`: its FASTA name, None if absent);
    what is skipped is counted (read_vcf), a malformed allele or position stops the run when `stop`."""
    return [v for _, v in _record_alleles(rec, chrom, counts, stop, path)]


def _record_alleles(rec, chrom: str | None, counts: Counter, stop: bool, path: Path) -> list[tuple[int, Variant]]:
    """(allele index in the record's GT, 1 = first ALT; Variant) of each applicable ALT allele (_record_variants)."""

    def bad(kind: str, alt: str = "") -> None:
        if stop:
            what = MALFORMED[kind].format(ref=ascii(ref), alt=ascii(alt), pos=rec.pos)
            raise GTAError(
                f"VCF {path}, record {counts['records']:,} ({rec.chrom}:{rec.pos}): {what}; fix the record, "
                f"or skip such records (ref_check 'flag' or 'skip': they are counted as {kind})",
                input=("vcf", "ref_check"),
            )
        counts[kind] += 1

    alts = _field(rec, "alts", ("\ufffd",)) or ()  # bytes that are not UTF-8 text: a non-ASCII allele
    if not alts or alts == (".",) or chrom is None:
        counts["unknown_chrom" if alts and alts != (".",) else "no_alt"] += 1
        return []
    if len(alts) > 1:
        counts["multiallelic"] += 1
    ref = (_field(rec, "ref", "\ufffd") or "").upper()
    if ref in ("", "."):
        counts["no_ref"] += 1
        return []
    if not REF_BASES.fullmatch(ref):
        bad("bad_ref")
        return []
    out = []
    for k, alt in enumerate((a.upper() for a in alts), 1):
        kind = _alt_kind(alt, rec.pos)
        if kind in MALFORMED:
            bad(kind, alt)
        elif kind is not None:
            counts[kind] += 1
        else:
            rid = _field(rec, "id", None) or f"{chrom}:{rec.pos}:{ref}>{alt}"
            out.append((k, Variant(chrom, int(rec.pos), rid, ref, alt)))
    return out


def _field(rec, name: str, undecodable):
    """A record's field, or `undecodable` where its bytes are not UTF-8 text."""
    try:
        return getattr(rec, name)
    except UnicodeDecodeError:
        return undecodable


# --------------------------------------------------------------------------- REF check


def fasta_refs(variants: Sequence[Variant], fa) -> list[str]:
    """The FASTA's bases under each variant's REF span (upper case, N past the chromosome ends).

    Nearby variants share one FASTA read (spans merged up to 1 Mb while the gaps between them are at most
    4 kb), so 1e6 variants read quickly; only the REF spans are upper-cased.
    """
    out = [""] * len(variants)
    by_chrom: dict[str, list[int]] = {}
    for i, v in enumerate(variants):
        by_chrom.setdefault(v.chrom, []).append(i)
    for chrom, idx in by_chrom.items():
        idx.sort(key=lambda i: variants[i].start0)
        k = 0
        while k < len(idx):
            s, e = variants[idx[k]].start0, variants[idx[k]].end0
            m = k + 1
            while m < len(idx) and variants[idx[m]].start0 < min(s + _REF_CHUNK, e + _REF_GAP):
                e = max(e, variants[idx[m]].end0)
                m += 1
            seq = read_padded(fa, chrom, s, e, upper=False)
            for i in idx[k:m]:
                v = variants[i]
                out[i] = seq[v.start0 - s : v.end0 - s].upper()
            k = m
    return out


def check_ref(
    variants: Sequence[Variant], fa, mode: str = "stop", source: str | Path | None = None
) -> tuple[list[Variant], np.ndarray, int]:
    """Compare each variant's REF with the FASTA `fa` (pyfaidx.Fasta); returns (kept, flags, n_mismatch).

    A mismatch is any position where REF differs from the FASTA base (an N in the FASTA, or past
    the chromosome's end, matches nothing but N). `mode`:
      'stop' - raise GTAError naming `source` (the VCF) and the first mismatches if there is any;
               otherwise kept = all variants, flags all False.
      'flag' - keep every variant; flags[i] is True where kept[i] mismatches, and those variants
               carry ref_mismatch=True.
      'skip' - drop the mismatching variants; flags (for the kept ones) are all False.
    n_mismatch is the number of mismatching variants in every mode.
    """
    if mode not in REF_CHECK_MODES:
        raise GTAError(f"ref_check must be one of {REF_CHECK_MODES}, got {mode!r}", input="ref_check")
    refs = fasta_refs(variants, fa)
    bad = np.fromiter((r != v.ref for r, v in zip(refs, variants, strict=False)), bool, len(variants))
    n_bad = int(bad.sum())
    if mode == "stop":
        if n_bad:
            where = f"VCF {source}" if source is not None else "the VCF"
            first = [
                f"{variants[i].id} ({variants[i].chrom}:{variants[i].pos} REF {variants[i].ref}, FASTA {refs[i]})"
                for i in np.flatnonzero(bad)[:5]
            ]
            raise GTAError(
                f"{where}: {n_bad:,} of {len(variants):,} variants have a REF allele that differs "
                f"from the genome FASTA {getattr(fa, 'filename', '')}, e.g. {'; '.join(first)}; "
                "check that the VCF was called on this genome, or flag or skip such variants "
                "(ref_check 'flag' or 'skip')",
                input=("vcf", "fasta", "ref_check"),
            )
        return list(variants), bad, 0
    if mode == "flag":
        kept = [replace(v, ref_mismatch=True) if b else v for v, b in zip(variants, bad, strict=False)]
        return kept, bad, n_bad
    kept = [v for v, b in zip(variants, bad, strict=False) if not b]
    return kept, np.zeros(len(kept), bool), n_bad


# --------------------------------------------------------------------------- placement in windows


def place(
    variants: Sequence[Variant], genes: pd.DataFrame, n_bins: int, bin_size: int = 4096, grid: str = "genome"
) -> tuple[pd.DataFrame, int]:
    """Pairs (variant, gene) where the variant's REF span [start0, end0) overlaps the gene's window.

    A pure insertion (one-base REF) is placed by its anchor base. Returns (pairs, n_outside):
    pairs has one row per pair, sorted by variant then gene_id, with columns
      variant    index into `variants`
      gene_id, symbol  from `genes` (a TSS table)
      bin_first, bin_last  the window bins (0..n_bins-1, reference order) the REF span touches,
                 clipped to the window
      distance   start0 - tss, signed, in reference coordinates
    and n_outside is the number of variants in no gene's window. Per chromosome, window starts
    are sorted and each variant's genes found with np.searchsorted (all windows have one length).
    """
    span = n_bins * bin_size
    n = len(variants)
    chrom = np.array([v.chrom for v in variants], dtype=object)
    start = np.fromiter((v.start0 for v in variants), np.int64, n)
    end = np.fromiter((v.end0 for v in variants), np.int64, n)
    g_chrom = genes["chrom"].astype(str).to_numpy()
    g_tss = genes["tss"].to_numpy(np.int64)
    g_ws = np.asarray(window_start(g_tss, n_bins, bin_size, grid), np.int64)
    parts_v, parts_g = [], []
    for c in np.unique(chrom) if n else ():
        vi = np.flatnonzero(chrom == c)
        gi = np.flatnonzero(g_chrom == c)
        if not len(gi):
            continue
        gi = gi[np.argsort(g_ws[gi], kind="stable")]
        ws = g_ws[gi]
        # overlap of [s, e) with [w, w + span): s - span < w < e
        lo = np.searchsorted(ws, start[vi] - span, side="right")
        hi = np.searchsorted(ws, end[vi], side="left")
        k = np.maximum(hi - lo, 0)
        total = int(k.sum())
        if not total:
            continue
        rep_v = np.repeat(vi, k)
        offs = np.arange(total) - np.repeat(np.cumsum(k) - k, k)
        parts_v.append(rep_v)
        parts_g.append(gi[np.repeat(lo, k) + offs])
    pv = np.concatenate(parts_v) if parts_v else np.zeros(0, np.int64)
    pg = np.concatenate(parts_g) if parts_g else np.zeros(0, np.int64)
    ws = g_ws[pg]
    last = n_bins - 1
    df = pd.DataFrame(
        {
            "variant": pv.astype(np.int64),
            "gene_id": genes["gene_id"].to_numpy()[pg],
            "symbol": genes["symbol"].to_numpy()[pg],
            "bin_first": np.clip((start[pv] - ws) // bin_size, 0, last).astype(np.int64),
            "bin_last": np.clip((end[pv] - 1 - ws) // bin_size, 0, last).astype(np.int64),
            "distance": start[pv] - g_tss[pg],
        },
        columns=PLACE_COLUMNS,
    )
    df = df.sort_values(["variant", "gene_id"], kind="stable").reset_index(drop=True)
    n_outside = n - len(np.unique(pv))
    return df, n_outside


# --------------------------------------------------------------------------- bin sequences


def ref_bin(fa, chrom: str, bin_start: int, bin_size: int) -> str:
    """The reference bin [bin_start, bin_start + bin_size), upper case, N past the chromosome ends."""
    return read_padded(fa, chrom, bin_start, bin_start + bin_size)


def _alleles(variants: Variant | Sequence[Variant]) -> list[Variant]:
    """One variant, or a haplotype's variants, sorted by position."""
    return [variants] if isinstance(variants, Variant) else sorted(variants, key=lambda v: (v.start0, v.end0))


def _haplotype_position(x: int, variants: Sequence[Variant]) -> int:
    """Where reference base `x` is on the haplotype carrying `variants` (sorted, REF spans not overlapping);
    a deleted base maps to the first base after its ALT."""
    shift = 0
    for v in variants:
        s = v.start0
        if x < s + min(len(v.ref), len(v.alt)):
            break
        if x < v.end0:
            return s + len(v.alt) + shift
        shift += len(v.alt) - len(v.ref)
    return x + shift


def bin_alleles(bin_start: int, bin_size: int, variants: Variant | Sequence[Variant]) -> list[Variant]:
    """The variants of one haplotype (REF spans not overlapping) that its bin [bin_start, +bin_size) depends
    on, as alt_bin builds it: those whose REF span overlaps the bin and, when the bin's segment shrank (a
    deletion), those at and after its end that the bases pulled in may hold (a superset: every variant that
    starts before the farthest reference base the pull could reach). [] leaves the bin the reference."""
    variants = _alleles(variants)
    end = bin_start + bin_size
    inside = [v for v in variants if v.end0 > bin_start and v.start0 < end]
    if not inside:
        return []
    shrink = bin_size - (_haplotype_position(end, inside) - _haplotype_position(bin_start, inside))
    out = list(inside)
    if shrink > 0:
        reach = max(end, max(v.end0 for v in inside)) + shrink
        for v in variants:
            if v.start0 < end:
                continue
            if v.start0 >= reach:
                break
            out.append(v)
            reach += max(len(v.ref) - len(v.alt), 0)
    return out


def alt_bin(fa, chrom: str, bin_start: int, bin_size: int, variant: Variant | Sequence[Variant]) -> str:
    """The bin [bin_start, bin_start + bin_size) on the haplotype carrying `variant` (one Variant, or all the
    ALT alleles of one haplotype, whose REF spans must not overlap), bin_size long.

    The haplotype is the reference with each variant's REF span [start0, end0) replaced by its ALT. REF and
    ALT are aligned from their left ends (VCF's anchor-base convention): reference base start0 + j
    (j < len(alt)) becomes ALT base j; REF bases past len(alt) are deleted; ALT bases past len(ref) are
    inserted after the REF span, so they belong to the bin of REF's last base (the anchor base of an
    insertion). The reference bin becomes the haplotype segment from where its first base went to where
    the base after its end went (a deleted base counts where the first base after the deletion went). That
    segment is then made bin_size long:
      - it grew by k > 0 bases (insertions): ceil(k/2) bases are cut from its left end and
        floor(k/2) from its right end, so the bin keeps its middle and an insertion always changes
        the bin it lands in: anchored on the bin's last base, min(ceil(k/2), bin_size) of its k
        bases stay in the bin (not 0, as when bases were pushed out of the right end only);
      - it shrank (deletions): bases are pulled in from the haplotype after it (so with the haplotype's
        variants there; N past the chromosome end);
      - neither (SNVs, MNVs, ALT == REF, or insertions and deletions that cancel): it is read as it is.
    Only the variants `bin_alleles` names matter: a variant ending at or before bin_start, or starting at
    or after the bin's end (and outside a deletion's pull), leaves the bin as the other variants make it.
    """
    alleles = _alleles(variant)
    for v in alleles:
        if v.chrom != chrom:
            raise GTAError(f"variant {v.id} is on {v.chrom}, not {chrom}")
    used = bin_alleles(bin_start, bin_size, alleles)
    if not used:
        return ref_bin(fa, chrom, bin_start, bin_size)
    end = bin_start + bin_size
    lo = min(bin_start, used[0].start0)
    hi = max(end, max(v.end0 for v in used)) + sum(max(len(v.ref) - len(v.alt), 0) for v in used)
    parts, at = [], lo  # the haplotype of reference [lo, hi): its bases from haplotype position lo on
    for v in used:
        parts += [read_padded(fa, chrom, at, v.start0), v.alt]
        at = v.end0
    parts.append(read_padded(fa, chrom, at, hi))
    hap = "".join(parts)
    first = _haplotype_position(bin_start, used)
    grown = _haplotype_position(end, used) - first - bin_size
    first += max(grown + 1, 0) // 2
    seq = hap[first - lo : first - lo + bin_size]
    return seq + read_padded(fa, chrom, hi, hi + bin_size - len(seq)) if len(seq) < bin_size else seq
