"""A tiny random Llama backbone with a word-level tokenizer, for the tests and benchmarks.

It builds in about a second, needs no download, and a folder written by `write_tiny_backbone` loads
through the same code as a real backbone folder (`gta.model.load_backbone`, `GTAModel.from_pretrained`).
Its numbers mean nothing: it is random.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# the words of the test prompts (gta.annotations.format_prompt's layout) and of the Sei class names the
# prototypes read; any other word is [UNK]
PROMPT_WORDS = [
    "[UNK]",
    "#",
    ":",
    "-",
    "/",
    ".",
    ",",
    "Task",
    "Gene",
    "Expression",
    "Prediction",
    "on",
    "GM12878",
    "lymphoblastoid",
    "cells",
    "Official",
    "Symbol",
    "Full",
    "Name",
    "Data",
    "A1BG",
    "alpha",
    "1",
    "protein",
    "kinase",
    "glycoprotein",
    "B",
    "cell",
    "like",
    "CTCF",
    "Cohesin",
    "Promoter",
    "Enhancer",
    "Transcription",
    "Polycomb",
    "Heterochromatin",
    "T",
    "Brain",
]
EXTRA_VOCAB = 8  # embedding rows past the tokenizer's words, as real models have spare rows


def word_tokenizer(words: Sequence[str] = PROMPT_WORDS):
    """A whitespace-split word-level tokenizer: word i of `words` is token i, anything else [UNK]."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")


def tiny_llama(
    n_words: int = len(PROMPT_WORDS), hidden: int = 32, seed: int = 0, extra_vocab: int = EXTRA_VOCAB, **config
):
    """A random LlamaModel for a vocabulary of `n_words` + `extra_vocab` (2 blocks of width `hidden` unless
    `config` overrides LlamaConfig settings), in eval mode."""
    import torch
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(seed)
    sizes = dict(intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    cfg = LlamaConfig(
        vocab_size=n_words + extra_vocab, hidden_size=hidden, max_position_embeddings=256, **sizes | config
    )
    return LlamaModel(cfg).eval()


def write_tiny_backbone(
    folder: str | Path,
    words: Sequence[str] = PROMPT_WORDS,
    hidden: int = 32,
    seed: int = 0,
    extra_vocab: int = EXTRA_VOCAB,
    **config,
) -> Path:
    """`word_tokenizer(words)` and `tiny_llama` saved as a backbone folder; returns the folder."""
    word_tokenizer(words).save_pretrained(folder)
    tiny_llama(len(words), hidden, seed, extra_vocab, **config).save_pretrained(folder)
    return Path(folder)
