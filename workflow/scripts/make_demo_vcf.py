"""Rule make_demo_vcf: the demo's VCF of variants in bins of known grammar roles (gta.demo.variants.make_demo_vcf)."""

from gta.demo.variants import make_demo_vcf
from gta.rule import keys_from, run

run(
    snakemake,
    make_demo_vcf,
    config_keys=keys_from(
        snakemake, per_class="variants.demo_per_class", features="features.precomputed", fasta="genome.fasta"
    ),
    uses=("fai",),  # the FASTA index: a dependency
)
