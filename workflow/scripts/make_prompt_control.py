"""Rule make_prompt_control: every model at each text_signal of the simulation, the prompt path's positive
control (gta.evaluate.make_prompt_control)."""

from gta.evaluate import make_prompt_control
from gta.rule import keys_from, run

run(
    snakemake,
    make_prompt_control,
    config_keys=keys_from(snakemake, "evaluate"),
    uses=("predictions",),  # the files `rows` names (predictions, simulations): dependencies
)
