"""Rule make_demo_sei: the demo's seeded random Sei checkpoint and projection matrix (gta.demo.sei.make_demo_sei)."""

from gta.demo.sei import make_demo_sei
from gta.rule import keys_from, run

run(snakemake, make_demo_sei, config_keys=keys_from(snakemake, "sei"))
