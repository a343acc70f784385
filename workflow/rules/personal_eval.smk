# Personal expression, scored (issue 23, parts 2-3): GTA's per-individual predictions (predict_individuals)
# and a PrediXcan-style elastic net on the individuals' dosages, per gene across the same held-out individuals.
# A separate target, not in `rule all`: snakemake --cores 2 results/personal/evaluation.tsv
rule evaluate_individuals:
    input:
        unpack(personal_eval_inputs),
        predictions="results/personal/predictions.parquet",
        tss="results/genes/tss.tsv",
    output:
        out="results/personal/evaluation.tsv",
        out_summary="results/personal/evaluation_summary.tsv",
        out_predictions="results/personal/heldout_predictions.tsv",
        out_figure=f"results/figures/{PERSONAL_FIGURE}",
    log:
        "results/logs/evaluate_individuals.log",
    benchmark:
        "results/benchmarks/evaluate_individuals.tsv"
    conda:
        "../../envs/gta.yaml"
    threads: 1
    params:
        n_bins=config["personal"]["window_bins"] or max(config["evaluate"]["context_bins"]),
        bin_size=config["window"]["bin_size"],
        grid=config["window"]["grid"],
        layout=config["personal"]["layout"],
        test_fraction=config["personal"]["test_fraction"],
        split_seed=config["personal"]["split_seed"],
        l1_ratio=config["personal"]["l1_ratio"],
        cv_folds=config["personal"]["cv_folds"],
        min_individuals=config["personal"]["min_individuals"],
        significance=config["personal"]["significance"],
        label=personal_eval_label(),
    script:
        "../scripts/evaluate_individuals.py"
