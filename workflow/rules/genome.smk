# Genome: the synthetic demo genome and the per-gene windows.


rule synthetic_genome:
    input:
        mane=mane_input(),
    output:
        out="results/genome/synthetic.fa",
        fai="results/genome/synthetic.fa.fai",
    log:
        "results/logs/synthetic_genome.log",
    benchmark:
        "results/benchmarks/synthetic_genome.tsv"
    conda:
        "../../envs/bio.yaml"
    params:
        chromosomes=config["genes"]["chromosomes"],
        seed=config["genome"]["synthetic_seed"],
    script:
        "../scripts/synthetic_genome.py"


rule extract_windows:
    input:
        **fasta_inputs(),
        tss="results/genes/tss.tsv",
    output:
        out="results/windows/windows.bed",
    log:
        "results/logs/extract_windows.log",
    conda:
        "../../envs/bio.yaml"
    params:
        n_bins=config["window"]["n_bins"],
        bin_size=config["window"]["bin_size"],
        grid=config["window"]["grid"],
    script:
        "../scripts/extract_windows.py"
