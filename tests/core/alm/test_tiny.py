"""The tiny offline Qwen2-Audio checkpoint loads through the real transformers entry points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ambiscope.core.alm.tiny import build_tiny_model  # noqa: E402
from ambiscope.core.alm.tiny.qwen2_audio import SPECIAL_TOKENS  # noqa: E402


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path):
    processor = transformers.AutoProcessor.from_pretrained(tiny_model_dir)
    model = transformers.AutoModelForMultimodalLM.from_pretrained(tiny_model_dir).eval()
    return processor, model


def test_loads_back_as_qwen2_audio(loaded) -> None:
    processor, model = loaded
    assert model.config.model_type == "qwen2_audio"
    assert type(model).__name__ == "Qwen2AudioForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2AudioProcessor"
    assert processor.feature_extractor.sampling_rate == 16000
    assert processor.feature_extractor.feature_size == model.config.audio_config.num_mel_bins
    assert model.config.text_config.vocab_size == len(processor.tokenizer)
    audio_id = processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    assert model.config.audio_token_id == audio_id


def test_tokenizer_has_qwen_specials_and_single_token_answers(loaded) -> None:
    tok = loaded[0].tokenizer
    for special in SPECIAL_TOKENS:
        assert tok.encode(special, add_special_tokens=False) == [tok.convert_tokens_to_ids(special)]
    for word in ("Yes", " Yes", "No", " No", "sad", "neutral", "happy", "angry"):
        assert len(tok.encode(word, add_special_tokens=False)) == 1, word
    text = 'Final answer: sad {"sad": 0.5}'
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_chat_template_places_audio_like_qwen2_audio(loaded) -> None:
    processor = loaded[0]
    messages = [
        {
            "role": "user",
            "content": [{"type": "audio", "audio": np.zeros(160)}, {"type": "text", "text": "Hi"}],
        }
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nAudio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_generates_tokens_from_audio(loaded) -> None:
    processor, model = loaded
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32)
    text = "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nWhat emotion?"
    inputs = processor(text=[text], audio=[audio], sampling_rate=16000, return_tensors="pt")
    # 2 s -> 200 mel frames -> 50 audio positions after the encoder's two stride-2 stages.
    assert int((inputs["input_ids"] == model.config.audio_token_id).sum()) == 50
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_deterministic_for_a_seed(tmp_path: Path, tiny_model_dir: Path) -> None:
    again = build_tiny_model(tmp_path / "again", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name
    assert (other / "model.safetensors").read_bytes() != (again / "model.safetensors").read_bytes()
