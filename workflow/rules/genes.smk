# Gene set: MANE Select TSS per gene.


# With features.precomputed the gene table comes from that file instead (rule tss_from_features, sei.smk).
if not config["features"]["precomputed"]:

    rule mane_tss:
        input:
            **fasta_inputs(),
            mane=mane_input(),
        output:
            out="results/genes/tss.tsv",
        log:
            "results/logs/mane_tss.log",
        conda:
            "../../envs/bio.yaml"
        params:
            chromosomes=config["genes"]["chromosomes"],
            max_genes=config["genes"]["max_genes"],
        script:
            "../scripts/mane_tss.py"
