# GTA: long-range gene expression prediction by Genetic sequence Token Alignment.
# `snakemake --cores 2 results/table1.tsv` runs the embedded demo (config/config.yaml);
# `--configfile config/paper.yaml` the published setting. See README.md.
from snakemake.utils import min_version, validate

min_version("9.0")


# A --configfile replaces the demo config as a whole: keys it leaves out take the schema defaults.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/genes.smk"
include: "workflow/rules/genome.smk"
include: "workflow/rules/sei.smk"
include: "workflow/rules/annotations.smk"
include: "workflow/rules/backbone.smk"
include: "workflow/rules/expression.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/controls.smk"
include: "workflow/rules/diagnostics.smk"
include: "workflow/rules/personal_eval.smk"
include: "workflow/rules/prompt_control.smk"
include: "workflow/rules/apply.smk"
include: "workflow/rules/personal.smk"


rule all:
    default_target: True
    input:
        all_targets(),
