"""Apply a trained model to genes of one's choice, on any FASTA: `gta predict-genes` and rule predict_genes.

Genes come as identifiers (a gene list: symbols, GeneIDs or Ensembl ids, matched against MANE), a BED
of TSSs, or a MANE summary. Their windows' bins are looked up in a features file already computed on
the same genome and Sei model (bins are keyed by chromosome, start and strand, so on the genome grid a
new gene reuses every bin an earlier gene shared with it); only bins found nowhere go through Sei. The
file's recorded provenance (gta.provenance) decides what is reused: only bins on chromosomes whose
sequence matches the FASTA given, and never next to bins of another Sei.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import logging
import time
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from . import GTAError, inputs_of
from .formats import read_feature_cache, read_provenance, read_sei_settings
from .genome import open_fasta, read_padded
from .io import atomic_path, require_file
from .sei.inference import WindowSpec, plan_units
from .tss import TSS_COLUMNS, build_tss_table, read_mane, read_tss, resolve_mane

log = logging.getLogger("gta.predict")

PREDICT_COLUMNS = ["gene_id", "symbol", "chrom", "tss", "strand", "predicted"]


# ----------------------------------------------------------------------------- Sei on single bins


@dataclasses.dataclass
class SeiScorer:
    """Sei plus its class projection: 40 class scores per bin sequence, as the Sei stage computes them."""

    model: torch.nn.Module
    unit: torch.Tensor  # (targets, 40)
    reverse_complement: bool = True
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32
    batch_size: int = 32
    checkpoint: Path | None = None  # the files it was loaded from (their sha256 are compared with a features file's)
    projection: Path | None = None

    @classmethod
    def load(
        cls,
        checkpoint: str | Path,
        projection: str | Path,
        sha256: str | None = None,
        reverse_complement: bool = True,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 32,
    ) -> SeiScorer:
        from .hardware import resolve_device, resolve_dtype
        from .sei.checkpoint import load_projection, load_sei
        from .sei.model import projection_matrix

        with inputs_of("sei"):  # the arguments are the `sei` settings of predict_genes and score_variants
            dev = resolve_device(device)
            model = load_sei(checkpoint, sha256=sha256, device=dev).eval()
            projvec = load_projection(projection, model.n_targets)
            amp = resolve_dtype(dtype, dev)
            unit = torch.from_numpy(projection_matrix(projvec).T.astype(np.float32)).to(dev)
        return cls(model, unit, reverse_complement, dev, amp, batch_size, Path(checkpoint), Path(projection))

    def check_features(self, path: str | Path) -> None:
        """Refuse a features file made by another Sei: its recorded channels, targets, strand averaging,
        precision and checkpoint and projection sha256 must be this scorer's, or recomputed bins would not
        match the stored ones. `path` is the `features` input; a mismatch names it, the Sei file given and
        the `sei` setting that differs (GTAError.input)."""
        from .io import sha256sum

        attrs = read_sei_settings(path)
        mine = {
            "sei_channels": lambda: [int(c) for c in self.model.channels],
            "sei_targets": lambda: int(self.model.n_targets),
            "reverse_complement": lambda: bool(self.reverse_complement),
            "precision": lambda: str(self.dtype).replace("torch.", ""),
            "sei_checkpoint_sha256": lambda: self.checkpoint and sha256sum(self.checkpoint),
            "sei_projection_sha256": lambda: self.projection and sha256sum(self.projection),
        }
        for key, get in mine.items():
            value = get() if key in attrs else None
            if value is None:  # not recorded in the file, or a Sei passed in memory
                continue
            stored = attrs[key]
            stored = [int(c) for c in stored] if key == "sei_channels" else type(value)(stored)
            if stored != value:
                setting, what = _SEI_SETTING[key]
                given = getattr(self, setting, None) if setting in ("checkpoint", "projection") else None
                raise GTAError(
                    f"{path} was computed with Sei {key} {stored}, but the Sei given here"
                    f"{f' ({given})' if given else ''} has {value}; use the Sei {what} the features were "
                    "made with, or recompute the features with this one; bins of two Sei models are never mixed",
                    input=(f"sei.{setting}", "features"),
                )

    def scores(
        self, sequences: Sequence[str] | np.ndarray, flip: np.ndarray | None = None, exact: bool = False
    ) -> np.ndarray:
        """(bins, 40) class scores of equal-length sequences (str, or uint8 ASCII codes (bins, length)),
        at the scorer's precision and rounded through float16 as the features file stores them; `flip`
        marks bins to compute on the reverse strand. With `exact`: in float32 whatever the scorer's
        precision (no autocast, no TF32 on GPUs) and not rounded."""
        from contextlib import nullcontext

        from .hardware import autocast, ieee_convolutions
        from .sei.model import one_hot_codes, predict

        codes = (
            np.asarray(sequences, np.uint8)
            if isinstance(sequences, np.ndarray)
            else np.frombuffer("".join(sequences).encode("ascii"), np.uint8).reshape(len(sequences), -1)
        )
        out = np.empty((len(codes), self.unit.shape[1]), np.float32)
        with torch.inference_mode(), ieee_convolutions() if exact else nullcontext():
            for s in range(0, len(codes), self.batch_size):
                x = one_hot_codes(codes[s : s + self.batch_size])
                if flip is not None and flip[s : s + self.batch_size].any():
                    f = flip[s : s + self.batch_size]
                    x[f] = x[f][:, ::-1, ::-1]
                with autocast(self.device, torch.float32 if exact else self.dtype):
                    p = predict(
                        self.model, torch.from_numpy(np.ascontiguousarray(x)).to(self.device), self.reverse_complement
                    )
                out[s : s + len(x)] = (p.float() @ self.unit).cpu().numpy()
        return out if exact else out.astype(np.float16).astype(np.float32)


# a features file's Sei attribute -> (the SeiScorer.load argument that decides it, what it is in words)
_SEI_SETTING = {
    "sei_channels": ("checkpoint", "checkpoint"),
    "sei_targets": ("checkpoint", "checkpoint"),
    "reverse_complement": ("reverse_complement", "strand averaging (reverse_complement)"),
    "precision": ("dtype", "precision (dtype)"),
    "sei_checkpoint_sha256": ("checkpoint", "checkpoint"),
    "sei_projection_sha256": ("projection", "projection"),
}


# ----------------------------------------------------------------------------- bins already computed


def _unit_keys(
    chrom_rank: dict[str, int], chroms: Sequence[str], chrom: np.ndarray, start: np.ndarray, flip: np.ndarray
) -> np.ndarray:
    ranks = np.array([chrom_rank.setdefault(chroms[c], len(chrom_rank)) for c in chrom], np.int64)
    return ((ranks * 2 + flip.astype(np.int64)) << 42) + (start.astype(np.int64) + (1 << 41))


class FeatureCache:
    """The bins of a features file (with the gene table it was computed for), keyed by chromosome,
    start and strand, so that other genes' windows can reuse them."""

    def __init__(self, features: str | Path, tss: str | Path):
        from .provenance import check_gene_windows

        features = require_file(features, "features file to reuse bins from", input="features")
        genes = read_tss(tss)
        self.provenance = read_provenance(features)
        check_gene_windows(features, genes, tss, self.provenance)
        stored = read_feature_cache(features)
        self.spec = WindowSpec(stored["n_bins"], stored["bin_size"], stored["orient"], stored["grid"])
        self.reverse_complement = stored["reverse_complement"]
        pos = {g: i for i, g in enumerate(stored["gene_id"])}
        rows = genes["gene_id"].map(pos)
        genes = genes[rows.notna().to_numpy()].reset_index(drop=True)
        order = rows.dropna().astype(np.int64).to_numpy()
        stored = stored["features"]
        plan = plan_units(genes, self.spec, sorted(set(genes["chrom"])), self.reverse_complement)
        flat_unit = plan.gene_units.ravel()
        uniq, first = np.unique(flat_unit, return_index=True)
        g, b = np.divmod(first, self.spec.n_bins)
        self.values = stored[order[g], b].astype(np.float32)  # (units, 40), as stored
        self.chrom_rank: dict[str, int] = {}
        keys = _unit_keys(self.chrom_rank, plan.chroms, plan.chrom[uniq], plan.start[uniq], plan.flip[uniq])
        self.order = np.argsort(keys)
        self.keys = keys[self.order]
        self.path = features
        log.info("reusing bins of %s: %d genes, %d distinct bins", features, len(genes), len(self.keys))

    def reusable(self, fasta: str | Path, chroms: Sequence[str], sei: bool) -> tuple[set[str], str]:
        """The chromosomes of `chroms` whose bins may be reused with `fasta` (and, with `sei`, a Sei given to
        compute the others), and why the others may not ('' when all may): the file must record its FASTA
        fingerprint, gene coordinates and (with `sei`) Sei hashes, and be computed on `fasta`'s sequence."""
        from .provenance import describe_differences, fasta_differences, missing_provenance

        missing = missing_provenance(self.provenance, sei)
        if missing:
            return set(), (
                f"{self.path} records no {', '.join(missing)} (made elsewhere, or before these were recorded), "
                "so its bins are not reused"
            )
        diff = fasta_differences(self.provenance, fasta, chroms)
        why = describe_differences(self.path, fasta, diff) + ", so its bins there are not reused" if diff else ""
        return set(chroms) - set(diff), why

    def lookup(self, chroms: Sequence[str], chrom: np.ndarray, start: np.ndarray, flip: np.ndarray) -> np.ndarray:
        """Row of `values` for each bin, -1 where the file has no such bin."""
        keys = _unit_keys(self.chrom_rank, chroms, chrom, start, flip)
        i = np.searchsorted(self.keys, keys).clip(0, max(len(self.keys) - 1, 0))
        found = (self.keys[i] == keys) if len(self.keys) else np.zeros(len(keys), bool)
        return np.where(found, self.order[i] if len(self.keys) else -1, -1)


def window_features(
    genes: pd.DataFrame,
    spec: WindowSpec,
    fasta: str | Path,
    scorer: SeiScorer | None,
    cache: FeatureCache | None = None,
) -> np.ndarray:
    """(genes, n_bins, 40) class scores of each gene's window: bins from `cache` where it has them, the
    rest through `scorer`."""
    fa = open_fasta(fasta)
    rc = scorer.reverse_complement if scorer is not None else (cache.reverse_complement if cache else True)
    plan = plan_units(genes, spec, list(fa.keys()), rc)
    values = np.zeros((plan.n_units, 40), np.float32)
    hit = (
        cache.lookup(plan.chroms, plan.chrom, plan.start, plan.flip) if cache is not None else np.full(plan.n_units, -1)
    )
    why = ""
    if cache is not None and scorer is not None:
        scorer.check_features(cache.path)
    if cache is not None:
        used = [plan.chroms[i] for i in np.unique(plan.chrom)]
        ok, why = cache.reusable(fasta, used, scorer is not None)
        if why:
            log.warning("%s%s", why, "; computing those bins with Sei" if scorer is not None else "")
        hit[~np.isin(plan.chrom, [plan.chroms.index(c) for c in ok])] = -1
        if cache.reverse_complement != rc:
            raise GTAError(
                f"{cache.path} was computed with reverse_complement {cache.reverse_complement}, but the Sei given "
                f"here has {rc}; use reverse_complement {cache.reverse_complement}, or give no features file",
                input=("features", "sei.reverse_complement"),
            )
        values[hit >= 0] = cache.values[hit[hit >= 0]]
    todo = np.flatnonzero(hit < 0)
    log.info(
        "%d genes: %d distinct bins, %d from %s, %d through Sei",
        len(genes),
        plan.n_units,
        plan.n_units - len(todo),
        cache.path if cache else "no cache",
        len(todo),
    )
    if len(todo):
        if scorer is None:
            raise GTAError(
                f"{len(todo)} bins are in no features file{f' ({why})' if why else ''}; give the Sei "
                "checkpoint to compute them",
                input="sei.checkpoint",
            )
        t0 = time.perf_counter()
        for s in range(0, len(todo), 1024):
            part = todo[s : s + 1024]
            seqs = [
                read_padded(fa, plan.chroms[plan.chrom[u]], int(plan.start[u]), int(plan.start[u]) + spec.bin_size)
                for u in part
            ]
            values[part] = scorer.scores(seqs, plan.flip[part])
            log.info(
                "Sei: %d/%d bins, %.1f bins/s", s + len(part), len(todo), (s + len(part)) / (time.perf_counter() - t0)
            )
    return values[plan.gene_units]


# ----------------------------------------------------------------------------- which genes


def _is_mane(path: Path) -> bool:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return fh.readline().startswith("#NCBI_GeneID")


def genes_from_bed(path: str | Path, mane_genes: pd.DataFrame | None = None, input: str = "genes") -> pd.DataFrame:
    """A TSS table from a BED of TSSs: chrom, start, end, name[, score, strand]; the TSS is `start` on
    '+' (and without a strand) and `end - 1` on '-'. A name that is a MANE symbol takes that gene's
    GeneID; other genes get negative ids (-1, -2, ...) in file order. `input`: the caller's name for it."""
    path = require_file(path, "BED of TSSs", "columns chrom, start, end, name, score, strand", input=input)
    # header lines go before parsing: a one-field 'track' line first would fix the column count at 1
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        rows = [line for line in fh if line.strip() and not line.startswith(("#", "track", "browser"))]
    if not rows:
        raise GTAError(f"BED of TSSs {path} has no rows", input=input)
    try:
        bed = pd.read_csv(io.StringIO("".join(rows)), sep="\t", header=None, dtype=str)
    except pd.errors.ParserError as e:
        raise GTAError(f"BED of TSSs {path}: {e} (every row needs the same columns)", input=input) from None
    if bed.shape[1] < 4:
        raise GTAError(f"BED of TSSs {path} needs at least 4 columns (chrom, start, end, name)", input=input)
    strand = bed[5] if bed.shape[1] >= 6 else pd.Series("+", index=bed.index)
    try:
        start, end = bed[1].astype(np.int64), bed[2].astype(np.int64)
    except ValueError:
        raise GTAError(f"BED of TSSs {path}: start and end (columns 2, 3) must be integers", input=input) from None
    for bad, what in ((start < 0, "a negative start"), (end < start, "an end before its start")):
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise GTAError(
                f"BED of TSSs {path}: row {row + 1} ({bed[0][row]} {start[row]} {end[row]} {bed[3][row]}) has "
                f"{what}; BED intervals are 0-based, start >= 0 and end >= start",
                input=input,
            )
    bad = ~strand.isin(["+", "-", "."])
    if bad.any():
        raise GTAError(
            f"BED of TSSs {path}: strand (column 6) must be +, - or . (row {int(bad.argmax()) + 1})", input=input
        )
    strand = strand.replace(".", "+")
    by_symbol = (
        {
            s: (int(g), n, e)
            for g, s, n, e in zip(
                mane_genes["gene_id"],
                mane_genes["symbol"],
                mane_genes["name"],
                mane_genes["ensembl_gene"],
                strict=False,
            )
        }
        if mane_genes is not None
        else {}
    )
    rows, fresh = [], 0
    for chrom, s, e, name, st in zip(bed[0], start, end, bed[3], strand, strict=False):
        if name in by_symbol:
            gid, full, ens = by_symbol[name]
        else:
            fresh += 1
            gid, full, ens = -fresh, "", ""
        rows.append((gid, name, ens, full, chrom, int(s) if st == "+" else int(e) - 1, st))
    return pd.DataFrame(rows, columns=TSS_COLUMNS)


def resolve_genes(genes: str | Sequence[str], mane: str | Path, fasta: str | Path) -> pd.DataFrame:
    """The TSS table of the genes asked for: identifiers (a list, or a file of one per line), a BED
    (.bed, .bed.gz) or a MANE summary file (all its MANE Select genes on the FASTA's chromosomes)."""
    from .genome import check_tss_in_chromosomes
    from .identifiers import GeneIndex, match_identifiers, read_gene_list
    from .tss import fasta_lengths

    lengths = fasta_lengths(fasta)
    names = list(lengths)
    primary = set(names)
    everything = build_tss_table(read_mane(mane), names, [c for c in _primary(names) if c in primary])
    if isinstance(genes, str) or (len(genes) == 1 and Path(genes[0]).is_file()):
        path = Path(genes if isinstance(genes, str) else genes[0])
        if path.name.endswith((".bed", ".bed.gz")):
            table = genes_from_bed(path, everything)
            check_tss_in_chromosomes(table, lengths, fasta, table="genes")
            return table
        if require_file(path, "gene list", "a gene list, BED or MANE summary file", input="genes") and _is_mane(path):
            return build_tss_table(read_mane(path, "genes"), names, [c for c in _primary(names) if c in primary])
        identifiers = read_gene_list(path)
    else:
        identifiers = list(genes)
    ids = match_identifiers(identifiers, everything, "genes to predict")
    unknown = [i for i, g in zip(identifiers, ids, strict=False) if g < 0]
    if unknown:
        index, why = GeneIndex.from_tss(everything), {}
        for i in unknown:
            n = len(index.lookup(i))
            reason = (
                "are not MANE Select genes on the FASTA's chromosomes (give a BED of their TSSs instead)"
                if n == 0
                else "name several genes (use their GeneIDs)"
                if n > 1
                else "name a gene that another identifier also names (give each gene once)"
            )
            why.setdefault(reason, []).append(str(i))
        raise GTAError(
            "genes to predict: " + "; ".join(f"{len(v)} {k}: {', '.join(v[:8])}" for k, v in why.items()),
            input="genes",
        )
    pos = {g: i for i, g in enumerate(everything["gene_id"])}
    return everything.iloc[[pos[g] for g in ids]].reset_index(drop=True)


def _primary(names: Sequence[str]) -> list[str]:
    from .tss import PRIMARY, chrom_name, detect_naming

    naming = detect_naming(names)
    return [chrom_name(c, naming) for c in PRIMARY]


def gene_prompts(genes: pd.DataFrame, cell_type: str, prompts: str | Path | None = None) -> list[str]:
    """Each gene's prompt: from the workflow's prompts file when it has the gene, else built from the
    gene's MANE symbol and name (annotations.source: mane)."""
    from .annotations import format_prompt, mane_annotation, read_prompts

    known = read_prompts(prompts) if prompts else {}
    return [
        known.get(int(g)) or format_prompt(mane_annotation(g, s, n), cell_type)
        for g, s, n in zip(genes["gene_id"], genes["symbol"], genes["name"].fillna(""), strict=False)
    ]


# ----------------------------------------------------------------------------- the stage


def predict_genes(
    model: str | Path,
    genes: str | Sequence[str],
    fasta: str | Path,
    out: str | Path,
    *,
    mane: str | Path = "packaged",
    sei: dict | None = None,
    features: str | Path | None = None,
    tss: str | Path | None = None,
    prompts: str | Path | None = None,
    cell_type: str = "GM12878 lymphoblastoid cells",
    backbone: str | None = None,
    device: str = "auto",
    threads: int | None = None,
) -> pd.DataFrame:
    """Predict the expression of `genes` with a model folder; writes `out` (TSV: PREDICT_COLUMNS).

    `mane` is a MANE summary file or 'packaged' (gta.tss.resolve_mane). `sei` holds SeiScorer.load's
    arguments (checkpoint, projection, ...) for bins not in `features` (a features file with its
    gene table `tss`, computed on `fasta`).

    Args:
        model: trained model folder or its config.json (gta train-gta --out-model)
        genes: gene symbols / GeneIDs / Ensembl ids, or one file: a gene list (one per line), a BED of TSSs (.bed:
            chrom, start, end, name, score, strand) or a MANE summary
        fasta: genome FASTA the genes' windows are read from
        out: output predictions TSV
        mane: MANE summary for gene look-up ('packaged' = v1.5)
        features: features file whose bins to reuse (where its recorded FASTA and Sei match those given)
        tss: the gene table of --features (tss.tsv)
        prompts: prompts.jsonl to take prompts from (else MANE names)
        cell_type: the prompt's cell type
        backbone: backbone folder or hub id (default: the one the model records)
        device: where the model runs: 'auto', 'cpu', 'cuda' or 'cuda:N'
        threads: CPU threads (torch)
    """
    from .pretrained import GTAModel
    from .sei import KEPT

    if bool(features) != bool(tss):
        raise GTAError(
            "features and tss go together: a features file and the gene table it was made for",
            input=("features", "tss"),
        )
    mane = resolve_mane(str(mane))
    table = resolve_genes(genes, mane, fasta)  # before the model: a wrong gene stops at once
    if threads:
        torch.set_num_threads(threads)
    gta = GTAModel.from_pretrained(model, backbone, device)
    w = gta.config.get("window", {})
    spec = WindowSpec(
        gta.n_bins, int(w.get("bin_size", 4096)), str(w.get("orient", "reference")), str(w.get("grid", "tss"))
    )
    cache = FeatureCache(features, tss) if features else None
    if cache:
        gta.check_window(features, ["bin_size"])  # bins are reused by place: their grid and orientation may differ
    scorer = SeiScorer.load(**sei) if sei else None
    x = window_features(table, spec, fasta, scorer, cache)[:, :, KEPT]
    pred = gta.predict(
        x, gene_prompts(table, cell_type, prompts), strand=table["strand"].to_numpy(str), genes=list(table["symbol"])
    )
    result = table[["gene_id", "symbol", "chrom", "tss", "strand"]].assign(predicted=pred)
    with atomic_path(out) as tmp:
        result.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    log.info("wrote %s: %d genes predicted by %s", out, len(result), model)
    return result
