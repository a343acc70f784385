# Genome: the synthetic demo genome and the per-gene windows.


rule synthetic_genome:
    input:
        mane=mane_input(),
    output:
        fasta="results/genome/synthetic.fa",
        fai="results/genome/synthetic.fa.fai",
    log:
        "results/logs/synthetic_genome.log",
    benchmark:
        "results/benchmarks/synthetic_genome.tsv"
    conda:
        "../../envs/bio.yaml"
    params:
        chromosomes=chromosomes_arg(),
        seed=config["genome"]["synthetic_seed"],
    shell:
        "gta synthetic-genome --mane {input.mane:q} --chromosomes {params.chromosomes}"
        " --seed {params.seed:q} --out {output.fasta:q} 2> {log:q}"


rule extract_windows:
    input:
        **fasta_inputs(),
        tss="results/genes/tss.tsv",
    output:
        "results/windows/windows.bed",
    log:
        "results/logs/extract_windows.log",
    conda:
        "../../envs/bio.yaml"
    params:
        n_bins=config["window"]["n_bins"],
        bin_size=config["window"]["bin_size"],
        grid=config["window"]["grid"],
    shell:
        "gta windows --tss {input.tss:q} --fasta {input.fasta:q} --n-bins {params.n_bins:q}"
        " --bin-size {params.bin_size:q} --grid {params.grid:q} --out {output:q} 2> {log:q}"
