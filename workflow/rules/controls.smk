# Table 3: GTA next to the controls a reviewer asks for, on Table 1's test genes and bootstrap. Each
# control is trained (or, for the context ablation, predicted) with the GTA model's settings at the
# largest N and backbone.layers blocks. Input functions (table3_rows, control_args, ...) are in common.smk.


rule train_control:
    input:
        features=features_path(),
        targets=TARGETS,
        prompts="results/annotations/prompts.jsonl",
        backbone=backbone_input(),
    output:
        model=model_outputs(control_model_dir("{control}")),
        history=f"{control_model_dir('{control}')}/history.tsv",
        predictions=control_prediction_file("{control}"),
    log:
        "results/logs/train_control/{control}.log",
    benchmark:
        "results/benchmarks/train_control/{control}.tsv"
    wildcard_constraints:
        control="|".join(TRAINED_CONTROLS),
    conda:
        "../../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=train_on_gpu(),
    params:
        backbone=backbone_arg,
        model_dir=model_folder,
        n_bins=figure_model_key()[0],
        layers=figure_model_key()[1],
        model=model_args(),
        control=control_args,
        train=train_args(),
    shell:
        "gta train --features {input.features:q} --targets {input.targets:q} --prompts {input.prompts:q}"
        " --n-bins {params.n_bins:q} --layers {params.layers:q} --backbone {params.backbone:q} {params.model}"
        " {params.control} {params.train} --threads {threads} --out-model {params.model_dir:q}"
        " --out-predictions {output.predictions:q} --out-history {output.history:q} 2> {log:q}"


rule ablate_context:
    input:
        model=figure_model(),
        features=features_path(),
        targets=TARGETS,
        prompts="results/annotations/prompts.jsonl",
        backbone=backbone_input(),
    output:
        control_prediction_file("context_ablation"),
    log:
        "results/logs/ablate_context.log",
    benchmark:
        "results/benchmarks/ablate_context.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=train_on_gpu(),
    params:
        backbone=backbone_arg,
        keep_bins=config["evaluate"]["ablation_keep_bins"],
        device=config["train"]["device"],
    shell:
        "gta ablate-context --model {input.model:q} --backbone {params.backbone:q} --features {input.features:q}"
        " --targets {input.targets:q} --prompts {input.prompts:q} --keep-bins {params.keep_bins:q}"
        " --device {params.device:q} --threads {threads} --out {output:q} 2> {log:q}"


rule make_table3:
    input:
        targets=TARGETS,
        predictions=[path for _, path in table3_rows()],
    output:
        report("results/table3.tsv", caption="../report/table3.rst", category="Tables"),
    log:
        "results/logs/make_table3.log",
    conda:
        "../../envs/gta.yaml"
    params:
        rows=table3_rows(),
        keep_bins=table3_keep_bins(),
        n_boot=config["evaluate"]["n_boot"],
        seed=config["seed"],
    script:
        "../scripts/make_table3.py"
