"""An audio+text ``Phi4MultimodalProcessor`` that never touches the image processor.

``Phi4MultimodalProcessor`` takes (image_processor, audio_processor, tokenizer), and its
image processor module imports torchvision at import time; ``ProcessorMixin`` also rejects
``image_processor=None``. The processor's attributes come from its ``__init__`` signature,
so a subclass whose ``__init__`` names only the audio processor and the tokenizer is a
complete processor without images: same audio expansion (``replace_audio_token``), same
tokenizer call, same outputs for audio+text inputs.

Imported lazily by the family's processor assembly and the tiny builder.
"""

from __future__ import annotations

from typing import Any

from transformers.models.phi4_multimodal.processing_phi4_multimodal import (
    Phi4MultimodalProcessor,
)
from transformers.processing_utils import ProcessorMixin

__all__ = ["Phi4MultimodalAudioProcessor"]


class Phi4MultimodalAudioProcessor(Phi4MultimodalProcessor):
    """``Phi4MultimodalProcessor`` minus its image processor (no torchvision needed)."""

    def __init__(self, audio_processor: Any, tokenizer: Any, **kwargs: Any) -> None:
        self.image_token = tokenizer.image_token
        self.image_token_id = tokenizer.image_token_id
        self.audio_token = tokenizer.audio_token
        self.audio_token_id = tokenizer.audio_token_id
        ProcessorMixin.__init__(self, audio_processor, tokenizer, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Saved as the real processor class, so written checkpoints keep the hub layout."""
        output = super().to_dict()
        output["processor_class"] = Phi4MultimodalProcessor.__name__
        return output
