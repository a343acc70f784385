"""Rule make_prompts: annotations.jsonl -> prompts.jsonl, the Figure 4 text per gene (gta.annotations.make_prompts)."""

from gta.annotations import make_prompts
from gta.rule import keys_from, run

run(snakemake, make_prompts, config_keys=keys_from(snakemake, "annotations"))
