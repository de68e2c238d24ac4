"""Gemma 3n: USM audio encoder + Gemma 3n LM (the vision tower is timm's MobileNet-V5)."""

from ambiscope.core.alm.families import Family, register_family

GEMMA3N = register_family(
    Family(
        name="gemma3n",
        model_types=("gemma3n",),
        render="template",
        end_of_turn="<end_of_turn>",
        max_audio_seconds=30.0,
        notes=(
            "Inferred. Gemma3nProcessor(images, text, audio); audio content parts are arrays "
            "or paths; USM feature extractor pads to at most 30 s (max_length=480000)."
        ),
    )
)
