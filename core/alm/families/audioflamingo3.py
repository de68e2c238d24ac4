"""Audio Flamingo 3 (NVIDIA) and Music Flamingo: Whisper encoder + Qwen2.5 LM."""

from ambiscope.core.alm.families import Family, register_family

AUDIOFLAMINGO3 = register_family(
    Family(
        name="audioflamingo3",
        model_types=("audioflamingo3", "musicflamingo"),
        render="template",
        end_of_turn="<|im_end|>",
        auto_class="AutoModelForSeq2SeqLM",
        max_audio_seconds=600.0,
        notes=(
            "Inferred. Registered under AutoModelForSeq2SeqLM in 5.24 (decoder-only Qwen2.5 "
            "LM behind it); processor windows audio in 30 s chunks up to max_audio_len=600 s."
        ),
    )
)
