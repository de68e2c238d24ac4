"""Phi-4-multimodal: the audio+text processor equals the real processor on audio+text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from ambiscope.core.alm.families.phi4_multimodal import load_processor  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from ambiscope.core.alm.tiny.phi4_multimodal import build

    return build(tmp_path_factory.mktemp("phi4"), seed=0)


def _real_processor(assembled):
    """The library's Phi4MultimodalProcessor over the same parts, with an inert image
    processor (its own one imports torchvision, which this suite must not need)."""
    from transformers import Phi4MultimodalProcessor
    from transformers.image_processing_utils import ImageProcessingMixin

    return Phi4MultimodalProcessor(
        image_processor=ImageProcessingMixin(),
        audio_processor=assembled.audio_processor,
        tokenizer=assembled.tokenizer,
        chat_template=assembled.chat_template,
    )


def test_audio_text_inputs_equal_the_real_processor(tiny: Path) -> None:
    processor = load_processor(str(tiny), local_files_only=True)
    assert not hasattr(processor, "image_processor")
    messages = [
        {"role": "system", "content": "You are an expert listener."},
        {"role": "user", "content": "<|endoftext11|>Which emotion?"},
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|system|>You are an expert listener.<|end|>"
        "<|user|><|endoftext11|>Which emotion?<|end|><|assistant|>"
    )
    wave = (0.1 * np.random.default_rng(0).standard_normal(37000)).astype(np.float32)
    ours = processor(text=[text], audio=[wave], sampling_rate=16000, return_tensors="pt")
    real = _real_processor(processor)(
        text=[text], audio=[wave], sampling_rate=16000, return_tensors="pt"
    )
    assert set(ours) == set(real)
    for key in ours:
        torch.testing.assert_close(ours[key], real[key], rtol=0, atol=0)
    n_audio = int(ours["audio_embed_sizes"][0])
    assert int((ours["input_ids"] == processor.audio_token_id).sum()) == n_audio > 0


def test_saved_with_the_real_class_names(tiny: Path) -> None:
    saved = json.loads((tiny / "processor_config.json").read_text())
    assert saved["processor_class"] == "Phi4MultimodalProcessor"
    assert saved["audio_processor"]["feature_extractor_type"] == "Phi4MultimodalFeatureExtractor"
    tokenizer = json.loads((tiny / "tokenizer_config.json").read_text())
    assert tokenizer["audio_token"] == "<|endoftext11|>"
    assert tokenizer["image_token"] == "<|endoftext10|>"
