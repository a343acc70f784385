"""Does GTA read the prompt? The prompt path on the positive control (`expression.text_signal`).

After `snakemake --cores 2 results/diagnostics/prompt_control.tsv` (the demo config), targets at
text_signal t have a share t of their variance from a random effect per text family of the genes' MANE
names (gta.demo.simulation.text_effect). For each trained model folder given (default: every GTA and
no_prompt model of that run at --signal), on the test genes, this prints:

  spearman          test Spearman against the targets (as prompt_control.tsv)
  r_text            Pearson r of the predictions with the planted text effect u (recomputed from the MANE
                    names and the config's seed, as make_targets draws it); a model that reads the text
                    has r > 0, one that ignores it r ~ 0. The text baselines' predictions (fitted once)
                    are scored too, as the reference of a model that does read it
  shuffle_var       var(predictions - predictions with the prompts permuted among the test genes) /
                    var(predictions): the share of the predictions' variance that the prompts move
  prompt_attention  per backbone block, the mean share of the data tokens' attention (over heads, bins and
                    genes) that lands on the prompt's tokens
  past_first        the same without the prompt's first token (where attention that has nowhere better
                    to go tends to sink), i.e. on the words themselves

    python benchmarks/prompt_check.py --results results [--signal 0.2] [--models DIR ...]

A model with more blocks (the "1 block against more" question) is trained with the demo's settings by
`gta train-gta ... --layers 2` on the same targets (docs/experiments.md gives the command) and passed
with --models. About 2 minutes per model on one thread. Not part of `make bench` (which measures speed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECORD = "gta_record_prompt_share"


def text_effect_of(tss: pd.DataFrame, genes: pd.DataFrame, seed: int) -> pd.Series:
    """The planted text effect u per GeneID, as gta.expression draws it for the targets' genes."""
    from gta.demo.simulation import text_effect, text_families

    g = genes.merge(tss[["gene_id", "name"]], on="gene_id", how="left")
    fam = text_families(g["symbol"].astype(str), g["name"].fillna("").astype(str))
    return pd.Series(text_effect(fam, seed), index=g["gene_id"].to_numpy())


def recording_attention(shares: dict[int, list[tuple[float, float]]]):
    """An attention function for the backbone's blocks that also records, in the data pass (more keys than
    queries: the prompt's keys come first), the attention mass of the data tokens on the prompt keys."""

    def attend(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kw):
        groups = query.shape[1] // key.shape[1]
        k, v = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
        s = (query @ k.transpose(-1, -2)).float() * (scaling if scaling is not None else query.shape[-1] ** -0.5)
        if attention_mask is not None:
            s = s.masked_fill(~attention_mask, float("-inf"))
        p = torch.softmax(s, dim=-1)
        width = key.shape[2] - query.shape[2]
        if width > 0:
            on = p[..., :width].sum(-1).mean(dim=(1, 2)).tolist()
            past_first = p[..., 1:width].sum(-1).mean(dim=(1, 2)).tolist()
            shares.setdefault(int(module.layer_idx), []).extend(zip(on, past_first, strict=True))
        return (p.to(value.dtype) @ v).transpose(1, 2).contiguous(), None

    return attend


def check_model(folder: Path, a, genes, prompts, strand, effect, observed) -> dict:
    from transformers import AttentionInterface

    from gta.pretrained import GTAModel

    model = GTAModel.from_pretrained(folder, backbone=a.backbone, device="cpu")
    gene_id, _, x = model.load_features(a.results / "features" / "features.h5")
    pos = {g: i for i, g in enumerate(gene_id)}
    x = x[[pos[g] for g in genes]]
    pred = model.predict(x, prompts, strand=strand)
    row = {
        "model": str(folder.relative_to(a.results) if folder.is_relative_to(a.results) else folder),
        "blocks": model.config["model"]["layers"] if model.config["model"]["blocks"] != "none" else 0,
        "prompt": model.config["model"].get("prompt", True),
        "spearman": pd.Series(pred).rank().corr(pd.Series(observed).rank()),
        "r_text": float(np.corrcoef(pred, effect)[0, 1]),
    }
    perm = np.random.default_rng(a.seed).permutation(len(prompts))
    shuffled = model.predict(x, [prompts[i] for i in perm], strand=strand)
    row["shuffle_var"] = float(np.var(pred - shuffled) / np.var(pred))
    backbone = model.module.backbone
    if model.module.blocks != "none" and row["prompt"]:
        shares: dict[int, list[tuple[float, float]]] = {}
        AttentionInterface.register(RECORD, recording_attention(shares))
        saved = backbone.config._attn_implementation
        backbone.config._attn_implementation = RECORD
        try:
            if model.module.prompt_cache is not None:
                model.module.prompt_cache.clear()
            model.predict(x, prompts, strand=strand)
        finally:
            backbone.config._attn_implementation = saved
        means = [np.mean(v, axis=0) for _, v in sorted(shares.items())]  # per block: (on the prompt, past its first)
        row["prompt_attention"] = " ".join(f"{m[0]:.3f}" for m in means)
        row["past_first"] = " ".join(f"{m[1]:.3f}" for m in means)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=Path("results"), help="the demo run's results/ folder")
    ap.add_argument("--signal", type=float, default=0.2, help="the evaluate.text_signals value to check")
    ap.add_argument("--models", type=Path, nargs="*", help="model folders (default: the run's GTA and no_prompt)")
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml", help="the run's config (seed)")
    ap.add_argument("--backbone", default=None, help="the backbone folder (default: results/backbone/<only one>)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the prompt permutation")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from gta.annotations.jsonl import read_prompts
    from gta.formats import read_targets, read_tss

    run = a.results / "diagnostics" / f"text_signal_{a.signal:g}"
    if a.backbone is None:
        (a.backbone,) = [str(p) for p in (a.results / "backbone").iterdir() if p.is_dir()]
    models = a.models or sorted(p for p in (run / "models").iterdir() if p.name.startswith(("gta", "no_prompt")))
    seed = int(yaml.safe_load(a.config.read_text())["seed"])
    targets = read_targets(run / "expression" / "targets.tsv")
    tss = read_tss(a.results / "genes" / "tss.tsv")
    effect = text_effect_of(tss, targets, seed)
    signal = pd.read_csv(run / "expression" / "simulation.tsv", sep="\t").set_index("gene_id")["signal"]
    expected = np.sqrt(a.signal / (a.signal + (1 - a.signal) * 0.8))  # the demo's signal_fraction 0.8
    r = np.corrcoef(signal, effect[signal.index])[0, 1]
    print(f"check: r(noiseless signal, text effect) = {r:.3f}; sqrt of the text's share of its variance {expected:.3f}")
    test = targets[targets["split"] == "test"]
    text = read_prompts(a.results / "annotations" / "prompts.jsonl")
    prompts = [text[g] for g in test["gene_id"]]
    strand = tss.set_index("gene_id").loc[test["gene_id"], "strand"].to_numpy(str)
    u, observed = effect[test["gene_id"]].to_numpy(), test["value"].to_numpy()
    rows = [check_model(Path(m), a, test["gene_id"].tolist(), prompts, strand, u, observed) for m in models]
    for name in ("text_ridge", "text_expecto", "expecto_style"):
        f = run / "predictions" / f"{name}.tsv"
        if f.exists():
            p = pd.read_csv(f, sep="\t").set_index("gene_id").loc[test["gene_id"], "predicted"].to_numpy()
            rows.append({"model": name, "spearman": pd.Series(p).rank().corr(pd.Series(observed).rank()),
                         "r_text": float(np.corrcoef(p, u)[0, 1])})  # fmt: skip
    table = pd.DataFrame(rows)
    table["blocks"] = table["blocks"].astype("Int64")
    print(f"text_signal {a.signal:g}, {len(test)} test genes")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep=""))


if __name__ == "__main__":
    main()
