"""Voxtral (Mistral): Whisper encoder + Mistral LM, tokenized through mistral-common."""

from __future__ import annotations

from typing import Any

from ambiscope.core.alm.families import Family, register_family


def load_processor(source: str, **kwargs: Any) -> Any:
    """``VoxtralProcessor`` of ``source`` (its ``tekken.json`` + Whisper feature extractor)
    with a text view of its prompts: see ``_voxtral_processor``. Without it every prompt of
    a clip would run the feature extractor again (mistral-common leaves no text to extend)."""
    from transformers import WhisperFeatureExtractor
    from transformers.utils import is_mistral_common_available

    if not is_mistral_common_available():
        raise ImportError(
            "Voxtral tokenizes through mistral-common (>= 1.11.5, with Pillow); "
            "install it with: pip install 'ambiscope[voxtral]'"
        )
    from ambiscope.core.alm.families._voxtral_processor import (
        SpecialAwareMistralBackend,
        TextViewVoxtralProcessor,
    )

    tokenizer = SpecialAwareMistralBackend.from_pretrained(source, **kwargs)
    extractor = WhisperFeatureExtractor.from_pretrained(source, **kwargs)
    return TextViewVoxtralProcessor(feature_extractor=extractor, tokenizer=tokenizer)


VOXTRAL = register_family(
    Family(
        name="voxtral",
        model_types=("voxtral",),
        # VoxtralProcessor.__call__ takes no audio and rejects [AUDIO] in text: prompts are
        # built only by its apply_chat_template (mistral-common's instruct tokenizer).
        render="template",
        # Audio content parts must be url/path/base64 (MistralCommonBackend turns them into
        # mistral-common audio chunks); arrays are refused.
        audio_key="base64",
        # Tokenizer v7 (Voxtral 2507) rejects a system message next to audio (mistral-common
        # allows it from v13), so the system text goes into the user turn.
        system_prompt=False,
        # The EOS closes an assistant turn; load_processor's tokenizer encodes the string to
        # the special id 2 (plain mistral-common would encode it as the bytes "</s>").
        end_of_turn="</s>",
        audio_encoder="model.audio_tower",
        # mistral-common pads audio to 30 s chunks of 375 tokens; the 32k context holds ~40
        # min, the model card quotes 30 min for transcription.
        max_audio_seconds=1800.0,
        processor="ambiscope.core.alm.families.voxtral:load_processor",
        tiny="ambiscope.core.alm.tiny.voxtral:build",
        extra="voxtral",
        verified=True,
        notes=(
            "Prompt: '<s>[INST][BEGIN_AUDIO]' + 375 x [AUDIO] per 30 s chunk + text + "
            "'[/INST]'; audio padded to 30 s multiples; roles user/assistant only. Needs "
            "ambiscope[voxtral] (mistral-common)."
        ),
    )
)
