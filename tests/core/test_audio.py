"""Tests for ambiscope.core.audio: loading, converting and writing the clips ambiscope audits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ambiscope.core.audio import (
    AudioError,
    LoadedAudio,
    audio_info,
    load_audio,
    resample,
    to_mono,
    waveform_envelope,
    write_wav,
)


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    """A float32 test tone."""
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(x: np.ndarray, sr: int) -> float:
    """Frequency of the strongest FFT bin (Hann-windowed to limit leakage)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


# --- resample / to_mono ---------------------------------------------------------------------


def test_resample_22050_to_16000_keeps_length_ratio_and_frequency() -> None:
    x = sine(440.0, 22050, 1.0)
    y = resample(x, 22050, 16000)
    assert y.dtype == np.float32
    assert len(y) == 16000
    assert abs(peak_frequency(y, 16000) - 440.0) <= 1.0


def test_resample_upsampling_and_multichannel() -> None:
    stereo = np.stack([sine(300.0, 8000, 0.5), sine(600.0, 8000, 0.5)], axis=1)
    y = resample(stereo, 8000, 16000)
    assert y.shape == (8000, 2)
    assert abs(peak_frequency(y[:, 0], 16000) - 300.0) <= 2.0
    assert abs(peak_frequency(y[:, 1], 16000) - 600.0) <= 2.0


def test_resample_same_rate_returns_float32_copy() -> None:
    x = np.array([0.1, -0.2, 0.3], dtype=np.float64)
    y = resample(x, 16000, 16000)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x, rtol=1e-6)
    y[0] = 9.0
    assert x[0] == pytest.approx(0.1)


@pytest.mark.parametrize(("sr_in", "sr_out"), [(0, 16000), (16000, -1), (44100.0, 16000)])
def test_resample_rejects_bad_rates(sr_in: int, sr_out: int) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        resample(np.zeros(10, dtype=np.float32), sr_in, sr_out)


def test_to_mono_averages_channels() -> None:
    stereo = np.array([[1.0, 0.0], [0.5, -0.5], [-1.0, -1.0]], dtype=np.float32)
    np.testing.assert_allclose(to_mono(stereo), [0.5, 0.0, -1.0])
    assert to_mono(stereo).dtype == np.float32


def test_to_mono_passes_mono_through_and_rejects_3d() -> None:
    mono = np.array([0.1, 0.2], dtype=np.float32)
    np.testing.assert_array_equal(to_mono(mono), mono)
    with pytest.raises(ValueError, match="shape"):
        to_mono(np.zeros((2, 2, 2)))


# --- load_audio -----------------------------------------------------------------------------


def test_load_stereo_8k_resampled_to_16k(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    left, right = sine(500.0, 8000, 1.0, 0.6), sine(500.0, 8000, 1.0, 0.2)
    sf.write(path, np.stack([left, right], axis=1), 8000, subtype="PCM_16")

    audio = load_audio(path, target_sr=16000)
    assert isinstance(audio, LoadedAudio)
    assert audio.samples.dtype == np.float32
    assert audio.samples.ndim == 1
    assert audio.sample_rate == 16000
    assert audio.original_sample_rate == 8000
    assert audio.original_channels == 2
    assert len(audio.samples) == 16000
    assert audio.duration_s == pytest.approx(1.0)
    assert not audio.truncated
    assert audio.warnings == []
    assert np.abs(audio.samples).max() <= 1.0
    assert np.abs(audio.samples).max() == pytest.approx(0.4, abs=0.02)  # mean of 0.6 and 0.2
    assert abs(peak_frequency(audio.samples, 16000) - 500.0) <= 1.0


def test_load_without_target_keeps_rate(tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    sf.write(path, sine(200.0, 22050, 0.25), 22050)
    audio = load_audio(str(path))
    assert audio.sample_rate == audio.original_sample_rate == 22050
    assert audio.original_channels == 1


def test_max_seconds_truncates_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, sine(300.0, 8000, 3.0), 8000)

    audio = load_audio(path, 16000, max_seconds=1.0)
    assert audio.truncated
    assert len(audio.samples) == 16000
    assert audio.duration_s == pytest.approx(1.0)
    assert any("truncated" in w and "3.00 s" in w for w in audio.warnings)

    whole = load_audio(path, max_seconds=5.0)
    assert not whole.truncated
    assert whole.warnings == []
    assert whole.duration_s == pytest.approx(3.0)


def test_max_seconds_equal_to_length_is_not_truncation(tmp_path: Path) -> None:
    path = tmp_path / "exact.wav"
    sf.write(path, sine(300.0, 8000, 2.0), 8000)
    assert not load_audio(path, max_seconds=2.0).truncated


def test_float_file_over_full_scale_is_clipped_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "hot.wav"
    sf.write(path, np.array([0.0, 1.5, -2.0, 0.5], dtype=np.float32), 8000, subtype="FLOAT")
    audio = load_audio(path)
    np.testing.assert_allclose(audio.samples, [0.0, 1.0, -1.0, 0.5])
    assert any("clipped 2" in w for w in audio.warnings)


def test_missing_file_raises_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="not found") as info:
        load_audio(path)
    assert str(path) in str(info.value)


def test_corrupt_file_raises_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioError) as info:
        load_audio(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message


def test_zero_length_file_raises_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioError, match="empty") as info:
        load_audio(path)
    assert str(path) in str(info.value)


def test_wav_without_samples_raises_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "no_frames.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="no samples") as info:
        load_audio(path)
    assert str(path) in str(info.value)


def test_directory_raises_audio_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio(tmp_path)


def test_audio_error_is_a_value_error() -> None:
    assert issubclass(AudioError, ValueError)


@pytest.mark.parametrize("kwargs", [{"target_sr": 0}, {"max_seconds": 0}, {"max_seconds": -1.0}])
def test_load_audio_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, float]) -> None:
    path = tmp_path / "ok.wav"
    sf.write(path, sine(300.0, 8000, 0.1), 8000)
    with pytest.raises(ValueError):
        load_audio(path, **kwargs)  # type: ignore[arg-type]


# --- write_wav / audio_info -----------------------------------------------------------------


def test_write_wav_roundtrip_float(tmp_path: Path) -> None:
    x = sine(440.0, 16000, 0.5, amp=0.8)
    path = write_wav(tmp_path / "nested" / "dir" / "clip.wav", x, 16000)
    assert path.is_file()
    info = sf.info(path)
    assert info.subtype == "PCM_16"
    assert info.format == "WAV"
    audio = load_audio(path)
    assert audio.sample_rate == 16000
    np.testing.assert_allclose(audio.samples, x, atol=1.5 / 32768)
    assert [p.name for p in path.parent.iterdir()] == ["clip.wav"]  # no temp file left


def test_write_wav_int16_is_exact_and_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    write_wav(path, np.ones(100, dtype=np.int16), 22050)
    samples = np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16)
    write_wav(path, samples, 22050)
    read, sr = sf.read(path, dtype="int16")
    assert sr == 22050
    np.testing.assert_array_equal(read, samples)


def test_write_wav_clips_floats_and_keeps_stereo(tmp_path: Path) -> None:
    stereo = np.array([[2.0, -2.0], [0.5, -0.5]], dtype=np.float32)
    path = write_wav(tmp_path / "clip.wav", stereo, 8000)
    read, _ = sf.read(path, dtype="float32", always_2d=True)
    assert read.shape == (2, 2)
    assert read.max() <= 1.0
    assert read[0, 0] == pytest.approx(1.0, abs=1e-4)
    assert read[0, 1] == pytest.approx(-1.0, abs=1e-4)


@pytest.mark.parametrize(
    "samples",
    [
        np.zeros(0, dtype=np.float32),
        np.array([0.0, np.nan], dtype=np.float32),
        np.zeros((2, 2, 2), dtype=np.float32),
        np.zeros(4, dtype=np.int32),
    ],
)
def test_write_wav_rejects_bad_samples(tmp_path: Path, samples: np.ndarray) -> None:
    with pytest.raises(ValueError):
        write_wav(tmp_path / "bad.wav", samples, 16000)
    assert list(tmp_path.iterdir()) == []


def test_audio_info_reads_header(tmp_path: Path) -> None:
    path = tmp_path / "info.wav"
    sf.write(path, np.zeros((12000, 2), dtype=np.float32), 8000)
    duration, sr, channels = audio_info(path)
    assert duration == pytest.approx(1.5)
    assert sr == 8000
    assert channels == 2


def test_audio_info_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"missing\.wav"):
        audio_info(tmp_path / "missing.wav")


# --- waveform_envelope ----------------------------------------------------------------------


def test_waveform_envelope_shape_and_bounds() -> None:
    x = sine(50.0, 8000, 1.0, amp=0.7)
    env = waveform_envelope(x, 80)
    assert env.shape == (80, 2)
    assert env.dtype == np.float32
    assert np.all(env[:, 0] <= env[:, 1])
    assert env[:, 0].min() >= x.min()
    assert env[:, 1].max() <= x.max()
    assert env[:, 1].max() == pytest.approx(0.7, abs=1e-3)  # peaks are never dropped


def test_waveform_envelope_catches_a_single_click() -> None:
    x = np.zeros(10_000, dtype=np.float32)
    x[5_003] = 0.9
    env = waveform_envelope(x, 10)
    assert env[5, 1] == pytest.approx(0.9)
    assert np.count_nonzero(env) == 1


def test_waveform_envelope_fewer_samples_than_columns() -> None:
    env = waveform_envelope(np.array([0.5, -0.5], dtype=np.float32), 5)
    assert env.shape == (5, 2)
    assert set(env[:, 0].tolist()) <= {0.5, -0.5}


def test_waveform_envelope_scales_int16_and_handles_empty() -> None:
    env = waveform_envelope(np.array([-32768, 32767], dtype=np.int16), 1)
    assert env[0, 0] == pytest.approx(-1.0)
    assert env[0, 1] == pytest.approx(1.0, abs=1e-4)
    assert env.min() >= -1.0 and env.max() <= 1.0
    np.testing.assert_array_equal(waveform_envelope(np.zeros(0), 4), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="n_columns"):
        waveform_envelope(np.zeros(4), 0)
