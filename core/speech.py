"""Offline speech synthesis with eSpeak NG, for demo clips and test fixtures.

ambiscope audits audio-language models on emotionally ambiguous speech. The demo and the
test-suite need short spoken clips without network access, model downloads or recordings
checked into the repository, so this module drives the eSpeak NG formant synthesiser that
ships inside the ``espeakng-loader`` wheel (shared library *and* voice data) through
``ctypes``.

Design notes (why it looks the way it does):

* eSpeak NG keeps global state, so every call into it happens under one module-level
  :class:`threading.Lock`.
* eSpeak NG also keeps *hidden* static state that its API cannot reset (pitch-flutter phase,
  automatic gain control, echo buffer, ...). Synthesising the same text twice in one process
  therefore gives slightly different samples, which would make fixtures and cached model
  outputs unstable. To get bit-identical output regardless of what was synthesised before,
  the library is loaded, initialised, used and *unloaded* (``dlclose``) for every call. That
  costs well under a millisecond. The libc ``rand()`` generator, which eSpeak uses for breath
  noise in some voice variants, is reseeded before each utterance for the same reason.
  Consequently, nothing else in the process should load the same eSpeak NG library; use this
  module for all eSpeak access.
* :data:`EMOTION_PROSODY` maps emotion labels to rate/pitch/volume settings. This is a
  *crude stand-in* for emotional speech: eSpeak changes global prosody, not voice quality, so
  the clips are useful to exercise the pipeline, never as evidence about a model's emotion
  recognition.
"""

from __future__ import annotations

import ctypes
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ambiscope.core.text import one_line

__all__ = [
    "EMOTION_PROSODY",
    "RATE_MAX",
    "RATE_MIN",
    "Prosody",
    "SpeechUnavailable",
    "list_voices",
    "synthesize",
]

# Constants from eSpeak NG's public header ``speak_lib.h`` (API revision 12).
_AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: retrieval mode, returns when done
_ESPEAK_INITIALIZE_DONT_EXIT = 0x8000  # never call exit() if the data dir is missing
_POS_CHARACTER = 1  # espeak_POSITION_TYPE
_ESPEAK_CHARS_UTF8 = 1
_EE_OK = 0
_EE_NOT_FOUND = 2
_ESPEAK_RATE = 1  # espeak_PARAMETER values
_ESPEAK_VOLUME = 2
_ESPEAK_PITCH = 3
_ESPEAK_RANGE = 4
_ESPEAK_WORDGAP = 7
_BUFFER_MS = 200  # length of the audio chunks handed to the callback

RATE_MIN = 80  # espeakRATE_MINIMUM, words per minute
RATE_MAX = 450  # espeakRATE_MAXIMUM
_VOLUME_MAX = 200  # eSpeak accepts more, but it distorts badly above this
_WORD_GAP_MAX = 100  # units of 10 ms: up to one second between words
_RAND_SEED = 12345

_INSTALL_HINT = "install it with `pip install espeakng-loader`"

# Voices that are known to exist in the bundled eSpeak NG data (1.52). Each entry is checked
# against the real library by list_voices(), so a different data set cannot make it lie.
_CURATED_VOICES: tuple[str, ...] = (
    "en-us",
    "en-gb",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-029",
    "en-us+m3",
    "en-us+f3",
    "en-us+f4",
)
# eSpeak NG names its British English voice plain "en"; accept the spelling people expect.
_VOICE_ALIASES = {"en-gb": "en", "en-uk": "en"}
# Voice names are looked up as files under espeak-ng-data/voices; keep them to plain tokens so
# a "+variant" suffix can never walk out of that directory.
_VOICE_RE = re.compile(r"^[A-Za-z0-9_-]{1,30}(\+[A-Za-z0-9_-]{1,30})?$")


class SpeechUnavailable(RuntimeError):
    """eSpeak NG (library or voice data) cannot be loaded, so no speech can be synthesised."""


@dataclass(frozen=True)
class Prosody:
    """A set of eSpeak prosody parameters, in the units :func:`synthesize` takes."""

    rate: int
    pitch: int
    pitch_range: int
    volume: int
    word_gap: int

    def as_kwargs(self) -> dict[str, int]:
        """Keyword arguments for :func:`synthesize`: ``synthesize(text, **p.as_kwargs())``."""
        return {
            "rate": self.rate,
            "pitch": self.pitch,
            "pitch_range": self.pitch_range,
            "volume": self.volume,
            "word_gap": self.word_gap,
        }


# Crude stand-ins for emotional speech, loosely following the classic prosody findings
# (sadness: slow, low, monotone, soft; anger: fast, loud, wide range; joy: high, wide range;
# fear: fast and high; disgust: slow and low; surprise: high with a very wide range). For demo
# and test purposes only: eSpeak cannot change voice quality, which carries much of emotion.
EMOTION_PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(rate=175, pitch=50, pitch_range=50, volume=100, word_gap=0),
    "happy": Prosody(rate=195, pitch=68, pitch_range=85, volume=115, word_gap=0),
    "sad": Prosody(rate=120, pitch=30, pitch_range=15, volume=75, word_gap=4),
    "angry": Prosody(rate=220, pitch=45, pitch_range=90, volume=160, word_gap=0),
    "fear": Prosody(rate=235, pitch=75, pitch_range=70, volume=90, word_gap=0),
    "disgust": Prosody(rate=140, pitch=35, pitch_range=40, volume=100, word_gap=2),
    "surprise": Prosody(rate=185, pitch=80, pitch_range=100, volume=120, word_gap=0),
}

_LOCK = threading.Lock()
_paths: tuple[str, str] | None = None  # (library path, data path), resolved once
_chunks: list[bytes] = []  # filled by the callback; only touched while _LOCK is held
_available_voices: list[str] | None = None

_SynthCallbackType = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)


def _on_audio(wav: int | None, numsamples: int, _events: int | None) -> int:
    """eSpeak's synth callback: copy the int16 chunk out of eSpeak's buffer; 0 = continue."""
    if wav and numsamples > 0:
        _chunks.append(ctypes.string_at(wav, numsamples * 2))
    return 0


# Module-level so the C function pointer outlives every synthesis (ctypes would otherwise
# free the thunk while eSpeak still holds it).
_SYNTH_CALLBACK = _SynthCallbackType(_on_audio)


def _resolve_paths() -> tuple[str, str]:
    """Find the bundled eSpeak NG library and data directory (cached after the first success)."""
    global _paths
    if _paths is not None:
        return _paths
    try:
        import espeakng_loader
    except ImportError as exc:
        raise SpeechUnavailable(
            f"eSpeak NG is not available (espeakng-loader is not installed); {_INSTALL_HINT}"
        ) from exc
    try:
        lib_path = str(espeakng_loader.get_library_path())
        data_path = str(espeakng_loader.get_data_path())
    except Exception as exc:  # the loader raises a bare RuntimeError for missing data
        raise SpeechUnavailable(
            f"eSpeak NG data could not be located ({one_line(exc)}); reinstall it with "
            "`pip install --force-reinstall espeakng-loader`"
        ) from exc
    _paths = (lib_path, data_path)
    return _paths


def _declare(lib: ctypes.CDLL) -> None:
    """Give ctypes the C signatures, so arguments are converted and checked correctly."""
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallbackType]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,  # text
        ctypes.c_size_t,  # size
        ctypes.c_uint,  # position
        ctypes.c_int,  # position_type
        ctypes.c_uint,  # end_position
        ctypes.c_uint,  # flags
        ctypes.c_void_p,  # unique_identifier
        ctypes.c_void_p,  # user_data
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int


def _unload(lib: ctypes.CDLL) -> None:
    """Drop our reference to the library so its static state is rebuilt on the next load."""
    import _ctypes

    close = getattr(_ctypes, "FreeLibrary" if sys.platform == "win32" else "dlclose", None)
    if close is not None:
        close(lib._handle)


def _reseed_libc_rand() -> None:
    """Reseed C ``rand()``; eSpeak draws breath noise from it (e.g. the +f3 variant)."""
    if sys.platform == "win32":
        return
    with suppress(OSError, AttributeError):  # an exotic libc only costs determinism
        ctypes.CDLL(None).srand(_RAND_SEED)


@contextmanager
def _engine() -> Iterator[tuple[ctypes.CDLL, int]]:
    """Load and initialise a pristine eSpeak NG instance; caller must hold ``_LOCK``."""
    lib_path, data_path = _resolve_paths()
    try:
        lib = ctypes.CDLL(lib_path, mode=ctypes.RTLD_LOCAL)
    except OSError as exc:
        raise SpeechUnavailable(
            f"cannot load the eSpeak NG library {lib_path} ({one_line(exc)}); {_INSTALL_HINT}"
        ) from exc
    try:
        _declare(lib)
    except AttributeError as exc:  # a library without the eSpeak API (wrong file/version)
        _unload(lib)
        raise SpeechUnavailable(
            f"cannot load the eSpeak NG library {lib_path} ({one_line(exc)}); {_INSTALL_HINT}"
        ) from exc
    try:
        sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data_path.encode(), _ESPEAK_INITIALIZE_DONT_EXIT
        )
        if sample_rate <= 0:
            raise SpeechUnavailable(
                f"eSpeak NG failed to initialise with data at {data_path}; reinstall it with "
                "`pip install --force-reinstall espeakng-loader`"
            )
        lib.espeak_SetSynthCallback(_SYNTH_CALLBACK)
        try:
            yield lib, sample_rate
        finally:
            lib.espeak_Terminate()
    finally:
        _unload(lib)


def _engine_voice_name(voice: str) -> bytes:
    """Validate a voice name and map friendly aliases onto eSpeak NG's own names."""
    if not isinstance(voice, str) or not _VOICE_RE.match(voice):
        raise ValueError(
            f"invalid voice name {voice!r}: expected e.g. 'en-us' or 'en-us+f3' "
            "(letters, digits, '-', '_', optional '+variant')"
        )
    base, plus, variant = voice.partition("+")
    base = _VOICE_ALIASES.get(base.lower(), base)
    return f"{base}{plus}{variant}".encode()


def _unknown_variant(voice: str) -> str | None:
    """The ``+variant`` part of ``voice`` if its file is missing, else ``None``.

    eSpeak silently falls back to the plain voice for an unknown variant, which would make a
    typo like ``en-us+f33`` produce the wrong speaker without any error.
    """
    _base, _plus, variant = voice.partition("+")
    if not variant or variant.isdigit():  # "+3" / "+13" are eSpeak's numbered m3 / f3
        return None
    variants_dir = Path(_resolve_paths()[1]) / "voices" / "!v"
    return None if (variants_dir / variant).is_file() else variant


def _check_int(name: str, value: int, low: int, high: int, meaning: str) -> None:
    """Raise a ValueError naming the parameter, its valid range and what it means."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high} ({meaning}), got {value}")


def synthesize(
    text: str,
    *,
    voice: str = "en-us",
    rate: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    volume: int = 100,
    word_gap: int = 0,
) -> tuple[np.ndarray, int]:
    """Speak ``text`` with eSpeak NG and return ``(samples, sample_rate)``.

    ``samples`` is mono int16 (eSpeak's native format, so nothing is lost to conversion) and
    ``sample_rate`` is eSpeak's rate, 22050 Hz. Output is deterministic: the same arguments
    give bit-identical samples in any process, whatever was synthesised before.

    Args:
        text: UTF-8 text to speak (plain text; SSML and phoneme markup are not interpreted).
        voice: eSpeak voice, optionally with a variant, e.g. ``"en-us"`` or ``"en-us+f3"``;
            see :func:`list_voices`.
        rate: speaking rate in words per minute, 80..450.
        pitch: base pitch, 0..100 (50 is the voice's normal pitch).
        pitch_range: intonation range, 0..100 (0 is monotone, 50 normal).
        volume: amplitude, 0..200 (100 is normal; louder values get compressed).
        word_gap: extra pause between words in units of 10 ms, 0..100.

    Raises:
        ValueError: empty text, an out-of-range parameter or an unknown voice.
        SpeechUnavailable: the eSpeak NG library or its data cannot be loaded.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError("text must not be empty or whitespace only")
    if "\x00" in text:
        raise ValueError("text must not contain NUL characters")
    _check_int("rate", rate, RATE_MIN, RATE_MAX, "words per minute")
    _check_int("pitch", pitch, 0, 100, "50 is the voice's normal pitch")
    _check_int("pitch_range", pitch_range, 0, 100, "0 is monotone, 50 normal")
    _check_int("volume", volume, 0, _VOLUME_MAX, "100 is normal")
    _check_int("word_gap", word_gap, 0, _WORD_GAP_MAX, "units of 10 ms")
    voice_name = _engine_voice_name(voice)
    if (variant := _unknown_variant(voice)) is not None:
        raise ValueError(f"unknown eSpeak voice variant {variant!r} in {voice!r}")
    settings = (
        (_ESPEAK_RATE, rate),
        (_ESPEAK_VOLUME, volume),
        (_ESPEAK_PITCH, pitch),
        (_ESPEAK_RANGE, pitch_range),
        (_ESPEAK_WORDGAP, word_gap),
    )
    with _LOCK:
        result = _synthesize_locked(text.encode("utf-8"), voice_name, settings)
    if result is None:  # outside the lock: list_voices() needs it
        raise ValueError(f"unknown eSpeak voice {voice!r}; available: {list_voices()}")
    return result


def _synthesize_locked(
    encoded: bytes, voice_name: bytes, settings: tuple[tuple[int, int], ...]
) -> tuple[np.ndarray, int] | None:
    """Run one utterance on a fresh engine; ``None`` if the voice does not exist."""
    with _engine() as (lib, sample_rate):
        status = lib.espeak_SetVoiceByName(voice_name)
        if status == _EE_NOT_FOUND:
            return None
        if status != _EE_OK:
            raise RuntimeError(f"eSpeak NG could not select voice {voice_name!r} ({status})")
        for parameter, value in settings:
            status = lib.espeak_SetParameter(parameter, int(value), 0)
            if status != _EE_OK:
                raise RuntimeError(f"eSpeak NG rejected parameter {parameter}={value}")
        _chunks.clear()
        _reseed_libc_rand()
        try:
            status = lib.espeak_Synth(
                encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
            )
            if status != _EE_OK:
                raise RuntimeError(f"eSpeak NG synthesis failed (status {status})")
            lib.espeak_Synchronize()
            samples = np.frombuffer(b"".join(_chunks), dtype="<i2").astype(np.int16)
        finally:
            _chunks.clear()
    return samples, sample_rate


def list_voices() -> list[str]:
    """English voice names that this installation can really synthesise.

    A curated list (US, British, Scottish and Caribbean English plus male/female variants)
    filtered by asking eSpeak NG to select each one, so callers can offer them in a UI
    without guessing. Cached after the first call.
    """
    global _available_voices
    if _available_voices is not None:
        return list(_available_voices)
    with _LOCK:
        if _available_voices is None:
            found: list[str] = []
            with _engine() as (lib, _sample_rate):
                for name in _CURATED_VOICES:
                    if _unknown_variant(name) is not None:
                        continue
                    if lib.espeak_SetVoiceByName(_engine_voice_name(name)) == _EE_OK:
                        found.append(name)
            _available_voices = found
        return list(_available_voices)
