# Personal expression (personal.*): each individual's expression predicted per haplotype from a phased VCF
# (predict_individuals, sharded over genes, then merge_individual_predictions), and the demo's simulated
# population whose personal expression is known (simulate_population). Input functions are in common.smk.


rule simulate_population:
    input:
        **fasta_inputs(),
        features=features_path(),
        tss="results/genes/tss.tsv",
        targets=TARGETS,
        checkpoint=sei_checkpoint(),
        projection=sei_projection(),
    output:
        out_vcf=DEMO_POPULATION,
        index=f"{DEMO_POPULATION}.tbi",
        out_expression="results/personal/expression.tsv",
        out_noiseless="results/personal/expression_noiseless.tsv",
    log:
        "results/logs/simulate_population.log",
    benchmark:
        "results/benchmarks/simulate_population.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["train"]["threads"]
    params:
        sei=applied_sei(),
        n_individuals=config["personal"]["n_individuals"],
        seed=config["personal"]["seed"],
        noise_share=config["personal"]["noise_share"],
        signal_fraction=config["expression"]["signal_fraction"],
        grammar=config["expression"]["grammar"],
        genes=config["personal"]["genes"],
    script:
        "../scripts/simulate_population.py"


rule predict_individuals:
    input:
        **fasta_inputs(),
        model=applied_model("personal"),
        vcf=personal_vcf(),
        features=features_path(),
        tss="results/genes/tss.tsv",
        prompts="results/annotations/prompts.jsonl",
        checkpoint=sei_checkpoint(),
        projection=sei_projection(),
        backbone=backbone_input(),
    output:
        out="results/personal/shards/{shard}.parquet",
        out_counts="results/personal/shards/{shard}.counts.tsv",
    log:
        "results/logs/predict_individuals/{shard}.log",
    benchmark:
        "results/benchmarks/predict_individuals/{shard}.tsv"
    wildcard_constraints:
        shard=r"\d+-of-\d+",
    conda:
        "../../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=train_on_gpu(),
    params:
        backbone=backbone_arg,
        sei=applied_sei(),
        samples=config["personal"]["samples"],
        genes=config["personal"]["genes"],
        unphased=config["personal"]["unphased"],
        ref_check=config["personal"]["ref_check"],
        device=config["train"]["device"],
        cell_type=config["annotations"]["cell_type"],
    script:
        "../scripts/predict_individuals.py"


rule merge_individual_predictions:
    input:
        predictions=expand("results/personal/shards/{shard}.parquet", shard=personal_shards()),
        counts=expand("results/personal/shards/{shard}.counts.tsv", shard=personal_shards()),
    output:
        out="results/personal/predictions.parquet",
        out_counts="results/personal/counts.tsv",
    log:
        "results/logs/merge_individual_predictions.log",
    conda:
        "../../envs/gta.yaml"
    script:
        "../scripts/merge_individual_predictions.py"
