"""GTA: long-range gene expression prediction by Genetic sequence Token Alignment."""

__version__ = "0.1.0"


class GTAError(Exception):
    """A bad input or a failed step, with a message that names the input and the fix."""
