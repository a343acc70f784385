"""The GTA model: frozen backbone slice, token alignment, selector and regression head.

    from gta.model import load_backbone, GTA, encode_prompts, count_parameters

Names are imported on first use, so `gta.model.spec` (used by the Snakemake files at parse time)
does not pull in torch.
"""

from .. import lazy_exports

_EXPORTS = {
    "GTA": "gta",
    "count_parameters": "gta",
    "canonical_order": "gta",
    "TokenAlignment": "alignment",
    "class_token_ids": "alignment",
    "SelectorHead": "head",
    "load_backbone": "backbone",
    "convert_backbone": "backbone",
    "encode_prompts": "backbone",
    "backbone_kind": "spec",
    "converted_name": "spec",
    "gguf_file": "spec",
    "packaged_gguf": "spec",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__():
    return sorted(set(globals()) | set(__all__))
