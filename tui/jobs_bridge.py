"""The TUI's side of the job queue: enqueue, poll, cancel, retry, start a worker.

All calls are blocking (SQLite, process start-up) and are made from thread workers. The
worker is the library's own detached process (ambiscope.core.jobs.spawn), the same one
`ambiscope enqueue --start-worker` starts.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ambiscope.core.jobs import queue
from ambiscope.core.jobs.kinds import describe_job
from ambiscope.core.jobs.liveness import live_workers, now
from ambiscope.core.jobs.spawn import ensure_worker as spawn_worker
from ambiscope.core.paths import dataset_file
from ambiscope.db import Job, Workspace
from ambiscope.db import jobs as rows
from ambiscope.tui.settings import load_settings

if TYPE_CHECKING:
    from ambiscope.core.scaling.run import RunSpec

# What the transformers backend takes for a Hub id (its module imports torch, so the
# pattern is repeated here); anything else is a local checkpoint directory.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def ensure_worker(path: Path) -> int:
    """A live worker's pid, starting one with the user's allow list from their settings
    (a missing or broken settings file allows nothing)."""
    return spawn_worker(path, policy=load_settings()[0].worker_policy())


def model_problem(spec: RunSpec) -> str:
    """Why the worker could not open the spec's model ("" when it can try).

    Checked before a job is queued, so a typo in a path or a backend fails in the dialog
    with one line instead of in the worker: a local checkpoint must be a directory, and
    a Hub id must be in the local cache when Hugging Face is set offline. An endpoint's
    model is left to the worker's preflight (it needs the network).
    """
    from ambiscope.core.alm import BACKENDS

    if not spec.model:
        return "model: enter a model id or a local checkpoint path"
    if spec.backend not in BACKENDS.names():
        return f"backend {spec.backend!r} is unknown (known: {', '.join(BACKENDS.names())})"
    if spec.backend != "transformers":
        return ""
    path = Path(spec.model).expanduser()
    if path.is_dir():
        return ""
    if path.exists() or spec.model.startswith((".", "/", "~")) or not HUB_ID.match(spec.model):
        return f"model directory not found: {spec.model}"
    if _offline() and not _hub_cached(spec.model, spec.revision):
        return f"model {spec.model} is not in the local Hugging Face cache and HF is offline"
    return ""


def _offline() -> bool:
    return any(
        os.environ.get(flag, "").strip().lower() in {"1", "true", "yes", "on"}
        for flag in OFFLINE_FLAGS
    )


def _hub_cached(model: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model, "config.json", revision=revision)
    except ValueError:  # not a valid repo id
        return False
    return isinstance(found, str)


def audio_problem(ws: Workspace, clip_ids: Sequence[int]) -> str:
    """Why re-sampling these clips would fail for want of audio ("" when all can be read).

    A clip needs a stored path inside its dataset's root naming a readable file; the
    first clip without one is named, with how many others share the problem.
    """
    missing: list[str] = []
    datasets: dict[int, Any] = {}
    for clip_id in clip_ids:
        clip = ws.get_clip(clip_id)
        if clip.dataset_id not in datasets:
            datasets[clip.dataset_id] = ws.get_dataset(clip.dataset_id)
        ds = datasets[clip.dataset_id]
        path = dataset_file(ds.root, ds.options, clip.path) if clip.path else None
        if path is None or not path.is_file() or not os.access(path, os.R_OK):
            missing.append(f"{clip.key} ({path or 'no audio path'})")
    if not missing:
        return ""
    if len(clip_ids) == 1:
        return f"no readable audio for {missing[0]}"
    others = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
    return f"no readable audio for {missing[0]}{others} of {len(clip_ids)} clips"


def enqueue_resample(path: Path, spec: dict[str, Any], clip_ids: list[int]) -> str:
    """Queue a resample job for these clips and make sure a worker runs it; returns a message.

    Raises ValueError (one line) without queueing when the model or the clips' audio
    cannot be used: the job would only fail in the worker.
    """
    from ambiscope.core.scaling.job import enqueue_resample as queue_resample
    from ambiscope.core.scaling.run import RunSpec

    run_spec = RunSpec.from_dict(spec)
    problem = model_problem(run_spec)
    if problem:
        raise ValueError(problem)
    with Workspace.open(path) as ws:
        problem = audio_problem(ws, clip_ids)
        if problem:
            raise ValueError(problem)
        job = queue_resample(ws, run_spec, clip_ids=clip_ids)
    try:
        pid = ensure_worker(path)
    except Exception as exc:  # queued all the same; the jobs screen offers `w` to retry
        first = " ".join(str(exc).split())
        return f"job {job.id} queued ({len(clip_ids)} clips) but no worker started: {first}"
    return f"job {job.id} queued ({len(clip_ids)} clips); worker pid {pid}"


@dataclass(frozen=True)
class JobRow:
    """A job plus what the jobs screen derives from it (description, staleness, ETA)."""

    job: Job
    what: str
    stale: bool
    eta_s: float | None


@dataclass(frozen=True)
class JobsSnapshot:
    rows: list[JobRow]
    workers: list[str]  # one line per live worker
    now: float


def poll(path: Path, limit: int = 200) -> JobsSnapshot:
    """Jobs newest first, with stale ones (running with an expired lease) marked."""
    with Workspace.open(path, readonly=True) as ws:
        return poll_workspace(ws, limit)


def poll_workspace(ws: Workspace, limit: int = 200) -> JobsSnapshot:
    """`poll` on an open workspace (the app polls every second on a pooled connection)."""
    t = now()
    jobs = rows.list_jobs(ws, limit=limit)
    try:
        live = live_workers(ws)
    except Exception:  # the workers table may be missing in an old workspace
        live = []
    found = []
    for job in jobs:
        stale = job.status == "running" and (job.lease_expires or 0) < t
        eta = None
        if job.status == "running" and job.started_at and job.progress_done > 0:
            elapsed = max(t - job.started_at, 0.0)
            rate = job.progress_done / elapsed if elapsed > 0 else 0.0
            if rate > 0:
                eta = (job.progress_total - job.progress_done) / rate
        found.append(JobRow(job, describe_job(job), stale, eta))
    workers = [
        f"pid {w.pid} on {w.host}{' · ' + w.device if w.device else ''} · "
        f"{'job ' + str(w.current_job) if w.current_job else 'idle'} · {w.jobs_done} finished"
        for w in live
    ]
    return JobsSnapshot(found, workers, t)


def status_counts(snapshot: JobsSnapshot) -> Counter[str]:
    """Jobs per shown status ("stale" for a running job whose worker was lost)."""
    return Counter("stale" if r.stale else r.job.status for r in snapshot.rows)


def summary(snapshot: JobsSnapshot) -> str:
    """The jobs part of the browser's header: active jobs with progress, then problems.

    Failed jobs are counted until retried (the jobs screen lists them), so a job that
    failed in the worker is never summed up as done or as nothing at all.
    """
    counts = status_counts(snapshot)
    parts = []
    active = counts["queued"] + counts["running"]
    if active:
        running = [r.job for r in snapshot.rows if r.job.status == "running" and not r.stale]
        done = sum(j.progress_done for j in running)
        total = sum(j.progress_total for j in running)
        parts.append(f"jobs {active} active" + (f" {done}/{total}" if total else ""))
    parts += [f"{counts[s]} {s}" for s in ("failed", "stale") if counts[s]]
    if parts and not active:
        parts[0] = f"jobs {parts[0]}"
    return " · ".join(parts)


def created_run(path: Path, job_id: int) -> int | None:
    """The run a finished re-sample job created (None when it resumed one, or failed)."""
    with Workspace.open(path, readonly=True) as ws:
        result = rows.job_extras(ws, job_id).result or {}
    run_id = result.get("run_id")
    return int(run_id) if result.get("created") and run_id is not None else None


def events(path: Path, job_id: int, limit: int = 30) -> list[str]:
    with Workspace.open(path, readonly=True) as ws:
        return [
            f"{time.strftime('%H:%M:%S', time.localtime(e.time))} {e.level:<7} {e.message}"
            for e in rows.list_events(ws, job_id, limit=limit)
        ]


def cancel(path: Path, job_id: int) -> str:
    with Workspace.open(path) as ws:
        job = queue.cancel_job(ws, job_id)
    if job.status == "cancelled":
        return f"job {job_id} cancelled"
    return f"job {job_id}: cancel requested (stops after the current clip)"


def retry(path: Path, job_id: int) -> str:
    with Workspace.open(path) as ws:
        queue.retry_job(ws, job_id)
    try:
        pid = ensure_worker(path)
    except Exception as exc:
        return f"job {job_id} queued again, but no worker started: {' '.join(str(exc).split())}"
    return f"job {job_id} queued again; worker pid {pid}"
