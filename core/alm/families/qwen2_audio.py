"""Qwen2-Audio (7B-Instruct): Whisper-large encoder + Qwen chat LM; the reference family."""

from ambiscope.core.alm.families import Family, register_family

QWEN2_AUDIO = register_family(
    Family(
        name="qwen2_audio",
        model_types=("qwen2_audio",),
        render="text",
        end_of_turn="<|im_end|>",
        audio_encoder="model.audio_tower",
        tiny="ambiscope.core.alm.tiny.qwen2_audio:build",
        verified=True,
        notes=(
            "Template: 'Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\\n' then the text; "
            "every clip is padded to a 30 s Whisper window."
        ),
    )
)
