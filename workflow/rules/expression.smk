# Expression targets: an observed table or the planted-grammar simulation -> targets.tsv with splits.
# Input functions (targets_inputs, targets_outputs, targets_settings) are in common.smk.


rule make_targets:
    input:
        **targets_inputs(),
    output:
        **targets_outputs(),
    log:
        "results/logs/make_targets.log",
    conda:
        "../../envs/gta.yaml"
    params:
        **targets_settings(),
        seed=config["seed"],
    script:
        "../scripts/make_targets.py"
