"""Tests for ambiscope.core.speech: the offline eSpeak NG clips the demo and other tests rely on."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from ambiscope.core import speech
from ambiscope.core.speech import (
    EMOTION_PROSODY,
    Prosody,
    SpeechUnavailable,
    list_voices,
    synthesize,
)

SENTENCE = "The weather has been strange all week, hasn't it?"


def rms(x: np.ndarray) -> float:
    """Root mean square in int16 units."""
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def median_f0(x: np.ndarray, sr: int) -> float:
    """Median fundamental frequency of voiced frames, by normalised autocorrelation.

    Autocorrelation picks the period directly, so unlike a spectral centroid it is not fooled
    by formant changes that come with eSpeak's pitch-dependent formant shift.
    """
    y = x.astype(np.float64) / 32768.0
    frame, hop = int(0.04 * sr), int(0.02 * sr)
    lag_lo, lag_hi = int(sr / 500), int(sr / 60)
    f0s = []
    for start in range(0, len(y) - frame, hop):
        seg = y[start : start + frame] - y[start : start + frame].mean()
        if np.sqrt(np.mean(seg**2)) < 0.02:  # skip silence and weak consonants
            continue
        ac = np.correlate(seg, seg, "full")[frame - 1 :]
        lag = lag_lo + int(np.argmax(ac[lag_lo:lag_hi]))
        if ac[lag] / ac[0] > 0.4:  # clearly periodic, i.e. voiced
            f0s.append(sr / lag)
    assert len(f0s) >= 10, "too few voiced frames to estimate pitch"
    return float(np.median(f0s))


def test_synthesize_sentence_gives_plausible_speech() -> None:
    samples, sr = synthesize(SENTENCE)
    assert samples.dtype == np.int16
    assert samples.ndim == 1
    assert sr == 22050
    assert 0.5 < len(samples) / sr < 5.0
    assert rms(samples) > 500  # clearly not silence (full scale is 32768)


def test_sad_is_slower_than_angry() -> None:
    sad, _ = synthesize(SENTENCE, **EMOTION_PROSODY["sad"].as_kwargs())
    angry, _ = synthesize(SENTENCE, **EMOTION_PROSODY["angry"].as_kwargs())
    assert len(sad) > 1.3 * len(angry)


def test_rate_parameter_controls_duration() -> None:
    slow, _ = synthesize(SENTENCE, rate=100)
    fast, _ = synthesize(SENTENCE, rate=300)
    assert len(slow) > 2 * len(fast)


def test_higher_pitch_raises_fundamental_frequency() -> None:
    low, sr = synthesize(SENTENCE, pitch=20)
    high, _ = synthesize(SENTENCE, pitch=80)
    assert median_f0(high, sr) > 1.3 * median_f0(low, sr)


def test_emotion_presets_differ_in_pitch() -> None:
    sad, sr = synthesize(SENTENCE, **EMOTION_PROSODY["sad"].as_kwargs())
    happy, _ = synthesize(SENTENCE, **EMOTION_PROSODY["happy"].as_kwargs())
    assert median_f0(happy, sr) > 1.2 * median_f0(sad, sr)


def test_volume_parameter_controls_loudness() -> None:
    quiet, _ = synthesize(SENTENCE, volume=40)
    loud, _ = synthesize(SENTENCE, volume=160)
    assert rms(loud) > 2 * rms(quiet)


def test_same_parameters_give_identical_samples() -> None:
    first, _ = synthesize(SENTENCE, voice="en-us+f3", pitch=60)
    # Something different in between: eSpeak's hidden state must not leak into the next clip.
    synthesize("Completely different words!", voice="en-us+m3", rate=300, pitch=90)
    second, _ = synthesize(SENTENCE, voice="en-us+f3", pitch=60)
    np.testing.assert_array_equal(first, second)


def test_every_emotion_preset_is_valid() -> None:
    assert set(EMOTION_PROSODY) == {
        "neutral",
        "happy",
        "sad",
        "angry",
        "fear",
        "disgust",
        "surprise",
    }
    for emotion, prosody in EMOTION_PROSODY.items():
        samples, _ = synthesize("Okay.", **prosody.as_kwargs())
        assert rms(samples) > 100, emotion


def test_prosody_is_frozen() -> None:
    prosody = Prosody(rate=175, pitch=50, pitch_range=50, volume=100, word_gap=0)
    with pytest.raises(AttributeError):
        prosody.rate = 200  # type: ignore[misc]


def test_listed_voices_synthesize_and_differ() -> None:
    voices = list_voices()
    assert {"en-us", "en-gb", "en-us+f3", "en-us+m3"} <= set(voices)
    outputs = {}
    for voice in voices:
        samples, _ = synthesize("Hello there.", voice=voice)
        assert rms(samples) > 100, voice
        outputs[voice] = samples.tobytes()
    assert len(set(outputs.values())) == len(voices), "two voice names gave the same audio"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": ""}, "empty"),
        ({"text": "   \n"}, "empty"),
        ({"text": "a\x00b"}, "NUL"),
        ({"rate": 79}, "rate must be between 80 and 450"),
        ({"rate": 451}, "rate must be between 80 and 450"),
        ({"pitch": -1}, "pitch must be between 0 and 100"),
        ({"pitch": 101}, "pitch must be between 0 and 100"),
        ({"pitch_range": 101}, "pitch_range must be between 0 and 100"),
        ({"volume": 201}, "volume must be between 0 and 200"),
        ({"word_gap": -1}, "word_gap must be between"),
        ({"rate": 175.5}, "rate must be an integer"),
        ({"voice": "xx-nope"}, "unknown eSpeak voice"),
        ({"voice": "en-us+nope"}, "unknown eSpeak voice variant"),
        ({"voice": "en-us+../../x"}, "invalid voice name"),
    ],
)
def test_bad_parameters_raise_value_error(kwargs: dict[str, object], message: str) -> None:
    args = {"text": "Hello.", **kwargs}
    text = args.pop("text")
    with pytest.raises(ValueError, match=message):
        synthesize(text, **args)  # type: ignore[arg-type]


def test_concurrent_synthesis_is_safe() -> None:
    expected = {
        "a": synthesize("The first thread speaks.")[0],
        "b": synthesize("And the second one answers.", pitch=70)[0],
    }
    results: dict[str, np.ndarray] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(key: str, text: str, pitch: int) -> None:
        try:
            barrier.wait(timeout=5)
            for _ in range(3):
                results[key] = synthesize(text, pitch=pitch)[0]
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=("a", "The first thread speaks.", 50)),
        threading.Thread(target=work, args=("b", "And the second one answers.", 70)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    for key, samples in expected.items():
        np.testing.assert_array_equal(results[key], samples)


def test_missing_library_raises_speech_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speech, "_paths", ("/nonexistent/libespeak-ng.so", "/nonexistent"))
    with pytest.raises(SpeechUnavailable, match="pip install espeakng-loader") as info:
        synthesize("Hello.")
    assert "\n" not in str(info.value)


def test_missing_loader_package_raises_speech_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(speech, "_paths", None)
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # makes the import fail
    with pytest.raises(SpeechUnavailable, match="pip install espeakng-loader"):
        synthesize("Hello.")
