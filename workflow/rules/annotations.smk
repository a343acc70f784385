# Annotations: each gene's NCBI Gene summary (or MANE name) and the Figure 4 prompt text.
# The fetch needs the internet, which compute nodes often lack: it always runs on the submit host.


localrules:
    fetch_annotations,


rule fetch_annotations:
    input:
        tss="results/genes/tss.tsv",
    output:
        out="results/annotations/annotations.jsonl",
    log:
        "results/logs/fetch_annotations.log",
    benchmark:
        "results/benchmarks/fetch_annotations.tsv"
    conda:
        "../../envs/bio.yaml"
    params:
        **entrez_settings(),
        source=config["annotations"]["source"],
    script:
        "../scripts/fetch_annotations.py"


rule make_prompts:
    input:
        annotations="results/annotations/annotations.jsonl",
    output:
        out="results/annotations/prompts.jsonl",
    log:
        "results/logs/make_prompts.log",
    conda:
        "../../envs/gta.yaml"
    params:
        cell_type=config["annotations"]["cell_type"],
    script:
        "../scripts/make_prompts.py"
