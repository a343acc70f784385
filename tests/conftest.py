"""Shared fixtures: the tiny end-to-end workflow run (built once per test session)."""

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
TINY = REPO / "tests" / "configs" / "tiny.yaml"
BIN = Path(sys.executable).parent


def snakemake(workdir: Path, config: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the workflow's snakemake in `workdir` with `config` (output in .stdout, stderr merged)."""
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(config),
           *args]
    return subprocess.run(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)


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
    pd.DataFrame({"gene": ids, **{m: rng.normal(size=len(ids)) for m in ("Xpresso", "Enformer", "Basenji2", "ExPecto")}}
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
    r = snakemake(d, tiny_config, "--cores", "2")
    assert r.returncode == 0, r.stdout[-6000:]
    return d
