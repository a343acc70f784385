"""`gta <stage>`: the command line the Snakemake rules call; a thin layer over the package."""

from __future__ import annotations

import argparse
import logging
import sys

from . import GTAError, __version__
from .io import setup_logging

log = logging.getLogger("gta")


def _int_or_all(value: str):
    return value if value == "all" else int(value)


# ----------------------------------------------------------------------------- foundation

def _add_tss(sub):
    p = sub.add_parser("tss", help="MANE summary + FASTA -> tss.tsv (MANE Select TSS per gene)",
                       description="Write the per-gene TSS table (CONTRACT section 3) from a MANE summary.")
    p.add_argument("--mane", required=True, help="MANE summary file (gzip or plain) or 'packaged'")
    p.add_argument("--fasta", required=True, help="genome FASTA; its index decides chr1 vs 1 naming")
    p.add_argument("--chromosomes", nargs="+", default=["all"],
                   help="chromosome names as in the FASTA, or 'all' (1-22, X, Y)")
    p.add_argument("--max-genes", type=_int_or_all, default="all", help="first genes by GeneID, or 'all'")
    p.add_argument("--out", required=True, help="output tss.tsv")

    def run(a):
        from . import tss

        chroms = "all" if a.chromosomes == ["all"] else a.chromosomes
        tss.run(a.mane, a.fasta, a.out, chroms, a.max_genes)

    p.set_defaults(func=run)


def _add_synthetic_genome(sub):
    p = sub.add_parser("synthetic-genome", help="write the demo's synthetic genome FASTA + .fai",
                       description="Deterministic synthetic genome at real GRCh38 chromosome lengths: "
                                   "isochores, CpG islands at MANE TSSs, soft-masked repeats, N gaps.")
    p.add_argument("--mane", required=True, help="MANE summary file or 'packaged' (TSSs for CpG islands)")
    p.add_argument("--chromosomes", nargs="+", required=True, help="names to write ('chr21' or '21' style), or 'all'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output FASTA (index written beside it)")

    def run(a):
        from . import genome, tss

        chroms = a.chromosomes
        if chroms == ["all"]:
            chroms = [f"chr{c}" for c in tss.PRIMARY]
        ucsc = chroms[0].startswith("chr")
        sel = tss.mane_select(tss.read_mane(tss.resolve_mane(a.mane)))
        names = [tss.chrom_name(c, "ucsc" if ucsc else "ensembl") for c in sel["chrom"]]
        by_chrom = {c: sel["tss"].to_numpy()[[n == c for n in names]] for c in chroms}
        genome.write_synthetic_genome(a.out, chroms, by_chrom, seed=a.seed)

    p.set_defaults(func=run)


def _add_windows(sub):
    p = sub.add_parser("windows", help="tss.tsv -> windows.bed (BED12: each gene's window, one block per bin)")
    p.add_argument("--tss", required=True)
    p.add_argument("--fasta", required=True)
    p.add_argument("--n-bins", type=int, required=True)
    p.add_argument("--bin-size", type=int, default=4096)
    p.add_argument("--grid", choices=["tss", "genome"], default="tss")
    p.add_argument("--out", required=True)

    def run(a):
        from . import genome, tss

        n = genome.write_windows_bed(tss.read_tss(a.tss), a.fasta, a.out, a.n_bins, a.bin_size, a.grid)
        log.info("wrote %d gene windows of %d bins to %s", n, a.n_bins, a.out)

    p.set_defaults(func=run)


COMMANDS = [_add_tss, _add_synthetic_genome, _add_windows]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gta",
        description="GTA workflow stages. The Snakemake rules call these; each also runs on its own.")
    parser.add_argument("--version", action="version", version=f"gta {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        args.func(args)
    except GTAError as e:
        log.error("gta %s: %s", args.command, e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
