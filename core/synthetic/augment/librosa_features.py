"""DiME-Aug's multimodal features as the official code computes them (librosa + lexical).

`dime_features="librosa-lexical"` (the ``scaling-ambiguity`` preset) re-implements the
neighbour features of Zhang et al.'s DiME-Aug (WendaZhang08/scaling-ambiguity-SER,
``model_finetuning/train.py``, ``DiME.extract_audio_features`` and
``extract_text_features``), so neighbours, and therefore the augmented clips, are the ones
the paper's training set was built from. It needs the ``librosa`` extra
(``pip install 'ambiscope[librosa]'``); the hand-written ``features.py`` stays the default.

Audio (72 values): the clip at 16 kHz mono (resampled with soxr, as ``librosa.load`` does),
zero-padded to at least 0.5 s, then librosa's defaults (``n_fft`` 2048, hop 512, centred
frames) for every descriptor; each is summarised by its mean and its standard deviation
over frames, means first, block by block:

| block | librosa call | rows | values |
|---|---|---|---|
| MFCC | ``feature.mfcc(y, sr, n_mfcc=13)`` (128 mels, dB, ortho DCT) | 13 | 26 |
| chroma | ``feature.chroma_stft(y, sr, n_chroma=12)`` (tuning estimated) | 12 | 24 |
| spectral contrast | ``feature.spectral_contrast(y, sr, n_bands=6)`` (fmin 200 Hz) | 7 | 14 |
| zero-crossing rate | ``feature.zero_crossing_rate(y)`` | 1 | 2 |
| roll-off | ``feature.spectral_rolloff(y, sr)`` (85%, MAGNITUDE spectrum) | 1 | 2 |
| centroid | ``feature.spectral_centroid(y, sr)`` (MAGNITUDE-weighted) | 1 | 2 |
| RMS | ``feature.rms(y)`` | 1 | 2 |

Roll-off and centroid weight bins by |STFT| (librosa's default), where ambiscope's own
features weight them by |STFT|^2, which pulls both towards the strongest (usually low)
harmonics; the two are different descriptors, not one of them wrong, so each path keeps
its own and this one matches the paper.

Lexical (10 values), from the transcript stripped and LOWER-CASED (empty: all zeros):
characters, words, counts of ``!``, ``?``, ``.``, ``,``, the share of vowels (aeiou) and of
other letters among all characters, the mean word length and the share of upper-case
characters. The last is always 0 because the text was lower-cased first; it is kept so
the vector has the official 10 entries (a constant column standardises to 0, so it never
changes a distance).
"""

from __future__ import annotations

from typing import Any

import numpy as np

FEATURE_SR = 16_000
MIN_SECONDS = 0.5
N_MFCC = 13
N_CHROMA = 12
N_CONTRAST_BANDS = 6  # librosa returns n_bands + 1 rows
VOWELS = frozenset("aeiou")
_DESCRIPTORS = ("zcr", "rolloff", "centroid", "rms")
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _audio_names() -> tuple[str, ...]:
    blocks = [
        [f"mfcc{i}" for i in range(N_MFCC)],
        [f"chroma_{p}" for p in PITCH_CLASSES],
        [f"contrast{i}" for i in range(N_CONTRAST_BANDS + 1)],
    ]
    names = [f"{n}_{stat}" for block in blocks for stat in ("mean", "std") for n in block]
    return (*names, *(f"{d}_{stat}" for d in _DESCRIPTORS for stat in ("mean", "std")))


AUDIO_FEATURE_NAMES: tuple[str, ...] = _audio_names()
"""The 72 audio entries, in the official order (per block: every row's mean, then SDs)."""

LEXICAL_FEATURE_NAMES: tuple[str, ...] = (
    "chars",
    "words",
    "exclamations",
    "questions",
    "periods",
    "commas",
    "vowel_share",
    "consonant_share",
    "mean_word_length",
    "upper_share",
)
FEATURE_NAMES: tuple[str, ...] = AUDIO_FEATURE_NAMES + LEXICAL_FEATURE_NAMES


def load_librosa() -> Any:
    """librosa, or a one-line error (a ValueError: the setting asks for what is not
    installed) naming the extra that brings it."""
    try:
        import librosa
    except ImportError:
        raise ValueError(
            "dime_features=librosa-lexical needs librosa: pip install 'ambiscope[librosa]' "
            "(or --set dime_features=ambiscope)"
        ) from None
    return librosa


def audio_features(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """The clip's 72 librosa audio features (module docstring)."""
    librosa = load_librosa()
    y = np.asarray(samples, dtype=np.float32).reshape(-1)
    if sample_rate != FEATURE_SR:
        y = librosa.resample(y, orig_sr=sample_rate, target_sr=FEATURE_SR, res_type="soxr_hq")
    minimum = int(FEATURE_SR * MIN_SECONDS)
    if len(y) < minimum:
        y = np.pad(y, (0, minimum - len(y)))
    sr = FEATURE_SR
    feature = librosa.feature
    blocks = [
        feature.mfcc(y=y, sr=sr, n_mfcc=N_MFCC),
        feature.chroma_stft(y=y, sr=sr, n_chroma=N_CHROMA),
        feature.spectral_contrast(y=y, sr=sr, n_bands=N_CONTRAST_BANDS),
    ]
    out = [part for b in blocks for part in (b.mean(axis=1), b.std(axis=1))]
    for descriptor in (
        feature.zero_crossing_rate(y=y),
        feature.spectral_rolloff(y=y, sr=sr),
        feature.spectral_centroid(y=y, sr=sr),
        feature.rms(y=y),
    ):
        out.append(np.array([descriptor.mean(), descriptor.std()]))
    return np.concatenate(out).astype(np.float64)


def lexical_features(text: str | None) -> np.ndarray:
    """The transcript's 10 lexical features (module docstring); no text gives zeros."""
    if not text or not text.strip():
        return np.zeros(len(LEXICAL_FEATURE_NAMES))
    lowered = text.strip().lower()
    words = lowered.split()
    n = max(len(lowered), 1)
    return np.array(
        [
            len(lowered),
            len(words),
            lowered.count("!"),
            lowered.count("?"),
            lowered.count("."),
            lowered.count(","),
            sum(c in VOWELS for c in lowered) / n,
            sum(c.isalpha() and c not in VOWELS for c in lowered) / n,
            float(np.mean([len(w) for w in words])) if words else 0.0,
            sum(c.isupper() for c in lowered) / n,
        ],
        dtype=np.float64,
    )


def clip_features(samples: np.ndarray, sample_rate: int, transcript: str | None) -> np.ndarray:
    """The clip's 82-dim multimodal vector: 72 audio then 10 lexical features."""
    return np.concatenate([audio_features(samples, sample_rate), lexical_features(transcript)])


def librosa_version() -> str:
    return str(load_librosa().__version__)
