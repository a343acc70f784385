# GTA training: one model per context length N (Table 1) and per backbone depth (Table 2), each a
# GPU job on GPU configs; then the paper's figures from the largest-context model.


rule train_gta:
    input:
        features=features_path(),
        targets=TARGETS,
        prompts="results/annotations/prompts.jsonl",
        backbone=backbone_input(),
    output:
        model=model_outputs("results/models/gta_n{n}_l{layers}"),
        predictions="results/predictions/gta_n{n}_l{layers}.tsv",
        history="results/models/gta_n{n}_l{layers}/history.tsv",
    log:
        "results/logs/train_gta/gta_n{n}_l{layers}.log",
    benchmark:
        "results/benchmarks/train_gta/gta_n{n}_l{layers}.tsv"
    wildcard_constraints:
        n=r"\d+",
        layers=r"\d+",
    conda:
        "../../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=train_on_gpu(),
    params:
        backbone=backbone_arg,
        model_dir=model_folder,
        model=model_args(),
        train=train_args(),
    shell:
        "gta train --features {input.features:q} --targets {input.targets:q} --prompts {input.prompts:q}"
        " --n-bins {wildcards.n} --layers {wildcards.layers} --backbone {params.backbone:q} {params.model}"
        " {params.train} --threads {threads} --out-model {params.model_dir:q}"
        " --out-predictions {output.predictions:q} --out-history {output.history:q} 2> {log:q}"


rule make_figures:
    input:
        model=figure_model(),
        predictions=gta_prediction_file(*figure_model_key()),
        features=features_path(),
        prompts="results/annotations/prompts.jsonl",
        backbone=backbone_input(),
    output:
        [
            report(f"results/figures/{name}", caption="../report/figures.rst", category="Figures")
            for name in FIGURE_FILES
        ],
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
    shell:
        "gta figures --model {input.model:q} --backbone {params.backbone:q} --features {input.features:q}"
        " --predictions {input.predictions:q} --prompts {input.prompts:q} --label {params.label:q}"
        " --device {params.device:q} --threads {threads} --n-boot {params.n_boot:q} --seed {params.seed:q}"
        " --out-dir results/figures 2> {log:q}"
