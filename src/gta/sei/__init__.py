"""Sei: the sequence-class model whose 40 class scores per bin are GTA's features."""

from .classes import CLASS_LABELS, CLASS_NAMES, KEPT, LOW_SIGNAL, load_classes

__all__ = ["CLASS_LABELS", "CLASS_NAMES", "KEPT", "LOW_SIGNAL", "load_classes"]
