"""GTA: long-range gene expression prediction by Genetic sequence Token Alignment."""

import contextlib

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
    """A bad input or a failed step, with a message that names the input and the fix.

    `input` names the argument that holds the bad value, as the caller passed it: a parameter of the
    stage function (`n_bins`, `features`), a field of its ModelConfig or TrainConfig (`top_k`), or
    `sei.<key>` for a key of its `sei` settings; a tuple when several inputs are at fault together.
    The message itself says no more than that; each front end adds its own name for the input with
    `named`: the command line its flag, the workflow its config key (gta.rule.run).
    """

    def __init__(self, message: str, *, input: str | tuple[str, ...] | None = None):
        super().__init__(message)
        self.input = input

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,) if isinstance(self.input, str) else tuple(self.input or ())

    def named(self, names: dict[str, str]) -> list[str]:
        """The front end's names (`names`: input -> name) of this error's inputs, where it has one."""
        return list(dict.fromkeys(names[i] for i in self.inputs if i in names))


@contextlib.contextmanager
def inputs_of(settings: str):
    """Errors raised inside name their inputs as keys of the `settings` argument: a function that takes
    the `sei` dict calls the Sei loaders within `inputs_of("sei")`, so `checkpoint` becomes `sei.checkpoint`."""
    try:
        yield
    except GTAError as e:
        e.input = tuple(f"{settings}.{name}" for name in e.inputs) or None
        raise
