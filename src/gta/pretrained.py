"""A trained GTA model as a self-describing folder, and the one way to load and apply it.

The folder (docs/model-folder.md describes every field):

    config.json          what the model is: the ModelConfig and TrainConfig it was trained with, its
                         context (n_bins, bin_size, grid), the kept Sei classes, the target scaling, the
                         backbone's id, shape, tokenizer fingerprint and tensors hash, the metrics, the
                         sha256 of weights.safetensors, and the sha256 of its own content
    weights.safetensors  the trainable tensors only (alignment, selector, head, feature statistics,
                         class-name token ids); no backbone weights, and no code: safetensors holds
                         tensors and nothing else
    splits.tsv           the genes it was trained, validated and tested on
    README.md            a short model card for people

`GTAModel.from_pretrained(folder, backbone=...)` rebuilds the model on a backbone. It refuses a config.json
with a missing, mistyped or out-of-range field, or edited since training (its `config_sha256`), weights that
are not the ones config.json records (`weights_sha256`) or hold NaN or infinite values, and a backbone whose
shape, tokenizer or loaded tensors (`backbone.tensors_sha256`) differ from the one it was trained on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import typing
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from . import GTAError
from .formats import GRIDS, ORIENTS, gene_strands, transcript_order
from .io import _umask, atomic_path, require_file
from .options import SEED_MAX, ModelConfig, TrainConfig

log = logging.getLogger("gta.pretrained")

FORMAT = "gta-model"
VERSION = 2  # 2: config.json records the weights', its own and the backbone tensors' sha256
CONFIG, WEIGHTS, SPLITS, CARD = "config.json", "weights.safetensors", "splits.tsv", "README.md"
FILES = (CONFIG, WEIGHTS, SPLITS, CARD)
BINS = "transcript order"  # the order a model reads its bins in: upstream first, whatever the gene's strand
WINDOW = {"bin_size": 4096, "grid": "tss", "orient": "reference"}  # what a features file without the attribute means


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the tokenizer's vocabulary (token -> id), the part GTA depends on."""
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), separators=(",", ":"))
    return hashlib.sha256(vocab.encode()).hexdigest()


def backbone_record(model, tokenizer, spec: str) -> dict:
    """What config.json records about the backbone a GTA model runs on."""
    cfg = model.backbone.config
    return {
        "spec": str(spec),
        "model_type": getattr(cfg, "model_type", None),
        "hidden_size": int(cfg.hidden_size),
        "vocab_size": int(model.backbone.get_input_embeddings().weight.shape[0]),
        "tokenizer_sha256": tokenizer_fingerprint(tokenizer),
        "tensors_sha256": model.backbone_sha256,
        "revision": getattr(cfg, "_commit_hash", None),  # the hub commit it was downloaded at, if any
    }


def config_sha256(config: dict) -> str:
    """sha256 of config.json's content without its `config_sha256` field: the JSON with sorted keys and
    no spaces (json.dumps(..., sort_keys=True, separators=(",", ":")))."""
    body = {k: v for k, v in config.items() if k != "config_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save_model(
    folder: str | Path,
    model,
    tokenizer,
    mcfg: ModelConfig,
    tcfg: TrainConfig,
    n_bins: int,
    y_mean: float,
    y_std: float,
    state: dict[str, torch.Tensor],
    splits: pd.DataFrame,
    history: list[dict],
    metrics: dict,
    window: dict | None = None,
    precision: str = "float32",
) -> Path:
    """Write a model folder; config.json goes last, so a folder with a config.json is complete.

    `precision` is what the training's autocast resolved to ('float32' or 'bfloat16'): the model
    predicts in it wherever it is loaded, so it reproduces its training run's predictions.

    `state` is the trainable state (GTA.trainable_state_dict()) to store, `splits` has columns gene_id,
    symbol, split; `metrics` e.g. {"best_val_spearman": ..., "test_spearman": ...}; `window` the
    bin_size and grid of the features it was trained on.
    """
    from safetensors.torch import save_file

    from .sei import CLASS_LABELS, CLASS_NAMES, KEPT

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    with atomic_path(folder / WEIGHTS, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": f"{FORMAT}-{VERSION}"})  # one key: byte-stable files
        os.chmod(tmp, 0o666 & ~_umask())  # safetensors writes the file anew, with mode 0600
        weights_sha256 = hashlib.sha256(tmp.read_bytes()).hexdigest()
    with atomic_path(folder / SPLITS) as tmp:
        splits[["gene_id", "symbol", "split"]].to_csv(tmp, sep="\t", index=False)
    counts = {s: int((splits["split"] == s).sum()) for s in ("train", "val", "test")}
    class_ids = [int(i) for i in tensors["class_ids"]]
    config = {
        "format": FORMAT,
        "version": VERSION,
        "n_bins": int(n_bins),
        "precision": precision,
        "bins": BINS,
        "window": {**WINDOW, **(window or {})},
        "classes": [CLASS_LABELS[i] for i in KEPT],
        "class_names": [CLASS_NAMES[i] for i in KEPT],
        "class_tokens": [tokenizer.convert_ids_to_tokens(i) for i in class_ids],
        "target": {"mean": float(y_mean), "std": float(y_std)},
        "backbone": backbone_record(model, tokenizer, mcfg.backbone),
        "model": dataclasses.asdict(mcfg),
        "train": dataclasses.asdict(tcfg),
        "genes": counts,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "history": history,
        "weights_sha256": weights_sha256,
    }
    config["config_sha256"] = config_sha256(config)
    with atomic_path(folder / CARD) as tmp:
        tmp.write_text(model_card(config))
    with atomic_path(folder / CONFIG) as tmp:
        tmp.write_text(json.dumps(config, indent=1) + "\n")
    return folder


def model_card(config: dict) -> str:
    """The README.md of a model folder."""
    m, b, g = config["model"], config["backbone"], config["genes"]
    w, t, y = config["window"], config["train"], config["target"]
    metrics = "\n".join(f"- {k.replace('_', ' ')}: {v:.4f}" for k, v in config["metrics"].items())
    return f"""# GTA model, N = {config["n_bins"]} bins

A trained Genetic sequence Token Alignment model (the `gta` package). Load it with

    from gta.pretrained import GTAModel
    model = GTAModel.from_pretrained("<this folder>", backbone="{b["spec"]}")

## Backbone
- {b["spec"]} ({b["model_type"]}), first {m["layers"]} blocks, hidden size {b["hidden_size"]},
  vocabulary {b["vocab_size"]}
- tokenizer sha256 {b["tokenizer_sha256"]}
- sha256 of the loaded tensors {b["tensors_sha256"]}{f"; hub revision {b['revision']}" if b["revision"] else ""}
- blocks: {m["blocks"]}; head: {m["head"]}; top_k {m["top_k"]}; skip {m["skip"]}; prompt {m["prompt"]}

## Training
- genes: {g["train"]} train, {g["val"]} validation, {g["test"]} test (splits.tsv lists them)
- context: {config["n_bins"]} bins of {w["bin_size"]} bp ({w["grid"]} grid, {w["orient"]} orientation)
- {t["epochs"]} epochs at most, batch {t["batch_size"]}, lr {t["lr"]}, seed {t["seed"]}
- precision: {config["precision"]} (autocast {t["autocast"]}). Loaded anywhere, the model predicts in
  {config["precision"]}, in the training's batches: on the same kind of machine it reproduces the
  training run's predictions exactly. A gene predicted in another batch (alone, as explain does) or on
  other hardware (another CPU kind, a GPU) goes through other kernels: in bfloat16 it agrees to bf16
  rounding (up to about 1e-4 of the target's sd; measured 7e-6 on the tests' model for a gene alone
  against in a batch), in float32 to about 1e-6.

## Metrics
{metrics}

Predictions are in the units of the training targets (mean {y["mean"]:.4g}, sd {y["std"]:.4g}).
"""


def model_folder(path: str | Path) -> Path:
    """A model folder, given as the folder or as its config.json."""
    path = Path(path)
    if path.is_file() and path.name == CONFIG:
        return path.parent
    if path.is_file():
        raise GTAError(
            f"{path} is a file; a trained GTA model is a folder (the one holding {CONFIG}, written by train_gta)",
            input="model",
        )
    return path


def read_config(folder: str | Path) -> dict:
    """config.json of a model folder, checked."""
    folder = model_folder(folder)
    path = require_file(
        folder / CONFIG, "trained GTA model's config", "is this a model folder written by train_gta?", input="model"
    )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GTAError(f"{path} is not valid JSON ({e}); rerun the training that wrote it", input="model") from e
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise GTAError(f"{path} is not a GTA model config (its 'format' is not {FORMAT!r})", input="model")
    if config.get("version") != VERSION:
        raise GTAError(
            f"{path} is model format version {config.get('version')}; this gta reads version {VERSION} (which "
            "records the sha256 of the weights, of config.json itself and of the backbone's tensors): retrain the "
            "model with this gta (train_gta)",
            input="model",
        )
    if config.get("bins") != BINS:
        raise GTAError(
            f"{path} does not record that the model reads its bins in {BINS} ('bins' is "
            f"{config.get('bins')!r}): it was trained by an older gta that read minus-strand genes' bins "
            "backwards; retrain it (train_gta)",
            input="model",
        )
    fields = _fields()
    for field, rule in fields.items():
        section, _, name = field.partition(".")
        if field in OPTIONAL and name not in config.get(section, {}):
            continue
        _check_field(config, field, rule, folder)
    unknown = [f"{k}.{x}" for k in ("model", "train") for x in config[k] if f"{k}.{x}" not in fields]
    if unknown:
        raise GTAError(
            f"model folder {folder}: config.json has unknown field {unknown[0]!r}; restore config.json as "
            "train_gta wrote it, or retrain the model",
            input="model",
        )
    got = config_sha256(config)
    if got != config["config_sha256"]:
        raise GTAError(
            f"{path} was edited after training: the sha256 of its content is {got}, but it records config_sha256 "
            f"{config['config_sha256']}. An edit can change what the model computes (n_bins, window, model, "
            "target, ...): restore config.json as train_gta wrote it, or retrain the model",
            input="model",
        )
    return config


HEX64 = re.compile(r"[0-9a-f]{64}")
# config.json's fields: (types, the condition a value meets, what it must be); model.* and train.* are added
# from ModelConfig and TrainConfig. Numbers must be finite wherever they are (metrics and history aside).
FIELDS: dict[str, tuple] = {
    "n_bins": (int, lambda v: v >= 1 and v % 2, "an odd number of bins"),
    "precision": (str, lambda v: v in ("float32", "bfloat16"), "float32 or bfloat16"),
    "window": (dict,),
    "window.bin_size": (int, lambda v: v >= 1, "a bin length >= 1"),
    "window.grid": (str, lambda v: v in GRIDS, " or ".join(GRIDS)),
    "window.orient": (str, lambda v: v in ORIENTS, " or ".join(ORIENTS)),
    "classes": (list, lambda v: v == _kept_labels(), "the 33 kept Sei classes of this gta, in order"),
    "class_names": (list, lambda v: len(v) == len(_kept_labels()) and all(isinstance(x, str) for x in v), "33 names"),
    "class_tokens": (list, lambda v: all(isinstance(x, str) for x in v), "a list of tokens"),
    "target": (dict,),
    "target.mean": (float,),
    "target.std": (float, lambda v: v > 0, "a standard deviation > 0"),
    "backbone": (dict,),
    "backbone.spec": (str,),
    "backbone.model_type": ((str, type(None)),),
    "backbone.hidden_size": (int, lambda v: v >= 1, ">= 1"),
    "backbone.vocab_size": (int, lambda v: v >= 1, ">= 1"),
    "backbone.tokenizer_sha256": (str, HEX64.fullmatch, "a sha256 (64 hex digits)"),
    "backbone.tensors_sha256": (str, HEX64.fullmatch, "a sha256 (64 hex digits)"),
    "backbone.revision": ((str, type(None)),),
    "model": (dict,),
    "train": (dict,),
    "genes": (dict,),
    **{f"genes.{s}": (int, lambda v: v >= 0, ">= 0") for s in ("train", "val", "test")},
    "metrics": (dict,),
    "history": (list,),
    "weights_sha256": (str, HEX64.fullmatch, "a sha256 (64 hex digits)"),
    "config_sha256": (str, HEX64.fullmatch, "a sha256 (64 hex digits)"),
}
# settings added after model folders were first written: a folder without one takes the default
OPTIONAL = {"model.prompt_cache_host_mb", "model.align_temperature"}
AT_LEAST_ONE = {"layers", "context", "prototypes_vocab", "prototypes_classes", "heads", "d_k", "top_k"}
AT_LEAST_ONE |= {"epochs", "batch_size", "threads"}


def _kept_labels() -> list[str]:
    from .sei import CLASS_LABELS, KEPT

    return [CLASS_LABELS[i] for i in KEPT]


def _fields() -> dict[str, tuple]:
    """FIELDS with model.* and train.*: each field of ModelConfig / TrainConfig with its annotated type,
    integers >= 0 (>= 1 for counts and sizes) and below 2**63 (seeds: at most SEED_MAX)."""
    fields = dict(FIELDS)
    for section, cls in (("model", ModelConfig), ("train", TrainConfig)):
        for name, kind in typing.get_type_hints(cls).items():
            kinds = typing.get_args(kind) or (kind,)
            low = 1 if name in AT_LEAST_ONE else 0
            high, text = (SEED_MAX, f"{SEED_MAX:,}") if name == "seed" else (2**63 - 1, "2**63-1")
            rule = (lambda v, low=low, high=high: low <= v <= high, f"an integer from {low} to {text}")
            rule = rule if int in kinds else ()
            fields[f"{section}.{name}"] = (kinds, *rule)
    return fields


KIND_NAMES = {"NoneType": "null", "dict": "an object", "list": "a list", "float": "a number", "int": "an integer"}
KIND_NAMES |= {"str": "a string", "bool": "true or false"}


def _check_field(config: dict, field: str, rule: tuple, folder: Path) -> None:
    """One field of config.json: present, of its type, finite, meeting its condition."""
    kinds, *test = rule
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    value = config
    for part in field.split("."):
        value = value.get(part, KeyError) if isinstance(value, dict) else KeyError
    problem = None
    if value is KeyError:
        problem = "is missing"
    elif not isinstance(value, kinds + ((int,) if float in kinds else ())) or (
        isinstance(value, bool) and bool not in kinds
    ):
        names = (KIND_NAMES.get(k.__name__, k.__name__) for k in kinds)
        problem = f"is {value!r}, not {' or '.join(names)}"
    elif isinstance(value, float) and not math.isfinite(value):
        problem = f"is {value!r}, not a finite number"
    elif test and value is not None and not test[0](value):
        problem = f"is {value!r}, not {test[1]}"
    if problem:
        raise GTAError(
            f"model folder {folder}: config.json field {field!r} {problem}; restore config.json as train_gta wrote "
            "it, or retrain the model",
            input="model",
        )


def read_weights(folder: str | Path, config: dict | None = None) -> dict[str, torch.Tensor]:
    """The trainable tensors of a model folder (safetensors: tensors only, nothing is executed), checked:
    the file's sha256 is the one config.json (`config`, read when not given) records, every tensor finite."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = require_file(model_folder(folder) / WEIGHTS, "trained GTA model's weights", input="model")
    data = path.read_bytes()
    try:
        state = load(data)
    except (SafetensorError, OSError, ValueError) as e:
        raise GTAError(
            f"{path} is not a safetensors file of GTA weights ({type(e).__name__}: {e}); "
            "rerun the training that wrote it",
            input="model",
        ) from e
    want, got = (config or read_config(folder))["weights_sha256"], hashlib.sha256(data).hexdigest()
    if got != want:
        raise GTAError(
            f"{path} is not the weights its config.json describes: its sha256 is {got}, config.json records "
            f"weights_sha256 {want} (weights of another model copied in?); put back the model's own weights or "
            "retrain it",
            input="model",
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise GTAError(
            f"{path}: tensor {bad[0]!r} holds NaN or infinite values ({len(bad)} tensors do); retrain the model",
            input="model",
        )
    return state


def finite_predictions(pred: np.ndarray, genes: Sequence | None, model) -> np.ndarray:
    """`pred`, refused when a value is NaN or infinite: the error names the gene (`genes`, one label per
    prediction; else its row) and the model."""
    bad = np.flatnonzero(~np.isfinite(pred))
    if len(bad):
        names = [str(genes[i]) if genes is not None else f"row {i}" for i in bad[:5]]
        raise GTAError(
            f"model {model} predicts {pred[bad[0]]} for gene {names[0]} ({len(bad)} of {len(pred)} predictions "
            f"are not finite: {', '.join(names)}{', ...' if len(bad) > 5 else ''}); nothing is written. Its weights "
            "or target scaling overflow on these features: check the features, or retrain the model",
            input="model",
        )
    return pred


def _check_backbone(model, tokenizer, record: dict, spec: str) -> None:
    """Refuse a backbone whose shape, tokenizer or tensors differ from the one the model was trained on."""
    got = {
        "hidden_size": int(model.backbone.config.hidden_size),
        "vocab_size": int(model.backbone.get_input_embeddings().weight.shape[0]),
    }
    for key, value in got.items():
        if record.get(key) is not None and record[key] != value:
            raise GTAError(
                f"backbone {spec!r} has {key.replace('_', ' ')} {value}, but the model was trained on "
                f"{record['spec']!r} with {record[key]}; load it with that backbone",
                input="backbone",
            )
    fp = tokenizer_fingerprint(tokenizer)
    if record.get("tokenizer_sha256") and record["tokenizer_sha256"] != fp:
        raise GTAError(
            f"backbone {spec!r} has another tokenizer than the model was trained with "
            f"({record['spec']!r}); load it with that backbone",
            input="backbone",
        )
    if model.backbone_sha256 != record["tensors_sha256"]:
        revision = f", hub revision {record['revision']}" if record.get("revision") else ""
        raise GTAError(
            f"backbone {spec!r} is not the one the model was trained on: the sha256 of its loaded tensors is "
            f"{model.backbone_sha256}, the model records {record['tensors_sha256']} ({record['spec']!r}{revision}); "
            "load it with that backbone, or retrain the model on this one",
            input="backbone",
        )


class GTAModel:
    """A trained GTA model ready to predict: the module on its backbone, the tokenizer and its config.

    predict(features, prompts, strand=...) takes raw Sei class scores (genes, n_bins, 33 kept classes) in
    the orientation of the features the model was trained on (`orient`, recorded in config.json), one
    prompt string per gene and, for 'reference' orientation, each gene's strand; it returns predictions
    in the units of the training targets. The module itself reads every gene in transcript order
    (gta.formats.transcript_order): predict turns minus-strand genes' bins around before they go in.
    """

    def __init__(self, module, tokenizer, config: dict, folder: Path | None = None):
        self.module, self.tokenizer, self.config, self.folder = module, tokenizer, config, folder
        self.n_bins = int(config["n_bins"])
        self.orient = str(config.get("window", {}).get("orient", "reference"))
        self.y_mean, self.y_std = float(config["target"]["mean"]), float(config["target"]["std"])

    @classmethod
    def from_pretrained(cls, folder: str | Path, backbone: str | None = None, device: str = "auto") -> GTAModel:
        """Load a model folder onto `backbone` (default: the one recorded in config.json)."""
        from .hardware import resolve_device
        from .model import GTA

        folder = model_folder(folder)
        config = read_config(folder)
        state = read_weights(folder, config)
        mcfg = ModelConfig(**config["model"])
        if backbone:
            mcfg.backbone = str(backbone)
        module = GTA.from_config(mcfg, int(config["n_bins"]), int(config["train"]["seed"]))
        tokenizer = module.tokenizer
        _check_backbone(module, tokenizer, config["backbone"], mcfg.backbone)
        try:
            module.load_trainable_state_dict(state)
        except GTAError as e:
            e.input = "model"  # the folder's weights do not fit the model its config describes
            raise
        module.to(resolve_device(device)).eval()
        return cls(module, tokenizer, config, Path(folder))

    def strands(self, tss: str | Path | None, gene_id: Sequence[int]) -> np.ndarray | None:
        """The genes' strands from tss.tsv, as `predict` needs them (None for a model on transcript-oriented
        features, which needs none)."""
        if self.orient == "transcript":
            return None
        if tss is None:
            raise GTAError(
                "the model's features are in reference orientation: give the TSS table (tss.tsv) for the genes' "
                "strands, so that minus-strand genes are read upstream first",
                input="tss",
            )
        return gene_strands(tss, gene_id)

    @property
    def device(self) -> torch.device:
        return self.module.device

    def __str__(self) -> str:
        return str(self.folder) if self.folder else "GTAModel"

    def check_window(self, features: str | Path, keys: Sequence[str] = tuple(WINDOW)) -> None:
        """Stop when a features file's windows are not cut as those the model was trained on (`keys` of
        bin_size, grid, orient; an attribute the file lacks has its default): its bins would be other
        stretches of sequence than the model learned from. The error names the file and the model."""
        from .formats import feature_window

        mine, theirs = self.config.get("window", {}), {**WINDOW, **feature_window(features)}
        for key in keys:
            if key in mine and str(theirs[key]) != str(mine[key]):
                raise GTAError(
                    f"features file {features} has window {key} {theirs[key]!r}, but model {self} was trained on "
                    f"{key} {mine[key]!r} (its config.json 'window'); give a features file made with "
                    f"window.{key}: {mine[key]} (as the one the model was trained on), or a model trained on "
                    "these features",
                    input=("features", "model"),
                )

    def load_features(self, features: str | Path) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(gene_id, symbol, kept-class scores (genes, n_bins, 33)) of a features file cut as the model's
        windows (`check_window`): the centred slice of its bins that the model reads."""
        from .formats import load_features

        loaded = load_features(features, self.n_bins, bins_input="model")
        self.check_window(features)
        return loaded

    @property
    def feature_mean(self) -> np.ndarray:
        """Training-set mean of each feature: the neutral background (zero after standardisation)."""
        return self.module.feature_mean.detach().cpu().numpy()

    def encode(self, prompts: Sequence[str]) -> list[torch.Tensor]:
        from .model import encode_prompts

        m = self.config["model"]
        text = list(prompts) if m.get("prompt", True) else [""] * len(prompts)  # the 'no prompt' control
        return encode_prompts(self.tokenizer, text, int(m["context"]) - self.n_bins)

    def batches(
        self,
        features: np.ndarray,
        prompts: Sequence[str] | list[torch.Tensor],
        batch_size: int | None = None,
        strand: Sequence[str] | None = None,
        autocast: str | None = None,
    ):
        """(rows, features batch on the device in transcript order, prompt ids): the batches, taken in the
        genes' canonical order (`gta.model.canonical_order`, so predictions do not depend on the order the
        genes come in), with the genes' indices `rows`; the prompts not kept are computed ahead, many at a
        time, in the precision of `autocast` (as `_autocast`)."""
        from .model import canonical_order

        if features.ndim != 3 or features.shape[1] != self.n_bins:
            raise GTAError(f"features must be (genes, {self.n_bins} bins, classes); got {tuple(features.shape)}")
        if len(prompts) != len(features):
            raise GTAError(f"{len(prompts)} prompts for {len(features)} genes")
        ids = prompts if len(prompts) and isinstance(prompts[0], torch.Tensor) else self.encode(prompts)
        bs = batch_size or max(int(self.config["train"]["batch_size"]) * 2, 1)
        features = transcript_order(features, strand, self.orient)
        x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        order = canonical_order(x, ids)
        ids = [ids[i] for i in order]
        for s, e in self.module.prefetching(ids, bs, self._precision(autocast)):
            yield order[s:e], x[order[s:e]].to(self.device), ids[s:e]

    def _precision(self, dtype: str | None = None) -> torch.dtype:
        """The precision the model was trained in (config.json 'precision', not what 'auto' means here),
        or `dtype` ('float32', 'bfloat16', 'auto') when given."""
        from .hardware import resolve_dtype

        return resolve_dtype(self.config["precision"] if dtype is None else dtype, self.device, "autocast")

    def _autocast(self, dtype: str | None = None):
        """Autocast to `_precision(dtype)`."""
        from .hardware import autocast

        return autocast(self.device, self._precision(dtype))

    def predict(
        self,
        features: np.ndarray,
        prompts: Sequence[str] | list[torch.Tensor],
        batch_size: int | None = None,
        strand: Sequence[str] | None = None,
        autocast: str | None = None,
        genes: Sequence | None = None,
    ) -> np.ndarray:
        """Predictions (genes,) in the target's units; batches and autocast as in training's final pass,
        so the numbers equal the training run's predictions file.

        `features` in the model's recorded orientation (`self.orient`); `strand` ('+'/'-' per gene, from
        tss.tsv) is required when that is 'reference' (ignored for 'transcript'). `autocast` ('float32',
        'bfloat16', 'auto') overrides the training's precision, e.g. 'float32' for differences smaller than
        a bf16 step. A NaN or infinite prediction is an error naming the gene (`genes`: one label per row,
        e.g. the symbols) and the model."""
        self.module.eval()
        pred = np.zeros(len(features))
        with torch.no_grad(), self._autocast(autocast):
            for rows, x, ids in self.batches(features, prompts, batch_size, strand, autocast):
                pred[rows] = self.module(x, ids).float().cpu().numpy()
        if not len(pred):
            return pred
        return finite_predictions(pred * self.y_std + self.y_mean, genes, self)

    def predict_details(
        self,
        features: np.ndarray,
        prompts: Sequence[str] | list[torch.Tensor],
        batch_size: int | None = None,
        strand: Sequence[str] | None = None,
        genes: Sequence | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Predictions and, per gene, the alignment attention (genes, heads, N, prototypes), the selector
        logits (genes, N) and the selected bins (genes, k), their bins in TRANSCRIPT order (the model's
        own: bin 0 the farthest upstream); `features`, `strand` and `genes` as in `predict`."""
        self.module.eval()
        out, det, order = [], [], []
        with torch.no_grad(), self._autocast():
            for rows, x, ids in self.batches(features, prompts, batch_size, strand):
                y, d = self.module(x, ids, return_details=True)
                order.append(rows)
                out.append(y.float().cpu())
                det.append({k: v.float().cpu() if v.is_floating_point() else v.cpu() for k, v in d.items()})
        back = np.argsort(np.concatenate(order))  # canonical order -> the genes' own
        pred = torch.cat(out).numpy().astype(np.float64)[back]
        pred = finite_predictions(pred * self.y_std + self.y_mean, genes, self)
        return pred, {k: torch.cat([d[k] for d in det]).numpy()[back] for k in det[0]}
