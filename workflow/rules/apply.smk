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
        out="results/predict/predictions.tsv",
    log:
        "results/logs/predict_genes.log",
    conda:
        "../../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=train_on_gpu(),
    params:
        backbone=backbone_arg,
        genes=predict_genes_param,
        sei=applied_sei(),
        device=config["train"]["device"],
        cell_type=config["annotations"]["cell_type"],
    script:
        "../scripts/predict_genes.py"


rule explain_genes:
    input:
        model=applied_model("explain"),
        features=features_path(),
        tss="results/genes/tss.tsv",
        prompts="results/annotations/prompts.jsonl",
        backbone=backbone_input(),
    output:
        out_dir=directory("results/explain"),
    log:
        "results/logs/explain_genes.log",
    conda:
        "../../envs/torch.yaml"
    threads: config["train"]["threads"]
    params:
        backbone=backbone_arg,
        genes=config["explain"]["genes"],
        device=config["train"]["device"],
        label=figure_label(),
    script:
        "../scripts/explain_genes.py"


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
        out=f"results/variants/chunks/{{chunk}}.{VARIANTS_EXT}",
        out_counts="results/variants/chunks/{chunk}.counts.tsv",
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
        sei=applied_sei(),
        ref_check=config["variants"]["ref_check"],
        device=config["train"]["device"],
        cell_type=config["annotations"]["cell_type"],
    script:
        "../scripts/score_variants.py"


rule merge_variant_scores:
    input:
        scores=expand(f"results/variants/chunks/{{chunk}}.{VARIANTS_EXT}", chunk=variant_chunks()),
        counts=expand("results/variants/chunks/{chunk}.counts.tsv", chunk=variant_chunks()),
    output:
        out=f"results/variants/scores.{VARIANTS_EXT}",
        out_counts="results/variants/counts.tsv",
    log:
        "results/logs/merge_variant_scores.log",
    conda:
        "../../envs/gta.yaml"
    script:
        "../scripts/merge_variant_scores.py"


rule make_demo_vcf:
    input:
        **fasta_inputs(),
        features=features_path(),
        tss="results/genes/tss.tsv",
    output:
        out="results/variants/demo.vcf",
    log:
        "results/logs/make_demo_vcf.log",
    conda:
        "../../envs/gta.yaml"
    params:
        per_class=config["variants"]["demo_per_class"],
        seed=config["seed"],
    script:
        "../scripts/make_demo_vcf.py"


rule validate_variants:
    input:
        **fasta_inputs(),
        scores=f"results/variants/scores.{VARIANTS_EXT}",
        features=features_path(),
        tss="results/genes/tss.tsv",
        checkpoint=sei_checkpoint(),
        projection=sei_projection(),
    output:
        out="results/diagnostics/variant_validation.tsv",
        out_pairs="results/diagnostics/variant_pairs.tsv",
    log:
        "results/logs/validate_variants.log",
    conda:
        "../../envs/torch.yaml"
    params:
        sei=applied_sei(),
        grammar=config["expression"]["grammar"],
        signal_fraction=config["expression"]["signal_fraction"],
    script:
        "../scripts/validate_variants.py"
