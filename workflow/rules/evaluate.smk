# Baselines, imported published predictions, and the bootstrap evaluation: Table 1 and Table 2.
# Input functions (table1_rows, gta_table1_files, gta_table2_files, ...) are in common.smk.


rule fit_baseline:
    input:
        features=features_path(),
        targets=TARGETS,
        tss="results/genes/tss.tsv",
    output:
        "results/predictions/{baseline}.tsv",
    log:
        "results/logs/fit_baseline/{baseline}.log",
    benchmark:
        "results/benchmarks/fit_baseline/{baseline}.tsv"
    wildcard_constraints:
        baseline="tss_ridge|expecto_style",
    conda:
        "../../envs/gta.yaml"
    shell:
        "gta baseline --model {wildcards.baseline} --features {input.features:q} --targets {input.targets:q}"
        " --tss {input.tss:q} --out {output:q} 2> {log:q}"


if config["evaluate"]["baseline_predictions"]:

    rule import_baseline_predictions:
        input:
            csv=config["evaluate"]["baseline_predictions"],
            targets=TARGETS,
            tss="results/genes/tss.tsv",
        output:
            list(imported_prediction_files().values()),
        log:
            "results/logs/import_baseline_predictions.log",
        conda:
            "../../envs/gta.yaml"
        shell:
            "gta import-predictions --csv {input.csv:q} --targets {input.targets:q} --tss {input.tss:q}"
            " --out-dir results/predictions 2> {log:q}"


rule make_table1:
    input:
        targets=TARGETS,
        features=features_path(),
        predictions=[path for _, _, path in table1_rows()],
        simulation=[SIMULATION] if expression_simulated() else [],
    output:
        report("results/table1.tsv", caption="../report/table1.rst", category="Tables"),
    log:
        "results/logs/make_table1.log",
    conda:
        "../../envs/gta.yaml"
    params:
        rows=rows_arg(table1_rows()),
        simulation=f"--simulation {SIMULATION}" if expression_simulated() else "",
        n_boot=config["evaluate"]["n_boot"],
        seed=config["seed"],
    shell:
        "gta table1 --targets {input.targets:q} --features {input.features:q} {params.rows} {params.simulation}"
        " --n-boot {params.n_boot:q} --seed {params.seed:q} --out {output:q} 2> {log:q}"


rule make_table2:
    input:
        targets=TARGETS,
        predictions=list(gta_table2_files().values()),
    output:
        report("results/table2.tsv", caption="../report/table2.rst", category="Tables"),
    log:
        "results/logs/make_table2.log",
    conda:
        "../../envs/gta.yaml"
    params:
        rows=rows_arg(gta_table2_files().items()),
        n_boot=config["evaluate"]["n_boot"],
        seed=config["seed"],
    shell:
        "gta table2 --targets {input.targets:q} {params.rows} --n-boot {params.n_boot:q} --seed {params.seed:q}"
        " --out {output:q} 2> {log:q}"
