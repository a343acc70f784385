"""A trained GTA model as a self-describing folder, and the one way to load and apply it.

The folder (docs/model-folder.md describes every field):

    config.json          what the model is: the ModelConfig and TrainConfig it was trained with, its
                         context (n_bins, bin_size, grid), the kept Sei classes, the target scaling, the
                         backbone's id, shape, tokenizer fingerprint and weights hash, and the metrics
    weights.safetensors  the trainable tensors only (alignment, selector, head, feature statistics,
                         class-name token ids); no backbone weights, and no code: safetensors holds
                         tensors and nothing else
    splits.tsv           the genes it was trained, validated and tested on
    README.md            a short model card for people

`GTAModel.from_pretrained(folder, backbone=...)` rebuilds the model on a backbone and refuses one
whose shape or tokenizer differs from the one it was trained on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from . import GTAError
from .formats import gene_strands, transcript_order
from .io import _umask, atomic_path, require_file
from .options import ModelConfig, TrainConfig

log = logging.getLogger("gta.pretrained")

FORMAT = "gta-model"
VERSION = 1
CONFIG, WEIGHTS, SPLITS, CARD = "config.json", "weights.safetensors", "splits.tsv", "README.md"
FILES = (CONFIG, WEIGHTS, SPLITS, CARD)
BINS = "transcript order"  # the order a model reads its bins in: upstream first, whatever the gene's strand


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the tokenizer's vocabulary (token -> id), the part GTA depends on."""
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), separators=(",", ":"))
    return hashlib.sha256(vocab.encode()).hexdigest()


def backbone_weights_sha256(spec: str) -> str | None:
    """sha256 of a converted backbone folder's weights file, None for other kinds of backbone."""
    f = Path(spec) / "model.safetensors"
    if not f.is_file():
        return None
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def backbone_record(model, tokenizer, spec: str) -> dict:
    """What config.json records about the backbone a GTA model runs on."""
    cfg = model.backbone.config
    return {
        "spec": str(spec),
        "model_type": getattr(cfg, "model_type", None),
        "hidden_size": int(cfg.hidden_size),
        "vocab_size": int(model.backbone.get_input_embeddings().weight.shape[0]),
        "tokenizer_sha256": tokenizer_fingerprint(tokenizer),
        "weights_sha256": backbone_weights_sha256(spec),
    }


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
        "window": dict(window or {}),
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
    }
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
- weights sha256 {b["weights_sha256"] or "unknown (not a converted folder)"}
- blocks: {m["blocks"]}; head: {m["head"]}; top_k {m["top_k"]}; skip {m["skip"]}; prompt {m["prompt"]}

## Training
- genes: {g["train"]} train, {g["val"]} validation, {g["test"]} test (splits.tsv lists them)
- context: {config["n_bins"]} bins of {w.get("bin_size", 4096)} bp ({w.get("grid", "tss")} grid)
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
            f"{path} is model format version {config.get('version')}; this gta reads version {VERSION}",
            input="model",
        )
    missing = [k for k in ("n_bins", "precision", "target", "backbone", "model", "train", "classes") if k not in config]
    if missing:
        raise GTAError(f"{path} lacks {', '.join(missing)}", input="model")
    if config.get("bins") != BINS:
        raise GTAError(
            f"{path} does not record that the model reads its bins in {BINS} ('bins' is "
            f"{config.get('bins')!r}): it was trained by an older gta that read minus-strand genes' bins "
            "backwards; retrain it (train_gta)",
            input="model",
        )
    return config


def read_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """The trainable tensors of a model folder (safetensors: tensors only, nothing is executed)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = require_file(model_folder(folder) / WEIGHTS, "trained GTA model's weights", input="model")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise GTAError(
            f"{path} is not a safetensors file of GTA weights ({type(e).__name__}: {e}); "
            "rerun the training that wrote it",
            input="model",
        ) from e


def _check_backbone(model, tokenizer, record: dict, spec: str) -> None:
    """Refuse a backbone whose shape or tokenizer differs from the one the model was trained on."""
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
        state = read_weights(folder)
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
    ):
        """(start, features batch on the device in transcript order, prompt ids) in order."""
        if features.ndim != 3 or features.shape[1] != self.n_bins:
            raise GTAError(f"features must be (genes, {self.n_bins} bins, classes); got {tuple(features.shape)}")
        if len(prompts) != len(features):
            raise GTAError(f"{len(prompts)} prompts for {len(features)} genes")
        ids = prompts if len(prompts) and isinstance(prompts[0], torch.Tensor) else self.encode(prompts)
        bs = batch_size or max(int(self.config["train"]["batch_size"]) * 2, 1)
        features = transcript_order(features, strand, self.orient)
        x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        for s in range(0, len(x), bs):
            yield s, x[s : s + bs].to(self.device), ids[s : s + bs]

    def _autocast(self, dtype: str | None = None):
        """The precision the model was trained in (config.json 'precision', not what 'auto' means here),
        or `dtype` ('float32', 'bfloat16', 'auto') when given."""
        from .hardware import autocast, resolve_dtype

        dtype = self.config["precision"] if dtype is None else dtype
        return autocast(self.device, resolve_dtype(dtype, self.device, "autocast"))

    def predict(
        self,
        features: np.ndarray,
        prompts: Sequence[str] | list[torch.Tensor],
        batch_size: int | None = None,
        strand: Sequence[str] | None = None,
        autocast: str | None = None,
    ) -> np.ndarray:
        """Predictions (genes,) in the target's units; batches and autocast as in training's final pass,
        so the numbers equal the training run's predictions file.

        `features` in the model's recorded orientation (`self.orient`); `strand` ('+'/'-' per gene, from
        tss.tsv) is required when that is 'reference' (ignored for 'transcript'). `autocast` ('float32',
        'bfloat16', 'auto') overrides the training's precision, e.g. 'float32' for differences smaller than
        a bf16 step."""
        self.module.eval()
        out = []
        with torch.no_grad(), self._autocast(autocast):
            for _, x, ids in self.batches(features, prompts, batch_size, strand):
                out.append(self.module(x, ids).float().cpu())
        if not out:
            return np.zeros(0)
        return torch.cat(out).numpy().astype(np.float64) * self.y_std + self.y_mean

    def predict_details(
        self,
        features: np.ndarray,
        prompts: Sequence[str] | list[torch.Tensor],
        batch_size: int | None = None,
        strand: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Predictions and, per gene, the alignment attention (genes, heads, N, prototypes), the selector
        logits (genes, N) and the selected bins (genes, k), their bins in TRANSCRIPT order (the model's
        own: bin 0 the farthest upstream); `features` and `strand` as in `predict`."""
        self.module.eval()
        out, det = [], []
        with torch.no_grad(), self._autocast():
            for _, x, ids in self.batches(features, prompts, batch_size, strand):
                y, d = self.module(x, ids, return_details=True)
                out.append(y.float().cpu())
                det.append({k: v.float().cpu() if v.is_floating_point() else v.cpu() for k, v in d.items()})
        pred = torch.cat(out).numpy().astype(np.float64) * self.y_std + self.y_mean
        return pred, {k: torch.cat([d[k] for d in det]).numpy() for k in det[0]}
