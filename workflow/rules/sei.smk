# Sei: per-bin sequence-class features (sharded, resumable) -> results/features/features.h5,
# or, with features.precomputed, the gene table of a given features file.


rule make_demo_sei:
    output:
        checkpoint="results/sei/demo_sei.pth",
        projection="results/sei/demo_projvec.npy",
    log:
        "results/logs/make_demo_sei.log",
    conda:
        "../../envs/torch.yaml"
    params:
        width=config["sei"]["width"],
        n_targets=config["sei"]["n_targets"],
        seed=config["seed"],
    script:
        "../scripts/make_demo_sei.py"


rule predict_sei:
    input:
        **fasta_inputs(),
        tss="results/genes/tss.tsv",
        checkpoint=sei_checkpoint(),
        projection=sei_projection(),
    output:
        out="results/features/shards/{shard}.h5",
    log:
        "results/logs/predict_sei/{shard}.log",
    benchmark:
        "results/benchmarks/predict_sei/{shard}.tsv"
    wildcard_constraints:
        shard=r"\d+-of-\d+",
    conda:
        "../../envs/torch.yaml"
    threads: sei_threads()
    resources:
        gpu=sei_on_gpu(),
    params:
        n_bins=config["window"]["n_bins"],
        bin_size=config["window"]["bin_size"],
        orient=config["window"]["orient"],
        grid=config["window"]["grid"],
        sha256=config["sei"]["sha256"],
        reverse_complement=config["sei"]["reverse_complement"],
        device=config["sei"]["device"],
        dtype=config["sei"]["dtype"],
        batch_size=config["sei"]["batch_size"],
        readers=config["sei"]["readers"],
    script:
        "../scripts/predict_sei.py"


rule merge_features:
    input:
        tss="results/genes/tss.tsv",
        shards=expand("results/features/shards/{shard}.h5", shard=sei_shards()),
    output:
        out="results/features/features.h5",
    log:
        "results/logs/merge_features.log",
    conda:
        "../../envs/gta.yaml"
    params:
        max_mostly_n_fraction=config["window"]["max_mostly_n_fraction"],
    script:
        "../scripts/merge_features.py"


if config["features"]["precomputed"]:

    rule tss_from_features:
        input:
            features=config["features"]["precomputed"],
            mane=mane_input(),
        output:
            out="results/genes/tss.tsv",
        log:
            "results/logs/tss_from_features.log",
        conda:
            "../../envs/gta.yaml"
        params:
            fasta=None if config["genome"]["fasta"] == "synthetic" else config["genome"]["fasta"],
            min_bins=max(config["evaluate"]["context_bins"]),
        script:
            "../scripts/tss_from_features.py"
