# Diagnostics a user can read next to the tables: learning curves of every trained model, the
# simulation's oracle per visible context, and a training-set-size sweep (GTA and both baselines on
# nested seeded fractions of the training genes). Input functions are in common.smk.


rule plot_learning_curves:
    input:
        list(learning_curve_histories().values()),
    output:
        out=report("results/figures/learning_curves.png", caption="../report/diagnostics.rst", category="Diagnostics"),
    log:
        "results/logs/plot_learning_curves.log",
    conda:
        "../../envs/gta.yaml"
    params:
        history=learning_curve_histories(),
        label=figure_label(),
    script:
        "../scripts/plot_learning_curves.py"


if expression_simulated():

    rule oracle_diagnostics:
        input:
            features=features_path(),
            targets=TARGETS,
            tss="results/genes/tss.tsv",
        output:
            out=report("results/diagnostics/oracle.tsv", caption="../report/diagnostics.rst", category="Diagnostics"),
        log:
            "results/logs/oracle_diagnostics.log",
        conda:
            "../../envs/gta.yaml"
        params:
            visible_bins=sorted(int(n) for n in config["evaluate"]["context_bins"]),
            grammar=config["expression"]["grammar"],
        script:
            "../scripts/oracle_diagnostics.py"


rule train_gta_subset:
    input:
        features=features_path(),
        targets=TARGETS,
        tss="results/genes/tss.tsv",
        prompts="results/annotations/prompts.jsonl",
        backbone=backbone_input(),
    output:
        model=model_outputs("results/models/gta_n{n}_l{layers}_f{fraction}"),
        out_history="results/models/gta_n{n}_l{layers}_f{fraction}/history.tsv",
        out_predictions="results/predictions/train_size/gta_n{n}_l{layers}_f{fraction}.tsv",
    log:
        "results/logs/train_gta_subset/gta_n{n}_l{layers}_f{fraction}.log",
    benchmark:
        "results/benchmarks/train_gta_subset/gta_n{n}_l{layers}_f{fraction}.tsv"
    wildcard_constraints:
        n=r"\d+",
        layers=r"\d+",
        fraction=r"0?\.\d+|\d(\.\d+)?e-\d+",
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
        train=subset_train_config,
    script:
        "../scripts/train_gta.py"


rule fit_baseline_subset:
    input:
        features=features_path(),
        targets=TARGETS,
        tss="results/genes/tss.tsv",
    output:
        out="results/predictions/train_size/{baseline}_f{fraction}.tsv",
    log:
        "results/logs/fit_baseline_subset/{baseline}_f{fraction}.log",
    benchmark:
        "results/benchmarks/fit_baseline_subset/{baseline}_f{fraction}.tsv"
    wildcard_constraints:
        baseline="tss_ridge|expecto_style",
        fraction=r"0?\.\d+|\d(\.\d+)?e-\d+",
    conda:
        "../../envs/gta.yaml"
    params:
        train_fraction=lambda wildcards: float(wildcards.fraction),
        seed=train_seeds()[0],  # the subset of train_gta_subset (whose TrainConfig.seed is the first seed)
    script:
        "../scripts/fit_baseline.py"


rule make_train_size:
    input:
        targets=TARGETS,
        predictions=[path for _, _, path in train_size_rows()],
    output:
        out_table=report(
            "results/diagnostics/train_size.tsv", caption="../report/diagnostics.rst", category="Diagnostics"
        ),
        out_figure=report("results/figures/train_size.png", caption="../report/diagnostics.rst", category="Diagnostics"),
    log:
        "results/logs/make_train_size.log",
    conda:
        "../../envs/gta.yaml"
    params:
        rows=train_size_rows(),
        label=figure_label(),
        n_boot=config["evaluate"]["n_boot"],
        seed=train_seeds()[0],  # bootstrap and subsets: the subsets of the first training seed's models
    script:
        "../scripts/make_train_size.py"
