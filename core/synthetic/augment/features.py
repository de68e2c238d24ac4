"""Hand-crafted acoustic features for finding neighbouring clips (DiME-Aug, `dime.py`).

DiME-Aug mixes a minority-class clip with one of its nearest neighbours, so it needs a
cheap, deterministic notion of "sounds alike" that does not depend on any model under
audit. This module computes the classic utterance-level descriptors with numpy/scipy only
(no librosa, which would drag numba/llvmlite into a workbench that runs over SSH):

| block | per-frame descriptor | values |
|---|---|---|
| MFCC | DCT-II (orthonormal) of the log mel spectrum, 40 HTK-mel triangular filters | 13 |
| chroma | STFT power folded onto the 12 pitch classes (C=0 ... B=11), frame max = 1 | 12 |
| spectral contrast | peak minus valley (dB), octave bands 0-200-400-800-1600-3200-nyq | 6 |
| zero-crossing rate | sign changes per sample | 1 |
| roll-off | frequency below which 85% of the frame's power lies (Hz) | 1 |
| centroid | power-weighted mean frequency (Hz) | 1 |
| RMS | root mean square of the frame's samples | 1 |

Each per-frame descriptor is summarised over the clip by its mean and standard deviation,
giving a 70-dimensional vector (`FEATURE_NAMES`). Audio is first resampled to 16 kHz so
clips recorded at different rates are comparable; frames are 1024 samples (64 ms, Hann
window) with a hop of 256 (16 ms). Features are on wildly different scales (Hz vs dB vs
rates), so distances are taken on standardised features (`standardize`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.fft import dct, rfft
from scipy.signal import get_window

from ambiscope.core.audio import resample

FEATURE_SR = 16_000
N_FFT = 1024
HOP = 256
N_MELS = 40
N_MFCC = 13
ROLLOFF = 0.85
CONTRAST_EDGES_HZ: tuple[float, ...] = (0.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)
CONTRAST_QUANTILE = 0.02
CHROMA_FMIN_HZ = 32.7  # C1: below it a 15.6 Hz bin spans more than a semitone
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_EPS = 1e-10


def _block_names() -> list[str]:
    names = [f"mfcc{i}" for i in range(N_MFCC)]
    names += [f"chroma_{p}" for p in PITCH_CLASSES]
    names += [f"contrast{i}" for i in range(len(CONTRAST_EDGES_HZ))]
    return [*names, "zcr", "rolloff", "centroid", "rms"]


FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{name}_{stat}" for stat in ("mean", "std") for name in _block_names()
)
"""Names of the feature vector's entries: every per-frame descriptor's mean, then its SD."""


# ------------------------------------------------------------------ spectral front end
def frames(x: np.ndarray, frame_length: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """Overlapping frames (n_frames, frame_length); short clips are zero-padded to one frame."""
    data = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(data) < frame_length:
        data = np.pad(data, (0, frame_length - len(data)))
    view = np.lib.stride_tricks.sliding_window_view(data, frame_length)
    return view[::hop]


def power_spectrogram(framed: np.ndarray) -> np.ndarray:
    """|STFT|^2 of Hann-windowed frames, (n_frames, N_FFT // 2 + 1)."""
    window = get_window("hann", framed.shape[1], fftbins=True)
    return np.abs(rfft(framed * window, n=N_FFT, axis=1)) ** 2


def fft_frequencies(sr: int = FEATURE_SR, n_fft: int = N_FFT) -> np.ndarray:
    return np.arange(n_fft // 2 + 1) * sr / n_fft


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(
    sr: int = FEATURE_SR, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = 0.0
) -> np.ndarray:
    """Triangular filters (n_mels, n_fft // 2 + 1), centres evenly spaced in HTK mel.

    Each filter is area-normalised (Slaney style: 2 / bandwidth), so wide high-frequency
    filters do not dominate the log spectrum just because they cover more bins.
    """
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(sr / 2), n_mels + 2))
    freqs = fft_frequencies(sr, n_fft)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (upper - lower))[:, :1]
    weights.setflags(write=False)
    return weights


def mfcc(power: np.ndarray, sr: int = FEATURE_SR, n_mfcc: int = N_MFCC) -> np.ndarray:
    """MFCCs (n_frames, n_mfcc): orthonormal DCT-II of the mel spectrum in dB."""
    mel = power @ mel_filterbank(sr, (power.shape[1] - 1) * 2).T
    log_mel = 10.0 * np.log10(np.maximum(mel, _EPS))
    return dct(log_mel, type=2, norm="ortho", axis=1)[:, :n_mfcc]


@lru_cache(maxsize=8)
def chroma_map(sr: int = FEATURE_SR, n_fft: int = N_FFT) -> np.ndarray:
    """(n_bins, 12) 0/1 matrix assigning each STFT bin to its nearest pitch class.

    Pitch class of frequency f: round(12 log2(f / 440)) + 9 mod 12 (A4 = 440 Hz is class 9,
    C = 0). Bins below C1 (too coarse to resolve a semitone) and DC are left out.
    """
    freqs = fft_frequencies(sr, n_fft)
    out = np.zeros((len(freqs), 12))
    usable = freqs >= CHROMA_FMIN_HZ
    classes = (np.round(12.0 * np.log2(freqs[usable] / 440.0)).astype(int) + 9) % 12
    out[np.flatnonzero(usable), classes] = 1.0
    out.setflags(write=False)
    return out


def chroma(power: np.ndarray, sr: int = FEATURE_SR) -> np.ndarray:
    """Chroma (n_frames, 12): power per pitch class, each frame scaled to max 1 (silence: 0)."""
    c = power @ chroma_map(sr, (power.shape[1] - 1) * 2)
    peak = c.max(axis=1, keepdims=True)
    return np.divide(c, peak, out=np.zeros_like(c), where=peak > 0)


def spectral_contrast(power: np.ndarray, sr: int = FEATURE_SR) -> np.ndarray:
    """Per octave band: mean of the top minus mean of the bottom quantile of bins, in dB.

    Peaks vs valleys separate harmonic (voiced, peaky) from noisy (flat) spectra per band,
    which the band energies alone do not.
    """
    freqs = fft_frequencies(sr, (power.shape[1] - 1) * 2)
    edges = [*CONTRAST_EDGES_HZ, sr / 2 + 1.0]
    out = np.zeros((power.shape[0], len(CONTRAST_EDGES_HZ)))
    for b in range(len(CONTRAST_EDGES_HZ)):
        band = np.sort(power[:, (freqs >= edges[b]) & (freqs < edges[b + 1])], axis=1)
        q = max(1, round(CONTRAST_QUANTILE * band.shape[1]))
        peak = band[:, -q:].mean(axis=1)
        valley = band[:, :q].mean(axis=1)
        out[:, b] = 10.0 * np.log10((peak + _EPS) / (valley + _EPS))
    return out


def zero_crossing_rate(framed: np.ndarray) -> np.ndarray:
    """Sign changes per sample of each frame (a pure tone of f Hz gives 2 f / sr)."""
    signs = np.signbit(framed)
    return (signs[:, 1:] != signs[:, :-1]).sum(axis=1) / (framed.shape[1] - 1)


def spectral_centroid(power: np.ndarray, sr: int = FEATURE_SR) -> np.ndarray:
    freqs = fft_frequencies(sr, (power.shape[1] - 1) * 2)
    total = power.sum(axis=1)
    return np.divide(power @ freqs, total, out=np.zeros_like(total), where=total > 0)


def spectral_rolloff(power: np.ndarray, sr: int = FEATURE_SR, share: float = ROLLOFF) -> np.ndarray:
    """Lowest frequency whose cumulative power reaches `share` of the frame's (silence: 0)."""
    freqs = fft_frequencies(sr, (power.shape[1] - 1) * 2)
    cumulative = np.cumsum(power, axis=1)
    total = cumulative[:, -1:]
    reached = cumulative >= share * total
    out = freqs[np.argmax(reached, axis=1)]
    return np.where(total[:, 0] > 0, out, 0.0)


def rms(framed: np.ndarray) -> np.ndarray:
    return np.sqrt((framed**2).mean(axis=1))


# ------------------------------------------------------------------------ clip vectors
def frame_features(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-frame descriptors (n_frames, 35) in the order of `FEATURE_NAMES`' first half."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if sample_rate != FEATURE_SR:
        x = resample(x, sample_rate, FEATURE_SR)
    framed = frames(x)
    power = power_spectrogram(framed)
    blocks = [
        mfcc(power),
        chroma(power),
        spectral_contrast(power),
        zero_crossing_rate(framed)[:, None],
        spectral_rolloff(power)[:, None],
        spectral_centroid(power)[:, None],
        rms(framed)[:, None],
    ]
    return np.concatenate(blocks, axis=1)


def clip_features(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """The clip's 70-dim feature vector: mean and SD over frames of every descriptor."""
    per_frame = frame_features(samples, sample_rate)
    return np.concatenate([per_frame.mean(axis=0), per_frame.std(axis=0)])


def standardize(
    X: np.ndarray, mean: np.ndarray | None = None, std: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Z, mean, std): z-scores per column; constant columns get std 1 (so Z = 0, not NaN).

    Pass `mean`/`std` to apply statistics fitted elsewhere (e.g. on the training split).
    """
    data = np.asarray(X, dtype=np.float64)
    mu = data.mean(axis=0) if mean is None else np.asarray(mean, dtype=np.float64)
    sd = data.std(axis=0) if std is None else np.asarray(std, dtype=np.float64)
    sd = np.where(sd > 1e-12 * np.maximum(1.0, np.abs(mu)), sd, 1.0)
    return (data - mu) / sd, mu, sd


def nearest_neighbours(Z: np.ndarray, k: int, groups: np.ndarray | None = None) -> list[list[int]]:
    """For each row, the indices of its k nearest other rows (Euclidean), nearest first.

    With `groups`, neighbours are searched only among rows of the same group (fewer than k
    when the group is small). Ties go to the lower index (stable sort), so results are
    deterministic.
    """
    data = np.asarray(Z, dtype=np.float64)
    n = len(data)
    labels = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups)
    sq = (data**2).sum(axis=1)
    out: list[list[int]] = []
    for i in range(n):
        d2 = sq + sq[i] - 2.0 * data @ data[i]
        candidates = np.flatnonzero((labels == labels[i]) & (np.arange(n) != i))
        order = candidates[np.argsort(d2[candidates], kind="stable")]
        out.append([int(j) for j in order[: max(0, k)]])
    return out


def feature_dim() -> int:
    return len(FEATURE_NAMES)
