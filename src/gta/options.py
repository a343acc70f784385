"""Model and training options (torch-free: the CLI builds its flags from these)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GrammarName = Literal["demo", "alternative", "upstream"]  # the planted grammars, gta.demo.simulation.GRAMMARS


@dataclass
class TrainConfig:
    """`train.*` plus the global seed."""

    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 5
    autocast: str = "auto"
    device: str = "auto"
    threads: int = 2
    seed: int = 0
    train_fraction: float = 1.0  # seeded share of the training genes fitted on (1.0 = all of them)


@dataclass
class ModelConfig:
    """`backbone.*` and `gta.*`: what the GTA module is built from.

    Args:
        backbone: a gta.model.spec: packaged name, .gguf, folder or hub id
        lora: LoRA of the backbone, as r=RANK alpha=ALPHA dropout=P (none = no LoRA, the paper)
    """

    backbone: str = "smollm2-135m"  # a gta.model.spec: packaged name, .gguf, folder or hub id
    layers: int = 8
    backbone_dtype: str = "float32"
    context: int = 2048
    attention: str = "causal"
    lora: dict | None = None
    prototypes_vocab: int = 50
    prototypes_classes: int = 50
    heads: int = 8
    d_k: int = 32
    top_k: int = 25
    gate: str = "sigmoid"
    gradient_checkpointing: bool = False
    prompt_cache_mb: float = 2048.0
    head: str = "flatten"
    position_embedding: bool = False
    dropout: float = 0.0
    blocks: str = "pretrained"
    prompt: bool = True
    skip: bool = False  # the head also reads each bin's aligned token (beside its backbone state)
