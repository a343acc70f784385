"""The 40 Sei sequence classes (paper Appendix A): labels, names, groups, the low-signal ones."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from .. import GTAError

if TYPE_CHECKING:  # importlib.resources.abc is Python 3.11+
    from importlib.resources.abc import Traversable

# package data (pyproject.toml [tool.setuptools.package-data]): found in editable and regular installs
DEFAULT_TABLE: Traversable = files("gta.sei") / "sei_classes.tsv"


@lru_cache(maxsize=4)
def load_classes(path: str | Path | Traversable = DEFAULT_TABLE) -> pd.DataFrame:
    """Class table in the official order: index, label (PC1, L1, ...), name, group."""
    if isinstance(path, str):
        path = Path(path)
    if not path.is_file():
        raise GTAError(f"Sei class table not found: {path} (the package ships it as gta/sei/sei_classes.tsv)")
    with path.open("r") as fh:
        table = pd.read_csv(fh, sep="\t")
    if list(table["index"]) != list(range(40)):
        raise GTAError(f"Sei class table {path} must list the 40 classes in order 0..39")
    return table


CLASSES = load_classes()
CLASS_LABELS: list[str] = list(CLASSES["label"])
CLASS_NAMES: list[str] = list(CLASSES["name"])
# the 7 "Low signal" classes GTA drops: indices 1, 4, 8, 18, 22, 24, 33
LOW_SIGNAL: list[int] = [int(i) for i in CLASSES.index[CLASSES["group"] == "L"]]
KEPT: list[int] = [i for i in range(40) if i not in LOW_SIGNAL]
N_CLASSES = len(CLASS_LABELS)  # 40 named sequence classes (the first rows of projvec_targets.npy)
assert LOW_SIGNAL == [1, 4, 8, 18, 22, 24, 33], LOW_SIGNAL
