"""Listening to clips from the TUI, including when the terminal is on another machine.

Playback uses `sounddevice` (PortAudio) on the machine that runs ambiscope. Over SSH that
machine usually has no sound card, so there are three ways to hear a clip:

1. **Forward PulseAudio over SSH** (audio plays on your laptop's speakers). On the laptop
   (Linux or macOS with PulseAudio/PipeWire-pulse), allow local TCP clients once::

       pactl load-module module-native-protocol-tcp auth-ip-acl=127.0.0.1

   then connect with a reverse tunnel from the server's port 24713 to the laptop's 4713::

       ssh -R 24713:localhost:4713 user@server

   and on the server, before starting ambiscope::

       export PULSE_SERVER=tcp:localhost:24713
       ambiscope tui

   PortAudio then sees the `pulse` device (the server needs libportaudio2 and the pulse
   ALSA plugin, e.g. `apt-get install libportaudio2 pulseaudio-utils libasound2-plugins`).

2. **Use the browser**: run `ambiscope serve` on the server (bound to 127.0.0.1:8000),
   forward the port with `ssh -L 8000:localhost:8000 user@server`, open
   http://localhost:8000 on the laptop; there `space` plays the clip in that page (and
   stops it), the workbench keeping the keyboard. The app only asks the page to open
   `play_url(clip id)`; the server's route and the page's player are in
   ambiscope.tui.web_audio.

3. **Export the clip**: `x` writes the clip as a WAV file to a path you choose; copy it
   with `scp` and play it locally.

Nothing here may crash the app: `sounddevice` raises OSError at import time when the
PortAudio library is missing and PortAudioError when there is no output device; both
become a one-line reason that the app shows once with the alternatives above.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import threading
from typing import Any

import numpy as np

NO_DEVICE_HELP = (
    "No audio output device here{reason}. Alternatives: forward PulseAudio over SSH "
    "(ssh -R 24713:localhost:4713, then export PULSE_SERVER=tcp:localhost:24713; see "
    "README), run `ambiscope serve` and listen in the browser, or press x to export the "
    "clip as WAV."
)


def no_device_help(reason: str) -> str:
    """`NO_DEVICE_HELP` in plain words: a missing sound library is worth naming (it can be
    installed); PortAudio's own device errors ("Error querying device -1") are not."""
    missing = "library" in reason.lower() or "sounddevice" in reason.lower()
    return NO_DEVICE_HELP.format(reason=f" (missing: {reason})" if missing else "")


AUDIO_KEY_ENV = "AMBISCOPE_AUDIO_KEY"
"""The key (hex) that `ambiscope serve` hands the app processes it starts, for tokens."""

AUDIO_PREFIX = "/audio/"
"""Path of the server's audio route; the page plays URLs under it in place."""


def audio_token(key: bytes, clip_id: int) -> str:
    """The token that lets the page fetch `clip_id`'s audio while this server runs."""
    return hmac.new(key, str(clip_id).encode(), hashlib.sha256).hexdigest()[:32]


def play_url(clip_id: int) -> str | None:
    """The URL that plays `clip_id` in the `ambiscope serve` page; None outside it.

    The key comes from the server that launched this app process, so a page served by
    another server (plain `textual serve`) gets None rather than a URL that 404s.
    """
    try:
        key = bytes.fromhex(os.environ.get(AUDIO_KEY_ENV, ""))
    except ValueError:  # a malformed key set by hand
        return None
    return f"{AUDIO_PREFIX}{clip_id}/{audio_token(key, clip_id)}" if key else None


def _import_sounddevice() -> tuple[Any | None, str | None]:
    try:
        import sounddevice as sd
    except OSError as exc:  # libportaudio missing
        return None, f"PortAudio library not found: {exc}"
    except ImportError as exc:
        return None, f"sounddevice is not installed: {exc}"
    return sd, None


class Player:
    """Plays one clip at a time on the default output device (thread-safe stop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._playing: int | None = None
        self._reason: str | None = None
        self._checked = False
        self._sd: Any | None = None

    def check(self) -> str | None:
        """None when an output device exists, else the reason (cached after first call)."""
        with self._lock:
            if self._checked:
                return self._reason
            self._checked = True
            sd, reason = _import_sounddevice()
            if sd is None:
                self._reason = reason
                return reason
            try:
                info = sd.query_devices(kind="output")
                if not info or int(info.get("max_output_channels", 0)) < 1:
                    raise RuntimeError("the default device has no output channels")
            except Exception as exc:  # PortAudioError, ValueError, RuntimeError
                self._reason = " ".join(str(exc).split()) or type(exc).__name__
                return self._reason
            self._sd = sd
            return None

    @property
    def playing(self) -> int | None:
        return self._playing

    def play_blocking(self, clip_id: int, samples: np.ndarray, sample_rate: int) -> None:
        """Play until the end or until `stop()`; call from a worker thread."""
        reason = self.check()
        if reason is not None or self._sd is None:
            raise RuntimeError(reason or "no audio device")
        sd = self._sd
        with self._lock:
            self._playing = clip_id
        try:
            sd.play(samples, sample_rate)
            sd.wait()
        finally:
            with self._lock:
                if self._playing == clip_id:
                    self._playing = None

    def stop(self) -> None:
        with self._lock:
            self._playing = None
            sd = self._sd
        if sd is not None:
            with contextlib.suppress(Exception):  # stopping must never fail the UI
                sd.stop()
