"""Figures 5-10 of the paper from a trained GTA model and its predictions; diagnostic figures."""

from __future__ import annotations

import logging
from pathlib import Path
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import GTAError  # noqa: E402
from .figure_names import FIGURES  # noqa: E402 (the file names, shared with the workflow)
from .io import atomic_path, require_file  # noqa: E402
from .sei import CLASS_LABELS, KEPT  # noqa: E402

log = logging.getLogger("gta.figures")


def _save(fig, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


def top_bins(attention: np.ndarray) -> np.ndarray:
    """(genes, heads) index of the bin each head attends to most, through its top prototype.

    For each gene and head, the prototype with the largest total attention over the bins is found,
    then the bin that attends to that prototype most (the paper's selection for Figures 6 and 10).
    `attention` (genes, heads, N, P), softmax over prototypes.
    """
    top_proto = attention.sum(axis=2).argmax(axis=-1)  # (genes, heads)
    col = np.take_along_axis(attention, top_proto[:, :, None, None], axis=3)[..., 0]  # (genes, heads, N)
    return col.argmax(axis=-1)


def head_zscores(features: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """(heads, classes): mean z-score, over genes, of the features of each head's chosen bin.

    `features` (genes, N, C); `bins` (genes, heads) from `top_bins`. z-scores are against all bins
    of all genes.
    """
    chosen = features[np.arange(features.shape[0])[:, None], bins]  # (genes, heads, C)
    flat = features.reshape(-1, features.shape[-1])
    return ((chosen - flat.mean(0)) / (flat.std(0) + 1e-12)).mean(axis=0)


def selection_frequency(selected: np.ndarray, n_bins: int) -> np.ndarray:
    """Fraction of genes for which each bin is among the selector's top k (Figure 9)."""
    counts = np.zeros(n_bins)
    for row in selected:
        counts[np.unique(row)] += 1
    return counts / max(len(selected), 1)


def gate_weights(logits: np.ndarray, selected: np.ndarray, gate: str = "sigmoid") -> np.ndarray:
    """(genes, N) the selector's gate on each bin, 0 for bins it does not keep (Figure 9).

    `logits` (genes, N) selector logits, `selected` (genes, k) kept bins. 'sigmoid': sigmoid(logit) of each
    kept bin; 'softmax': the softmax of the kept bins' logits (as gta.model.head.SelectorHead scales them).
    """
    logits = np.asarray(logits, np.float64)
    kept = np.take_along_axis(logits, selected, axis=1)
    if gate == "sigmoid":
        w = 1.0 / (1.0 + np.exp(-kept))
    elif gate == "softmax":
        e = np.exp(kept - kept.max(axis=1, keepdims=True))
        w = e / e.sum(axis=1, keepdims=True)
    else:
        raise GTAError(f"selector gate {gate!r} is not 'sigmoid' or 'softmax'", input="gate")
    out = np.zeros_like(logits)
    np.put_along_axis(out, selected, w, axis=1)
    return out


ENTROPY_COLUMNS = [
    "head",
    "entropy",
    "max_entropy",
    "effective_prototypes",
    "top_prototype",
    "top_share",
    "vocab_share",
]


def attention_entropy(attention: np.ndarray, n_vocab: int) -> pd.DataFrame:
    """Per alignment head, how spread its attention over the P prototypes is (results/diagnostics/
    attention_entropy.tsv; docs/formats.md).

    `attention` (genes, heads, N, P), softmax over P; prototypes 0..n_vocab-1 combine the vocabulary, the
    rest the class names. Per head, over all genes and bins: `entropy` the mean entropy (nats) of a bin's
    attention, `max_entropy` log P (uniform attention), `effective_prototypes` exp(entropy), `top_prototype`
    the prototype with the most attention and `top_share` its share of it, `vocab_share` the share on the
    vocabulary prototypes.
    """
    a = np.asarray(attention, np.float64)
    h = -(a * np.log(np.clip(a, 1e-30, None))).sum(axis=-1).mean(axis=(0, 2))  # (heads,)
    mass = a.mean(axis=(0, 2))  # (heads, P), each row sums to 1
    top = mass.argmax(axis=1)
    return pd.DataFrame(
        {
            "head": np.arange(a.shape[1]),
            "entropy": h,
            "max_entropy": np.log(a.shape[-1]),
            "effective_prototypes": np.exp(h),
            "top_prototype": top,
            "top_share": mass[np.arange(len(top)), top],
            "vocab_share": mass[:, :n_vocab].sum(axis=1),
        }
    )[ENTROPY_COLUMNS]


def _zscore_heatmap(z: np.ndarray, heads: list[int], title: str):
    labels = [CLASS_LABELS[i] for i in KEPT]
    fig, ax = plt.subplots(figsize=(0.32 * len(labels) + 2, 0.45 * len(heads) + 1.5))
    lim = float(np.abs(z[heads]).max()) or 1.0
    im = ax.imshow(z[heads], cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(heads)), [f"head {h}" for h in heads])
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="z-score")
    return fig


def draw_figures(
    out_dir: str | Path,
    predictions: pd.DataFrame,
    features: np.ndarray,
    bins: np.ndarray,
    attention_best: np.ndarray,
    attention_worst: np.ndarray,
    selected: np.ndarray,
    label: str,
    n_boot: int = 5000,
    seed: int = 0,
    gates: np.ndarray | None = None,
    effects: np.ndarray | None = None,
) -> list[Path]:
    """Write figures 5-10 for the test genes.

    `predictions` (observed, predicted, symbol) for the same genes, in the same order, as `features`
    (genes, N, 33), `bins` (genes, heads) from `top_bins` and `selected` (genes, k) bin indices;
    `attention_best` / `attention_worst` (heads, N, P) are the alignment attention of the genes with
    the smallest and largest absolute residual; `gates` (genes, N) from `gate_weights`, Figure 9's mean
    gate per bin; `effects` (some genes, N) bin-ablation effects (gta.explain, transcript order), Figure 9's
    mean |effect| per bin. `label` says where the numbers come from.
    """
    from .evaluate import bootstrap_spearman

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    heads, n_bins, n_proto = attention_best.shape
    tss_bin = n_bins // 2
    paths = {k: out / v for k, v in FIGURES.items()}
    obs, pred = predictions["observed"].to_numpy(), predictions["predicted"].to_numpy()
    resid = np.abs(pred - obs)
    best, worst = int(resid.argmin()), int(resid.argmax())
    rho, ci = bootstrap_spearman(obs, pred, n_boot=n_boot, seed=seed)  # as in Table 1

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(obs, pred, s=6, alpha=0.5)
    ax.set_xlabel("observed")
    ax.set_ylabel("predicted")
    ax.set_title(f"GTA N={n_bins}: Spearman {rho:.3f} ± {ci:.3f} ({len(obs)} test genes)\n{label}", fontsize=9)
    _save(fig, paths[5])

    z = head_zscores(features, bins)
    strongest = sorted(np.argsort(-np.abs(z).max(axis=1))[:3].tolist())
    _save(_zscore_heatmap(z, strongest, f"Heads with the strongest class preferences\n{label}"), paths[6])
    _save(_zscore_heatmap(z, list(range(heads)), f"All alignment heads\n{label}"), paths[10])

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, name, att, g in [(axes[0], "best", attention_best, best), (axes[1], "worst", attention_worst, worst)]:
        im = ax.imshow(att.mean(axis=0).T, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.axhline(n_proto / 2 - 0.5, color="w", lw=0.8)
        ax.set_title(f"{name}-predicted gene: {predictions['symbol'].iloc[g]}")
        ax.set_xlabel("bin")
    axes[0].set_ylabel("prototype (vocabulary | class names)")
    fig.colorbar(im, ax=axes, label="attention (mean over heads)")
    fig.suptitle(label, fontsize=8)
    _save(fig, paths[7])

    fig, axes = plt.subplots(heads, 1, figsize=(8, 1.1 * heads + 1), sharex=True)
    for h, ax in enumerate(np.atleast_1d(axes)):
        row = attention_best[h, :, int(attention_best[h].sum(axis=0).argmax())]
        ax.plot(row, lw=1)
        ax.axvline(tss_bin, color="r", lw=0.8)
        ax.axhline(float(np.median(row)), color="gray", lw=0.6, ls="--")
        ax.set_ylabel(f"h{h}", rotation=0, labelpad=12, fontsize=8)
    np.atleast_1d(axes)[-1].set_xlabel("bin (red: TSS bin; dashed: median)")
    fig.suptitle(f"Attention of each head's top prototype, {predictions['symbol'].iloc[best]}\n{label}", fontsize=9)
    _save(fig, paths[8])

    # Figure 9: how often the selector keeps each bin (with top_k >= N every bin: a flat bar at 1, left
    # out), and what the model weighs there: the mean gate on each bin and the mean |bin-ablation effect|
    freq = selection_frequency(selected, n_bins)
    every = gates is None and effects is None
    panels = {"frequency": freq} if every or not np.all(freq == 1.0) else {}
    if gates is not None:
        panels["mean selector gate\n(0 when not kept)"] = gates.mean(axis=0)
    if effects is not None:
        panels[f"mean |ablation effect|\n({len(effects)} test genes)"] = np.abs(effects).mean(axis=0)
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels) + 0.6), sharex=True, squeeze=False)
    for i, (ax, (name, values)) in enumerate(zip(axes[:, 0], panels.items(), strict=True)):
        ax.bar(np.arange(n_bins) - tss_bin, values, width=1.0, color=f"C{i}")
        ax.set_ylabel("fraction of genes\nselected" if name == "frequency" else name, fontsize=8)
        low, high = float(values.min()), float(values.max())
        if name.startswith("mean selector gate") and high - low < 0.05 * max(high, 1e-12):
            # near-constant gates (e.g. all saturated at 1): zoom in so their spread shows, and say so
            pad = max(high - low, 1e-6)
            ax.set_ylim(low - pad, high + pad)
            ax.set_title(f"every mean gate between {low:.4f} and {high:.4f} (axis zoomed)", fontsize=8)
    axes[-1, 0].set_xlabel("bin relative to the TSS bin")
    kept = "every bin kept for every gene (top_k >= N)" if np.all(freq == 1.0) else "top-k selector"
    fig.suptitle(f"What the selector keeps and weighs: {kept}\n{label}", fontsize=9)
    _save(fig, paths[9])
    log.info("wrote figures 5-10 to %s", out)
    return list(paths.values())


def make_figures(
    model: str,
    backbone: str,
    features: str,
    predictions: str,
    prompts: str,
    out_dir: str,
    label: str = "",
    device: str = "auto",
    threads: int | None = None,
    n_boot: int = 5000,
    seed: int = 0,
    batch_size: int = 16,
    tss: str | None = None,
    out_entropy: str | None = None,
    ablation_genes: int = 32,
) -> list[Path]:
    """Figures 5-10 on the test genes of a trained model: runs it once more, keeping only what they need.
    Bins are shown in the model's transcript order (upstream on the left, whatever the gene's strand).
    With `out_entropy`, also the alignment attention's entropy per head on those genes (attention_entropy).

    Args:
        model: trained model folder or its config.json (gta train-gta --out-model)
        backbone: backbone folder or hub id (as given to gta train-gta)
        predictions: that model's predictions.tsv
        label: provenance line on every figure (e.g. 'simulated expression')
        device: where the model runs: 'auto', 'cpu', 'cuda' or 'cuda:N'
        threads: CPU threads (torch)
        n_boot: bootstrap resamples for Figure 5's error bar
        tss: tss.tsv: the genes' strands (needed for features in reference orientation)
        out_entropy: write the attention entropy per alignment head here (TSV)
        ablation_genes: Figure 9's mean |bin-ablation effect| (gta.explain) over this many test genes
            (seeded choice; 0: no such panel); N + 1 predictions per gene
    """
    import torch

    from .annotations import read_prompts
    from .formats import read_predictions, transcript_order
    from .pretrained import GTAModel

    if threads:
        torch.set_num_threads(threads)
    gta = GTAModel.from_pretrained(model, backbone, device)
    table = read_predictions(predictions)
    test = table[table["split"] == "test"].reset_index(drop=True)
    if len(test) < 3:
        raise GTAError(f"{predictions} has {len(test)} test genes; figures need at least 3", input="predictions")
    gene_id, _, x = gta.load_features(features)
    pos = {g: i for i, g in enumerate(gene_id)}
    x = x[[pos[g] for g in test["gene_id"]]]
    text = read_prompts(prompts)
    resid = np.abs(test["predicted"] - test["observed"]).to_numpy()
    best, worst = int(resid.argmin()), int(resid.argmax())
    strand = gta.strands(tss, test["gene_id"])
    if ablation_genes < 0:
        raise GTAError(
            f"ablation_genes must be >= 0 (0: no ablation panel), got {ablation_genes}", input="ablation_genes"
        )
    effects = None
    if ablation_genes > 0:
        from .explain import explain_gene

        pick = np.sort(np.random.default_rng(seed).permutation(len(test))[:ablation_genes])
        one = [None] * len(test) if strand is None else list(strand)
        effects = np.stack(
            [
                explain_gene(gta, x[i], text[test["gene_id"][i]], strand=one[i], gene=test["symbol"][i])["effect"]
                for i in pick
            ]
        )
        effects = transcript_order(effects[:, :, None], None if strand is None else strand[pick], gta.orient)[..., 0]
    _, d = gta.predict_details(
        x, [text[g] for g in test["gene_id"]], batch_size, strand=strand, genes=list(test["symbol"])
    )
    x = transcript_order(x, strand, gta.orient)  # the figures show bins as the model reads them (upstream first)
    att = d["attention"]
    if out_entropy:
        from .formats import write_table

        table = attention_entropy(att, gta.module.align.vocab_map.out_features)
        cells = table.astype(object).map(lambda v: str(v) if isinstance(v, (int, np.integer)) else f"{v:.4f}")
        write_table(cells.to_dict("records"), ENTROPY_COLUMNS, out_entropy)
        log.info(
            "attention entropy per head (nats; uniform %.3f): %s", np.log(att.shape[-1]), cells["entropy"].tolist()
        )
    gates = gate_weights(d["selector_logits"], d["selected"], gta.module.head.gate)
    return draw_figures(
        *(out_dir, test, x, top_bins(att), att[best], att[worst], d["selected"], label, n_boot, seed),
        gates=gates,
        effects=effects,
    )


# ----------------------------------------------------------------------------- diagnostics


def plot_learning_curves(
    history: Mapping[str, str | Path] | Sequence[tuple[str, str | Path]], out: str | Path, label: str = ""
) -> Path:
    """Stage plot_learning_curves (rule, `gta plot-learning-curves`): training MSE (standardised targets)
    and validation Spearman per epoch, one line per trained model, from {model name: history.tsv} or
    (model name, history.tsv) pairs.

    Args:
        history: a model name and its history.tsv (gta train-gta --out-history)
        out: output PNG
        label: provenance line on the figure
    """
    histories = list(history.items()) if isinstance(history, Mapping) else list(history)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.get_cmap("tab10" if len(histories) <= 10 else "tab20")
    for i, (name, path) in enumerate(histories):
        h = pd.read_csv(require_file(path, "training history", "rerun train_gta", input="history"), sep="\t")
        if not {"epoch", "train_loss", "val_spearman"} <= set(h.columns):
            raise GTAError(f"training history {path} needs columns epoch, train_loss, val_spearman", input="history")
        style = dict(color=colours(i % colours.N), marker="o", ms=3, lw=1.2, label=name)
        axes[0].plot(h["epoch"], h["train_loss"], **style)
        axes[1].plot(h["epoch"], h["val_spearman"], **style)
    axes[0].set_ylabel("training MSE (standardised targets)")
    axes[1].set_ylabel("validation Spearman")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(f"Learning curves\n{label}", fontsize=9)
    _save(fig, Path(out))
    log.info("wrote learning curves of %d models to %s", len(histories), out)
    return Path(out)


def plot_train_size(table: pd.DataFrame, out: str | Path, label: str = "") -> Path:
    """Test Spearman (2 x bootstrap SD bars) against the number of training genes, one line per model,
    from a train_size.tsv table."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for model, rows in table.groupby("model", sort=False):
        rows = rows.assign(n_train=rows["n_train"].astype(int)).sort_values("n_train")
        ax.errorbar(
            rows["n_train"],
            rows["spearman"].astype(float),
            yerr=pd.to_numeric(rows["ci"], errors="coerce"),
            marker="o",
            capsize=3,
            label=model,
        )
    ax.set_xlabel("training genes")
    ax.set_ylabel("test Spearman")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Training-set size\n{label}", fontsize=9)
    _save(fig, Path(out))
    return Path(out)
