"""`gta <stage>`: the command line, generated from the stage functions' signatures and docstrings.

Each command runs one package function, named as its Snakemake rule (`mane-tss` runs `gta.tss.mane_tss`);
`features-check` is the one command without a rule.
Its flags are the function's parameters (`--max-genes` for `max_genes`), typed by their annotations,
required when they have no default, and explained by the docstring's `Args:` section. An error about an
input (GTAError.input) ends with that input's flag. The functions are
imported only when their command runs or shows its help, so `gta --help` needs neither numpy nor torch.
"""

from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import errno
import functools
import importlib
import inspect
import logging
import operator
import re
import sys
import types
import typing
from collections.abc import Callable

from . import GTAError, __version__
from .io import setup_logging
from .options import GrammarName

log = logging.getLogger("gta")

GRAMMAR_NAMES = typing.get_args(GrammarName)  # the --grammar choices
OUTPUT_FOLDERS = ("out_dir", "out_model")  # output parameters that name a folder; other `out*` name a file
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)

# command: (the module under gta of its function, named as the command with underscores; `gta --help`'s line)
COMMANDS = {
    "mane-tss": ("tss", "MANE summary + FASTA -> tss.tsv (MANE Select TSS per gene)"),
    "synthetic-genome": ("demo.genome", "write the demo's synthetic genome FASTA + .fai"),
    "extract-windows": ("genome", "tss.tsv -> windows.bed (BED12: each gene's window, one block per bin)"),
    "fetch-annotations": ("annotations", "tss.tsv -> annotations.jsonl (NCBI Gene summaries or MANE names)"),
    "make-prompts": ("annotations", "annotations.jsonl -> prompts.jsonl (the paper's Figure 4 text per gene)"),
    "make-demo-sei": ("demo.sei", "write the demo's seeded random Sei checkpoint and projection matrix"),
    "predict-sei": ("sei.inference", "one shard of tss.tsv -> Sei class scores per bin (resumable HDF5 shard)"),
    "merge-features": ("sei.features", "Sei shards -> features.h5 (tss.tsv gene order)"),
    "features-check": ("formats", "check a features.h5 against docs/formats.md (features.h5)"),
    "tss-from-features": ("sei.features", "precomputed features.h5 + MANE -> tss.tsv (the file's genes)"),
    "convert-backbone": ("model.backbone", "GGUF backbone -> cached folder (safetensors + config + tokenizer)"),
    "make-targets": ("expression", "expression table or simulation -> targets.tsv (value and split per gene)"),
    "fit-baseline": ("baselines", "fit a baseline (TSS ridge, ExPecto-style, boosted trees) -> predictions"),
    "fit-text-baseline": ("baselines", "ridge on the prompts' TF-IDF (alone or + ExPecto-style) -> predictions"),
    "import-baseline-predictions": ("baselines", "Huang et al. predictions CSV -> one predictions file per model"),
    "make-table1": ("evaluate", "predictions -> table1.tsv (bootstrap Spearman on the test genes)"),
    "make-table2": ("evaluate", "GTA predictions per backbone depth -> table2.tsv"),
    "make-table3": ("evaluate", "GTA and its controls -> table3.tsv (bootstrap Spearman on the test genes)"),
    "oracle-diagnostics": (
        "demo.simulation",
        "simulated targets -> oracle.tsv (best test Spearman per visible context)",
    ),
    "make-prompt-control": ("evaluate", "models on targets with and without a text signal -> prompt_control.tsv"),
    "make-train-size": ("evaluate", "predictions per training fraction -> train_size.tsv and its figure"),
    "train-gta": ("train", "train one GTA model (N bins, L backbone blocks) and predict every gene"),
    "make-figures": (
        "figures",
        "trained GTA model -> figures 5-10 of the paper and attention_entropy.tsv (test genes)",
    ),
    "ablate-context": ("train", "trained GTA model -> predictions with only the central bins kept"),
    "plot-learning-curves": ("figures", "training histories -> learning_curves.png"),
    "explain-genes": ("explain", "trained GTA model -> per-bin explanation of chosen genes (TSV + PNG each)"),
    "predict-genes": ("predict", "trained model + genes (list, BED or MANE) on any FASTA -> predictions"),
    "score-variants": ("scoring", "trained model + VCF -> per variant and gene: REF, ALT, delta"),
    "merge-variant-scores": ("scoring", "variant-score chunks -> one table and summed counts"),
    "make-demo-vcf": ("demo.variants", "demo: a VCF of deletions and SNVs in bins of known planted-grammar roles"),
    "validate-variants": ("demo.variants", "demo: predicted against true (simulated) variant effects"),
    "predict-individuals": ("personal", "trained model + phased VCF -> per sample, gene and haplotype: prediction"),
    "merge-individual-predictions": ("personal", "individual-prediction shards -> one table and summed counts"),
    "simulate-population": ("demo.population", "demo: a phased population over the genes' windows + true expression"),
    "evaluate-individuals": (
        "personal_eval",
        "individual predictions + VCF + expression -> per-gene correlations across held-out individuals, "
        "beside an elastic net",
    ),
}


def stage_function(command: str):
    """The package function a command runs (imported now)."""
    module = importlib.import_module(f"gta.{COMMANDS[command][0]}")
    return getattr(module, command.replace("-", "_"))


# ----------------------------------------------------------------------------- docstrings


def split_docstring(fn) -> tuple[str, dict[str, str]]:
    """A Google-style docstring -> (the text before `Args:`, {parameter: its help})."""
    doc = inspect.getdoc(fn) or ""
    head, _, rest = doc.partition("\nArgs:\n")
    helps: dict[str, str] = {}
    name = None
    for line in rest.splitlines():
        entry = re.match(r"    (\w+)(?: \(.*?\))?: (.*)", line)
        if entry:
            name, helps[entry[1]] = entry[1], entry[2]
        elif line.startswith("        ") and name:
            helps[name] += " " + line.strip()
        elif line.strip():  # Returns:, Raises: ... end the section
            name = None
            if not line.startswith(" "):
                break
    return head.strip(), {k: v.replace("%", "%%") for k, v in helps.items()}


# ----------------------------------------------------------------------------- types -> argparse options


def parse_bool(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, not {value!r}")
    return value.lower() == "true"


def parse_scalar(value: str):
    """An `int | str` value: a number when it reads as one ('all' stays 'all')."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def parse_mapping(values: list[str]) -> dict:
    """`KEY=VALUE ...` -> a dict of numbers where the values read as numbers."""
    if not all("=" in v for v in values):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE pairs, not {' '.join(values)!r}")
    return {k: parse_scalar(v) for k, v in (v.split("=", 1) for v in values)}


def _is_sequence(tp) -> bool:
    origin = typing.get_origin(tp)
    return origin in (list, tuple, collections.abc.Sequence) or tp in (list, tuple, collections.abc.Sequence)


def _scalar_type(tp):
    """The converter of one value of `tp` (str for paths and anything unknown)."""
    if tp is bool:
        return parse_bool
    if tp in (int, float):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        kinds = set(typing.get_args(tp))
        return parse_scalar if kinds & {int, float} and str in kinds else _scalar_type(next(iter(kinds)))
    return str


def _unwrap(tp) -> tuple[object, bool]:
    """(the type without None, whether None was allowed); a sequence wins over a scalar in a union."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return tp, False
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    optional = len(args) < len(typing.get_args(tp))
    listed = [a for a in args if _is_sequence(a)]
    if listed:
        return listed[0], optional
    return (args[0] if len(args) == 1 else functools.reduce(operator.or_, args)), optional


def _none_if_empty(convert):
    return lambda value: None if value == "" else convert(value)


def argument_options(tp, default, help_text: str | None) -> dict:
    """argparse options for a parameter of type `tp` with `default` (inspect.Parameter.empty: required)."""
    tp, optional = _unwrap(tp)
    options: dict = {"help": help_text}
    if default is inspect.Parameter.empty:
        options["required"] = True
    else:
        options["default"] = default
    if typing.get_origin(tp) is typing.Literal:
        return {**options, "choices": list(typing.get_args(tp))}
    if tp is dict or typing.get_origin(tp) is dict:
        return {**options, "nargs": "+", "metavar": "KEY=VALUE", "type": str, "action": MappingAction}
    if _is_sequence(tp):
        inner = (typing.get_args(tp) or (str,))[0]
        if _is_sequence(inner) or inner is typing.Any:  # rows: --rows A B C, repeated
            return {**options, "nargs": "+", "action": "append", "default": []}
        return {**options, "nargs": "+" if "required" in options else "*", "type": _scalar_type(inner)}
    convert = _scalar_type(tp)
    if tp is bool:
        options["metavar"] = "{true,false}"
    return {**options, "type": _none_if_empty(convert) if optional else convert}


class MappingAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        try:
            setattr(namespace, self.dest, parse_mapping(values))
        except argparse.ArgumentTypeError as e:
            parser.error(f"{option_string}: {e}")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# ----------------------------------------------------------------------------- parameters -> flags


def _type_hints(fn) -> dict:
    """The parameters' evaluated annotations (the return annotation may name what is not imported)."""
    shim = types.SimpleNamespace(__annotations__={k: v for k, v in fn.__annotations__.items() if k != "return"})
    return typing.get_type_hints(shim, fn.__globals__)


def add_dataclass_flags(p, cls, helps: dict[str, str]) -> Callable:
    """One flag per field of a config dataclass; returns namespace -> the dataclass."""
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    for f in fields:
        default = f.default if f.default is not dataclasses.MISSING else inspect.Parameter.empty
        p.add_argument(flag(f.name), dest=f.name, **argument_options(hints[f.name], default, helps.get(f.name)))
    return lambda ns: cls(**{f.name: getattr(ns, f.name) for f in fields})


# The `sei` parameter (a dict of SeiScorer.load's arguments): flag, its key in the dict, argparse options.
SEI_FLAGS = [
    ("--checkpoint", "checkpoint", {"help": "Sei checkpoint (sei.pth, official or demo)"}),
    ("--projection", "projection", {"help": "Sei projection matrix (projvec_targets.npy)"}),
    ("--sha256", "sha256", {"default": "", "help": "expected sha256 of the checkpoint ('' = no check)"}),
    (
        "--reverse-complement",
        "reverse_complement",
        {
            "default": True,
            "type": parse_bool,
            "metavar": "{true,false}",
            "help": "average each bin over both strands (as the features file was made)",
        },
    ),
    ("--sei-device", "device", {"default": "auto", "help": "where Sei runs: 'auto', 'cpu', 'cuda' or 'cuda:N'"}),
    (
        "--sei-dtype",
        "dtype",
        {
            "default": "auto",
            "choices": ["auto", "float32", "bfloat16"],
            "help": "Sei's precision ('auto': bf16 where the hardware has it)",
        },
    ),
    ("--sei-batch-size", "batch_size", {"default": 32, "type": int, "help": "bins per Sei batch"}),
]


def add_sei_flags(p, required: bool) -> Callable:
    """The flags of the Sei model that computes bins no features file has; returns namespace -> the dict."""
    for option, key, extra in SEI_FLAGS:
        p.add_argument(option, dest=f"sei_{key}", required=required and "default" not in extra, **extra)

    def settings(ns):
        if not ns.sei_checkpoint:
            return None
        values = {key: getattr(ns, f"sei_{key}") for _, key, _ in SEI_FLAGS}
        return {**values, "sha256": values["sha256"] or None}

    return settings


def add_function_flags(p, fn) -> tuple[dict[str, Callable], dict[str, str]]:
    """One flag per parameter of `fn` (dataclasses: one per field); returns {parameter: namespace -> value}
    and {input: flag}, the flag of each input a GTAError can name (a parameter, a field, `sei.<key>`)."""
    hints = _type_hints(fn)
    _, helps = split_docstring(fn)
    values, flags = {}, {}
    for name, param in inspect.signature(fn).parameters.items():
        tp, optional = _unwrap(hints.get(name, str))
        if name == "sei":
            values[name] = add_sei_flags(p, required=not optional)
            flags |= {f"sei.{key}": option for option, key, _ in SEI_FLAGS}
        elif dataclasses.is_dataclass(tp):
            values[name] = add_dataclass_flags(p, tp, {**split_docstring(tp)[1], **helps})
            flags |= {f.name: flag(f.name) for f in dataclasses.fields(tp) if f.init}
        else:
            p.add_argument(
                flag(name), dest=name, **argument_options(hints.get(name, str), param.default, helps.get(name))
            )
            values[name] = lambda ns, name=name: getattr(ns, name)
            flags[name] = flag(name)
    return values, flags


def add_command(sub, command: str, full: bool) -> None:
    """The subparser of `command`: its one-line help only, or (full) the function's flags and description."""
    summary = COMMANDS[command][1]
    if not full:
        sub.add_parser(command, help=summary, add_help=False)
        return
    fn = stage_function(command)
    description, _ = split_docstring(fn)
    p = sub.add_parser(command, help=summary, description=description or summary)
    values, flags = add_function_flags(p, fn)
    p.set_defaults(func=lambda ns: run_stage(fn, {name: value(ns) for name, value in values.items()}), flags=flags)


def run_stage(fn: Callable, arguments: dict) -> None:
    """Run a stage after checking its seeds (parameters `seed`, `*_seed`; TrainConfig checks its own) and that
    its outputs (parameters `out`, `out_*`) can be written, so that a read-only or wrong output location stops
    the run before the work, not after it."""
    from .io import check_writable
    from .options import check_seed

    for name, value in arguments.items():
        if name == "seed" or name.endswith("_seed"):
            check_seed(value, input=name)
        if (name == "out" or name.startswith("out_")) and value:
            check_writable(value, input=name, folder=name in OUTPUT_FOLDERS)
    fn(**arguments)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `gta` parser; only `command` (if any) gets its flags, so that no other stage is imported."""
    parser = argparse.ArgumentParser(
        prog="gta",
        description="GTA workflow stages. The Snakemake rules call these (all but features-check, a file check); "
        "each also runs on its own.",
    )
    parser.add_argument("--version", action="version", version=f"gta {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    for name in COMMANDS:
        add_command(sub, name, full=name == command)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if a in COMMANDS), None)
    args = build_parser(command).parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        args.func(args)
    except GTAError as e:
        named = e.named(args.flags)  # the flags of the inputs the error names
        log.error("gta %s: %s", args.command, f"{e} ({', '.join(named)})" if named else e)
        return 1
    except OSError as e:
        if e.errno not in WRITE_ERRORS:
            raise
        # a disk that filled up (or a location that became read-only) during the run: outputs are written
        # under temporary names (gta.io.atomic_path), so nothing partial is left under the final names
        log.error(
            "gta %s: cannot write %s: %s; free space or choose another output location",
            args.command,
            e.filename or "an output",
            e.strerror,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
