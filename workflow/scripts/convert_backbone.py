"""Rule convert_backbone: GGUF backbone -> safetensors + config + tokenizer (gta.model.backbone.convert_backbone)."""

from gta.model.backbone import convert_backbone
from gta.rule import keys_from, run

run(snakemake, convert_backbone, config_keys=keys_from(snakemake, model="backbone.model"))
