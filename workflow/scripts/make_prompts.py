"""Rule make_prompts: annotations.jsonl -> prompts.jsonl, the Figure 4 text per gene (gta.annotations.make_prompts)."""

from gta.annotations import make_prompts
from gta.rule import keys_from, run

run(
    snakemake,
    make_prompts,
    config_keys=keys_from(snakemake, "annotations"),
    annotations=snakemake.input[0],
    out=snakemake.output[0],
    cell_type=snakemake.params.cell_type,
)
