"""Granite Speech (IBM): conformer encoder + Q-former projector + Granite LM."""

from ambiscope.core.alm.families import Family, register_family

GRANITE_SPEECH = register_family(
    Family(
        name="granite_speech",
        model_types=("granite_speech", "granite_speech_plus"),
        render="placeholder",
        placeholder="<|audio|>",
        pass_sampling_rate=False,
        end_of_turn="<|end_of_text|>",
        notes=(
            "Inferred from the model card: string message '<|audio|>' + instruction, "
            "processor(text, audio) without sampling_rate (16 kHz assumed)."
        ),
    )
)
