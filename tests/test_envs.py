"""Conda environments: they parse, every rule names one, and they pin what the code imports at the
versions this venv tests (conda itself is not reachable here, so nothing is solved)."""

from __future__ import annotations

import ast
import re
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENVS = {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "envs").glob("*.yaml"))}
RULE_FILES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
TORCH_STACK = {"torch", "transformers", "safetensors", "gguf", "peft"}


def pip_pins(env: dict) -> dict[str, str]:
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([\w.]+)", line)
                if m:
                    pins[m.group(1).lower()] = m.group(2)
    return pins


def third_party_imports(paths) -> set[str]:
    """Top-level modules imported anywhere in `paths` that are not the standard library or gta."""
    import sys

    mods = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    return {m for m in mods if m not in sys.stdlib_module_names and m not in ("gta", "__future__")}


def test_envs_parse_and_install_the_package():
    assert set(ENVS) == {"bio.yaml", "gta.yaml", "torch.yaml"}
    for name, env in ENVS.items():
        assert "conda-forge" in env["channels"], name
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        assert any(line.startswith("-e ..") for line in pip), f"{name} does not install the gta package"
        assert any(str(d).startswith("python=3.11") for d in env["dependencies"]), name
    assert "bedtools=2.31.1" in ENVS["bio.yaml"]["dependencies"]  # for pybedtools


def test_every_rule_names_an_existing_env():
    for path in RULE_FILES:
        text = path.read_text()
        rules = re.findall(r"^\s*rule (\w+):", text, re.M)
        envs = re.findall(r'conda:\s*\n\s*"([^"]+)"', text)
        assert len(envs) == len(rules), f"{path.name}: {len(rules)} rules, {len(envs)} conda directives"
        for env in envs:
            assert (path.parent / env).resolve().is_file(), f"{path.name} names missing {env}"


def constraints() -> dict[str, str]:
    """constraints.txt (every pip install of `make setup` is held to it) as {distribution: version}."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([\w.]+)", line)
            assert m, f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[canonical(m.group(1))] = m.group(2)
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("name", ["bio.yaml", "gta.yaml", "torch.yaml"])
def test_env_pins_are_the_constrained_versions(name):
    """envs/*.yaml pin what constraints.txt pins (the conda route installs what make setup installs)."""
    locked = constraints()
    for dist, pinned in pip_pins(ENVS[name]).items():
        assert locked.get(canonical(dist)) == pinned, (
            f"envs/{name} pins {dist}=={pinned} but constraints.txt has {locked.get(canonical(dist))}"
        )


def test_the_venv_is_what_constraints_pin():
    """Every distribution in the venv is at its constrained version, and every pin is installed: a fresh
    `make setup` installs exactly the tested set, whatever upstream released since."""
    from importlib.metadata import distributions

    locked = constraints()
    installed = {canonical(d.metadata["Name"]): d.version.split("+")[0] for d in distributions()}  # +cpu tag
    installed.pop("gta", None)  # the package itself (editable)
    for tool in ("pip", "setuptools", "wheel"):  # the venv's own tools, not installed by make setup
        installed.pop(tool, None)
        locked.pop(tool, None)
    wrong = {d: (v, locked.get(d)) for d, v in installed.items() if locked.get(d) != v}
    assert not wrong, f"installed (version, constrained) differ: {wrong}; run make setup, or refresh constraints.txt"
    assert not set(locked) - set(installed), f"constrained but not installed: {set(locked) - set(installed)}"


def test_envs_provide_what_the_code_imports():
    dists = packages_distributions()
    src = ROOT / "src" / "gta"
    torch_modules = (
        "train.py",
        "hardware.py",
        "figures.py",
        "pretrained.py",
        "predict.py",
        "explain.py",
        "scoring.py",
        "sei.py",
        "testing.py",
        "personal.py",
        "population.py",
    )  # sei.py: gta/demo/sei.py, the demo Sei; testing.py: the tiny backbone of the tests and benchmarks;
    # population.py: gta/demo/population.py (the planted signal on each haplotype's Sei features)
    light = [p for p in src.rglob("*.py") if p.parent.name not in ("sei", "model") and p.name not in torch_modules]
    needs_light = {d.lower() for m in third_party_imports(light) for d in dists.get(m, [m])}
    needs_all = {d.lower() for m in third_party_imports(src.rglob("*.py")) for d in dists.get(m, [m])}
    assert {"numpy", "pandas", "h5py", "pyfaidx", "biopython"} <= needs_all  # the scan sees imports
    assert "torch" in needs_all and "torch" not in needs_light
    for name in ("bio.yaml", "gta.yaml"):
        missing = needs_light - set(pip_pins(ENVS[name]))
        assert not missing, f"envs/{name} lacks {missing}"
        assert not TORCH_STACK & set(pip_pins(ENVS[name])), f"envs/{name} should stay light"
    missing = (needs_all | {"gguf"}) - set(pip_pins(ENVS["torch.yaml"]))  # gguf: transformers' GGUF reader
    assert not missing, f"envs/torch.yaml lacks {missing}"


def test_light_steps_never_import_torch():
    """The rules on envs/gta.yaml and envs/bio.yaml run without torch installed."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import gta.cli, gta.tss, gta.genome, gta.annotations, gta.expression, gta.baselines, gta.evaluate\n"
        "import gta.identifiers, gta.splits, gta.demo.genome, gta.demo.simulation, gta.demo.variants\n"
        "import gta.sei.features\n"
        "gta.cli.build_parser()\n"
        "from gta.sei import KEPT, CLASS_LABELS\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
