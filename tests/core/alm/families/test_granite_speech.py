"""Granite Speech: torchaudio-free features and the audio+text processor assembly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from ambiscope.core.alm.families._granite_speech_features import (  # noqa: E402
    TorchGraniteSpeechFeatureExtractor,
)
from ambiscope.core.alm.families.granite_speech import load_processor  # noqa: E402


def _reference_features(wave: np.ndarray, rate=16000, n_fft=512, win=400, hop=160, n_mels=80):
    """Granite's log-mel written out in numpy, independently of torch and transformers.

    torchaudio's MelSpectrogram defaults: centred reflect-padded frames, periodic Hann
    window of ``win`` samples centred in ``n_fft``, power spectrum, HTK triangular filters
    from 0 Hz to Nyquist without normalisation. Then Granite's compression and stacking.
    """
    x = np.pad(wave.astype(np.float64), n_fft // 2, mode="reflect")
    n_frames = 1 + (len(x) - n_fft) // hop
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    window = np.zeros(n_fft)
    window[(n_fft - win) // 2 : (n_fft - win) // 2 + win] = hann
    frames = np.stack([x[i * hop : i * hop + n_fft] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2  # [frames, n_fft // 2 + 1]

    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0, rate // 2, n_fft // 2 + 1)
    edges = hz(np.linspace(mel(0.0), mel(rate / 2), n_mels + 2))
    bank = np.zeros((len(freqs), n_mels))
    for m in range(n_mels):
        rise = (freqs - edges[m]) / (edges[m + 1] - edges[m])
        fall = (edges[m + 2] - freqs) / (edges[m + 2] - edges[m + 1])
        bank[:, m] = np.maximum(0.0, np.minimum(rise, fall))
    logmel = np.log10(np.maximum(power @ bank, 1e-10))
    logmel = np.maximum(logmel, logmel.max() - 8.0) / 4 + 1
    if len(logmel) % 2:
        logmel = logmel[:-1]
    return logmel.reshape(-1, 2 * n_mels)


@pytest.mark.parametrize("seconds", [0.37, 1.0, 2.5])
def test_torch_features_equal_the_reference_formula(seconds: float) -> None:
    rng = np.random.default_rng(3)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    out = TorchGraniteSpeechFeatureExtractor()(wave)
    want = _reference_features(wave)
    got = out["input_features"][0].numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-4)
    # one LM token per 3 of every 15 encoder frames (projector windows), as the parent
    n_tokens = int(np.ceil(((n // 160 + 1) // 2) / 15)) * 3
    assert out["audio_embed_sizes"] == [n_tokens]
    assert out["input_features_mask"].shape == (1, n_tokens)


def test_saves_and_loads_as_the_real_extractor(tmp_path: Path) -> None:
    extractor = TorchGraniteSpeechFeatureExtractor()
    extractor.save_pretrained(tmp_path)
    saved = (tmp_path / "preprocessor_config.json").read_text()
    assert '"feature_extractor_type": "GraniteSpeechFeatureExtractor"' in saved
    again = TorchGraniteSpeechFeatureExtractor.from_pretrained(tmp_path)
    assert again.melspec_kwargs == extractor.melspec_kwargs
    assert again.mel_filters.shape == (257, 80)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from ambiscope.core.alm.tiny.granite_speech import build

    return build(tmp_path_factory.mktemp("granite"), seed=0)


def test_processor_expands_the_audio_tag_like_the_real_processor(tiny: Path) -> None:
    processor = load_processor(str(tiny), local_files_only=True)
    messages = [
        {"role": "system", "content": "You are an expert listener."},
        {"role": "user", "content": "<|audio|>Which emotion?"},
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|start_of_role|>system<|end_of_role|>You are an expert listener.<|end_of_text|>\n"
        "<|start_of_role|>user<|end_of_role|><|audio|>Which emotion?<|end_of_text|>\n"
        "<|start_of_role|>assistant<|end_of_role|>"
    )
    wave = np.zeros(40000, dtype=np.float32)
    batch = processor(text=[text], audio=[wave], return_tensors="pt")
    n_audio = int(batch["input_features_mask"].sum())
    expanded = text.replace("<|audio|>", "<|audio|>" * n_audio)
    want = processor.tokenizer(expanded, add_special_tokens=False)["input_ids"]
    assert batch["input_ids"][0].tolist() == want
    audio_id = processor.tokenizer.convert_tokens_to_ids("<|audio|>")
    assert want.count(audio_id) == n_audio == 27


def test_processor_falls_back_to_the_tokenizer_template(tiny: Path, tmp_path: Path) -> None:
    """The hub repos keep the template in tokenizer_config.json only."""
    import json
    import shutil

    copy = tmp_path / "ckpt"
    shutil.copytree(tiny, copy)
    template = (copy / "chat_template.jinja").read_text()
    (copy / "chat_template.jinja").unlink()
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config["chat_template"] = template
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    processor = load_processor(str(copy), local_files_only=True)
    assert processor.chat_template == processor.tokenizer.chat_template
    assert "<|start_of_role|>" in processor.chat_template
