"""Model and training options (torch-free: the CLI builds its flags from these)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Literal

from . import GTAError

GrammarName = Literal["demo", "alternative", "upstream"]  # the planted grammars, gta.demo.simulation.GRAMMARS

# Seeds reach numpy.random.default_rng (refuses negative seeds), torch.manual_seed (wraps negative seeds, fails
# past 2**64-1) and numpy's RandomState (0 .. 2**32-1 only): 0 .. 2**32-1 is the range all of them take alike
SEED_MAX = 2**32 - 1


def check_seed(seed, input: str = "seed") -> None:
    """Stop on a seed outside 0 .. SEED_MAX (or not an integer), naming `input` (GTAError.input)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= SEED_MAX:
        raise GTAError(
            f"seed {seed!r} is not an integer from 0 to {SEED_MAX:,} (2**32-1, the seeds numpy and torch all "
            "take alike); choose one in that range",
            input=input,
        )


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

    def __post_init__(self):
        check_seed(self.seed)


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
    prompt_cache_mb: float | str = "auto"
    prompt_cache_host_mb: float | str = "auto"
    head: str = "flatten"
    position_embedding: bool = False
    dropout: float = 0.0
    blocks: str = "pretrained"
    prompt: bool = True
    skip: bool = False  # the head also reads each bin's aligned token (beside its backbone state)
    align_temperature: float = 1.0  # the alignment's softmax over prototypes at 1/(sqrt(d_k) T); 1: the paper's
