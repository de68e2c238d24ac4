"""The small interface every ALM backend implements (DESIGN.md "ALM candidates").

A backend turns (audio, prompt) into what the test-time-scaling strategies need:
N candidate answers with their log-probabilities, the log-likelihood of each label string
(for the exact `likelihood` strategy), and verifier scores P("Yes") for candidate answers.
Backends never touch the workspace; the run orchestrator (core/scaling/run.py) does.

This module is import-light (numpy only): torch and transformers load inside the
transformers backend, so the CLI and TUI start fast.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

SearchMode = Literal["sample", "beam"]


class BackendError(RuntimeError):
    """A backend cannot serve a request (model missing, endpoint down, bad reply).

    The message is one line; the run marks the clip failed with it and continues.
    """


class ModelLoadError(BackendError):
    """The model cannot be loaded at all (unknown id, needs remote code, no weights)."""


@dataclass(frozen=True)
class AudioInput:
    """Mono float32 samples in [-1, 1] at `sample_rate`, plus load-time warnings."""

    samples: np.ndarray
    sample_rate: int
    warnings: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class ChatPrompt:
    """A prompt as text; the backend places the audio where its model family expects it.

    `user` is the instruction that follows (or surrounds) the audio. `assistant_prefix`
    is text the answer is forced to start with (e.g. for verifier or label scoring).
    """

    user: str
    system: str | None = None
    assistant_prefix: str = ""


def derive_seed(*parts: int | str) -> int:
    """A 31-bit seed from ``parts`` (a run's seed, a clip's key, a candidate's index).

    The same parts give the same seed in any process on any machine, so a candidate's
    randomness depends only on (run seed, clip key, candidate index): not on which engine
    ran the clip (this process, a job worker, a Ray actor), on how many clips shared a
    decode batch, or on how the rows were chunked.
    """
    words: list[int] = []
    for part in parts:
        if isinstance(part, str):
            digest = hashlib.blake2b(part.encode(), digest_size=16).digest()
            words += [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
        else:
            words.append(int(part) & 0xFFFFFFFF)
    return int(np.random.SeedSequence(words).generate_state(1)[0] % (2**31 - 1))


@dataclass(frozen=True)
class GenerationParams:
    """How to decode one clip's candidates. ``seed`` is the clip's seed: candidate i of a
    sampled clip draws from ``derive_seed(seed, i)`` alone (backends that can)."""

    n: int = 16
    temperature: float = 0.8
    top_p: float | None = None
    max_new_tokens: int = 48
    search: SearchMode = "sample"
    beams: int = 4
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if self.search not in ("sample", "beam"):
            raise ValueError(f"search must be 'sample' or 'beam', got {self.search!r}")
        if self.search == "beam" and self.beams < 1:
            raise ValueError("beams must be >= 1")


@dataclass(frozen=True)
class Candidate:
    """One generated answer.

    logprob: sum of the chosen tokens' log-probabilities under the model's (untempered)
    distribution; logprob_norm: logprob / n_tokens (length-normalised, used by BoN).
    """

    text: str
    logprob: float | None = None
    logprob_norm: float | None = None
    n_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """What the run orchestrator needs from a model."""

    name: str  # "transformers" | "openai"
    model_id: str

    @property
    def sample_rate(self) -> int:
        """The audio rate the model expects (audio is resampled to it)."""
        ...

    @property
    def max_audio_seconds(self) -> float | None:
        """Longest audio the model's encoder takes (longer clips are truncated)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Provenance: model id, revision/hash, device, dtype, package versions."""
        ...

    def sample(
        self, audio: AudioInput, prompt: ChatPrompt, params: GenerationParams
    ) -> list[Candidate]:
        """N candidates (sampling) or the B best beams (beam search), best first for beams."""
        ...

    def score_labels(self, audio: AudioInput, prompt: ChatPrompt, labels: list[str]) -> np.ndarray:
        """Summed log-likelihood of each label string as the answer's continuation."""
        ...

    def verify(self, audio: AudioInput, prompts: list[ChatPrompt]) -> np.ndarray:
        """P("Yes") / (P("Yes") + P("No")) for each verifier prompt's next token."""
        ...

    def close(self) -> None: ...
