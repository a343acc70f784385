"""Does GTA read minus-strand genes the right way round? Upstream-only enhancers on the demo's features.

On the demo's own features (reference orientation: a minus-strand gene's upstream bins lie right of its
TSS), targets are simulated with `expression.grammar: upstream` (the demo grammar with enhancers acting
only upstream of the TSS in transcript direction; signal_fraction 0.8, splits as make_targets draws
them), then three models are fitted with the demo's settings (config/config.yaml: 1 backbone block,
head distance, skip, top_k 51, dropout 0.3, 10 epochs, batch 32, lr 1e-3; autocast float32, 1 thread):

- GTA, strand-aware: as train_gta does it (minus-strand genes' bins reversed: transcript order);
- GTA, strand-blind: the same, told every gene is on the + strand (what models did before they read
  bins in transcript order);
- the ExPecto-style ridge (strand-aware through its upstream/downstream split).

Prints each model's test Spearman overall and on plus- and minus-strand genes alone.

    python benchmarks/strand_check.py --results /work/demo/results [--dir /tmp/gta-strand-check]

`--results` is a demo run's results/ folder (features/features.h5, genes/tss.tsv,
annotations/prompts.jsonl, backbone/<name>). About 10 minutes on one thread of a busy 2-core machine
(two GTA trainings of ~5 minutes each; a rerun reuses the trained models' predictions in --dir). Not part
of `make bench` (which measures speed only).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def model_configs(config: dict, backbone: str, threads: int):
    """ModelConfig and TrainConfig of the config's GTA (the other fields: their defaults, as the schema's)."""
    from gta.options import ModelConfig, TrainConfig

    b, g, t = config["backbone"], config["gta"], config["train"]
    renamed = {"dtype": "backbone_dtype", "selector_gate": "gate"}
    fields = {renamed.get(k, k): v for k, v in {**b, **g}.items() if k not in ("model", "lora")}
    mcfg = ModelConfig(**{k: v for k, v in fields.items() if k in ModelConfig.__dataclass_fields__}, backbone=backbone)
    train = {k: v for k, v in t.items() if k in TrainConfig.__dataclass_fields__ and k != "threads"}
    tcfg = TrainConfig(**{**train, "autocast": "float32", "device": "cpu"}, threads=threads, seed=config["seed"])
    return mcfg, tcfg


def scores(p: pd.DataFrame, strand: pd.Series) -> dict[str, float]:
    """Test Spearman of a predictions table (gene_id, split, observed, predicted): all, + and - strand genes."""
    from gta.evaluate import strand_spearman

    test = p.loc[p["split"] == "test", "gene_id"]
    rows = p[p["split"] == "test"]
    by = strand_spearman(p, test, strand)
    overall = float(rows["observed"].rank().corr(rows["predicted"].rank()))
    return {"spearman": overall, "spearman_plus": by["+"], "spearman_minus": by["-"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True, help="a demo run's results/ folder")
    p.add_argument("--dir", default="/tmp/gta-strand-check", help="working directory")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    from gta.baselines import fit_baseline
    from gta.expression import make_targets
    from gta.formats import read_predictions, read_tss, write_tss
    from gta.model.spec import converted_name
    from gta.train import train_gta

    torch.set_num_threads(a.threads)
    res, work = Path(a.results), Path(a.dir)
    work.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    features, tss, prompts = res / "features/features.h5", res / "genes/tss.tsv", res / "annotations/prompts.jsonl"
    backbone = res / "backbone" / converted_name(config["backbone"]["model"])
    g = config["genes"]
    make_targets(
        tss,
        features,
        "simulated",
        work / "targets.tsv",
        work / "simulation.tsv",
        test_fraction=g["test_fraction"],
        val_fraction=g["val_fraction"],
        seed=config["seed"],
        signal_fraction=config["expression"]["signal_fraction"],
        grammar="upstream",
    )
    genes = read_tss(tss)
    write_tss(genes.assign(strand="+"), work / "tss_all_plus.tsv")  # what a strand-blind model is told
    n = config["window"]["n_bins"]
    mcfg, tcfg = model_configs(config, str(backbone), a.threads)
    runs = {"ExPecto-style ridge": work / "expecto_style.tsv"}
    fit_baseline("expecto_style", features, work / "targets.tsv", tss, runs["ExPecto-style ridge"])
    for name, strands in (("GTA strand-aware", tss), ("GTA strand-blind", work / "tss_all_plus.tsv")):
        stem = name.split()[1]
        runs[name] = work / f"gta_{stem}.tsv"
        if not runs[name].exists():
            out_model = work / f"gta_{stem}"
            train_gta(str(features), str(work / "targets.tsv"), str(prompts), str(out_model), str(runs[name]),
                      n, mcfg, tcfg, tss=str(strands))  # fmt: skip
    strand = genes.drop_duplicates("gene_id").set_index("gene_id")["strand"]
    table = pd.DataFrame({name: scores(read_predictions(path), strand) for name, path in runs.items()}).T
    tgt = pd.read_csv(work / "targets.tsv", sep="\t").merge(pd.read_csv(work / "simulation.tsv", sep="\t"))
    noiseless = tgt.rename(columns={"value": "observed", "signal": "predicted"})
    table.loc["noise ceiling"] = scores(noiseless, strand)  # the planted signal itself
    counts = pd.read_csv(work / "targets.tsv", sep="\t").query("split == 'test'")["gene_id"].map(strand).value_counts()
    print(f"\nupstream-only grammar, {n} bins; test genes: {counts.get('+', 0)} plus, {counts.get('-', 0)} minus")
    print(table.round(3).to_string())
    table.to_csv(work / "strand_check.tsv", sep="\t", float_format="%.4f")


if __name__ == "__main__":
    main()
