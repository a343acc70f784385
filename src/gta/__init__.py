"""GTA: long-range gene expression prediction by Genetic sequence Token Alignment."""

__version__ = "0.1.0"


def lazy_exports(package: str, exports: dict[str, str]):
    """A module __getattr__ (PEP 562) that imports `name` from `package.<exports[name]>` on first use,
    so importing the package does not pull in heavy dependencies (torch) until they are needed."""
    import importlib
    import sys

    def __getattr__(name):
        if name in exports:
            value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


class GTAError(Exception):
    """A bad input or a failed step, with a message that names the input and the fix."""
