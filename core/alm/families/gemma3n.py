"""Gemma 3n: USM audio encoder + Gemma 3n LM (the vision tower is timm's MobileNet-V5).

``Gemma3nProcessor`` expands each audio content part to ``<start_of_audio>`` + 188
``<audio_soft_token>`` + ``<end_of_audio>`` whatever the clip's length (the feature
extractor pads/cuts to 30 s). Its image half is a SigLIP image processor that
``AutoProcessor`` resolves to the PIL implementation when torchvision is missing, so the
stock processor is already audio-capable without torchvision. The model is not: its vision
tower is a ``TimmWrapperModel``, which transformers builds only when timm and torchvision
import, so the checkpoint (tiny or real) needs ``ambiscope[gemma3n]``.
"""

from ambiscope.core.alm.families import Family, register_family

GEMMA3N = register_family(
    Family(
        name="gemma3n",
        model_types=("gemma3n",),
        render="template",
        end_of_turn="<end_of_turn>",
        audio_encoder="model.audio_tower",
        auto_class="AutoModelForMultimodalLM",
        max_audio_seconds=30.0,
        tiny="ambiscope.core.alm.tiny.gemma3n:build",
        extra="gemma3n",
        verified=True,
        notes=(
            "HF chat format (audio content part first, system text folded into the first "
            "user turn by the template); 188 audio soft tokens per clip, audio cut at 30 s; "
            "the model needs timm (+ torchvision) for its vision tower."
        ),
    )
)
