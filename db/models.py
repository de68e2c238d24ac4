"""Typed rows of the workspace tables.

Reads return frozen dataclasses built from fixed column lists (`COLUMNS`), so a schema
change that renames a column fails loudly in one place instead of scattering KeyErrors.
`*In` classes are what writers accept: they carry no database ids of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ambiscope.db import codec

ANNOTATOR_KINDS = ("human", "synthetic", "self", "actor", "review")
JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class Dataset:
    id: int
    name: str
    format: str
    root: str | None
    label_set: tuple[str, ...]
    options: dict[str, Any]
    votes_version: int
    created_at: str

    COLUMNS: ClassVar[str] = "id, name, format, root, label_set, options, votes_version, created_at"

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Dataset:
        return cls(
            row[0],
            row[1],
            row[2],
            row[3],
            tuple(codec.loads(row[4], [])),
            codec.loads(row[5], {}),
            row[6],
            row[7],
        )

    @property
    def k(self) -> int:
        return len(self.label_set)


@dataclass(frozen=True, slots=True)
class ClipIn:
    key: str
    path: str | None = None
    duration: float | None = None
    sample_rate: int | None = None
    speaker: str | None = None
    gender: str | None = None
    split: str | None = None
    transcript: str | None = None
    intended_label: str | None = None
    meta: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Clip:
    id: int
    dataset_id: int
    key: str
    path: str | None
    duration: float | None
    sample_rate: int | None
    speaker: str | None
    gender: str | None
    split: str | None
    transcript: str | None
    intended_label: str | None
    meta: dict[str, Any]

    COLUMNS: ClassVar[str] = (
        "id, dataset_id, key, path, duration, sample_rate, speaker, gender, split, "
        "transcript, intended_label, meta"
    )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Clip:
        return cls(*row[:11], codec.loads(row[11], {}))


@dataclass(frozen=True, slots=True)
class Annotator:
    id: int
    dataset_id: int
    external_id: str
    kind: str
    run_id: int | None
    meta: dict[str, Any]

    COLUMNS: ClassVar[str] = "id, dataset_id, external_id, kind, run_id, meta"

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Annotator:
        return cls(*row[:5], codec.loads(row[5], {}))


@dataclass(frozen=True, slots=True)
class VoteIn:
    clip_id: int
    annotator_id: int
    label: str
    rank: int = 0
    weight: float = 1.0
    raw_label: str | None = None


@dataclass(frozen=True, slots=True)
class VoteRow:
    clip_id: int
    annotator_id: int
    annotator: str
    kind: str
    label: str
    rank: int
    weight: float
    raw_label: str | None


@dataclass(frozen=True, slots=True)
class VoteArrays:
    """Votes as parallel arrays; label_idx indexes the dataset's label set (-1: outside)."""

    clip_id: np.ndarray
    label_idx: np.ndarray
    weight: np.ndarray
    rank: np.ndarray
    annotator_id: np.ndarray

    def __len__(self) -> int:
        return int(self.clip_id.shape[0])


@dataclass(frozen=True, slots=True)
class RunIn:
    dataset_id: int
    model: str
    backend: str
    mode: str
    n: int
    name: str | None = None
    revision: str | None = None
    prompt_template: str | None = None
    prompt_text: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    search: str = "sample"
    seed: int | None = None
    verifier: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    dataset_id: int
    name: str | None
    model: str
    revision: str | None
    backend: str
    prompt_template: str | None
    prompt_text: str | None
    mode: str
    n: int
    temperature: float | None
    top_p: float | None
    search: str
    seed: int | None
    verifier: str | None
    config: dict[str, Any]
    created_at: str

    COLUMNS: ClassVar[str] = (
        "id, dataset_id, name, model, revision, backend, prompt_template, prompt_text, mode, "
        "n, temperature, top_p, search, seed, verifier, config, created_at"
    )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Run:
        return cls(*row[:15], codec.loads(row[15], {}), row[16])

    @property
    def label(self) -> str:
        """Short human name: the explicit name or `#id model`."""
        return self.name or f"#{self.id} {self.model}"


@dataclass(frozen=True, slots=True)
class Sample:
    """One candidate answer of a run for a clip (index `idx` in 0..N-1)."""

    run_id: int
    clip_id: int
    idx: int
    raw_text: str | None = None
    label: str | None = None
    distribution: np.ndarray | None = None
    logprob: float | None = None
    logprob_norm: float | None = None
    n_tokens: int | None = None
    verifier_score: float | None = None
    valid: bool = True
    error: str | None = None

    COLUMNS: ClassVar[str] = (
        "run_id, clip_id, idx, raw_text, label, distribution, logprob, logprob_norm, "
        "n_tokens, verifier_score, valid, error"
    )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Sample:
        return cls(*row[:5], codec.decode_dist(row[5]), *row[6:10], bool(row[10]), row[11])

    def to_row(self) -> tuple[Any, ...]:
        blob = None if self.distribution is None else codec.encode_dist(self.distribution)
        return (
            self.run_id,
            self.clip_id,
            self.idx,
            self.raw_text,
            self.label,
            blob,
            self.logprob,
            self.logprob_norm,
            self.n_tokens,
            self.verifier_score,
            int(self.valid),
            self.error,
        )


@dataclass(frozen=True, slots=True)
class Prediction:
    run_id: int
    strategy: str
    clip_id: int
    distribution: np.ndarray
    label: str | None = None
    entropy: float | None = None
    js: float | None = None  # to the human distribution at write time (None: no votes)
    bc: float | None = None
    agree: bool | None = None  # argmax equals the human majority


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    params: dict[str, Any]
    status: str
    progress_done: int
    progress_total: int
    owner: str | None
    lease_expires: float | None
    heartbeat: float | None
    cancel_requested: bool
    attempts: int
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    COLUMNS: ClassVar[str] = (
        "id, kind, params, status, progress_done, progress_total, owner, lease_expires, "
        "heartbeat, cancel_requested, attempts, error, created_at, started_at, finished_at"
    )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Job:
        return cls(
            row[0],
            row[1],
            codec.loads(row[2], {}),
            row[3],
            row[4],
            row[5],
            row[6],
            row[7],
            row[8],
            bool(row[9]),
            row[10],
            row[11],
            row[12],
            row[13],
            row[14],
        )
