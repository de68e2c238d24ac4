"""Phi-4-multimodal-instruct: conformer audio encoder + LoRA-adapted Phi-4-mini LM."""

from ambiscope.core.alm.families import Family, register_family

PHI4_MULTIMODAL = register_family(
    Family(
        name="phi4_multimodal",
        model_types=("phi4_multimodal",),
        render="template",
        end_of_turn="<|end|>",
        notes="Inferred. HF-native Phi4MultimodalProcessor (audio= kwarg, 16 kHz).",
    )
)
