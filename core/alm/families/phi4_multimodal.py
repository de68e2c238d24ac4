"""Phi-4-multimodal-instruct: conformer audio encoder + Phi-4-mini LM (HF-native format).

The HF-native conversion (``model_type`` ``phi4_multimodal``; on the hub as a revision
of ``microsoft/Phi-4-multimodal-instruct``, its main branch being the remote-code
``phi4mm``) keeps the original string-content chat template, so the audio goes in as the
tokenizer's ``audio_token`` (``<|endoftext11|>``) inside the user string, expanded by the
processor to one token per audio embedding. The processor's image half imports
torchvision, so :func:`load_processor` assembles an audio+text one. The speech LoRA of the
real checkpoint lives in its ``speech-lora`` subfolder and is applied by
``model.load_adapter(..., adapter_kwargs={"subfolder": "speech-lora"})`` (needs peft).
"""

from __future__ import annotations

from typing import Any

from ambiscope.core.alm.families import Family, register_family

SPEECH_LORA = "speech-lora"

PHI4_MULTIMODAL = register_family(
    Family(
        name="phi4_multimodal",
        model_types=("phi4_multimodal",),
        render="placeholder",
        placeholder="<|endoftext11|>",
        end_of_turn="<|end|>",
        audio_encoder="model.embed_tokens_extend.audio_embed.encoder",
        auto_class="AutoModelForMultimodalLM",
        processor="ambiscope.core.alm.families.phi4_multimodal:load_processor",
        prepare_model="ambiscope.core.alm.families.phi4_multimodal:prepare_model",
        tiny="ambiscope.core.alm.tiny.phi4_multimodal:build",
        extra="phi4_multimodal",
        verified=True,
        notes=(
            "HF-native Phi4MultimodalForCausalLM (not the remote-code 'phi4mm' main branch). "
            "String user message '<|endoftext11|>' + instruction ('<|user|>...<|end|>"
            "<|assistant|>'); audio+text processor without torchvision; the checkpoint's "
            "speech LoRA (speech-lora/, needs peft) is loaded and activated."
        ),
    )
)


def load_processor(source: str, **kwargs: Any) -> Any:
    """Audio+text ``Phi4MultimodalProcessor`` of ``source`` (no image processor, no torchvision).

    Tokenizer, feature extractor config and chat template (the processor's own, else the
    tokenizer's) come from the checkpoint.
    """
    from transformers import AutoTokenizer, Phi4MultimodalFeatureExtractor

    from ambiscope.core.alm.families._phi4_multimodal_processor import (
        Phi4MultimodalAudioProcessor,
    )

    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    extractor = Phi4MultimodalFeatureExtractor.from_pretrained(source, **kwargs)
    config, _ = Phi4MultimodalAudioProcessor.get_processor_dict(source, **kwargs)
    return Phi4MultimodalAudioProcessor(
        audio_processor=extractor,
        tokenizer=tokenizer,
        chat_template=config.get("chat_template") or tokenizer.chat_template,
    )


def prepare_model(model: Any, source: str, **kwargs: Any) -> None:
    """Load and activate the speech LoRA the checkpoint keeps in ``speech-lora/``.

    ``from_pretrained`` loads the base weights only; the model card then calls
    ``load_adapter(..., adapter_kwargs={"subfolder": "speech-lora"})`` and
    ``set_adapter("speech")``. Without it audio prompts run on the un-adapted LM.
    Checkpoints without that folder (the tiny one) are left as they are.
    """
    from transformers.utils import cached_file, is_peft_available

    files = {k: kwargs[k] for k in ("revision", "local_files_only") if k in kwargs}
    config = cached_file(
        source,
        "adapter_config.json",
        subfolder=SPEECH_LORA,
        _raise_exceptions_for_missing_entries=False,
        **files,
    )
    if config is None:
        return
    if not is_peft_available():
        raise ImportError(
            f"{source} keeps its speech LoRA in {SPEECH_LORA}/, which needs peft: "
            "pip install 'ambiscope[phi4_multimodal]'"
        )
    model.load_adapter(
        source, adapter_name="speech", adapter_kwargs={"subfolder": SPEECH_LORA, **files}
    )
    model.set_adapter("speech")
