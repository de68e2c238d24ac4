"""Qwen2.5-Omni: the text-producing "thinker" of the Omni model (its talker is not used)."""

from ambiscope.core.alm.families import Family, register_family

QWEN2_5_OMNI = register_family(
    Family(
        name="qwen2_5_omni",
        model_types=("qwen2_5_omni", "qwen2_5_omni_thinker"),
        render="template",
        end_of_turn="<|im_end|>",
        submodule="thinker",
        encode_once=False,
        notes=(
            "Inferred. Text comes from model.thinker; 3-D multimodal RoPE with cached "
            "rope_deltas. The Omni system prompt is recommended by the model card for audio "
            "output only."
        ),
    )
)
