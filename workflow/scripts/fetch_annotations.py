"""Rule fetch_annotations: tss.tsv -> annotations.jsonl, NCBI or MANE (gta.annotations.fetch_annotations)."""

from gta.annotations import fetch_annotations
from gta.rule import keys_from, run

run(snakemake, fetch_annotations, config_keys=keys_from(snakemake, "annotations"))
