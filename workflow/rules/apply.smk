# Using a trained model: predict chosen genes (predict.*), explain single predictions (explain.*) and
# score a VCF's variants (variants.*), each with the model folder of `<section>.model` or, by default,
# the workflow's largest-context model. Input functions are in common.smk.


rule predict_genes:
    input:
        unpack(predict_inputs),
        model=applied_model("predict"),
        checkpoint=sei_checkpoint(),
        projection=sei_projection(),
        mane=mane_input(),
        prompts="results/annotations/prompts.jsonl",
        backbone=backbone_input(),
    output:
        "results/predict/predictions.tsv",
    log:
        "results/logs/predict_genes.log",
    conda:
        "../../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=train_on_gpu(),
    params:
        backbone=backbone_arg,
        genes=predict_genes_arg,
        cache=predict_cache_arg,
        sei=sei_flags(),
        device=config["train"]["device"],
        cell_type=config["annotations"]["cell_type"],
    shell:
        "gta predict --model {input.model:q} --backbone {params.backbone:q} --genes {params.genes}"
        " --fasta {input.fasta:q} --mane {input.mane:q} {params.cache} --prompts {input.prompts:q}"
        " --cell-type {params.cell_type:q} {params.sei} --device {params.device:q} --threads {threads}"
        " --out {output:q} 2> {log:q}"


rule explain_genes:
    input:
        model=applied_model("explain"),
        features=features_path(),
        prompts="results/annotations/prompts.jsonl",
        backbone=backbone_input(),
    output:
        directory("results/explain"),
    log:
        "results/logs/explain_genes.log",
    conda:
        "../../envs/torch.yaml"
    threads: config["train"]["threads"]
    params:
        backbone=backbone_arg,
        genes=quoted_list(config["explain"]["genes"]),
        device=config["train"]["device"],
        label=figure_label(),
    shell:
        "gta explain --model {input.model:q} --backbone {params.backbone:q} --features {input.features:q}"
        " --prompts {input.prompts:q} --genes {params.genes} --label {params.label:q} --device {params.device:q}"
        " --threads {threads} --out-dir {output:q} 2> {log:q}"


rule score_variants:
    input:
        **fasta_inputs(),
        model=applied_model("variants"),
        vcf=variants_vcf(),
        features=features_path(),
        tss="results/genes/tss.tsv",
        prompts="results/annotations/prompts.jsonl",
        checkpoint=sei_checkpoint(),
        projection=sei_projection(),
        backbone=backbone_input(),
    output:
        scores=f"results/variants/chunks/{{chunk}}.{VARIANTS_EXT}",
        counts="results/variants/chunks/{chunk}.counts.tsv",
    log:
        "results/logs/score_variants/{chunk}.log",
    benchmark:
        "results/benchmarks/score_variants/{chunk}.tsv"
    wildcard_constraints:
        chunk=r"\d+-of-\d+",
    conda:
        "../../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=train_on_gpu(),
    params:
        backbone=backbone_arg,
        sei=sei_flags(),
        ref_check=config["variants"]["ref_check"],
        device=config["train"]["device"],
        cell_type=config["annotations"]["cell_type"],
    shell:
        "gta score-variants --model {input.model:q} --backbone {params.backbone:q} --vcf {input.vcf:q}"
        " --features {input.features:q} --tss {input.tss:q} --fasta {input.fasta:q} --prompts {input.prompts:q}"
        " --cell-type {params.cell_type:q} --ref-check {params.ref_check:q} --chunk {wildcards.chunk} {params.sei}"
        " --device {params.device:q} --threads {threads} --out {output.scores:q} --out-counts {output.counts:q}"
        " 2> {log:q}"


rule merge_variant_scores:
    input:
        scores=expand(f"results/variants/chunks/{{chunk}}.{VARIANTS_EXT}", chunk=variant_chunks()),
        counts=expand("results/variants/chunks/{chunk}.counts.tsv", chunk=variant_chunks()),
    output:
        scores=f"results/variants/scores.{VARIANTS_EXT}",
        counts="results/variants/counts.tsv",
    log:
        "results/logs/merge_variant_scores.log",
    conda:
        "../../envs/gta.yaml"
    shell:
        "gta merge-variant-scores --scores {input.scores:q} --counts {input.counts:q} --out {output.scores:q}"
        " --out-counts {output.counts:q} 2> {log:q}"


rule make_demo_vcf:
    input:
        **fasta_inputs(),
        features=features_path(),
        tss="results/genes/tss.tsv",
    output:
        "results/variants/demo.vcf",
    log:
        "results/logs/make_demo_vcf.log",
    conda:
        "../../envs/gta.yaml"
    params:
        per_class=config["variants"]["demo_per_class"],
        seed=config["seed"],
    shell:
        "gta demo-vcf --features {input.features:q} --tss {input.tss:q} --fasta {input.fasta:q}"
        " --per-class {params.per_class:q} --seed {params.seed:q} --out {output:q} 2> {log:q}"


rule validate_variants:
    input:
        **fasta_inputs(),
        scores=f"results/variants/scores.{VARIANTS_EXT}",
        features=features_path(),
        tss="results/genes/tss.tsv",
        checkpoint=sei_checkpoint(),
        projection=sei_projection(),
    output:
        table="results/diagnostics/variant_validation.tsv",
        pairs="results/diagnostics/variant_pairs.tsv",
    log:
        "results/logs/validate_variants.log",
    conda:
        "../../envs/torch.yaml"
    params:
        sei=sei_flags(),
        grammar=config["expression"]["grammar"],
        signal_fraction=config["expression"]["signal_fraction"],
    shell:
        "gta validate-variants --scores {input.scores:q} --features {input.features:q} --tss {input.tss:q}"
        " --fasta {input.fasta:q} {params.sei} --grammar {params.grammar:q}"
        " --signal-fraction {params.signal_fraction:q} --out {output.table:q} --out-pairs {output.pairs:q}"
        " 2> {log:q}"
