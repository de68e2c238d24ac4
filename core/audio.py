"""Audio file and signal utilities shared by the rest of ambiscope.

Audio-language models expect mono float audio at a fixed sample rate, while the clips people
audit come as stereo 44.1 kHz WAVs, 8 kHz telephone recordings, hour-long files and the odd
broken download. Everything that reads or writes audio goes through this module so that
conversions happen in one place, failures surface as one-line :class:`AudioError` messages
that name the file (fit for a terminal status bar), and lossy steps (truncation, clipping)
are reported in :attr:`LoadedAudio.warnings` instead of happening silently.

Deliberately free of torch and textual imports so it stays cheap to import in workers,
command-line tools and tests.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from ambiscope.core.text import one_line

__all__ = [
    "AudioError",
    "AudioInfo",
    "LoadedAudio",
    "audio_info",
    "load_audio",
    "resample",
    "to_mono",
    "waveform_envelope",
    "write_wav",
]

PathLike = str | os.PathLike[str]


class AudioError(ValueError):
    """An audio file is missing, unreadable, corrupt or empty (message names the file)."""


@dataclass
class LoadedAudio:
    """Decoded audio plus what was done to it, so callers can show or log the provenance."""

    samples: np.ndarray  # float32, mono, in [-1, 1]
    sample_rate: int
    original_sample_rate: int
    original_channels: int
    duration_s: float  # of ``samples`` (after truncation), not of the file
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)


class AudioInfo(NamedTuple):
    """Header facts about an audio file; a plain tuple so it unpacks as (dur, sr, ch)."""

    duration_s: float
    sample_rate: int
    channels: int


def _check_rate(name: str, value: int) -> int:
    """Sample rates must be positive integers: resample_poly needs an exact integer ratio."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{name} must be a positive integer number of Hz, got {value!r}")
    return int(value)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample along axis 0 (time) with a polyphase filter; returns float32.

    ``resample_poly`` applies a proper anti-aliasing filter and is exact for rational ratios
    such as 22050 -> 16000 (320/441 after dividing by the gcd), unlike FFT resampling, which
    assumes a periodic signal and rings at clip edges. Multi-channel input of shape
    (frames, channels) is resampled per channel.
    """
    sr_in = _check_rate("sr_in", sr_in)
    sr_out = _check_rate("sr_out", sr_out)
    data = np.asarray(x)
    if sr_in == sr_out or data.shape[0] == 0:
        return data.astype(np.float32, copy=True)
    divisor = gcd(sr_in, sr_out)
    up, down = sr_out // divisor, sr_in // divisor
    out = resample_poly(data.astype(np.float64, copy=False), up, down, axis=0)
    return out.astype(np.float32, copy=False)


def to_mono(x: np.ndarray) -> np.ndarray:
    """Average channels of a (frames, channels) array into float32 mono; 1-D passes through.

    Averaging (rather than taking the left channel) keeps speech that was panned to one side
    and never exceeds the input's range. Values are not rescaled.
    """
    data = np.asarray(x)
    if data.ndim == 1:
        return data.astype(np.float32, copy=True)
    if data.ndim == 2:
        return data.mean(axis=1, dtype=np.float64).astype(np.float32)
    raise ValueError(f"expected audio of shape (frames,) or (frames, channels), got {data.shape}")


def _check_readable(path: Path) -> None:
    """Turn the common 'not a usable file' cases into messages better than libsndfile's."""
    if not path.exists():
        raise AudioError(f"audio file not found: {path}")
    if not path.is_file():
        raise AudioError(f"not an audio file (not a regular file): {path}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioError(f"cannot access audio file {path}: {one_line(exc)}") from exc
    if size == 0:
        raise AudioError(f"audio file is empty (0 bytes): {path}")


def _info(path: Path) -> sf._SoundFileInfo:
    """soundfile.info with errors mapped to AudioError."""
    _check_readable(path)
    try:
        return sf.info(str(path))
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        raise AudioError(f"cannot read audio file {path}: {one_line(exc)}") from exc


def audio_info(path: PathLike) -> AudioInfo:
    """Duration, sample rate and channel count from the file header, without decoding it.

    Cheap enough to call for every row of a file browser.
    """
    p = Path(path)
    info = _info(p)
    duration = info.frames / info.samplerate if info.samplerate else 0.0
    return AudioInfo(float(duration), int(info.samplerate), int(info.channels))


def load_audio(
    path: PathLike, target_sr: int | None = None, *, max_seconds: float | None = None
) -> LoadedAudio:
    """Decode an audio file to float32 mono in [-1, 1], optionally resampled and truncated.

    Args:
        path: any format libsndfile reads (WAV, FLAC, OGG, ...).
        target_sr: resample to this rate (models expect e.g. 16 kHz); ``None`` keeps the
            file's rate.
        max_seconds: read at most this much audio from the start. Only that part is decoded,
            so a stray hour-long file cannot exhaust memory; ``truncated`` is set and a
            warning added when the file was longer.

    Raises:
        AudioError: the file is missing, not a regular file, empty, unreadable or corrupt, or
            holds no samples.
        ValueError: invalid ``target_sr`` or ``max_seconds``.
    """
    p = Path(path)
    if target_sr is not None:
        target_sr = _check_rate("target_sr", target_sr)
    if max_seconds is not None and not (max_seconds > 0 and np.isfinite(max_seconds)):
        raise ValueError(f"max_seconds must be a positive number, got {max_seconds!r}")

    info = _info(p)
    original_sr = int(info.samplerate)
    warnings: list[str] = []
    frames_to_read = -1  # soundfile: all
    truncated = False
    if max_seconds is not None:
        limit = max(1, round(max_seconds * original_sr))
        # info.frames can be unknown (0 or huge) for some streamed formats; reading with a
        # frame limit is correct either way, and we detect truncation from what came back.
        frames_to_read = limit

    try:
        with sf.SoundFile(str(p)) as f:
            data = f.read(frames=frames_to_read, dtype="float32", always_2d=True)
            if frames_to_read > 0 and data.shape[0] == frames_to_read:
                truncated = len(f.read(frames=1, dtype="float32", always_2d=True)) > 0
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        raise AudioError(f"cannot decode audio file {p}: {one_line(exc)}") from exc

    if data.shape[0] == 0:
        raise AudioError(f"audio file contains no samples: {p}")
    if truncated:
        total = info.frames / original_sr if info.frames > data.shape[0] else None
        of_total = f" of {total:.2f} s" if total else ""
        warnings.append(f"truncated to the first {max_seconds:g} s{of_total}")

    if not np.isfinite(data).all():
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        data = np.nan_to_num(data, nan=0.0, posinf=1.0, neginf=-1.0)
        warnings.append(f"replaced {bad} non-finite sample(s) (NaN/inf) in the file")
    over = int(np.count_nonzero(np.abs(data) > 1.0))
    if over:
        warnings.append(f"clipped {over} sample(s) outside [-1, 1] (float file over full scale)")

    samples = to_mono(data)
    sample_rate = original_sr
    if target_sr is not None and target_sr != original_sr:
        samples = resample(samples, original_sr, target_sr)
        sample_rate = target_sr
    # Clip after resampling too: the anti-aliasing filter can overshoot full-scale input a
    # little, and downstream code relies on [-1, 1].
    np.clip(samples, -1.0, 1.0, out=samples)
    if samples.size and not np.any(samples):
        warnings.append("audio is silent (all samples are zero)")

    return LoadedAudio(
        samples=samples,
        sample_rate=sample_rate,
        original_sample_rate=original_sr,
        original_channels=int(data.shape[1]),
        duration_s=samples.shape[0] / sample_rate,
        truncated=truncated,
        warnings=warnings,
    )


def _pcm16_ready(samples: np.ndarray) -> np.ndarray:
    """Validate samples for 16-bit writing; floats are clipped because libsndfile wraps."""
    data = np.asarray(samples)
    if data.ndim not in (1, 2):
        raise ValueError(f"expected samples of shape (frames,) or (frames, ch), got {data.shape}")
    if data.shape[0] == 0:
        raise ValueError("refusing to write an empty audio file (load_audio would reject it)")
    if data.dtype == np.int16:
        return data
    if not np.issubdtype(data.dtype, np.floating):
        raise ValueError(f"samples must be int16 or float in [-1, 1], got dtype {data.dtype}")
    if not np.isfinite(data).all():
        raise ValueError("samples contain NaN or infinite values")
    return np.clip(data, -1.0, 1.0).astype(np.float32, copy=False)


def write_wav(path: PathLike, samples: np.ndarray, sample_rate: int) -> Path:
    """Write a 16-bit PCM WAV atomically, creating parent directories.

    Writes to a temporary file in the destination directory and then ``os.replace``-s it, so
    readers (a player, a model worker, a re-run of the demo) never see a half-written file
    and an interrupted write leaves any previous file intact. Float samples are clipped to
    [-1, 1]; int16 samples are written as-is. Returns the final path.
    """
    sample_rate = _check_rate("sample_rate", sample_rate)
    data = _pcm16_ready(samples)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = target.stat().st_mode & 0o777 if target.is_file() else 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        sf.write(str(tmp), data, sample_rate, subtype="PCM_16", format="WAV")
        os.chmod(tmp, mode)  # mkstemp creates 0600; give the clip normal permissions
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target


def waveform_envelope(samples: np.ndarray, n_columns: int) -> np.ndarray:
    """Per-column (min, max) of the signal, shape (n_columns, 2), float32.

    This is what a terminal waveform view draws: one character cell per column spanning
    min..max, which keeps transients visible where plain decimation would drop them. Signed
    integer input (e.g. int16 from ``ambiscope.core.speech.synthesize``) is scaled to [-1, 1);
    multi-channel input is averaged first.
    With fewer samples than columns, samples are repeated across neighbouring columns.
    """
    if isinstance(n_columns, bool) or not isinstance(n_columns, int | np.integer) or n_columns < 1:
        raise ValueError(f"n_columns must be a positive integer, got {n_columns!r}")
    n_columns = int(n_columns)
    data = np.asarray(samples)
    if np.issubdtype(data.dtype, np.signedinteger):
        # Divide by 2**(bits-1) (32768 for int16) so the result stays inside [-1, 1).
        data = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    elif not np.issubdtype(data.dtype, np.floating):
        raise ValueError(f"samples must be signed integers or floats, got dtype {data.dtype}")
    mono = to_mono(data)
    envelope = np.zeros((n_columns, 2), dtype=np.float32)
    n = mono.shape[0]
    if n == 0:
        return envelope
    starts = np.minimum((np.arange(n_columns, dtype=np.int64) * n) // n_columns, n - 1)
    # reduceat reduces mono[starts[i]:starts[i+1]], or returns mono[starts[i]] for an empty
    # range, which is exactly the "repeat the sample" behaviour wanted when n < n_columns.
    envelope[:, 0] = np.minimum.reduceat(mono, starts)
    envelope[:, 1] = np.maximum.reduceat(mono, starts)
    return envelope
