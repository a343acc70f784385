"""How a workflow rule runs a stage: `workflow/scripts/<rule>.py` calls `run(snakemake, stage)`.

The rule's inputs, outputs and typed params (numbers, lists, booleans, dicts as Snakemake holds them)
go straight to the package function of the same name, each to the parameter it is named after: a
rule names its inputs, outputs and params as its stage names its parameters (input `tss`, output
`out`, params `n_bins`), so one name holds from the rule to the function and its flag. No command
line is rendered and parsed back. The rule's log file gets everything the stage writes to stderr
(its log lines, library warnings), as `2> {log}` did; a GTAError becomes one error line there and
exit status 1, so Snakemake reports the rule as failed and removes its outputs.

Package errors name the stage's input (GTAError.input: `n_bins`, `features`), never a config key. The
script says where its inputs come from (`config_keys`), and the error line ends with those keys, e.g.
`(config key window.n_bins)`.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterable

from . import GTAError
from .io import setup_logging

log = logging.getLogger("gta")


def _log_to(path: str) -> None:
    """Send this process's stderr (Python's and the C libraries') to `path`."""
    fh = open(path, "w")  # noqa: SIM115  (stays open as the process's stderr)
    os.dup2(fh.fileno(), 2)
    sys.stderr = fh


def keys_from(snakemake, *sections: str, settings: tuple[str, ...] = (), **keys: str) -> dict[str, str]:
    """{stage input: config key} of a rule, from the rule's config (`snakemake.config`).

    Each key of a config section counts under its own name (`"window"`: n_bins -> window.n_bins), each key
    of a `settings` section under `<section>.<key>` (the `sei` dict of predict_genes), then `keys` name the
    inputs that are called otherwise (`fasta="genome.fasta"`). A `keys` entry that is also one of the
    rule's input files counts only when that file is the configured one, not one a rule made (the demo's
    synthetic genome for genome.fasta: synthetic).
    """
    config = snakemake.config
    out = {}
    for section in sections:
        out |= {key: f"{section}.{key}" for key in config[section]}
    for section in settings:
        out |= {f"{section}.{key}": f"{section}.{key}" for key in config[section]}
    for name, key in keys.items():
        # `in` a Namedlist looks at its files, keys() at their names
        if name not in snakemake.input.keys() or _configured(config, key) == str(snakemake.input[name]):  # noqa: SIM118
            out[name] = key
    return out


def _configured(config: dict, key: str) -> str:
    """The config value at a dotted key, as a string."""
    for part in key.split("."):
        config = config[part]
    return str(config)


def with_config_keys(error: GTAError, config_keys: dict[str, str]) -> str:
    """The error's message, ending with the config keys its inputs come from (`config_keys`: input -> key)."""
    keys = error.named(config_keys)
    return f"{error} (config key{'s' if len(keys) > 1 else ''} {', '.join(keys)})" if keys else str(error)


def rule_arguments(snakemake, stage: Callable, given: Iterable[str] = ()) -> dict:
    """Each parameter of `stage` that the rule has under the same name: a param, else a named input, a
    named output or a wildcard; `threads` is the rule's threads. A param comes first, because a params
    function may resolve an input of the same name (the backbone: its folder, or a hub id when there is
    none). Parameters the rule lacks keep their defaults.

    Every name of the rule's params, named inputs and named outputs must be a parameter of `stage` or in
    `given` (the names its script passes on or reads itself): a misspelt name is an error naming the rule
    and the name, not a parameter silently left at its default."""
    parameters = inspect.signature(stage).parameters
    named = [n for s in (snakemake.params, snakemake.input, snakemake.output) for n in s.keys()]  # noqa: SIM118
    unknown = sorted(set(named) - set(parameters) - set(given))
    if unknown:
        raise GTAError(
            f"rule {snakemake.rule}: {', '.join(unknown)} (in its params, input or output) "
            f"{'matches' if len(unknown) == 1 else 'match'} no parameter of {stage.__module__}.{stage.__name__} "
            f"({', '.join(parameters)}); rename it after the parameter it is for, or have the rule's script "
            "take it (run(..., uses=...))"
        )
    sources = (snakemake.params, snakemake.input, snakemake.output, snakemake.wildcards)
    arguments = {}
    for name in parameters:
        # `in` a Namedlist looks at its items, keys() at their names
        source = next((s for s in sources if name in s.keys()), None)  # noqa: SIM118
        if source is not None:
            arguments[name] = source[name]
        elif name == "threads":
            arguments[name] = snakemake.threads
    return arguments


def run(
    snakemake,
    stage: Callable,
    /,
    *,
    config_keys: dict[str, str] | None = None,
    uses: Iterable[str] = (),
    **arguments,
) -> None:
    """Call `stage` for the rule `snakemake` (the object Snakemake gives a script) with the rule's
    arguments (`rule_arguments`) and, over them, `arguments`; an error about an input ends with its key
    in `config_keys` (made by `keys_from`). `uses` names the rule's params, inputs and outputs that the
    script reads itself (to build `arguments`) or that only make Snakemake wait for or rerun on a file."""
    if snakemake.log:
        _log_to(str(snakemake.log[0]))
    setup_logging()
    try:
        stage(**(rule_arguments(snakemake, stage, [*uses, *arguments]) | arguments))
    except GTAError as e:
        log.error("rule %s: %s", snakemake.rule, with_config_keys(e, config_keys or {}))
        sys.stderr.flush()
        sys.exit(1)
