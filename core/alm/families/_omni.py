"""Audio+text processors for the Qwen Omni families (Qwen2.5-Omni, Qwen3-Omni).

The Omni processors (``Qwen2_5OmniProcessor``, ``Qwen3OmniMoeProcessor``) take four
sub-processors: an image processor, a video processor, the Whisper feature extractor and the
tokenizer. ``AutoProcessor`` builds all four, and the video processor needs torchvision
("Unrecognized image processor" without it), which an audio workbench neither needs nor can
always install. Everything the processors do for audio (expanding ``<|AUDIO|>`` /
``<|audio_pad|>`` into one token per encoder frame with the model's own length arithmetic,
renaming the mask to ``feature_attention_mask``, the chat template) lives in the processor
class itself and is gated on ``hasattr(self, "image_processor")`` for the vision parts, so a
subclass whose ``__init__`` takes only the feature extractor and the tokenizer is the real
processor minus its vision halves: ``from_pretrained`` then loads exactly those two (and the
checkpoint's chat template) from the hub repo's own files.
"""

from __future__ import annotations

from functools import cache
from typing import Any

# Set by the Omni processors' __init__ from the tokenizer's named special tokens.
_TOKEN_ATTRS = (
    "image_token",
    "audio_token",
    "video_token",
    "image_token_id",
    "audio_token_id",
    "video_token_id",
    "vision_bos_token",
    "vision_eos_token",
    "audio_bos_token",
    "audio_eos_token",
)


@cache
def audio_text_class(processor_class: str) -> type:
    """``processor_class`` (a transformers Omni processor) without image/video processors."""
    import transformers
    from transformers.processing_utils import ProcessorMixin

    base = getattr(transformers, processor_class)

    def __init__(
        self: Any, feature_extractor: Any = None, tokenizer: Any = None, chat_template: Any = None
    ) -> None:
        ProcessorMixin.__init__(self, feature_extractor, tokenizer, chat_template=chat_template)
        for attr in _TOKEN_ATTRS:
            setattr(self, attr, getattr(tokenizer, attr))

    def model_input_names(self: Any) -> list[str]:
        names = [*self.tokenizer.model_input_names, *self.feature_extractor.model_input_names]
        return list(dict.fromkeys([*names, "feature_attention_mask"]))

    return type(
        f"AudioText{processor_class}",
        (base,),
        {
            "__init__": __init__,
            "model_input_names": property(model_input_names),
            "__module__": __name__,
            "__doc__": f"{processor_class} for audio + text only (no image/video processors).",
        },
    )


def load_audio_text(processor_class: str, source: str, **from_pretrained_kwargs: Any) -> Any:
    """The checkpoint's Omni processor with only its feature extractor and tokenizer."""
    return audio_text_class(processor_class).from_pretrained(source, **from_pretrained_kwargs)
