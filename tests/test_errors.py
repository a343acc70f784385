"""Errors name the input; each front end adds its own name for it: the workflow the config key, the
command line the flag (GTAError.input, gta.rule, gta.cli)."""

import ast
import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from snakemake.iocontainers import InputFiles, OutputFiles, Params, Wildcards

from gta import GTAError, cli, inputs_of, rule

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "workflow/scripts").glob("*.py"))
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())


def config_key_exists(key: str) -> bool:
    """Whether the config schema has the dotted key."""
    node = SCHEMA
    for part in key.split("."):
        if part not in node.get("properties", {}):
            return False
        node = node["properties"][part]
    return True


def test_an_error_names_its_inputs():
    e = GTAError("n_bins must be odd (got 4)", input="n_bins")
    assert e.inputs == ("n_bins",) and str(e) == "n_bins must be odd (got 4)"
    both = GTAError("x", input=("chromosomes", "fasta", "chromosomes"))
    assert both.named({"fasta": "genome.fasta", "chromosomes": "genes.chromosomes"}) == [
        "genes.chromosomes",
        "genome.fasta",
    ]
    assert GTAError("no input").named({"n_bins": "window.n_bins"}) == []
    with pytest.raises(GTAError) as raised, inputs_of("sei"):
        raise GTAError("Sei checkpoint not found", input=("checkpoint", "sha256"))
    assert raised.value.inputs == ("sei.checkpoint", "sei.sha256")


def fake_rule(config, inputs, name="some_rule", outputs=None, params=None, wildcards=None, threads=1):
    """The parts of the object Snakemake hands a script that gta.rule reads (no log: stderr stays)."""
    return types.SimpleNamespace(
        config=config,
        input=InputFiles(fromdict=inputs),
        output=OutputFiles(fromdict=outputs or {}),
        params=Params(fromdict=params or {}),
        wildcards=Wildcards(fromdict=wildcards or {}),
        threads=threads,
        log=[],
        rule=name,
    )


def test_a_rule_hands_each_parameter_the_value_of_its_name():
    def stage(tss, backbone, out, shard, threads=None, n_bins=11, batch_size=32):
        pass

    smk = fake_rule(
        {},
        {"tss": "genes/tss.tsv", "backbone": []},
        outputs={"out": "shards/1-of-2.h5"},
        params={"backbone": "org/model", "n_bins": 51},  # the param resolves the input of its name
        wildcards={"shard": "1-of-2"},
        threads=3,
    )
    assert rule.rule_arguments(smk, stage) == {
        "tss": "genes/tss.tsv",
        "backbone": "org/model",
        "out": "shards/1-of-2.h5",
        "shard": "1-of-2",
        "threads": 3,
        "n_bins": 51,
    }  # batch_size: the rule has none, so the default stays


def test_a_rule_name_that_matches_no_parameter_is_an_error(capsys):
    def stage(tss, out, n_bins=11):
        raise AssertionError("the stage must not run")

    for section in ("params", "inputs", "outputs"):
        smk = fake_rule(
            {},
            {"tss": "genes/tss.tsv"} | ({"fai": "g.fa.fai"} if section == "inputs" else {}),
            outputs={"out": "x.h5"} | ({"out_extra": "y"} if section == "outputs" else {}),
            params={"n_bin": 51} if section == "params" else {},
            name="predict_sei",
        )
        wrong = {"params": "n_bin", "inputs": "fai", "outputs": "out_extra"}[section]
        with pytest.raises(GTAError, match=rf"rule predict_sei: {wrong} \(in its params, input or output\) matches no"):
            rule.rule_arguments(smk, stage)
        with pytest.raises(SystemExit):
            rule.run(smk, stage)
        assert f"rule predict_sei: {wrong} " in capsys.readouterr().err
        # a name the script takes itself, or passes on, is declared so
        assert rule.rule_arguments(smk, stage, given=[wrong]) == {"tss": "genes/tss.tsv", "out": "x.h5"}


# Lists every job of the DAG a config makes: rule, script, and the names of its params, inputs and outputs.
DAG_JOBS = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings,
                                      StorageSettings)
with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    config = ConfigSettings(configfiles=[Path(sys.argv[2])])
    wf = api.workflow(resource_settings=ResourceSettings(), config_settings=config, storage_settings=StorageSettings(),
                      snakefile=Path(sys.argv[1]), workdir=Path(sys.argv[3]))
    wf.dag(dag_settings=DAGSettings(forceall=True))
    w = wf._workflow
    w._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
    w._build_dag()
    jobs = {j.rule.name: [j.rule.script, *(list(s.keys()) for s in (j.params, j.input, j.output))] for j in w.dag.jobs}
print(json.dumps(jobs))
"""


def script_call(path: Path) -> tuple[object, set[str]]:
    """The stage a rule script runs and the names it passes on or takes itself (run's keywords, `uses`)."""
    tree = ast.parse(path.read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "run")
    stage = call.args[1].id
    module = next(
        n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and stage in [a.name for a in n.names]
    )
    given = {k.arg for k in call.keywords if k.arg not in ("config_keys", "uses")}
    for k in call.keywords:
        if k.arg == "uses":
            given |= {e.value for e in k.value.elts}
    return getattr(importlib.import_module(module), stage), given


@pytest.mark.workflow
@pytest.mark.parametrize("config", ["config/config.yaml", "tests/configs/tiny.yaml"])
def test_every_rule_names_only_parameters_of_its_stage(config, tmp_path):
    """For every job of the DAG the config makes, the rule's params, inputs and outputs bind to its script's
    stage (gta.rule.rule_arguments, with the names the script declares): none would stop the job."""
    out = subprocess.run(
        [sys.executable, "-c", DAG_JOBS, str(REPO / "Snakefile"), str(REPO / config), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"train_gta", "predict_sei", "make_targets"} <= set(jobs)
    checked = 0
    for name, (script, params, inputs, outputs) in jobs.items():
        if script is None:
            continue
        stage, given = script_call(REPO / "workflow/rules" / script)
        smk = fake_rule(
            {},
            dict.fromkeys(inputs, "x"),
            name=name,
            outputs=dict.fromkeys(outputs, "x"),
            params=dict.fromkeys(params, "x"),
        )
        rule.rule_arguments(smk, stage, given)  # raises GTAError naming the rule and the name
        checked += 1
    assert checked >= 20


def test_keys_from_the_rule_config():
    config = {
        "window": {"n_bins": 11, "bin_size": 4096},
        "sei": {"device": "cpu"},
        "genome": {"fasta": "synthetic"},
        "features": {"precomputed": "/data/features.h5"},
    }
    smk = fake_rule(config, {"fasta": "results/genome/synthetic.fa", "features": "/data/features.h5"})
    keys = rule.keys_from(
        smk, "window", settings=("sei",), fasta="genome.fasta", features="features.precomputed", mane="genes.x"
    )
    # the demo's genome is made by a rule, so genome.fasta is not where to fix it; the precomputed file is
    assert keys == {
        "n_bins": "window.n_bins",
        "bin_size": "window.bin_size",
        "sei.device": "sei.device",
        "features": "features.precomputed",
        "mane": "genes.x",
    }


def test_a_failed_stage_ends_its_error_with_the_config_key(capsys):
    def stage(n_bins: int):
        raise GTAError(f"n_bins must be odd (got {n_bins})", input="n_bins")

    smk = fake_rule({"window": {"n_bins": 4}}, {}, name="predict_sei")
    with pytest.raises(SystemExit) as e:
        rule.run(smk, stage, config_keys=rule.keys_from(smk, "window"), n_bins=4)
    assert e.value.code == 1
    assert "rule predict_sei: n_bins must be odd (got 4) (config key window.n_bins)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        rule.run(smk, stage, n_bins=4)  # a script that names no keys: the message as the package wrote it
    assert capsys.readouterr().err.rstrip().endswith("rule predict_sei: n_bins must be odd (got 4)")


def test_the_command_line_ends_an_error_with_the_flag(monkeypatch, capsys):
    def stage(fasta: str, n_bins: int = 11):
        """Args:
        fasta: genome
        n_bins: bins
        """
        raise GTAError("the window does not fit the genome", input=("n_bins", "fasta", "not_a_parameter"))

    monkeypatch.setattr(cli, "stage_function", lambda command: stage)
    assert cli.main(["extract-windows", "--fasta", "g.fa", "--n-bins", "5"]) == 1
    assert "gta extract-windows: the window does not fit the genome (--n-bins, --fasta)" in capsys.readouterr().err


def keys_from_calls(path: Path) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "keys_from"
    ]


def test_every_script_names_real_config_keys():
    """Each rule script says which config keys its inputs come from, and every key it names exists: a
    renamed config key cannot leave an error pointing at a key that is gone."""
    without = {p.stem for p in SCRIPTS if not keys_from_calls(p)}
    assert without == {
        "merge_variant_scores",
        "merge_individual_predictions",
        "plot_learning_curves",
    }  # no input of theirs is a config value
    for path in SCRIPTS:
        for call in keys_from_calls(path):
            sections = [a.value for a in call.args if isinstance(a, ast.Constant)]
            for kw in call.keywords:
                if kw.arg == "settings":
                    sections += [e.value for e in kw.value.elts]
                    continue
                keys = [c.value for c in ast.walk(kw.value) if isinstance(c, ast.Constant) and "." in str(c.value)]
                assert keys and all(config_key_exists(k) for k in keys), (path.name, kw.arg, keys)
            assert all("properties" in SCHEMA["properties"].get(s, {}) for s in sections), (path.name, sections)
