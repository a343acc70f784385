"""Explain one gene's prediction: what each bin contributes, what the selector keeps, what the bins align to.

For a gene of N bins, `explain_gene` predicts the gene once as it is and N more times with one bin
replaced by a neutral background (by default the training-set feature mean, which is zero after the
model's own standardisation), all in one batch: a bin's `effect` is the prediction minus the
prediction without it. Beside it, per bin, the selector's logit, whether the selector keeps the bin,
and for each alignment head the prototype the bin attends to most and that attention weight.

`plot_explanation` draws one gene's table and alignment attention; `explain_genes` writes <SYMBOL>.tsv and
<SYMBOL>.png per gene (`explain_genes`, `gta explain-genes`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING
from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import GTAError
from .io import atomic_path
from .provenance import check_gene_windows
from .tss import read_tss

if TYPE_CHECKING:
    from .pretrained import GTAModel

log = logging.getLogger("gta.explain")


def bin_size(model: GTAModel) -> int:
    """Bin length in bp of the features the model was trained on (4096 unless recorded otherwise)."""
    return int(model.config.get("window", {}).get("bin_size", 4096))


def explain_gene(
    model: GTAModel,
    features: np.ndarray,
    prompt: str,
    background: np.ndarray | None = None,
    batch_size: int | None = None,
    return_attention: bool = False,
    strand: str | None = None,
    gene: str | None = None,
):
    """Per-bin explanation of one gene's prediction: a DataFrame with one row per bin.

    `features` (N, 33) raw kept-class scores of the gene (as `gta.train.load_features` gives them),
    `prompt` its prompt text, `background` what an ablated bin holds: one (33,) vector for every bin or
    an (N, 33) array (row b for bin b); default the model's training-set feature mean; `strand` the
    gene's strand ('+'/'-'), needed when the model's features are in reference orientation; `gene` its name
    in errors (a NaN or infinite prediction).

    Rows are in the FEATURES' own order, whatever order the model reads them in: for reference-oriented
    features bin 0 is the leftmost on the + strand even for a minus-strand gene (the model reads that
    gene's bins reversed, upstream first; its selector logits, selection and attention are turned back
    here), so a table lines up with the genome.

    Columns: bin (0..N-1), offset (bins from the TSS bin N//2, in the features file's orientation),
    distance_bp (offset x bin size), prediction (the gene's prediction, the same on every row), ablated
    (the prediction with this bin replaced by the background), effect (prediction - ablated: positive
    when the bin raises the prediction), selector_logit, selected (among the selector's top k), and per
    alignment head h, top_prototype_h{h} (the prototype the bin attends to most) and attention_h{h}
    (that weight).

    The gene runs once on its own (`prediction` equals model.predict of the gene), its N ablations as
    one batch (`batch_size` splits it, if memory asks) sharing the prompt's cached keys and values; a
    bin that already equals the background is not run, its effect is exactly 0. With
    `return_attention`, returns (table, attention), attention being the unablated gene's alignment
    attention (heads, N, P).
    """
    x = np.asarray(features, dtype=np.float32)
    n = model.n_bins
    if x.shape != (n, len(model.feature_mean)):
        raise GTAError(
            f"features of one gene must be ({n} bins, {len(model.feature_mean)} classes); got {tuple(x.shape)}",
            input="features",
        )
    bg = model.feature_mean if background is None else np.asarray(background, dtype=np.float32)
    bg = np.broadcast_to(bg, x.shape) if bg.ndim == 1 else bg
    if bg.shape != x.shape:
        raise GTAError(
            f"background must be ({x.shape[1]},) or {x.shape}; got {tuple(np.shape(background))}", input="background"
        )

    # A bin that already holds the background is not run: its ablation is the gene itself. Run, it
    # could differ in the last bits of a float32 (a row alone and in a batch, or two identical rows
    # of one batch, need not agree bit for bit), and its effect would not be exactly 0.
    ids = model.encode([prompt])
    one = None if strand is None else [strand]
    pred, details = model.predict_details(x[None], ids, strand=one, genes=[gene])
    if model.orient == "reference" and strand == "-":  # the model's transcript order back to the features' order
        details = {
            "selector_logits": details["selector_logits"][:, ::-1],
            "selected": n - 1 - details["selected"],
            "attention": details["attention"][:, :, ::-1],
        }
    changed = np.flatnonzero((x != bg).any(axis=1))
    ablated = np.full(n, pred[0])
    if len(changed):
        batch = np.repeat(x[None], len(changed), axis=0)  # row j: bin changed[j] ablated
        batch[np.arange(len(changed)), changed] = bg[changed]
        strands = None if one is None else one * len(batch)
        ablated[changed] = model.predict(
            batch, ids * len(batch), batch_size=batch_size or len(batch), strand=strands, genes=[gene] * len(batch)
        )

    offset = np.arange(n) - n // 2
    table = pd.DataFrame(
        {
            "bin": np.arange(n),
            "offset": offset,
            "distance_bp": offset * bin_size(model),
            "prediction": np.full(n, pred[0]),
            "ablated": ablated,
            "effect": pred[0] - ablated,
            "selector_logit": details["selector_logits"][0].astype(np.float64),
        }
    )
    table["selected"] = np.isin(np.arange(n), details["selected"][0])
    attention = details["attention"][0].astype(np.float64)  # (heads, N, P)
    for h in range(attention.shape[0]):
        top = attention[h].argmax(axis=-1)
        table[f"top_prototype_h{h}"] = top
        table[f"attention_h{h}"] = attention[h, np.arange(n), top]
    return (table, attention) if return_attention else table


def largest_effects(table: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """The k rows of an explanation with the largest |effect|, largest first."""
    order = np.argsort(-table["effect"].abs().to_numpy(), kind="stable")[:k]
    return table.iloc[order]


def plot_explanation(
    table: pd.DataFrame, attention: np.ndarray, symbol: str, out_png: str | Path, label: str = ""
) -> Path:
    """One gene's explanation as a PNG, four panels over the same bins (x: offset from the TSS bin):
    the effect of each bin, the selector logits with the kept bins marked, the alignment attention
    (mean over heads, prototypes x bins, as Figure 7) and each head's attention to its top prototype
    (the prototype with the most attention over the bins, as Figure 8), one row per head."""
    from matplotlib.gridspec import GridSpec

    from .figures import _save, plt

    heads, n, n_proto = attention.shape
    off = table["offset"].to_numpy()
    extent = (off[0] - 0.5, off[-1] + 0.5)
    bp = int(abs(table["distance_bp"].iloc[1] - table["distance_bp"].iloc[0])) if n > 1 else 0
    fig = plt.figure(figsize=(min(max(8.0, 0.12 * n + 4), 18), 9.5))
    grid = GridSpec(
        4, 2, figure=fig, width_ratios=[50, 1], height_ratios=[1, 1, 1.4, 0.35 * heads + 0.6], hspace=0.35, wspace=0.03
    )
    ax_eff = fig.add_subplot(grid[0, 0])
    ax_sel, ax_att, ax_head = (fig.add_subplot(grid[i, 0], sharex=ax_eff) for i in (1, 2, 3))

    effect = table["effect"].to_numpy()
    colours = np.where(effect >= 0, "tab:red", "tab:blue")
    ax_eff.bar(off, effect, width=0.85, color=colours)
    ax_eff.axhline(0, color="k", lw=0.6)
    ax_eff.set_ylabel("effect\n(pred. - ablated)")
    ax_eff.set_title(
        f"(a) what each bin adds to the prediction ({table['prediction'].iloc[0]:.4g}): red raises, blue lowers",
        fontsize=9,
        loc="left",
    )

    logits = table["selector_logit"].to_numpy()
    sel = table["selected"].to_numpy(bool)
    ax_sel.plot(off, logits, color="gray", lw=1, marker=".", ms=4)
    ax_sel.scatter(off[sel], logits[sel], color="tab:orange", s=30, zorder=3, label="selected (top k)")
    ax_sel.set_ylabel("selector logit")
    ax_sel.legend(fontsize=7, loc="best")
    ax_sel.set_title(f"(b) selector: {int(sel.sum())} bins kept", fontsize=9, loc="left")

    im = ax_att.imshow(
        attention.mean(axis=0).T,
        aspect="auto",
        cmap="viridis",
        interpolation="nearest",
        extent=(*extent, n_proto - 0.5, -0.5),
    )
    ax_att.set_ylabel("prototype")
    ax_att.set_title(
        "(c) alignment attention, mean over heads (prototypes: vocabulary, then class names)", fontsize=9, loc="left"
    )
    fig.colorbar(im, cax=fig.add_subplot(grid[2, 1]), label="attention")

    top = attention.sum(axis=1).argmax(axis=-1)  # (heads,) each head's top prototype
    rows = attention[np.arange(heads), :, top]  # (heads, N)
    im = ax_head.imshow(rows, aspect="auto", cmap="magma", interpolation="nearest", extent=(*extent, heads - 0.5, -0.5))
    ax_head.set_yticks(range(heads), [f"h{h}: p{int(p)}" for h, p in enumerate(top)], fontsize=7)
    ax_head.set_title("(d) each head's attention to its top prototype", fontsize=9, loc="left")
    ax_head.set_xlabel(f"bins from the TSS bin ({bp} bp each)" if bp else "bins from the TSS bin")
    fig.colorbar(im, cax=fig.add_subplot(grid[3, 1]), label="attention")

    for ax in (ax_eff, ax_sel):
        ax.axvline(0, color="k", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
    for ax in (ax_att, ax_head):
        ax.axvline(0, color="w", lw=0.8, ls="--")
    for ax in (ax_eff, ax_sel, ax_att):
        ax.tick_params(labelbottom=False)
    ax_eff.set_xlim(*extent)
    fig.suptitle(
        f"{symbol}: why the model predicts {table['prediction'].iloc[0]:.4g} "
        "(dashed: TSS bin)" + (f"\n{label}" if label else ""),
        fontsize=10,
    )
    out = Path(out_png)
    _save(fig, out)
    return out


def read_gene_list(genes: Sequence[str]) -> list[str]:
    """Genes as given on the command line: the names themselves, or, when a single argument names an
    existing file, that file's lines (one gene per line; blank lines and '#' comments skipped)."""
    if len(genes) == 1 and Path(genes[0]).is_file():
        lines = (line.split("#", 1)[0].strip() for line in Path(genes[0]).read_text().splitlines())
        out = [line for line in lines if line]
        if not out:
            raise GTAError(f"gene list {genes[0]} names no genes (one symbol or NCBI GeneID per line)", input="genes")
        return out
    return [str(g).strip() for g in genes if str(g).strip()]


def find_genes(genes: Sequence[str], gene_id: np.ndarray, symbol: Sequence[str], features_path) -> list[int]:
    """Row of each gene (a symbol, matched exactly and then ignoring case, or an NCBI GeneID) in the
    features file; the unknown ones are named in one GTAError. Repeated genes count once."""
    by_symbol = {s: i for i, s in enumerate(symbol)}
    by_upper: dict[str, int] = {}
    for i, s in enumerate(symbol):
        by_upper.setdefault(s.upper(), i)
    by_id = {str(int(g)): i for i, g in enumerate(gene_id)}
    rows, unknown = [], []
    for g in genes:
        i = by_symbol.get(g, by_id.get(g, by_upper.get(g.upper())))
        if i is None:
            unknown.append(g)
        elif i not in rows:
            rows.append(i)
    if unknown:
        raise GTAError(
            f"{len(unknown)} of the genes to explain are not in the features file {features_path}: "
            f"{', '.join(unknown)}. Genes come from that file (its 'symbol' and 'gene_id'); name them "
            f"by symbol or NCBI GeneID, e.g. {symbol[0]} or {int(gene_id[0])}",
            input=("genes", "features"),
        )
    return rows


def file_stem(symbol: str) -> str:
    """A symbol as a file name (anything but letters, digits, '.', '-' and '_' becomes '_')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", symbol) or "gene"


def write_explanation(table: pd.DataFrame, out: str | Path) -> Path:
    with atomic_path(out) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    return Path(out)


def explain_genes(
    model: str | Path,
    features: str | Path,
    prompts: str | Path,
    genes: Sequence[str],
    out_dir: str | Path,
    backbone: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    label: str = "",
    tss: str | Path | None = None,
) -> list[Path]:
    """Explain each gene's prediction with a trained model: <out_dir>/<SYMBOL>.tsv (`explain_gene`'s
    table) and <out_dir>/<SYMBOL>.png (`plot_explanation`) per gene. `genes` are symbols or NCBI GeneIDs
    of genes in the features file, or one file of them (`read_gene_list`). Returns the paths written
    (TSV, PNG per gene).

    Args:
        model: trained model folder or its config.json (gta train-gta --out-model)
        features: features.h5; the genes are looked up in it
        prompts: prompts.jsonl with a prompt for each gene
        genes: gene symbols or NCBI GeneIDs, or one file of them (one per line, '#' comments)
        out_dir: output folder for <SYMBOL>.tsv and <SYMBOL>.png
        backbone: backbone folder or hub id (as given to gta train-gta)
        device: where the model runs: 'auto', 'cpu', 'cuda' or 'cuda:N'
        threads: CPU threads (torch)
        label: provenance line on every figure (e.g. 'simulated expression')
        tss: tss.tsv of the features file: the genes' strands (needed for features in reference orientation)
    """
    import torch

    from .annotations import read_prompts
    from .pretrained import GTAModel

    genes = read_gene_list(genes)
    if not genes:
        raise GTAError("no genes to explain; name them by symbol or NCBI GeneID", input="genes")
    if threads:
        torch.set_num_threads(threads)
    gta = GTAModel.from_pretrained(model, backbone, device)
    gene_id, symbol, x = gta.load_features(features)
    rows = find_genes([str(g) for g in genes], gene_id, symbol, features)
    if tss:  # the strands read must be those the features file's windows were cut for
        check_gene_windows(features, read_tss(tss), tss)
    strand = gta.strands(tss, gene_id[rows])
    strand = [None] * len(rows) if strand is None else strand
    prompt_of = read_prompts(prompts)
    missing = [symbol[i] for i in rows if int(gene_id[i]) not in prompt_of]
    if missing:
        raise GTAError(
            f"prompts file {prompts} has no prompt for {', '.join(missing)}; "
            "rebuild it from annotations of the features file's genes (make_prompts)",
            input="prompts",
        )
    explained = [  # every gene first: one that cannot be explained (a NaN prediction) stops before any file
        explain_gene(gta, x[i], prompt_of[int(gene_id[i])], return_attention=True, strand=one, gene=symbol[i])
        for i, one in zip(rows, strand, strict=True)
    ]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (table, attention) in zip(rows, explained, strict=True):
        gid, sym = int(gene_id[i]), symbol[i]
        stem = out / file_stem(sym)
        paths.append(write_explanation(table, stem.with_name(stem.name + ".tsv")))
        paths.append(plot_explanation(table, attention, sym, stem.with_name(stem.name + ".png"), label))
        top = ", ".join(
            f"bin {r.offset:+d} ({r.distance_bp:+,d} bp) {r.effect:+.4g}" for r in largest_effects(table).itertuples()
        )
        log.info("%s (GeneID %d): prediction %.4g; largest effects: %s", sym, gid, table["prediction"].iloc[0], top)
    log.info("explained %d genes in %s", len(rows), out)
    return paths
