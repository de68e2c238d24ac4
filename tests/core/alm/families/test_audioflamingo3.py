"""Audio Flamingo 3: auto class, hub chat template and <sound> expansion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from ambiscope.core.alm.families import FAMILIES, build_messages  # noqa: E402
from ambiscope.core.alm.tiny import build_tiny_model  # noqa: E402

FAMILY = FAMILIES.get("audioflamingo3")


@pytest.fixture(scope="module")
def processor(tmp_path_factory):
    from transformers import AutoProcessor

    path: Path = build_tiny_model(tmp_path_factory.mktemp("tiny-af3"), family="audioflamingo3")
    return AutoProcessor.from_pretrained(path)


def _noise(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)


def test_the_auto_class_loads_both_model_types() -> None:
    """One Auto class for Audio Flamingo 3 and Music Flamingo, as the hub card uses."""
    from transformers.models.auto import modeling_auto

    assert FAMILY.auto_class == "AutoModelForSeq2SeqLM"
    names = modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES
    assert names["audioflamingo3"] == "AudioFlamingo3ForConditionalGeneration"
    assert names["musicflamingo"] == "MusicFlamingoForConditionalGeneration"
    assert set(FAMILY.model_types) == {"audioflamingo3", "musicflamingo"}


def test_template_puts_one_sound_before_the_text_whatever_the_order(processor) -> None:
    user = [{"type": "text", "text": "What is it?"}, {"type": "audio", "audio": _noise(1)}]
    text = processor.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
    )
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<sound>What is it?<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.parametrize("seconds", [2.5, 31.0])
def test_sound_expands_to_the_pooled_frame_count(processor, seconds: float) -> None:
    """Text render + processor call (the family's path) equals the HF template path."""
    audio = _noise(seconds)
    messages = build_messages(FAMILY, "Which emotion?", "You are an expert listener.", audio)
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    batch = processor(text=[text], audio=[audio], sampling_rate=16000, return_tensors="pt")
    frames = int(16000 * seconds) // 160
    windows = -(-frames // 3000)
    pooled = ((frames - 1) // 2 + 1 - 2) // 2 + 1
    sound = processor.tokenizer.convert_tokens_to_ids("<sound>")
    assert batch["input_ids"][0].tolist().count(sound) == pooled
    assert tuple(batch["input_features"].shape) == (windows, 128, 3000)
    templated = processor.apply_chat_template(
        messages,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        add_generation_prompt=True,
        processor_kwargs={"sampling_rate": 16000},
    )
    assert torch.equal(templated["input_ids"], batch["input_ids"])
