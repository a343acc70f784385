"""How a workflow rule runs a stage: `workflow/scripts/<rule>.py` calls `run(snakemake, stage, **arguments)`.

Each rule's script passes its inputs, outputs and typed params (numbers, lists, booleans, dicts as
Snakemake holds them) straight to the package function of the same name; no command line is
rendered and parsed back. The rule's log file gets everything the stage writes to stderr (its log
lines, library warnings), as `2> {log}` did; a GTAError becomes one error line there and exit
status 1, so Snakemake reports the rule as failed and removes its outputs.
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


def run(snakemake, stage: Callable, /, **arguments) -> None:
    """Call `stage(**arguments)` for the rule `snakemake` (the object Snakemake gives a script)."""
    if snakemake.log:
        _log_to(str(snakemake.log[0]))
    setup_logging()
    try:
        stage(**arguments)
    except GTAError as e:
        log.error("rule %s: %s", snakemake.rule, e)
        sys.stderr.flush()
        sys.exit(1)
