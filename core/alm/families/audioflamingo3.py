"""Audio Flamingo 3 (NVIDIA) and Music Flamingo: Whisper-style encoder + Qwen2.5 LM."""

from ambiscope.core.alm.families import Family, register_family

AUDIOFLAMINGO3 = register_family(
    Family(
        name="audioflamingo3",
        model_types=("audioflamingo3", "musicflamingo"),
        # The template collapses the audio part to ONE <sound> before the text whatever the
        # part order; rendering to text keeps the assistant prefix byte-exact.
        render="text",
        end_of_turn="<|im_end|>",
        audio_encoder="model.audio_tower",
        # The only Auto classes mapping both model types in transformers 5.x are
        # AutoModelForSeq2SeqLM (what the hub card uses) and AutoModelForPreTraining; both
        # give the decoder-only *ForConditionalGeneration. Neither is in the multimodal-LM map.
        auto_class="AutoModelForSeq2SeqLM",
        # AudioFlamingo3Processor cuts audio into 30 s windows up to max_audio_len=600 s
        # (Music Flamingo: 1200 s); the backend's default would be the 30 s window.
        max_audio_seconds=600.0,
        tiny="ambiscope.core.alm.tiny.audioflamingo3:build",
        verified=True,
        notes=(
            "Template: default system prompt, then '<|im_start|>user\\n<sound>' + text; the "
            "processor expands <sound> to one token per pooled encoder frame (~25 per second) "
            "over 30 s windows, at most 600 s (Music Flamingo: 1200 s)."
        ),
    )
)
