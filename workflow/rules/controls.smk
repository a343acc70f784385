# Table 3: GTA next to the controls a reviewer asks for, on Table 1's test genes and bootstrap. Each
# control is trained (or, for the context ablation, predicted) with the GTA model's settings at the
# largest N and backbone.layers blocks, once per training seed (evaluate.seeds; {seed_tag} is '' for the
# first, _s{seed} for the others). Input functions (table3_rows, control_config, ...) are in common.smk.


rule train_control:
    input:
        features=features_path(),
        targets=TARGETS,
        tss="results/genes/tss.tsv",
        prompts="results/annotations/prompts.jsonl",
        backbone=backbone_input(),
    output:
        model=model_outputs(control_model_dir("{control}", "{seed_tag}")),
        out_history=f"{control_model_dir('{control}', '{seed_tag}')}/history.tsv",
        out_predictions=control_prediction_file("{control}", "{seed_tag}"),
    log:
        "results/logs/train_control/{control}{seed_tag}.log",
    benchmark:
        "results/benchmarks/train_control/{control}{seed_tag}.tsv"
    wildcard_constraints:
        control="|".join(TRAINED_CONTROLS),
        seed_tag=SEED_TAG,
    conda:
        "../../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=train_on_gpu(),
    params:
        backbone=backbone_arg,
        out_model=model_folder,
        n_bins=figure_model_key()[0],
        layers=figure_model_key()[1],
        model=model_config(),
        control=control_config,
        train=seeded_train_config,
    script:
        "../scripts/train_gta.py"


rule ablate_context:
    input:
        model=seed_figure_model,
        features=features_path(),
        targets=TARGETS,
        tss="results/genes/tss.tsv",
        prompts="results/annotations/prompts.jsonl",
        backbone=backbone_input(),
    output:
        out=control_prediction_file("context_ablation", "{seed_tag}"),
    log:
        "results/logs/ablate_context{seed_tag}.log",
    benchmark:
        "results/benchmarks/ablate_context{seed_tag}.tsv"
    wildcard_constraints:
        seed_tag=SEED_TAG,
    conda:
        "../../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=train_on_gpu(),
    params:
        backbone=backbone_arg,
        keep_bins=config["evaluate"]["ablation_keep_bins"],
        device=config["train"]["device"],
    script:
        "../scripts/ablate_context.py"


rule make_table3:
    input:
        targets=TARGETS,
        predictions=[row[1] for row in table3_rows()],
    output:
        out=report("results/table3.tsv", caption="../report/table3.rst", category="Tables"),
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
