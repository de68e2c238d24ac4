"""Qwen3-Omni (MoE): the text-producing "thinker" of the Omni model (talker/code2wav unused).

``Qwen/Qwen3-Omni-30B-A3B-Instruct`` is one checkpoint (``model_type`` ``qwen3_omni_moe``)
holding the thinker, the talker and code2wav. As for Qwen2.5-Omni the family loads
``Qwen3OmniMoeThinkerForConditionalGeneration`` straight from it (thinker config from
``thinker_config``, only ``thinker.*`` weights), which also loads thinker-only checkpoints
(``qwen3_omni_moe_thinker``, e.g. the Captioner/Thinking variants).

Positions are 3-D (interleaved) multimodal RoPE with a cached ``rope_deltas``; audio-only
prompts get plain 1-D positions on all axes and a zero delta, recomputed at every prefill,
so the shared-prefix cache continues exactly.
"""

from typing import Any

from ambiscope.core.alm.families import Family, register_family

QWEN3_OMNI = register_family(
    Family(
        name="qwen3_omni",
        model_types=("qwen3_omni_moe", "qwen3_omni_moe_thinker"),
        render="template",
        end_of_turn="<|im_end|>",
        audio_encoder="model.audio_tower",
        auto_class="Qwen3OmniMoeThinkerForConditionalGeneration",
        processor="ambiscope.core.alm.families.qwen3_omni:load_processor",
        tiny="ambiscope.core.alm.tiny.qwen3_omni:build",
        verified=True,
        notes=(
            "Loads only the thinker of the full Omni checkpoint; audio+text processor "
            "(no torchvision). Clips are padded to the longest, not to the 300 s window; "
            "13 audio tokens per second of audio (chunks of 100 mel frames)."
        ),
    )
)


def load_processor(source: str, **kwargs: Any) -> Any:
    """``Qwen3OmniMoeProcessor`` with only its feature extractor, tokenizer and chat template."""
    from ambiscope.core.alm.families._omni import load_audio_text

    return load_audio_text("Qwen3OmniMoeProcessor", source, **kwargs)
