"""Granite Speech (IBM): conformer encoder + Q-former projector + Granite LM.

The chat template (Granite 3.3 instruct's) concatenates ``message['content']`` as a
string, so the audio goes in as the literal ``<|audio|>`` tag the processor expands to one
token per projector output. ``GraniteSpeechFeatureExtractor`` refuses to construct without
torchaudio, which is only there for a mel spectrogram; :func:`load_processor` swaps in a
torch-only extractor computing the same features when torchaudio cannot be imported.
"""

from __future__ import annotations

import functools
from typing import Any

from ambiscope.core.alm.families import Family, register_family

GRANITE_SPEECH = register_family(
    Family(
        name="granite_speech",
        model_types=("granite_speech", "granite_speech_plus"),
        render="placeholder",
        placeholder="<|audio|>",
        pass_sampling_rate=False,
        end_of_turn="<|end_of_text|>",
        audio_encoder="model.encoder",
        auto_class="AutoModelForMultimodalLM",
        processor="ambiscope.core.alm.families.granite_speech:load_processor",
        prepare_model="ambiscope.core.alm.families.granite_speech:prepare_model",
        tiny="ambiscope.core.alm.tiny.granite_speech:build",
        extra="granite_speech",
        verified=True,
        notes=(
            "String user message '<|audio|>' + instruction (Granite 3.3 chat template); "
            "processor(text, audio) without sampling_rate (16 kHz assumed); torchaudio-free "
            "log-mel when torchaudio is missing. Checkpoints with a LoRA adapter "
            "(has_lora_adapter) need peft; the adapter is kept on for every call."
        ),
    )
)


def load_processor(source: str, **kwargs: Any) -> Any:
    """``GraniteSpeechProcessor`` of ``source`` that also works without torchaudio.

    Assembled from the checkpoint's tokenizer, feature extractor config and chat template
    (the processor's own template if the checkpoint has one, else the tokenizer's: the hub
    repos keep it in ``tokenizer_config.json``).
    """
    from transformers import AutoTokenizer, GraniteSpeechProcessor
    from transformers.utils import is_torchaudio_available

    if is_torchaudio_available():
        from transformers import GraniteSpeechFeatureExtractor as extractor_class
    else:
        from ambiscope.core.alm.families._granite_speech_features import (
            TorchGraniteSpeechFeatureExtractor as extractor_class,
        )
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    extractor = extractor_class.from_pretrained(source, **kwargs)
    config, _ = GraniteSpeechProcessor.get_processor_dict(source, **kwargs)
    options = {"audio_token": config["audio_token"]} if "audio_token" in config else {}
    return GraniteSpeechProcessor(
        audio_processor=extractor,
        tokenizer=tokenizer,
        chat_template=config.get("chat_template") or tokenizer.chat_template,
        **options,
    )


def prepare_model(model: Any, source: str, **kwargs: Any) -> None:
    """Keep the checkpoint's LoRA adapter on for every call.

    Granite Speech's adapter is trained for prompts with audio, and
    ``GraniteSpeechForConditionalGeneration.generate`` enables it only when
    ``input_features`` are passed, disabling it otherwise. Encode-once decoding calls
    ``generate`` on a cache prefilled with the audio and passes no features, so it would
    decode with the bare LM on an adapted prefix (and leave the adapter off for later
    scoring passes). Every ambiscope prompt carries audio: the adapter stays enabled and
    ``generate`` is the plain ``GenerationMixin`` one.
    """
    if not getattr(model, "_hf_peft_config_loaded", False):
        return
    from transformers import GenerationMixin

    model.enable_adapters()
    model.generate = functools.partial(GenerationMixin.generate, model)
