"""Qwen3-Omni (MoE): the text-producing "thinker" of the Omni model."""

from ambiscope.core.alm.families import Family, register_family

QWEN3_OMNI = register_family(
    Family(
        name="qwen3_omni",
        model_types=("qwen3_omni_moe", "qwen3_omni_moe_thinker"),
        render="template",
        end_of_turn="<|im_end|>",
        submodule="thinker",
        encode_once=False,
        notes="Inferred; same structure as Qwen2.5-Omni (thinker, 3-D RoPE).",
    )
)
