"""Training one GTA model (one context length N, one backbone depth) and predicting every gene."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from . import GTAError
from .hardware import autocast, resolve_device, resolve_dtype
from .formats import (  # noqa: F401  (centred_slice, load_features re-exported)
    centred_slice,
    feature_window,
    gene_strands,
    load_features,
    transcript_order,
    write_predictions,
)
from .io import atomic_path, file_id
from .options import ModelConfig, TrainConfig
from .pretrained import finite_predictions, save_model

log = logging.getLogger("gta.train")


@dataclass
class Dataset:
    gene_id: np.ndarray
    symbol: list[str]
    x: np.ndarray  # (genes, N, 33) float32, raw class scores (standardised inside the model), as stored
    y: np.ndarray  # (genes,) observed
    split: np.ndarray  # train / val / test
    prompt: list[str]
    strand: np.ndarray | None = None  # '+' / '-' per gene (None: features already in transcript order)
    orient: str = "transcript"  # the features file's orientation of x's bins
    idx: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        self.idx = {s: np.flatnonzero(self.split == s) for s in ("train", "val", "test")}

    def model_x(self) -> np.ndarray:
        """x in the order a GTA model reads its bins: transcript order (gta.formats.transcript_order)."""
        return transcript_order(self.x, self.strand, self.orient, input="tss")


def load_dataset(
    features: str | Path, targets: str | Path, prompts: str | Path, n_bins: int, tss: str | Path | None = None
) -> Dataset:
    """Join features, targets (with splits) and prompts on gene_id; genes without a target are left out.

    `tss` (tss.tsv) gives each gene's strand; it is needed when the features are in 'reference'
    orientation, where minus-strand genes' bins are reversed before they enter a model (Dataset.model_x).
    """
    from .annotations import read_prompts
    from .formats import read_targets

    orient = str(feature_window(features).get("orient", "reference"))
    if orient == "reference" and tss is None:
        raise GTAError(
            f"features file {features} is in reference orientation: give the TSS table (tss.tsv) for the "
            "genes' strands, so that minus-strand genes are read upstream first",
            input="tss",
        )
    gene_id, symbol, x = load_features(features, n_bins)
    t = read_targets(targets)
    p = read_prompts(prompts)
    t = t[t["gene_id"].isin(gene_id)]
    pos = {g: i for i, g in enumerate(gene_id)}
    rows = np.array([pos[g] for g in t["gene_id"]], dtype=np.int64)
    missing = [g for g in t["gene_id"] if g not in p]
    if missing:
        raise GTAError(
            f"prompts file {prompts} lacks {len(missing)} genes (first: {missing[:5]}); rerun make_prompts",
            input="prompts",
        )
    return Dataset(
        gene_id=t["gene_id"].to_numpy(np.int64),
        symbol=[symbol[i] for i in rows],
        x=x[rows],
        y=t["value"].to_numpy(np.float64),
        split=t["split"].to_numpy(str),
        prompt=[p[g] for g in t["gene_id"]],
        strand=gene_strands(tss, t["gene_id"], "target genes") if tss is not None else None,
        orient=orient,
    )


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    rho = spearmanr(a, b).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def _fingerprint(mcfg: ModelConfig, tcfg: TrainConfig, n_bins: int, inputs: list[str]) -> str:
    """Identity of a training run for resumption: settings (threads aside) and the input files."""
    settings = {**dataclasses.asdict(tcfg), "threads": None}
    files = [file_id(f) for f in inputs if Path(f).exists()]  # a hub-id backbone is no file
    blob = json.dumps([dataclasses.asdict(mcfg), settings, n_bins, files], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Trainer:
    """Adam on the MSE of standardised targets, early stopping on validation Spearman, resumable."""

    def __init__(self, data: Dataset, mcfg: ModelConfig, tcfg: TrainConfig, n_bins: int):
        from .model import GTA, count_parameters, encode_prompts

        torch.manual_seed(tcfg.seed)
        torch.set_num_threads(tcfg.threads)
        self.data, self.mcfg, self.tcfg, self.n_bins = data, mcfg, tcfg, n_bins
        self.device = resolve_device(tcfg.device)
        self.amp = resolve_dtype(tcfg.autocast, self.device, "autocast")
        if len(data.idx["train"]) < 2 or len(data.idx["val"]) < 2:
            raise GTAError(
                f"too few genes to train: {len(data.idx['train'])} train, {len(data.idx['val'])} "
                "validation; give targets with more genes in the training and validation splits"
                + (" or a larger train_fraction" if tcfg.train_fraction < 1 else ""),
                input=("targets", "train_fraction") if tcfg.train_fraction < 1 else "targets",
            )
        self.model = GTA.from_config(mcfg, n_bins, tcfg.seed)
        self.tokenizer = self.model.tokenizer
        tr = data.idx["train"]
        flat = data.x[tr].reshape(-1, data.x.shape[-1])
        self.model.set_feature_stats(flat.mean(0), flat.std(0))  # a constant feature's std 0 becomes 1
        self.y_mean, self.y_std = float(data.y[tr].mean()), float(data.y[tr].std() + 1e-12)
        self.model.to(self.device)
        prompts = data.prompt if mcfg.prompt else [""] * len(data.prompt)  # the 'no prompt' control
        self.ids = encode_prompts(self.tokenizer, prompts, mcfg.context - n_bins)
        self.x = torch.from_numpy(data.model_x())
        self.y = torch.from_numpy(((data.y - self.y_mean) / self.y_std).astype(np.float32))
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
        self.prompt_hits: float | None = None  # share of the last epoch's prompts found in the prompt cache
        trainable, total = count_parameters(self.model)
        log.info(
            "model: N=%d bins, %d backbone blocks, %s trainable of %s parameters (%.3f%%); device %s, %s",
            n_bins,
            mcfg.layers,
            f"{trainable:,}",
            f"{total:,}",
            100 * trainable / total,
            self.device,
            "bf16 autocast" if self.amp == torch.bfloat16 else "fp32",
        )
        lengths = [len(i) for i in self.ids]
        log.info(
            "genes: %d train, %d val, %d test; prompt tokens %d-%d (mean %.0f) + %d data tokens",
            len(tr),
            len(data.idx["val"]),
            len(data.idx["test"]),
            min(lengths),
            max(lengths),
            float(np.mean(lengths)),
            n_bins,
        )

    def _batch(self, rows):
        """Features on the device; prompt ids stay on the CPU (the model keys its prompt cache on them
        and moves only the prompts it has to run)."""
        return self.x[rows].to(self.device, non_blocking=True), [self.ids[i] for i in rows]

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Predictions in the observed units for `rows` (eval mode, no gradient), in batches taken in the
        genes' canonical order (`canonical_order`: the numbers do not depend on the order of `rows`)."""
        from .model import canonical_order

        self.model.eval()
        order = canonical_order(self.x[rows], [self.ids[i] for i in rows])
        rows = np.asarray(rows)[order]
        out = []
        bs = max(self.tcfg.batch_size * 2, 1)
        with torch.no_grad(), autocast(self.device, self.amp):
            for s, e in self.model.prefetching([self.ids[i] for i in rows], bs, self.amp):
                x, ids = self._batch(rows[s:e])
                out.append(self.model(x, ids).float().cpu())
        pred = np.empty(len(rows))
        if out:
            pred[order] = torch.cat(out).numpy().astype(np.float64) * self.y_std + self.y_mean
        return pred

    def train_epoch(self, rng: np.random.Generator) -> tuple[float, float]:
        self.model.train()
        rows = rng.permutation(self.data.idx["train"])
        total, n, t0 = 0.0, 0, time.perf_counter()
        cache = self.model.prompt_cache
        before = (cache.hits, cache.misses, cache.host_hits) if cache is not None else None
        for s, e in self.model.prefetching([self.ids[i] for i in rows], self.tcfg.batch_size, self.amp):
            batch = rows[s:e]
            x, ids = self._batch(batch)
            y = self.y[batch].to(self.device)
            with autocast(self.device, self.amp):
                pred = self.model(x, ids)
            loss = torch.nn.functional.mse_loss(pred.float(), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if not math.isfinite(loss.item()):
                raise GTAError("training diverged (non-finite loss); lower the learning rate (lr)", input="lr")
            total += loss.item() * len(batch)
            n += len(batch)
        if before is not None:
            hits, misses, host = (
                now - then for now, then in zip((cache.hits, cache.misses, cache.host_hits), before, strict=True)
            )
            self.prompt_hits = hits / max(hits + misses, 1)
            log.info(
                "prompt cache: %.1f%% of the epoch's prompts kept (%d on the device, %d in host memory), %d computed; "
                "%d prompts, %.0f MiB kept",
                100 * self.prompt_hits,
                hits - host,
                host,
                misses,
                len(cache),
                cache.bytes / 2**20,
            )
        return total / n, n / (time.perf_counter() - t0)


@dataclass
class ResumeState:
    """Where a run stands after its last finished epoch, saved after every epoch so a killed run goes on
    from there and ends with the numbers an uninterrupted run would have: the trainable weights, the
    optimiser, the torch RNGs (CPU, and each CUDA device's when the run trains on a GPU: dropout draws
    there) and the CPU thread count the run began with, beside the bookkeeping below.
    (The numpy shuffles are not saved: `shuffles` replays them from the seed.)

    The file is `<model folder name>-<fingerprint>.pt` in `<parent of the model folder>/.resume` (or
    resume_dir); the fingerprint covers the settings and inputs, so a run on other ones starts over.

    Why not PyTorch Lightning, which the paper used: it would be a heavy dependency for one short Adam
    loop, its checkpoints hold the whole module (here: trainable weights only, never the frozen backbone),
    and bitwise-equal resumption with replayed shuffles and a kept thread count is plainer in this loop
    than spread over Lightning's loop state and callbacks.
    """

    path: Path
    epoch: int = 0  # epochs finished
    history: list[dict] = field(default_factory=list)
    best: float = -math.inf  # best validation Spearman so far
    best_state: dict[str, torch.Tensor] | None = None  # trainable weights of the best epoch (on the CPU)
    bad: int = 0  # epochs since the best one

    KEYS = ("model", "opt", "history", "best", "best_state", "bad", "epoch", "torch_rng")

    @classmethod
    def start(cls, out_model: str, resume_dir: str | None, fingerprint: str) -> ResumeState:
        """A fresh state at the run's file name; files of killed runs on other inputs or settings are removed."""
        name = Path(out_model).name
        path = Path(resume_dir or Path(out_model).parent / ".resume") / f"{name}-{fingerprint}.pt"
        for stale in path.parent.glob(f"{name}-*.pt"):
            if stale != path:  # a killed run on other inputs or settings: start over
                stale.unlink()
        return cls(path)

    def load(self, trainer: Trainer) -> None:
        """Go on from the saved state, if there is one: into `trainer` and this object."""
        if not self.path.is_file():
            return
        st = _load_saved(self.path, "resume state", self.KEYS, "; delete it to start over")
        trainer.model.load_trainable_state_dict(st["model"])
        trainer.opt.load_state_dict(st["opt"])
        self.history, self.best, self.best_state, self.bad, self.epoch = (
            st["history"],
            st["best"],
            st["best_state"],
            st["bad"],
            st["epoch"],
        )
        log.info("resuming from epoch %d (%s)", self.epoch, self.path)
        if trainer.device.type == "cpu":
            _keep_threads(st.get("threads", torch.get_num_threads()))
        if self.epoch:
            torch.set_rng_state(st["torch_rng"])
            if trainer.device.type == "cuda":
                saved = st.get("cuda_rng") or []
                if len(saved) != torch.cuda.device_count():
                    raise GTAError(
                        f"{self.path} was saved with {len(saved)} CUDA devices' RNG states and "
                        f"{torch.cuda.device_count()} are visible now; resume on the same devices, or delete it "
                        "to start over",
                        input="device",
                    )
                torch.cuda.set_rng_state_all(saved)

    def save(self, trainer: Trainer) -> None:
        with atomic_path(self.path) as tmp:
            torch.save(
                {
                    "model": trainer.model.trainable_state_dict(),
                    "opt": trainer.opt.state_dict(),
                    "history": self.history,
                    "best": self.best,
                    "best_state": self.best_state,
                    "bad": self.bad,
                    "epoch": self.epoch,
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if trainer.device.type == "cuda" else [],
                    "threads": torch.get_num_threads(),
                },
                tmp,
            )

    def update(self, val: float, trainer: Trainer) -> bool:
        """Count an epoch's validation Spearman; True (and its weights kept) when it is the best so far."""
        if val > self.best:
            self.best, self.bad = val, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in trainer.model.trainable_state_dict().items()}
            return True
        self.bad += 1
        return False

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def _keep_threads(threads: int) -> None:
    """CPU reductions split by thread count round differently: go on with the count the run began with."""
    if threads != torch.get_num_threads():
        log.warning(
            "resuming on %d CPU threads as the run began (%d are set now), so the result equals an uninterrupted run",
            threads,
            torch.get_num_threads(),
        )
        torch.set_num_threads(threads)


def shuffles(seed: int, train: np.ndarray, done: int) -> np.random.Generator:
    """The generator of the epochs' shuffles, at epoch `done`: replaying the earlier shuffles makes a
    resumed run match an uninterrupted one."""
    rng = np.random.default_rng(seed)
    for _ in range(done):
        rng.permutation(train)
    return rng


def train_epochs(trainer: Trainer, state: ResumeState) -> None:
    """Epochs from `state.epoch` on, until train.epochs or train.patience epochs without a better
    validation Spearman; the state is saved after each."""
    tcfg, data = trainer.tcfg, trainer.data
    rng = shuffles(tcfg.seed, data.idx["train"], state.epoch)
    for epoch in range(state.epoch, tcfg.epochs):
        if state.bad >= tcfg.patience:
            break
        t0 = time.perf_counter()
        loss, rate = trainer.train_epoch(rng)
        val = spearman(trainer.predict(data.idx["val"]), data.y[data.idx["val"]])
        improved = state.update(val, trainer)
        state.history.append(
            {
                "epoch": epoch + 1,
                "train_loss": float(loss),
                "val_spearman": float(val),
                "genes_per_s": float(rate),
                "seconds": time.perf_counter() - t0,
                **({"prompt_hit_rate": float(trainer.prompt_hits)} if trainer.prompt_hits is not None else {}),
            }
        )  # plain floats only
        log.info(
            "epoch %d/%d: train MSE %.4f, val Spearman %.4f%s, %.1f genes/s, %.0f s",
            epoch + 1,
            tcfg.epochs,
            loss,
            val,
            " (best)" if improved else "",
            rate,
            time.perf_counter() - t0,
        )
        state.epoch = epoch + 1
        state.save(trainer)
    if state.bad >= tcfg.patience:
        log.info("early stop: no better validation Spearman for %d epochs", tcfg.patience)


def write_outputs(trainer: Trainer, state: ResumeState, features: str, out_model: str, out_predictions: str) -> None:
    """The model folder with the best epoch's weights, and its predictions of every gene."""
    data = trainer.data
    trainer.model.load_trainable_state_dict(state.best_state)
    everything = np.arange(len(data.gene_id))
    pred = finite_predictions(trainer.predict(everything), data.symbol, out_model)
    table = pd.DataFrame(
        {"gene_id": data.gene_id, "symbol": data.symbol, "split": data.split, "observed": data.y, "predicted": pred}
    )
    test = data.idx["test"]
    metrics = {"best_val_spearman": state.best}
    if len(test) > 2:
        metrics["test_spearman"] = spearman(pred[test], data.y[test])
        log.info("test Spearman %.4f on %d genes (best val %.4f)", metrics["test_spearman"], len(test), state.best)
    save_model(
        out_model,
        trainer.model,
        trainer.tokenizer,
        trainer.mcfg,
        trainer.tcfg,
        trainer.n_bins,
        trainer.y_mean,
        trainer.y_std,
        state.best_state,
        table,
        state.history,
        metrics,
        window=feature_window(features),
        precision=str(trainer.amp).removeprefix("torch."),
    )
    write_predictions(table, out_predictions)


def train_gta(
    features: str,
    targets: str,
    prompts: str,
    out_model: str,
    out_predictions: str,
    n_bins: int,
    mcfg: ModelConfig,
    tcfg: TrainConfig,
    tss: str | None = None,
    resume_dir: str | None = None,
    out_history: str | None = None,
) -> dict:
    """Train one GTA model, keep the best epoch by validation Spearman, predict every gene; with
    `out_history`, write the per-epoch history there as a TSV (write_history).

    A killed run restarts from its last finished epoch (state in `resume_dir`, removed on success;
    see ResumeState).

    Args:
        features: features.h5
        targets: targets.tsv (with splits)
        prompts: prompts.jsonl
        out_model: output: the model folder (config.json, weights.safetensors, splits.tsv, README.md; docs/model-
            folder.md)
        out_predictions: output: predictions.tsv for every gene
        n_bins: context bins N (centred slice of the stored bins)
        tss: tss.tsv: the genes' strands (needed for features in reference orientation: the model reads every
            gene's bins in transcript order)
        out_history: output: the per-epoch training history as a TSV
    """
    data = load_dataset(features, targets, prompts, n_bins, tss)
    restrict_training(data, tcfg.train_fraction, tcfg.seed)
    trainer = Trainer(data, mcfg, tcfg, n_bins)
    inputs = [features, targets, prompts, mcfg.backbone, *([tss] if tss else [])]
    state = ResumeState.start(out_model, resume_dir, _fingerprint(mcfg, tcfg, n_bins, inputs))
    state.load(trainer)
    train_epochs(trainer, state)
    write_outputs(trainer, state, features, out_model, out_predictions)
    state.discard()
    if out_history:
        write_history(state.history, out_history)
    return {"best_val_spearman": state.best, "history": state.history}


def _load_saved(path: str | Path, what: str, keys: tuple[str, ...], fix: str = "") -> dict:
    """A dict of tensors and plain types that train_gta saved, read without running any code in the file."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle that would run code, a truncated file, not a torch file at all
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [""]
        why = next((line for line in lines if "GLOBAL" in line), lines[0])  # the class or function it would call
        why = why.removeprefix("WeightsUnpickler error: ").split(". ")[0]
        raise GTAError(
            f"{path} is not a {what} saved by this version (or is unsafe): {type(e).__name__}: {why}{fix}"
        ) from e
    missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise GTAError(f"{path} is not a {what} saved by this version: it lacks {', '.join(missing)}{fix}")
    return obj


# ----------------------------------------------------------------------------- sweeps, diagnostics, controls

HISTORY_COLUMNS = ["epoch", "train_loss", "val_spearman", "genes_per_s", "seconds"]


def restrict_training(data: Dataset, fraction: float, seed: int) -> None:
    """Fit on a seeded `fraction` of the training genes only (gta.expression.train_subset: nested
    subsets, 1.0 = all); validation and test genes are unchanged and every gene is still predicted."""
    if fraction >= 1.0:
        return
    from .splits import train_subset

    train = data.idx["train"]
    keep = train_subset(data.gene_id[train], fraction, seed)
    data.idx["train"] = train[keep]
    log.info("train_fraction %.4g: fitting on %d of %d training genes", fraction, int(keep.sum()), len(train))


def write_history(history: list[dict], out: str | Path) -> pd.DataFrame:
    """Write a training history (one row per epoch, as stored in model.pt) as a TSV, atomically."""
    table = pd.DataFrame(history)
    table = table[
        [c for c in HISTORY_COLUMNS if c in table.columns] + [c for c in table.columns if c not in HISTORY_COLUMNS]
    ]
    with atomic_path(out) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    return table


def predict_with_context(
    model_dir: str | Path,
    features: str | Path,
    targets: str | Path,
    prompts: str | Path,
    keep_bins: int,
    backbone: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    tss: str | Path | None = None,
) -> pd.DataFrame:
    """Predictions of a trained GTA model for every gene with only the central `keep_bins` bins left:
    the bins outside are set to the training-set feature mean (model.feature_mean), which is zero
    after the model's standardisation. keep_bins = N gives the model's own predictions.

    Batches and autocast are those of `train_gta`'s final prediction, so the numbers are comparable.
    """
    from .pretrained import GTAModel

    if threads:
        torch.set_num_threads(threads)
    model = GTAModel.from_pretrained(model_dir, backbone, device)
    n = model.n_bins
    if keep_bins % 2 == 0 or not 1 <= keep_bins <= n:
        raise GTAError(f"keep_bins {keep_bins} must be odd and at most the model's {n} bins", input="keep_bins")
    data = load_dataset(features, targets, prompts, n, tss)
    model.check_window(features)
    x = data.x.copy()
    outside = np.ones(n, bool)
    outside[centred_slice(n, keep_bins)] = False
    x[:, outside, :] = model.feature_mean
    pred = model.predict(x, data.prompt, strand=data.strand, genes=data.symbol)
    log.info(
        "context ablation: %d genes predicted with the central %d of %d bins (%d set to the training mean)",
        len(pred),
        keep_bins,
        n,
        int(outside.sum()),
    )
    return pd.DataFrame(
        {"gene_id": data.gene_id, "symbol": data.symbol, "split": data.split, "observed": data.y, "predicted": pred}
    )


def ablate_context(
    model: str | Path,
    features: str | Path,
    targets: str | Path,
    prompts: str | Path,
    keep_bins: int,
    out: str | Path,
    backbone: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    tss: str | Path | None = None,
) -> pd.DataFrame:
    """The context ablation control: `predict_with_context` with only the central `keep_bins` bins,
    written to `out` as a predictions TSV.

    Args:
        model: trained model folder or its config.json (gta train-gta --out-model)
        keep_bins: central bins kept (odd, at most the model's N)
        out: output predictions TSV
        backbone: backbone folder or hub id (as given to gta train-gta)
        device: where the model runs: 'auto', 'cpu', 'cuda' or 'cuda:N'
        threads: CPU threads (torch)
        tss: tss.tsv: the genes' strands (needed for features in reference orientation)
    """
    table = predict_with_context(model, features, targets, prompts, keep_bins, backbone, device, threads, tss)
    write_predictions(table, out)
    return table
