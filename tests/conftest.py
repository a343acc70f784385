"""Shared test helpers: run_snakemake (the one way tests run Snakemake; it requires the `workflow` mark)
and the tiny end-to-end workflow run (built once per test session)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
BIN = Path(sys.executable).parent
WORKFLOW = "workflow"  # the marker of tests that run Snakemake or load the real backbone


def venv_env() -> dict:
    """os.environ with this interpreter's bin/ (snakemake, gta) first on PATH."""
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def run_snakemake(
    workdir: Path,
    *args: str,
    config: Path | dict | None = None,
    env: dict | None = None,
    timeout: float = 900,
    snakefile: Path | None = SNAKEFILE,
    directory: bool = True,
    prefix: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """The one way the tests run Snakemake: this venv's snakemake, in `workdir` (created if missing).

    The command is `[*prefix] snakemake [-s snakefile] [-d workdir] ARGS [--configfile CONFIG]`:
    `config` is a file, or a dict written to `workdir/config.yaml`; `snakefile=None` leaves `-s` out
    (a Snakefile in workdir), `directory=False` leaves `-d` out. `env` replaces the environment as a
    whole (default: os.environ with the venv first on PATH). stderr is merged into `.stdout`, in the
    order written; `.stderr` is "". Only tests marked `workflow` may call it.
    """
    item = _CURRENT["item"]
    if item is not None and item.get_closest_marker(WORKFLOW) is None:
        pytest.fail(
            f"{item.nodeid} runs Snakemake: mark it @pytest.mark.{WORKFLOW} (make test-fast leaves those out)",
            pytrace=False,
        )
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if isinstance(config, dict):
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        config = path
    cmd = [*prefix, str(BIN / "snakemake")]
    if snakefile is not None:
        cmd += ["-s", str(snakefile)]
    if directory:
        cmd += ["-d", str(workdir)]
    cmd += [*map(str, args)]
    if config is not None:
        cmd += ["--configfile", str(config)]
    r = subprocess.run(
        cmd,
        cwd=workdir,
        env=venv_env() if env is None else env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    r.stderr = ""
    return r


# the test being set up or run (run_snakemake checks its marker); set before its fixtures
_CURRENT: dict = {"item": None}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _CURRENT["item"] = item


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item):
    _CURRENT["item"] = None


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> Path:
    """tests/configs/tiny.yaml plus a Huang et al. style baseline_predictions CSV for its genes."""
    from gta import tss

    cfg = yaml.safe_load(TINY.read_text())
    d = tmp_path_factory.mktemp("tiny-config")
    genes = tss.mane_select(tss.read_mane(tss.packaged_mane_path()))
    genes = genes[genes["chrom"] == "22"].head(cfg["genes"]["max_genes"])
    rng = np.random.default_rng(0)
    ids = [s.lower() for s in genes["symbol"]]
    ids[1] = genes["ensembl_gene"].iloc[1]  # Huang et al. name a few genes by Ensembl id
    pd.DataFrame(
        {"gene": ids, **{m: rng.normal(size=len(ids)) for m in ("Xpresso", "Enformer", "Basenji2", "ExPecto")}}
    ).to_csv(d / "all_models_ref_preds.csv", index=False)
    cfg["evaluate"]["baseline_predictions"] = str(d / "all_models_ref_preds.csv")
    # using the trained model: two genes by symbol, one explained, the demo VCF in two chunks
    cfg["predict"] = {"genes": list(genes["symbol"].iloc[[3, 7]])}
    cfg["explain"] = {"genes": [genes["symbol"].iloc[3]]}
    cfg["variants"] = {"vcf": "demo", "chunks": 2, "demo_per_class": 2}
    path = d / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def tiny_run(tiny_config, tmp_path_factory) -> Path:
    """The whole DAG (all targets: tables, figures, windows) of the tiny config, run locally once."""
    d = tmp_path_factory.mktemp("tiny-run")
    r = run_snakemake(d, "--cores", "2", config=tiny_config)
    assert r.returncode == 0, r.stdout[-6000:]
    return d
