# Expression targets: an observed table or the planted-grammar simulation -> targets.tsv with splits.
# Input functions (targets_inputs, targets_outputs, targets_args) are in common.smk.


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
        args=targets_args(),
        seed=config["seed"],
    shell:
        "gta targets --tss {input.tss:q} --features {input.features:q} {params.args} --seed {params.seed:q}"
        " --out {output.targets:q} 2> {log:q}"
