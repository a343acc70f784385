"""Sei: the sequence-class model whose 40 class scores per bin are GTA's features.

Public API: `one_hot`, `bspline_basis`, `Sei`, `load_sei`, `class_scores` (the checkpoint and projection
files they read: docs/formats.md, Sei checkpoint); plus the class table, reverse-complement averaging
(`predict`) and projection loading. Batched inference lives in `gta.sei.inference`, features.h5 merging in
`gta.sei.features`, the features.h5 layout, writer and checks in `gta.formats`; the seeded random demo
model in `gta.demo.sei`.
"""

from .. import lazy_exports

from .classes import CLASS_LABELS, CLASS_NAMES, KEPT, LOW_SIGNAL, N_CLASSES, load_classes

# torch-backed names are imported on first use, so the class table (used by the light, torch-free
# steps: targets, baselines, evaluation) does not pull in torch
_LAZY = {
    **dict.fromkeys(["load_projection", "load_sei", "save_sei"], "checkpoint"),
    **dict.fromkeys(
        [
            "N_TARGETS",
            "SEQUENCE_LENGTH",
            "BSplineTransformation",
            "Sei",
            "bspline_basis",
            "class_scores",
            "one_hot",
            "predict",
            "projection_matrix",
            "reverse_complement_onehot",
        ],
        "model",
    ),
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "CLASS_LABELS",
    "CLASS_NAMES",
    "KEPT",
    "LOW_SIGNAL",
    "load_classes",
    "Sei",
    "BSplineTransformation",
    "bspline_basis",
    "one_hot",
    "class_scores",
    "predict",
    "projection_matrix",
    "reverse_complement_onehot",
    "load_sei",
    "save_sei",
    "load_projection",
    "N_CLASSES",
    "N_TARGETS",
    "SEQUENCE_LENGTH",
]
