# The prompt path's positive control (simulated expression only; not in rule all): targets simulated with
# each evaluate.text_signals (that share of the variance from the text family of the gene's name), GTA, the
# no-prompt and no-backbone controls (each training seed), the ExPecto-style and text baselines on them ->
# results/diagnostics/prompt_control.tsv. The configured expression.text_signal reuses the main run; every
# other has its own targets and models under results/diagnostics/text_signal_{signal}/ (PROMPT_CONTROL_RUN).
# Input functions are in common.smk.

if expression_simulated():

    rule make_targets_text_signal:
        input:
            **targets_inputs(),
        output:
            out=f"{PROMPT_CONTROL_RUN}/expression/targets.tsv",
            simulation_out=f"{PROMPT_CONTROL_RUN}/expression/simulation.tsv",
        log:
            "results/logs/make_targets_text_signal/{signal}.log",
        wildcard_constraints:
            signal=r"\d+(\.\d+)?",
        conda:
            "../../envs/gta.yaml"
        params:
            **text_signal_targets_settings(),
            text_signal=lambda wildcards: float(wildcards.signal),
            seed=config["seed"],
        script:
            "../scripts/make_targets.py"

    rule train_text_signal:
        input:
            features=features_path(),
            targets=f"{PROMPT_CONTROL_RUN}/expression/targets.tsv",
            tss="results/genes/tss.tsv",
            prompts="results/annotations/prompts.jsonl",
            backbone=backbone_input(),
        output:
            model=model_outputs(f"{PROMPT_CONTROL_RUN}/models/{{variant}}{{seed_tag}}"),
            out_history=f"{PROMPT_CONTROL_RUN}/models/{{variant}}{{seed_tag}}/history.tsv",
            out_predictions=f"{PROMPT_CONTROL_RUN}/predictions/{{variant}}{{seed_tag}}.tsv",
        log:
            "results/logs/train_text_signal/{signal}/{variant}{seed_tag}.log",
        benchmark:
            "results/benchmarks/train_text_signal/{signal}/{variant}{seed_tag}.tsv"
        wildcard_constraints:
            signal=r"\d+(\.\d+)?",
            variant="|".join(PROMPT_CONTROL_TRAINED),
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
            control=lambda wildcards: PROMPT_CONTROL_TRAINED[wildcards.variant],
            train=seeded_train_config,
        script:
            "../scripts/train_gta.py"

    rule fit_baseline_text_signal:
        input:
            features=features_path(),
            targets=f"{PROMPT_CONTROL_RUN}/expression/targets.tsv",
            tss="results/genes/tss.tsv",
        output:
            out=f"{PROMPT_CONTROL_RUN}/predictions/{{baseline}}.tsv",
        log:
            "results/logs/fit_baseline_text_signal/{signal}/{baseline}.log",
        wildcard_constraints:
            signal=r"\d+(\.\d+)?",
            baseline="tss_ridge|expecto_style",
        conda:
            "../../envs/gta.yaml"
        script:
            "../scripts/fit_baseline.py"

    rule fit_text_baseline_text_signal:
        input:
            prompts="results/annotations/prompts.jsonl",
            targets=f"{PROMPT_CONTROL_RUN}/expression/targets.tsv",
            features=features_path(),
            tss="results/genes/tss.tsv",
        output:
            out=text_baseline_file("{model}", PROMPT_CONTROL_RUN),
        log:
            "results/logs/fit_text_baseline_text_signal/{signal}/{model}.log",
        wildcard_constraints:
            signal=r"\d+(\.\d+)?",
            model="|".join(TEXT_BASELINES),
        conda:
            "../../envs/gta.yaml"
        script:
            "../scripts/fit_text_baseline.py"

    rule make_prompt_control:
        input:
            predictions=sorted({row[3] for row in prompt_control_rows()}),
        output:
            out=report(
                "results/diagnostics/prompt_control.tsv", caption="../report/diagnostics.rst", category="Diagnostics"
            ),
        log:
            "results/logs/make_prompt_control.log",
        conda:
            "../../envs/gta.yaml"
        params:
            rows=prompt_control_rows(),
            n_boot=config["evaluate"]["n_boot"],
            seed=config["seed"],
        script:
            "../scripts/make_prompt_control.py"
