"""The resumable clip loop shared by sampling runs and synthetic-annotation runs.

Both kinds of run do the same around their per-clip work: pick the selected clips the
run has not finished (a rerun of the same spec resumes; failed clips are retried), ask
`should_stop()` before each clip (Ctrl-C or a job's stop request ends the run between
clips, never inside one), count outcomes and report progress. The per-clip work writes
its clip in ONE transaction, so a clip is either entirely stored or not at all; a clip
whose audio cannot be read or whose backend call fails is recorded as failed with its
reason (`attempt_clip`) and the run goes on.

A backend that serves many requests at once (an HTTP endpoint) is kept busy by a
*pipeline*: up to ``in_flight`` clips are computed on worker threads (model calls, parsing,
aggregation; no database access), and this thread, the workspace's only writer, commits
each finished clip in its own transaction as it arrives. Stopping lets the clips already
in flight finish and commits them; clips not yet started are left for the next resume.

Work that runs in other processes (Ray actors, `scaling.ray_pool`) comes split in three
(`SplitWork`): the driver turns a clip into a picklable task (reading its audio here, where
the corpus roots are checked), the model phase runs remotely on batches of tasks and
returns picklable outputs, and the driver commits each output as it arrives. The remote
engine is handed to `run_selected` as its ``drive``; selection, resume, stopping and the
accounting stay here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import numpy as np

from ambiscope.core.alm.base import AudioInput, Backend, BackendError
from ambiscope.core.audio import AudioError, load_audio
from ambiscope.core.browse.query import select_clip_ids
from ambiscope.core.paths import dataset_file
from ambiscope.core.reference.distributions import entropy_bits
from ambiscope.core.reference.prediction_scores import ReferenceScorer
from ambiscope.db import Clip, Dataset, Prediction, Run, Workspace


@dataclass
class ClipOutcome:
    """What processing one clip gave: `answers` model answers, `valid` of them usable."""

    clip_id: int
    ok: bool
    seconds: float
    model_seconds: float
    answers: int = 0
    valid: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class RunProgress:
    done: int
    total: int
    failed: int
    elapsed: float
    last: ClipOutcome | None


@dataclass
class LoopResult:
    """Totals of one pass of the loop over a run's selected clips."""

    run: Run
    created: bool
    total: int = 0
    skipped: int = 0
    processed: int = 0
    failed: int = 0
    answers: int = 0
    valid: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    stopped: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the user should know (skipped parts)

    @property
    def invalid(self) -> int:
        return self.answers - self.valid


R = TypeVar("R", bound=LoopResult)


class ModelClock:
    """Seconds spent inside model calls (`with clock.timing(): backend.sample(...)`)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.model_seconds = 0.0

    @contextmanager
    def timing(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.model_seconds += time.perf_counter() - t0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def add(self, seconds: float) -> None:
        """Model time spent on this clip's behalf elsewhere (its share of a batch)."""
        self.model_seconds += seconds


def find_run(ws: Workspace, ds: Dataset, digest: str) -> Run | None:
    """The dataset's run whose spec identity hashes to `digest` (the run to resume)."""
    return next((r for r in ws.runs(ds.id) if r.config.get("identity_hash") == digest), None)


def clip_audio(ds: Dataset, clip: Clip, backend: Backend) -> AudioInput:
    """The clip's audio at the backend's rate and length limit (AudioError if unusable)."""
    if not clip.path:
        raise AudioError(f"clip {clip.key}: no audio file")
    path = dataset_file(ds.root, ds.options, clip.path)
    if path is None:
        raise AudioError(f"clip {clip.key}: {clip.path} is outside the dataset root")
    loaded = load_audio(path, backend.sample_rate, max_seconds=backend.max_audio_seconds)
    return AudioInput(loaded.samples, loaded.sample_rate, tuple(loaded.warnings))


Commit = Callable[[], ClipOutcome]
"""Writes one computed clip (or its failure) in one transaction, on the writer thread."""

Account = Callable[[Clip, ClipOutcome], None]
Drive = Callable[[Sequence[int], Account, Callable[[], bool]], None]
"""An engine that processes the clip ids in order-ish, calling ``account(clip, outcome)``
after each commit and asking ``stop()`` before starting more work."""


@dataclass(frozen=True)
class RemoteFailure:
    """A clip whose model phase failed elsewhere (first line of the reason), as data."""

    error: str
    seconds: float = 0.0
    model_seconds: float = 0.0


@dataclass(frozen=True)
class SplitWork:
    """A run's per-clip work split so its model phase can run in another process.

    ``phase.run(backend, verifier, tasks)`` must be picklable with its inputs and outputs
    (it travels to Ray actors) and return one output or `RemoteFailure` per task;
    ``task(clip)`` runs on the driver and may raise AudioError; ``commit(clip, task,
    output)`` writes one clip (or records its `RemoteFailure`) in one transaction;
    ``fail(clip, exc)`` records a clip whose task could not be made.
    """

    phase: Any
    task: Callable[[Clip], Any]
    commit: Callable[[Clip, Any, Any], ClipOutcome]
    fail: Callable[[Clip, Exception], ClipOutcome]


def attempt_clip(
    ws: Workspace, run: Run, clip: Clip, work: Callable[[ModelClock], ClipOutcome]
) -> ClipOutcome:
    """`work(clock)` on one clip; unreadable audio or a backend failure is recorded as the
    clip's failure (first line of the reason) and returned as a failed outcome."""
    clock = ModelClock()
    try:
        return work(clock)
    except (AudioError, BackendError) as exc:
        return record_failure(ws, run, clip, clock, exc)


def attempt_compute(
    ws: Workspace, run: Run, clip: Clip, compute: Callable[[ModelClock], Commit]
) -> Commit:
    """`compute(clock)` on a worker thread: the clip's model work, returning the commit
    that writes it; unreadable audio or a backend failure returns the commit that records
    the failure instead (the database is only touched by the writer)."""
    clock = ModelClock()
    try:
        return compute(clock)
    except (AudioError, BackendError) as exc:
        return partial(record_failure, ws, run, clip, clock, exc)


def record_failure(
    ws: Workspace, run: Run, clip: Clip, clock: ModelClock, exc: Exception
) -> ClipOutcome:
    """Record the clip as failed with the first line of `exc` (one transaction)."""
    return record_remote_failure(ws, run, clip, failure_of(exc, clock))


def failure_of(exc: Exception, clock: ModelClock) -> RemoteFailure:
    """A clip's failure as data: the first line of the reason and the time it took."""
    text = str(exc).strip()
    error = text.splitlines()[0] if text else type(exc).__name__
    return RemoteFailure(error, clock.elapsed(), clock.model_seconds)


def record_remote_failure(
    ws: Workspace, run: Run, clip: Clip, failure: RemoteFailure
) -> ClipOutcome:
    """Record a clip's failure that came back as data (one transaction)."""
    with ws.transaction():
        ws.set_run_clip(
            run.id,
            clip.id,
            "failed",
            error=failure.error,
            seconds=failure.seconds,
            model_seconds=failure.model_seconds,
        )
    return ClipOutcome(clip.id, False, failure.seconds, failure.model_seconds, error=failure.error)


def clear_clip(ws: Workspace, run: Run, clip: Clip) -> None:
    """Delete a clip's earlier samples and predictions of the run (inside the clip's
    transaction, before its new rows are written)."""
    for table in ("samples", "predictions"):
        ws.conn.execute(f"DELETE FROM {table} WHERE run_id = ? AND clip_id = ?", (run.id, clip.id))


def prediction(
    run: Run,
    strategy: str,
    clip: Clip,
    dist: np.ndarray,
    labels: Sequence[str],
    scorer: ReferenceScorer,
) -> Prediction:
    """A stored prediction: top label, entropy and scores against the human reference."""
    js, bc, agree = scorer.score(clip.id, dist)
    entropy = float(entropy_bits(dist[None, :])[0])
    return Prediction(
        run.id, strategy, clip.id, dist, labels[int(np.argmax(dist))], entropy, js, bc, agree
    )


def run_selected(
    ws: Workspace,
    ds: Dataset,
    result: R,
    process: Callable[[Clip], ClipOutcome],
    *,
    clip_ids: Sequence[int] | None = None,
    where: str | None = None,
    limit: int | None = None,
    on_progress: Callable[[RunProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    batch: int = 1,
    prepare: Callable[[list[Clip]], None] | None = None,
    pipeline: Callable[[Clip], Commit] | None = None,
    in_flight: int = 1,
    drive: Drive | None = None,
) -> R:
    """Process the selected clips the run has not finished, in order, into `result`.

    The selection is the explicit `clip_ids`, else the filter `where` (up to `limit`);
    clips already done are skipped (resume), failed ones retried. `should_stop()` is
    asked before each clip; `on_progress` hears after each. With ``batch`` > 1, the
    next ``batch`` clips are handed to ``prepare`` together first (e.g. to decode their
    candidates in one batch); each clip is still processed and written on its own.
    With ``pipeline`` and ``in_flight`` > 1, clips are computed ``in_flight`` at a time on
    worker threads and committed here as they finish (module docstring). A ``drive``
    (e.g. Ray actors) processes the clips instead of either.
    """
    selected = (
        list(clip_ids)
        if clip_ids is not None
        else select_clip_ids(ws.conn, where, dataset_id=ds.id, limit=limit)
    )
    done = ws.run_clip_ids(result.run.id, status="done")
    todo = [c for c in selected if c not in done]
    result.total, result.skipped = len(selected), len(selected) - len(todo)
    started = time.perf_counter()

    def account(clip: Clip, outcome: ClipOutcome) -> None:  # an `Account`
        result.processed += 1
        result.model_seconds += outcome.model_seconds
        if outcome.ok:
            result.answers += outcome.answers
            result.valid += outcome.valid
        else:
            result.failed += 1
            result.failures.append((clip.key, outcome.error or "failed"))
        if on_progress is not None:
            elapsed = time.perf_counter() - started
            done_now = result.skipped + result.processed
            on_progress(RunProgress(done_now, result.total, result.failed, elapsed, outcome))

    def stop() -> bool:
        if should_stop is not None and should_stop():
            result.stopped = True
        return result.stopped

    if drive is not None:
        drive(todo, account, stop)
    elif pipeline is not None and in_flight > 1:
        _pipelined(ws, todo, pipeline, in_flight, account, stop)
    else:
        upcoming: list[Clip] = []
        for index in range(len(todo)):
            if stop():
                break
            if not upcoming:
                upcoming = [ws.get_clip(c) for c in todo[index : index + max(1, batch)]]
                if prepare is not None and len(upcoming) > 1:
                    prepare(upcoming)
            clip = upcoming.pop(0)
            account(clip, process(clip))
    result.seconds = time.perf_counter() - started
    return result


def _pipelined(
    ws: Workspace,
    todo: Sequence[int],
    compute: Callable[[Clip], Commit],
    in_flight: int,
    account: Account,
    stop: Callable[[], bool],
) -> None:
    """Keep ``in_flight`` clips computing; commit each as it finishes (this thread writes)."""
    queue = iter(todo)
    running: dict[Future[Commit], Clip] = {}
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="ambiscope-clip") as pool:

        def submit() -> None:
            clip_id = next(queue, None)
            if clip_id is not None:
                clip = ws.get_clip(clip_id)
                running[pool.submit(compute, clip)] = clip

        for _ in range(in_flight):
            submit()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                clip = running.pop(future)
                account(clip, future.result()())
                if not stop():
                    submit()
