"""Hand-crafted audio features: shapes, known signals, and standardisation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.fft import dct

from ambiscope.core.synthetic.augment.features import (
    FEATURE_NAMES,
    FEATURE_SR,
    HOP,
    N_FFT,
    N_MELS,
    chroma,
    clip_features,
    fft_frequencies,
    frame_features,
    frames,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    mfcc,
    nearest_neighbours,
    power_spectrogram,
    standardize,
)

SR = FEATURE_SR


def tone(freq: float, seconds: float = 1.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seed: int, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.2, int(seconds * sr)).astype(np.float32)


def named(vector: np.ndarray) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, vector.tolist(), strict=True))


def test_shapes_and_names() -> None:
    x = tone(440)
    per_frame = frame_features(x, SR)
    assert per_frame.shape == (1 + (len(x) - N_FFT) // HOP, len(FEATURE_NAMES) // 2)
    assert clip_features(x, SR).shape == (70,) == (len(FEATURE_NAMES),)
    assert len(set(FEATURE_NAMES)) == 70
    assert FEATURE_NAMES[0] == "mfcc0_mean" and FEATURE_NAMES[-1] == "rms_std"


def test_mel_scale_and_filterbank() -> None:
    np.testing.assert_allclose(mel_to_hz(hz_to_mel([0.0, 700.0, 4000.0])), [0, 700, 4000])
    assert hz_to_mel(1000.0) == pytest.approx(1000.0, abs=1.0)  # the scale's anchor
    fb = mel_filterbank()
    assert fb.shape == (N_MELS, N_FFT // 2 + 1)
    assert (fb >= 0).all() and (fb.sum(axis=1) > 0).all()
    peaks = fft_frequencies()[fb.argmax(axis=1)]
    assert np.all(np.diff(peaks) >= 0)  # centres rise with the filter index


def test_mfcc_is_the_dct_of_the_log_mel_spectrum() -> None:
    power = power_spectrogram(frames(noise(0)))
    log_mel = 10 * np.log10(np.maximum(power @ mel_filterbank().T, 1e-10))
    np.testing.assert_allclose(mfcc(power), dct(log_mel, norm="ortho", axis=1)[:, :13])


def test_pure_tone_versus_noise() -> None:
    t, n = named(clip_features(tone(440), SR)), named(clip_features(noise(1), SR))
    assert t["centroid_mean"] == pytest.approx(440, rel=0.02)
    assert n["centroid_mean"] == pytest.approx(SR / 4, rel=0.05)  # flat spectrum to nyquist
    assert t["zcr_mean"] == pytest.approx(2 * 440 / SR, rel=0.02)
    assert n["zcr_mean"] == pytest.approx(0.5, abs=0.03)
    assert t["rolloff_mean"] < 600 < n["rolloff_mean"]
    assert t["rms_mean"] == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
    assert t["chroma_A_mean"] == pytest.approx(1.0) and t["chroma_C_mean"] < 0.01
    assert t["contrast3_mean"] > n["contrast3_mean"]  # a peaky band vs a flat one
    # MFCCs: a tone's spectral envelope is far from noise's, two noises are alike
    m = slice(0, 13)
    x_tone, x_n1, x_n2 = (clip_features(s, SR)[m] for s in (tone(440), noise(1), noise(2)))
    assert np.linalg.norm(x_tone - x_n1) > 20 * np.linalg.norm(x_n1 - x_n2)
    assert x_tone[0] < x_n1[0]  # far less total (log) mel energy outside one band


def test_chroma_finds_the_pitch_class() -> None:
    c4 = chroma(power_spectrogram(frames(tone(261.63))))
    assert int(c4.mean(axis=0).argmax()) == 0  # C
    assert chroma(power_spectrogram(frames(np.zeros(4000)))).max() == 0.0  # silence


def test_other_rates_short_and_silent_clips() -> None:
    at8k = named(clip_features(tone(440, sr=8000), 8000))
    assert at8k["centroid_mean"] == pytest.approx(440, rel=0.03)
    short = clip_features(tone(440, seconds=0.01), SR)  # shorter than one frame
    silent = clip_features(np.zeros(SR), SR)
    assert np.isfinite(short).all() and np.isfinite(silent).all()


def test_standardize() -> None:
    X = np.column_stack([np.arange(10.0), np.full(10, 3.0), np.linspace(-5, 50, 10)])
    Z, mu, sd = standardize(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0)[[0, 2]], 1)
    assert (Z[:, 1] == 0).all() and sd[1] == 1.0  # a constant column is 0, not NaN
    Z2, _, _ = standardize(X[:3], mu, sd)  # statistics fitted elsewhere
    np.testing.assert_allclose(Z2, Z[:3])


def test_nearest_neighbours_within_groups() -> None:
    Z = np.array([[0.0], [1.0], [1.5], [10.0], [10.2], [3.0]])
    assert nearest_neighbours(Z, 2)[0] == [1, 2]
    groups = np.array([0, 0, 1, 1, 1, 0])
    nn = nearest_neighbours(Z, 2, groups=groups)
    assert nn[0] == [1, 5] and nn[2] == [3, 4] and nn[3] == [4, 2]
    assert all(i not in row for i, row in enumerate(nn))
    assert nearest_neighbours(Z, 5, groups=np.array([0, 1, 1, 1, 1, 1]))[0] == []
