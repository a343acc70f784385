# Baselines, imported published predictions, and the bootstrap evaluation: Table 1 and Table 2.
# Input functions (table1_rows, gta_table1_files, gta_table2_files, ...) are in common.smk.


rule fit_baseline:
    input:
        features=features_path(),
        targets=TARGETS,
        tss="results/genes/tss.tsv",
    output:
        out="results/predictions/{baseline}.tsv",
    log:
        "results/logs/fit_baseline/{baseline}.log",
    benchmark:
        "results/benchmarks/fit_baseline/{baseline}.tsv"
    wildcard_constraints:
        baseline="tss_ridge|expecto_style|boosted_trees",
    conda:
        "../../envs/gta.yaml"
    params:
        seed=config["seed"],  # the boosted trees' random_state (the ridges ignore it)
    script:
        "../scripts/fit_baseline.py"


rule fit_text_baseline:
    input:
        unpack(text_baseline_inputs),
    output:
        out=text_baseline_file("{model}"),
    log:
        "results/logs/fit_text_baseline/{model}.log",
    benchmark:
        "results/benchmarks/fit_text_baseline/{model}.tsv"
    wildcard_constraints:
        model="|".join(TEXT_BASELINES),
    conda:
        "../../envs/gta.yaml"
    script:
        "../scripts/fit_text_baseline.py"


if config["evaluate"]["baseline_predictions"]:

    rule import_baseline_predictions:
        input:
            csv=config["evaluate"]["baseline_predictions"],
            targets=TARGETS,
            tss="results/genes/tss.tsv",
        output:
            out_dir=directory(IMPORTED),
        log:
            "results/logs/import_baseline_predictions.log",
        conda:
            "../../envs/gta.yaml"
        script:
            "../scripts/import_baseline_predictions.py"


rule make_table1:
    input:
        targets=TARGETS,
        features=features_path(),
        tss="results/genes/tss.tsv",
        predictions=[row[2] for row in table1_rows()],
        simulation=[SIMULATION] if expression_simulated() else [],
        imported=[IMPORTED] if config["evaluate"]["baseline_predictions"] else [],
    output:
        out=report("results/table1.tsv", caption="../report/table1.rst", category="Tables"),
    log:
        "results/logs/make_table1.log",
    conda:
        "../../envs/gta.yaml"
    params:
        rows=table1_rows(),
        simulation=simulation_input,
        imported=imported_input,
        n_boot=config["evaluate"]["n_boot"],
        seed=config["seed"],
    script:
        "../scripts/make_table1.py"


rule make_table2:
    input:
        targets=TARGETS,
        predictions=list(gta_table2_files().values()),
    output:
        out=report("results/table2.tsv", caption="../report/table2.rst", category="Tables"),
    log:
        "results/logs/make_table2.log",
    conda:
        "../../envs/gta.yaml"
    params:
        rows=table2_rows(),
        n_boot=config["evaluate"]["n_boot"],
        seed=config["seed"],
    script:
        "../scripts/make_table2.py"
