"""Expression targets: observed tables and the `gta make-targets` stage (targets.tsv with the splits).

Observed tables (`expression.table`) are a long TSV (columns `gene`, `value`) or a wide CSV/TSV
(rows = individuals, first column = sample id, one column per gene; the target is the per-gene
median across individuals). Gene identifiers are matched to tss.tsv by symbol (case-insensitive),
Ensembl gene id (with or without version) or NCBI GeneID (`123` or `GeneID:123`), see
`gta.identifiers`; the train/val/test splits are drawn by `gta.splits`. With `expression.table:
simulated` the targets are the demo's planted grammar instead (`gta.demo.simulation`).
"""

from __future__ import annotations


import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import GTAError
from .options import GrammarName
from .formats import TARGET_COLUMNS, read_feature_classes, read_feature_genes
from .identifiers import GeneIndex, match_identifiers, read_gene_list
from .io import atomic_path, require_file
from .splits import SPLITS, assign_splits, window_groups

log = logging.getLogger("gta.expression")


# ----------------------------------------------------------------------------- reading tables


def _separator(path: Path) -> str:
    name = path.name.lower()
    for ext in (".gz", ".bz2", ".xz", ".zip"):
        name = name.removesuffix(ext)
    if name.endswith(".csv"):
        return ","
    if name.endswith((".tsv", ".txt", ".tab")):
        return "\t"
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt") as fh:
        first = fh.readline()
    return "\t" if "\t" in first else ","


def read_expression_table(path: str | Path) -> pd.Series:
    """Per-identifier expression from a long (`gene`, `value`) or wide (samples x genes) table.

    Returns a Series indexed by the identifiers as written (a wide table gives the per-gene median
    across its rows; empty cells are skipped). Identifiers may repeat; matching deals with that.
    """
    path = require_file(
        path, "expression table", "give a long TSV (gene, value), a wide CSV/TSV, or 'simulated'", input="table"
    )
    sep = _separator(path)
    try:
        raw = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False, compression="infer")
    except Exception as e:
        raise GTAError(f"cannot read expression table {path}: {e}", input="table") from e
    if raw.shape[0] < 2 or raw.shape[1] < 2:
        raise GTAError(
            f"expression table {path} needs a header and at least one row "
            f"and two columns; got {raw.shape[0]} lines x {raw.shape[1]} columns",
            input="table",
        )
    header = [h.strip() for h in raw.iloc[0]]
    body = raw.iloc[1:]
    lower = [h.lower() for h in header]
    if "gene" in lower and "value" in lower:
        genes = body.iloc[:, lower.index("gene")].str.strip()
        values = _numeric(body.iloc[:, lower.index("value")], path, "value")
        keep = genes != ""
        log.info("long expression table %s: %d rows", path, int(keep.sum()))
        return pd.Series(values[keep.to_numpy()], index=genes[keep].to_list(), dtype=np.float64)
    genes = header[1:]
    matrix = np.column_stack([_numeric(body.iloc[:, j], path, header[j]) for j in range(1, len(header))])
    finite = np.isfinite(matrix)
    if (~finite).any():
        log.info(
            "wide expression table %s: %d empty or NaN cells and %d infinite cells skipped in the medians",
            path,
            int(np.isnan(matrix).sum()),
            int(np.isinf(matrix).sum()),
        )
    empty = ~finite.any(axis=0)
    if empty.any():
        log.warning("%d gene columns of %s have no value; dropped", int(empty.sum()), path)
    with np.errstate(all="ignore"):
        med = np.nanmedian(np.where(finite, matrix, np.nan)[:, ~empty], axis=0)
    kept = [g for g, e in zip(genes, empty, strict=False) if not e]
    log.info(
        "wide expression table %s: %d samples x %d genes; target = per-gene median", path, matrix.shape[0], len(kept)
    )
    _check_levels(matrix[:, ~empty], med, path)
    return pd.Series(med, index=kept, dtype=np.float64)


def _numeric(col: pd.Series, path: Path, name: str) -> np.ndarray:
    text = col.str.strip()
    values = pd.to_numeric(text.where(~text.isin(["", "NA", "NaN", "nan", "na"]), None), errors="coerce")
    bad = values.isna() & ~text.isin(["", "NA", "NaN", "nan", "na"])
    if bad.any():
        example = text[bad].iloc[0]
        raise GTAError(
            f"expression table {path}: column {name!r} has a non-numeric value {example!r} "
            f"({int(bad.sum())} such cells); fix the table",
            input="table",
        )
    return values.to_numpy(np.float64)


def _check_levels(matrix: np.ndarray, medians: np.ndarray, path: Path) -> None:
    """Warn when per-gene levels look removed by normalisation (each gene centred across samples)."""
    if matrix.shape[0] < 3 or len(medians) < 3:
        return
    with np.errstate(all="ignore"):
        within = float(np.nanmedian(np.nanstd(matrix, axis=0)))
    between = float(np.std(medians))
    if between == 0:
        raise GTAError(
            f"expression table {path}: every gene has the same median; per-gene levels were "
            "removed by normalisation, so genes cannot be compared; give a table with per-gene levels",
            input="table",
        )
    if within > 0 and between < 0.1 * within:
        log.warning(
            "expression table %s: the per-gene medians vary little across genes (SD %.3g) compared "
            "with the spread within genes (median SD %.3g): the normalisation may have removed "
            "per-gene levels, and a Spearman across genes would then mean little",
            path,
            between,
            within,
        )


# ----------------------------------------------------------------------------- dropped rows


def _count_dropped(
    raw: pd.Series, ids: np.ndarray, tss: pd.DataFrame, with_features: np.ndarray, table: str
) -> np.ndarray:
    """Rows of an expression table that become targets; every other row counted by its reason in the log.

    Each dropped row is counted once, under the first reason that applies: its identifier names no gene,
    names several genes, or names a gene another row also names (duplicate); its gene has no features;
    its value is missing (empty, NA, NaN) or infinite.
    """
    index = GeneIndex.from_tss(tss)
    hits = np.array([len(index.lookup(i)) for i in raw.index], np.int64)
    values = raw.to_numpy(np.float64)
    reasons = {
        "unmatched identifier": hits == 0,
        "identifier naming several genes": hits > 1,
        "duplicate (a gene named by several rows)": (hits == 1) & (ids < 0),
        "gene without features": (ids >= 0) & ~np.isin(ids, with_features),
        "missing value (empty, NA, NaN)": np.isnan(values),
        "infinite value": np.isinf(values),
    }
    keep = np.ones(len(values), bool)
    counts = {}
    for reason, mask in reasons.items():
        counts[reason] = int((mask & keep).sum())
        keep &= ~mask
    log.info(
        "expression table %s: %d rows, %d kept as targets; dropped: %s",
        table,
        len(values),
        int(keep.sum()),
        ", ".join(f"{n} {reason}" for reason, n in counts.items()),
    )
    return keep


# ----------------------------------------------------------------------------- the stage


def _genes_with_features(
    tss: pd.DataFrame, tss_path: str | Path, features_path: str | Path
) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """(genes, in_tss, attrs): the tss.tsv rows of the features file's genes, in its order; `in_tss` marks
    the features file's genes that tss.tsv has (the others are left out, with a warning)."""
    feat_ids, attrs = read_feature_genes(features_path)
    in_tss = np.isin(feat_ids, tss["gene_id"].to_numpy())
    if not in_tss.all():
        log.warning("%d genes of the features file are not in %s; left out", int((~in_tss).sum()), tss_path)
    genes = tss.set_index("gene_id").loc[feat_ids[in_tss]].reset_index()
    log.info("%d genes with features and a TSS", len(genes))
    return genes, in_tss, attrs


def _simulated_values(
    features_path: str | Path,
    genes: pd.DataFrame,
    in_tss: np.ndarray,
    attrs: dict,
    simulation_out: str | Path | None,
    signal_fraction: float,
    seed: int,
    grammar: str,
    text_signal: float = 0.0,
) -> tuple[pd.Series, pd.Series]:
    """(observed, noiseless signal) per GeneID, drawn from the demo's planted grammar (and, with
    `text_signal` > 0, the text effects of the genes' families)."""
    from .demo.simulation import grammar_classes, simulate, text_families

    if simulation_out is None:
        raise GTAError(
            "simulated targets need an output file for the noiseless signal (simulation_out)", input="simulation_out"
        )
    scores = read_feature_classes(features_path, grammar_classes(grammar))[in_tss]
    gene_ids = genes["gene_id"].to_numpy()
    observed, signal = simulate(
        scores,
        gene_ids,
        int(attrs["tss_bin"]),
        signal_fraction,
        seed,
        name=grammar,
        strand=genes["strand"].to_numpy(str),
        orient=str(attrs.get("orient", "reference")),
        text_signal=text_signal,
        families=text_families(genes["symbol"].astype(str), genes["name"].fillna("").astype(str)),
    )
    if text_signal > 0:
        log.info("text signal %.2f of the variance from the text families of the genes' names", text_signal)
    log.info(
        "simulated expression for %d genes from %d bins, signal fraction %.2f (planted %s grammar, "
        "see gta.demo.simulation)",
        len(genes),
        int(attrs["n_bins"]),
        signal_fraction,
        grammar,
    )
    return pd.Series(observed, index=gene_ids), pd.Series(signal, index=gene_ids)


def _observed_values(table: str, tss: pd.DataFrame, genes: pd.DataFrame, log_transform: bool) -> pd.Series:
    """Value per GeneID from an expression table, for genes with features; log1p'd when asked."""
    raw = read_expression_table(table)
    ids = match_identifiers(list(raw.index), tss, f"expression table {table}")
    keep = _count_dropped(raw, ids, tss, genes["gene_id"].to_numpy(), table)
    values = pd.Series(raw.to_numpy()[keep], index=ids[keep])
    if log_transform:
        if (values < 0).any():
            raise GTAError(
                f"log_transform is on but {table} has {int((values < 0).sum())} "
                "negative values; log1p needs non-negative values (turn log_transform off)",
                input=("log_transform", "table"),
            )
        values = np.log1p(values)
    if len(values) < 3:
        raise GTAError(
            f"expression table {table} matches only {len(values)} genes that have features; "
            "check its identifiers (symbols, Ensembl ids or GeneIDs) and that the features cover "
            "its genes' chromosomes",
            input=("table", "features"),
        )
    if float(np.std(values.to_numpy())) == 0.0:
        raise GTAError(
            f"expression table {table}: all {len(values)} genes kept have the "
            f"same value ({values.iloc[0]:g}), so there is nothing to predict or rank; check the "
            "table's value column (a wide table's target is each gene's median across rows)",
            input="table",
        )
    return values


def _test_gene_ids(test_genes: str | Path, tss: pd.DataFrame, genes: pd.DataFrame) -> set[int]:
    """GeneIDs of the test gene list (genes.test_genes); at least 3 of them must have features and a target."""
    wanted = read_gene_list(test_genes, "test gene list", input="test_genes")
    matched = match_identifiers(wanted, tss, f"test gene list {test_genes}")
    test_ids = {int(g) for g in matched if g >= 0}
    present = test_ids & set(genes["gene_id"])
    log.info("test gene list: %d genes matched, %d of them have features and a target", len(test_ids), len(present))
    if len(present) < 3:
        raise GTAError(
            f"only {len(present)} genes of the test gene list {test_genes} have features and a "
            "target; check the list's identifiers and that the features cover its genes' chromosomes",
            input=("test_genes", "features"),
        )
    return test_ids


def _test_chromosome_ids(test_chromosomes: Sequence[str], genes: pd.DataFrame) -> set[int]:
    """GeneIDs of the genes on the held-out chromosomes (genes.test_chromosomes); each must have genes."""
    wanted = [str(c) for c in test_chromosomes]
    present = set(genes["chrom"].astype(str))
    absent = [c for c in wanted if c not in present]
    if absent:
        raise GTAError(
            f"test chromosomes {absent} have no genes with features and a target (those genes lie on "
            f"{sorted(present)}); name held-out chromosomes as the TSS table names them, among the genes' chromosomes",
            input=("test_chromosomes", "features"),
        )
    test_ids = set(genes.loc[genes["chrom"].astype(str).isin(wanted), "gene_id"].astype(int))
    log.info("test chromosomes %s: %d genes held out", ", ".join(wanted), len(test_ids))
    return test_ids


def _held_out(
    test_genes: str | Path | None, test_chromosomes: Sequence[str] | None, tss: pd.DataFrame, genes: pd.DataFrame
) -> tuple[set[int] | None, str | None, str | None]:
    """(test GeneIDs, what they are, the input naming them) from the test gene list or the test
    chromosomes; (None, None, None) when neither is given (a seeded fraction is held out)."""
    if test_genes:
        return _test_gene_ids(test_genes, tss, genes), f"in the test gene list {test_genes}", "test_genes"
    if test_chromosomes:
        names = ", ".join(map(str, test_chromosomes))
        return _test_chromosome_ids(test_chromosomes, genes), f"on the test chromosomes {names}", "test_chromosomes"
    return None, None, None


def _window_groups(genes: pd.DataFrame, attrs: dict) -> np.ndarray:
    """gta.splits.window_groups for the genes, on the features file's bin size and grid; logs the groups."""
    bin_size, grid = int(attrs["bin_size"]), str(attrs.get("grid", "tss"))
    groups = window_groups(genes["gene_id"].to_numpy(), genes["chrom"].astype(str), genes["tss"], bin_size, grid)
    sizes = pd.Series(groups).value_counts()
    shared = sizes[sizes > 1]
    log.info(
        "window groups (central bins at most %d bp apart, grid %s): %d genes in %d groups of 2 or more "
        "(largest %d), each kept in one split",
        bin_size,
        grid,
        int(shared.sum()),
        len(shared),
        int(sizes.max()) if len(sizes) else 0,
    )
    return groups


def _check_splits(genes: pd.DataFrame, table: str, held_out: str | None, held_out_input: str | None) -> None:
    """Log the split sizes; stop, naming the likely cause, when a split is empty (`genes` has columns split
    and group, see gta.splits.window_groups). `held_out` describes the chosen test genes (a test gene list
    or test chromosomes), `held_out_input` the input naming them."""
    counts = genes["split"].value_counts()
    log.info("splits: %s", ", ".join(f"{s} {int(counts.get(s, 0))}" for s in SPLITS))
    source = "simulated expression" if table == "simulated" else f"expression table {table}"
    for s in SPLITS:
        if counts.get(s, 0) > 0:
            continue
        if held_out is not None and s != "test":
            rest = int((genes["split"] != "test").sum())
            fix = "a test gene list that leaves genes out"
            if held_out_input == "test_chromosomes":
                fix = "fewer test chromosomes"
            raise GTAError(
                f"the {s} split is empty: of the {len(genes)} genes with features and a target "
                f"({source}), {len(genes) - rest} are {held_out} and only {rest} are left for training "
                f"and validation (genes sharing a window with a test gene are test genes too); use {fix}, "
                "or add genes",
                input=(held_out_input, "table"),
            )
        raise GTAError(
            f"the {s} split is empty ({len(genes)} genes with features and a target from {source}, in "
            f"{genes['group'].nunique()} window groups that each stay in one split); use more genes or other "
            "test and validation fractions (test_fraction, val_fraction)",
            input=("features", "test_fraction", "val_fraction"),
        )


def _write_targets(
    genes: pd.DataFrame, out: str | Path, signal: pd.Series | None, simulation_out: str | Path | None
) -> None:
    """Write targets.tsv and, for simulated targets (`signal` given), simulation.tsv (gene_id, signal)."""
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(out))
        genes[TARGET_COLUMNS].to_csv(tmp, sep="\t", index=False, float_format="%.8g")
        if signal is not None:
            sim = pd.DataFrame(
                {"gene_id": genes["gene_id"].to_numpy(), "signal": signal.loc[genes["gene_id"]].to_numpy()}
            )
            sim.to_csv(stack.enter_context(atomic_path(simulation_out)), sep="\t", index=False, float_format="%.8g")
    log.info("wrote %d targets to %s", len(genes), out)


def make_targets(
    tss: str | Path,
    features: str | Path,
    table: str,
    out: str | Path,
    simulation_out: str | Path | None = None,
    test_genes: str | Path | None = None,
    test_chromosomes: list[str] | None = None,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    seed: int = 0,
    log_transform: bool = False,
    signal_fraction: float = 0.7,
    grammar: GrammarName = "demo",
    text_signal: float = 0.0,
) -> pd.DataFrame:
    """Stage make_targets (rule, `gta make-targets`): write targets.tsv (gene_id, symbol, value, split) for
    the genes with features.

    `table` is a table path or 'simulated' (then `simulation_out` gets gene_id, signal).

    Args:
        tss: tss.tsv (identifiers are matched against it)
        features: features.h5 (its genes are the candidates)
        table: expression table path, or 'simulated'
        out: output targets.tsv
        simulation_out: simulation: output of the noiseless signal
        test_genes: file of test genes (one identifier per line); empty = seeded fraction
        test_chromosomes: chromosomes whose genes are the test genes (named as in the TSS table); not
            together with test_genes; empty = seeded fraction
        log_transform: log1p the observed values
        signal_fraction: simulation: variance share of the signal
        grammar: simulation: the planted grammar (gta.demo.simulation)
        text_signal: simulation: variance share from the text family of each gene's name (a positive
            control for the prompt path; gta.demo.simulation)
    """
    from .tss import read_tss

    if test_genes and test_chromosomes:
        raise GTAError(
            f"both a test gene list ({test_genes}) and test chromosomes ({', '.join(map(str, test_chromosomes))}) "
            "choose the test genes; give only one of them",
            input=("test_genes", "test_chromosomes"),
        )
    tss_table = read_tss(require_file(tss, "TSS table", "rerun mane_tss", input="tss"))
    genes, in_tss, attrs = _genes_with_features(tss_table, tss, features)
    if table == "simulated":
        values, signal = _simulated_values(
            features, genes, in_tss, attrs, simulation_out, signal_fraction, seed, grammar, text_signal
        )
    else:
        values, signal = _observed_values(table, tss_table, genes, log_transform), None

    genes = genes[genes["gene_id"].isin(values.index)].copy()
    genes["value"] = values.loc[genes["gene_id"]].to_numpy(np.float64)
    test_ids, held_out, held_out_input = _held_out(test_genes, test_chromosomes, tss_table, genes)
    genes["group"] = _window_groups(genes, attrs)
    genes["split"] = assign_splits(
        genes["gene_id"].to_numpy(), test_ids, test_fraction, val_fraction, seed, genes["group"].to_numpy()
    )
    if test_genes:
        twins = int((genes["split"] == "test").sum()) - len(test_ids & set(genes["gene_id"]))
        log.info("%d genes share a window group with a listed test gene and are test genes too", twins)
    genes = genes.sort_values("gene_id")
    _check_splits(genes, table, held_out, held_out_input)
    _write_targets(genes, out, signal, simulation_out)
    return genes[TARGET_COLUMNS]
