"""How a workflow rule runs a stage: `workflow/scripts/<rule>.py` calls `run(snakemake, stage, **arguments)`.

Each rule's script passes its inputs, outputs and typed params (numbers, lists, booleans, dicts as
Snakemake holds them) straight to the package function of the same name; no command line is
rendered and parsed back. The rule's log file gets everything the stage writes to stderr (its log
lines, library warnings), as `2> {log}` did; a GTAError becomes one error line there and exit
status 1, so Snakemake reports the rule as failed and removes its outputs.

Package errors name the stage's input (GTAError.input: `n_bins`, `features`); the rule's
`config_keys` param (common.smk, `from_config`) maps inputs to the config keys they come from, and
the error line ends with those keys, e.g. `(config key window.n_bins)`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from . import GTAError
from .io import setup_logging

log = logging.getLogger("gta")


def _log_to(path: str) -> None:
    """Send this process's stderr (Python's and the C libraries') to `path`."""
    fh = open(path, "w")  # noqa: SIM115  (stays open as the process's stderr)
    os.dup2(fh.fileno(), 2)
    sys.stderr = fh


def with_config_keys(error: GTAError, config_keys: dict[str, str]) -> str:
    """The error's message, ending with the config keys its inputs come from (`config_keys`: input -> key)."""
    keys = error.named(config_keys)
    return f"{error} (config key{'s' if len(keys) > 1 else ''} {', '.join(keys)})" if keys else str(error)


def run(snakemake, stage: Callable, /, **arguments) -> None:
    """Call `stage(**arguments)` for the rule `snakemake` (the object Snakemake gives a script)."""
    if snakemake.log:
        _log_to(str(snakemake.log[0]))
    setup_logging()
    try:
        stage(**arguments)
    except GTAError as e:
        log.error("rule %s: %s", snakemake.rule, with_config_keys(e, snakemake.params.get("config_keys") or {}))
        sys.stderr.flush()
        sys.exit(1)
