"""Qwen2.5-Omni: the text-producing "thinker" of the Omni model (talker and token2wav unused).

``Qwen/Qwen2.5-Omni-7B`` is one checkpoint (``model_type`` ``qwen2_5_omni``) holding the
thinker, the talker and token2wav. The family loads ``Qwen2_5OmniThinkerForConditionalGeneration``
straight from it: the thinker config is read from ``thinker_config`` and only the
``thinker.*`` weights are loaded, so the ~2B parameters of speech output (token2wav kept in
fp32) never reach memory; thinker-only checkpoints (``qwen2_5_omni_thinker``) load the same way.

Positions are 3-D multimodal RoPE with a ``rope_deltas`` the model caches between calls; for
audio (no image/video grid) every position is the plain 1-D index on all three axes and the
delta is 0, and each prefill recomputes the delta (cache length 0), so the shared-prefix
cache continues exactly (see ``tests/core/alm/families/test_omni.py``).
"""

from typing import Any

from ambiscope.core.alm.families import Family, register_family

QWEN2_5_OMNI = register_family(
    Family(
        name="qwen2_5_omni",
        model_types=("qwen2_5_omni", "qwen2_5_omni_thinker"),
        render="template",
        end_of_turn="<|im_end|>",
        audio_encoder="model.audio_tower",
        auto_class="Qwen2_5OmniThinkerForConditionalGeneration",
        processor="ambiscope.core.alm.families.qwen2_5_omni:load_processor",
        tiny="ambiscope.core.alm.tiny.qwen2_5_omni:build",
        verified=True,
        notes=(
            "Loads only the thinker of the full Omni checkpoint; audio+text processor "
            "(no torchvision). The processor pads every clip to the 300 s Whisper window "
            "(the encoder reads only the clip's frames); 25 audio tokens per second. The "
            "Omni 'virtual human' system prompt is only needed for speech output."
        ),
    )
)


def load_processor(source: str, **kwargs: Any) -> Any:
    """``Qwen2_5OmniProcessor`` with only its feature extractor, tokenizer and chat template."""
    from ambiscope.core.alm.families._omni import load_audio_text

    return load_audio_text("Qwen2_5OmniProcessor", source, **kwargs)
