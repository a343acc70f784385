"""Rule convert_backbone: GGUF backbone -> safetensors + config + tokenizer (gta.model.backbone.convert_backbone)."""

from gta.model.backbone import convert_backbone
from gta.rule import run

run(
    snakemake,
    convert_backbone,
    model=snakemake.input.gguf,
    out=snakemake.output[0],
)
