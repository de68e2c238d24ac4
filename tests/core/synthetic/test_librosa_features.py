"""The official DiME-Aug features (librosa audio + lexical) on hand-worked signals and text."""

from __future__ import annotations

import numpy as np
import pytest

from ambiscope.core.synthetic.augment import features as ambiscope_features
from ambiscope.core.synthetic.augment.librosa_features import (
    AUDIO_FEATURE_NAMES,
    FEATURE_NAMES,
    LEXICAL_FEATURE_NAMES,
    audio_features,
    clip_features,
    lexical_features,
)

pytest.importorskip("librosa")

SR = 16_000


def two_tones(second_amplitude: float, seconds: float = 4.0, sr: int = SR) -> np.ndarray:
    """0.5 sin(1 kHz) + 0.5 a sin(3 kHz): both on exact STFT bins (2048-point, 16 kHz)."""
    t = np.arange(int(seconds * sr)) / sr
    y = 0.5 * np.sin(2 * np.pi * 1000 * t) + 0.5 * second_amplitude * np.sin(2 * np.pi * 3000 * t)
    return y.astype(np.float32)


def named(vector: np.ndarray) -> dict[str, float]:
    return dict(zip(AUDIO_FEATURE_NAMES, vector.tolist(), strict=True))


@pytest.fixture(scope="module")
def tones() -> dict[float, dict[str, float]]:
    return {a: named(audio_features(two_tones(a), SR)) for a in (0.5, 0.2)}


def test_names_and_shape() -> None:
    assert len(AUDIO_FEATURE_NAMES) == 72 and len(LEXICAL_FEATURE_NAMES) == 10
    assert len(set(FEATURE_NAMES)) == 82
    # per block, every row's mean then every row's SD, in the official order
    assert AUDIO_FEATURE_NAMES[:2] == ("mfcc0_mean", "mfcc1_mean")
    assert AUDIO_FEATURE_NAMES[13] == "mfcc0_std" and AUDIO_FEATURE_NAMES[26] == "chroma_C_mean"
    assert AUDIO_FEATURE_NAMES[50:52] == ("contrast0_mean", "contrast1_mean")
    assert AUDIO_FEATURE_NAMES[64:] == (
        "zcr_mean",
        "zcr_std",
        "rolloff_mean",
        "rolloff_std",
        "centroid_mean",
        "centroid_std",
        "rms_mean",
        "rms_std",
    )
    vector = clip_features(two_tones(0.5, seconds=0.2), SR, "Hi there.")
    assert vector.shape == (82,) and np.isfinite(vector).all()


def test_centroid_and_rolloff_weight_magnitudes(tones: dict[float, dict[str, float]]) -> None:
    # magnitude weighting: (1000 * 1 + 3000 * a) / (1 + a); power weighting would give
    # (1000 + 3000 a^2) / (1 + a^2) = 1400 Hz for a = 0.5 (what ambiscope's own features do)
    assert tones[0.5]["centroid_mean"] == pytest.approx(5000 / 3, rel=0.005)
    assert tones[0.2]["centroid_mean"] == pytest.approx(1600 / 1.2, rel=0.005)
    # 85% roll-off: the 1 kHz tone holds 1 / 1.2 = 83% of the magnitude (< 85%, so the
    # roll-off is at 3 kHz) but 1 / 1.04 = 96% of the power (power roll-off: 1 kHz)
    assert tones[0.2]["rolloff_mean"] == pytest.approx(3000, abs=10)


def test_ambiscope_features_weight_power_instead() -> None:
    framed = ambiscope_features.frames(two_tones(0.5))
    power = ambiscope_features.power_spectrogram(framed)
    assert ambiscope_features.spectral_centroid(power).mean() == pytest.approx(1400, abs=1)
    power = ambiscope_features.power_spectrogram(ambiscope_features.frames(two_tones(0.2)))
    assert ambiscope_features.spectral_rolloff(power).mean() == pytest.approx(1000, abs=20)


def test_zero_crossings_rms_and_resampling(tones: dict[float, dict[str, float]]) -> None:
    # RMS of two sines: sqrt(0.5^2 / 2 + 0.25^2 / 2); a 1 kHz tone crosses zero 2000 times/s
    assert tones[0.5]["rms_mean"] == pytest.approx(np.sqrt(0.15625), rel=0.01)
    t = np.arange(2 * 8000) / 8000
    at_8k = named(audio_features(0.5 * np.sin(2 * np.pi * 1000 * t).astype(np.float32), 8000))
    assert at_8k["zcr_mean"] == pytest.approx(2000 / SR, rel=0.03)  # resampled to 16 kHz first
    assert at_8k["centroid_mean"] == pytest.approx(1000, rel=0.01)
    assert at_8k["rms_mean"] == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_lexical_features_by_hand() -> None:
    # "hello, world! ok?" after strip + lower: 17 chars, 3 words, vowels e o o o, consonant
    # letters h l l w r l d k, words of 6, 6 and 3 characters (punctuation included)
    got = lexical_features("  Hello, World! OK?  ")
    assert got.tolist() == pytest.approx([17, 3, 1, 1, 0, 1, 4 / 17, 8 / 17, 5.0, 0.0])
    assert lexical_features(None).tolist() == [0.0] * 10
    assert lexical_features("   ").tolist() == [0.0] * 10
