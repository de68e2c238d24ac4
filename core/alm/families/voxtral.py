"""Voxtral (Mistral): Whisper encoder + Mistral LM, tokenized through mistral-common."""

from ambiscope.core.alm.families import Family, register_family

VOXTRAL = register_family(
    Family(
        name="voxtral",
        model_types=("voxtral",),
        render="template",
        audio_key="base64",
        system_prompt=False,
        end_of_turn="</s>",
        max_audio_seconds=1800.0,
        notes=(
            "Inferred. VoxtralProcessor tokenizes via mistral-common (needs the "
            "mistral-common package), rejects audio tags in plain text and takes audio as "
            "url/path/base64 content parts; roles user/assistant only. Audio is split into "
            "30 s windows, so long clips are accepted."
        ),
    )
)
