"""Config validation: the shipped configs pass; a wrong key or value stops with its name."""

import re
from pathlib import Path

import pytest
import yaml

from conftest import run_snakemake

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def walk(schema, path=""):
    """Every key of the schema with its subschema."""
    for key, sub in schema.get("properties", {}).items():
        yield f"{path}{key}", sub
        if sub.get("type") == "object":
            yield from walk(sub, f"{path}{key}.")


def test_every_schema_key_has_description_and_default():
    keys = list(walk(SCHEMA))
    assert len(keys) > 40
    for key, sub in keys:
        assert sub.get("description"), f"{key} has no description"
        assert "default" in sub, f"{key} has no default"


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "paper_plus.yaml"])
def test_shipped_configs_validate(name):
    import jsonschema

    path = ROOT / "config" / name
    assert path.is_file(), f"the shipped config {path} is missing"
    jsonschema.Draft202012Validator(SCHEMA).validate(yaml.safe_load(path.read_text()))


def test_config_readme_documents_every_key():
    text = (ROOT / "config" / "README.md").read_text()
    missing = [key for key, _ in walk(SCHEMA) if f"`{key}`" not in text]
    assert not missing, f"config/README.md does not document {missing}"


@pytest.mark.workflow
@pytest.mark.parametrize(
    "config,key,words",
    [
        ({"window": {"orient": "sideways"}}, "orient", "is not one of"),
        ({"window": {"n_binz": 11}}, "n_binz", "Additional properties"),
        ({"genes": {"max_genes": 0}}, "max_genes", "is not valid under any of the given schemas"),
        ({"window": {"n_bins": 50}}, "window.n_bins", "must be odd"),
        (
            {"window": {"n_bins": 11}, "evaluate": {"context_bins": [5, 21]}},
            "evaluate.context_bins",
            "<= window.n_bins",
        ),
        ({"evaluate": {"ablation_keep_bins": 4}}, "evaluate.ablation_keep_bins", "must be odd"),
        ({"evaluate": {"controls": ["no_backbone", "wrong"]}}, "controls", "is not one of"),
        ({"evaluate": {"train_fractions": [0.5, 1.5]}}, "train_fractions", "greater than the maximum"),
        ({"evaluate": {"seeds": [0, 0]}}, "seeds", "non-unique"),
        # seeds: 0 .. 2**32-1, the range numpy and torch take alike
        ({"seed": -1}, "['seed']", "-1 is less than the minimum of 0"),
        ({"evaluate": {"seeds": [0, 2**70]}}, "seeds", "is greater than the maximum of 4294967295"),
        ({"genome": {"synthetic_seed": 2**32}}, "synthetic_seed", "is greater than the maximum of 4294967295"),
        # a window no longer than GRCh38 chr1 (248,956,422 bp = 60,780 bins of 4,096 bp)
        ({"window": {"n_bins": 1000000001}}, "n_bins", "is greater than the maximum of 60780"),
        (
            {"window": {"n_bins": 121, "bin_size": 4_000_001}, "features": {"precomputed": "f.h5"}},
            "config key window.n_bins",
            "longer than the longest human chromosome",
        ),
        # braces: Snakemake would read them as a wildcard and name no key
        ({"annotations": {"cell_type": "liver {x} cells"}}, "config key annotations.cell_type", "contains '{' or '}'"),
        ({"genome": {"fasta": "/data/{x}.fa"}}, "config key genome.fasta", "contains '{' or '}'"),
    ],
)
def test_bad_config_names_the_key(tmp_path, config, key, words):
    r = run_snakemake(tmp_path, "-n", config=config)
    assert r.returncode != 0
    out = r.stdout
    assert key in out and words in out, out[-2000:]
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_paper_config_builds_the_full_dag(tmp_path):
    """config/paper.yaml with placeholder resource files: every shard, every model, both tables."""
    text = (ROOT / "config" / "paper.yaml").read_text()
    res = tmp_path / "res"
    for path in set(re.findall(r"/path/to/[\w./\-]+", text)):
        f = res / path.removeprefix("/path/to/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(
            "gene,Xpresso,Enformer,Basenji2,ExPecto\na1bg,0,0,0,0\n"
            if f.name == "all_models_ref_preds.csv"
            else "placeholder\n"
        )
    cfg = yaml.safe_load(text.replace("/path/to/", f"{res}/"))
    r = run_snakemake(tmp_path, "-n", "--quiet", "rules", config=cfg)
    assert r.returncode == 0, r.stdout[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", r.stdout, re.M))
    layers = set(cfg["evaluate"]["ablation_layers"]) - {cfg["backbone"]["layers"]}
    assert int(jobs["predict_sei"]) == cfg["sei"]["shards"] == 16
    seeds = len(cfg["evaluate"]["seeds"])  # Table 1's models and Table 3's trained rows once per seed
    assert int(jobs["train_gta"]) == len(cfg["evaluate"]["context_bins"]) * seeds + len(layers) == 5 * 3 + 4
    for rule in [
        "mane_tss",
        "merge_features",
        "fetch_annotations",
        "make_prompts",
        "make_targets",
        "import_baseline_predictions",
        "make_table1",
        "make_table2",
        "make_figures",
        "extract_windows",
    ]:
        assert int(jobs[rule]) == 1, rule
    assert int(jobs["fit_baseline"]) == 3  # TSS ridge, ExPecto-style, boosted trees
    # Table 3: four trained controls and the context ablation at the largest N and backbone.layers; learning
    # curves; no oracle (measured expression) and no training-size sweep (train_fractions empty)
    untrained = {"context_ablation", "text_ridge", "text_expecto"}
    assert int(jobs["train_control"]) == 4 * seeds == len(set(cfg["evaluate"]["controls"]) - untrained) * 3
    # the text baselines: Table 3 rows and (text_baselines_in_table1) Table 1 rows, each fitted once
    assert {"text_ridge", "text_expecto"} <= set(cfg["evaluate"]["controls"]) and cfg["evaluate"][
        "text_baselines_in_table1"
    ]
    assert int(jobs["fit_text_baseline"]) == 2
    assert int(jobs["ablate_context"]) == seeds
    for rule in ["make_table3", "plot_learning_curves"]:
        assert int(jobs[rule]) == 1, rule
    assert not {"oracle_diagnostics", "train_gta_subset", "fit_baseline_subset", "make_train_size"} & set(jobs)
    assert not {"make_prompt_control", "train_text_signal"} & set(jobs)  # a simulation's diagnostic, own target
    # the official Sei checkpoint and a hub backbone: no demo model, no GGUF conversion
    assert "make_demo_sei" not in jobs and "convert_backbone" not in jobs and "synthetic_genome" not in jobs


@pytest.mark.workflow
def test_demo_config_dag_has_the_controls_and_the_training_size_sweep(tmp_path):
    """config/config.yaml: Table 3's controls, the oracle (simulated expression) and the sweep, whose
    fraction 1.0 reuses the normal GTA model and baselines."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    r = run_snakemake(tmp_path, "-n", "--quiet", "rules", config=cfg)
    assert r.returncode == 0, r.stdout[-3000:]
    jobs = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", r.stdout, re.M)}
    e = cfg["evaluate"]
    below_one = [f for f in e["train_fractions"] if f < 1]
    assert below_one and len(below_one) < len(e["train_fractions"])  # the demo sweeps, and includes 1.0
    assert jobs["train_gta_subset"] == len(below_one) and jobs["fit_baseline_subset"] == 2 * len(below_one)
    seeds = len(e["seeds"])
    assert seeds == 3 and e["seeds_for"] == "largest"  # Table 1's largest N and Table 3's rows once per seed
    assert jobs["train_gta"] == seeds + len(set(e["context_bins"])) - 1 + len(
        set(e["ablation_layers"]) - {cfg["backbone"]["layers"]}
    )
    assert jobs["train_control"] == len(set(e["controls"]) - {"context_ablation", "text_ridge", "text_expecto"}) * seeds
    assert jobs["ablate_context"] == seeds
    assert jobs["fit_text_baseline"] == 2  # Table 3's text rows (seconds each)
    for rule in ["make_table3", "plot_learning_curves", "oracle_diagnostics", "make_train_size"]:
        assert jobs[rule] == 1, rule
    assert "train_text_signal" not in jobs  # the prompt control is a target of its own


@pytest.mark.workflow
def test_prompt_control_dag_reuses_the_main_run_at_the_configured_text_signal(tmp_path):
    """results/diagnostics/prompt_control.tsv: the demo's text_signal 0 from the main run's models; 0.2 with its
    own targets and GTA, no-prompt and no-backbone models for each seed, and its own baselines."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    r = run_snakemake(tmp_path, "results/diagnostics/prompt_control.tsv", "-n", "--quiet", "rules", config=cfg)
    assert r.returncode == 0, r.stdout[-3000:]
    jobs = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", r.stdout, re.M)}
    seeds = len(cfg["evaluate"]["seeds"])
    assert cfg["evaluate"]["text_signals"] == [0, 0.2] and cfg["expression"]["text_signal"] == 0
    assert jobs["train_gta"] == seeds and jobs["train_control"] == 2 * seeds  # text_signal 0: the main run's
    assert jobs["train_text_signal"] == 3 * seeds  # 0.2: GTA, no_prompt, no_backbone
    assert jobs["make_targets"] == jobs["make_targets_text_signal"] == 1
    assert jobs["fit_baseline"] == jobs["fit_baseline_text_signal"] == 1  # ExPecto-style
    assert jobs["fit_text_baseline"] == jobs["fit_text_baseline_text_signal"] == 2
    assert jobs["make_prompt_control"] == 1
