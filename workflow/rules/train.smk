# GTA training: one model per context length N (Table 1, once per training seed of evaluate.seeds: the
# first keeps the plain name, the others end in _s{seed}) and per backbone depth (Table 2, first seed),
# each a GPU job on GPU configs; then the paper's figures from the largest-context model (first seed).


rule train_gta:
    input:
        features=features_path(),
        targets=TARGETS,
        tss="results/genes/tss.tsv",
        prompts="results/annotations/prompts.jsonl",
        backbone=backbone_input(),
    output:
        model=model_outputs("results/models/gta_n{n}_l{layers}{seed_tag}"),
        out_predictions="results/predictions/gta_n{n}_l{layers}{seed_tag}.tsv",
        out_history="results/models/gta_n{n}_l{layers}{seed_tag}/history.tsv",
    log:
        "results/logs/train_gta/gta_n{n}_l{layers}{seed_tag}.log",
    benchmark:
        "results/benchmarks/train_gta/gta_n{n}_l{layers}{seed_tag}.tsv"
    wildcard_constraints:
        n=r"\d+",
        layers=r"\d+",
        seed_tag=SEED_TAG,
    conda:
        "../../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=train_on_gpu(),
    params:
        backbone=backbone_arg,
        out_model=model_folder,
        n_bins=int_wildcard("n"),
        layers=int_wildcard("layers"),
        model=model_config(),
        train=seeded_train_config,
    script:
        "../scripts/train_gta.py"


rule make_figures:
    input:
        model=figure_model(),
        predictions=gta_prediction_file(*figure_model_key()),
        features=features_path(),
        tss="results/genes/tss.tsv",
        prompts="results/annotations/prompts.jsonl",
        backbone=backbone_input(),
    output:
        [
            report(f"results/figures/{name}", caption="../report/figures.rst", category="Figures")
            for name in FIGURE_FILES
        ],
        out_entropy=report(
            "results/diagnostics/attention_entropy.tsv", caption="../report/diagnostics.rst", category="Diagnostics"
        ),
    log:
        "results/logs/make_figures.log",
    conda:
        "../../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=train_on_gpu(),
    params:
        backbone=backbone_arg,
        label=figure_label(),
        device=config["train"]["device"],
        n_boot=config["evaluate"]["n_boot"],
        seed=config["seed"],
        out_dir=figures_folder,
    script:
        "../scripts/make_figures.py"
