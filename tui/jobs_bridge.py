"""The TUI's side of the job queue: enqueue, poll, cancel, retry, start a worker.

All calls are blocking (SQLite, process start-up) and are made from thread workers. The
worker is the library's own detached process (ambiscope.core.jobs.spawn), the same one
`ambiscope enqueue --start-worker` starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ambiscope.core.jobs import queue
from ambiscope.core.jobs.kinds import describe_job
from ambiscope.core.jobs.liveness import live_workers, now
from ambiscope.core.jobs.spawn import ensure_worker as spawn_worker
from ambiscope.db import Job, Workspace
from ambiscope.db import jobs as rows
from ambiscope.tui.settings import load_settings


def ensure_worker(path: Path) -> int:
    """A live worker's pid, starting one with the user's allow list from their settings
    (a missing or broken settings file allows nothing)."""
    return spawn_worker(path, policy=load_settings()[0].worker_policy())


def enqueue_resample(path: Path, spec: dict[str, Any], clip_ids: list[int]) -> str:
    """Queue a resample job for these clips and make sure a worker runs it; returns a message."""
    from ambiscope.core.scaling.job import enqueue_resample as queue_resample
    from ambiscope.core.scaling.run import RunSpec

    with Workspace.open(path) as ws:
        job = queue_resample(ws, RunSpec.from_dict(spec), clip_ids=clip_ids)
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
        f"{'job ' + str(w.current_job) if w.current_job else 'idle'} · {w.jobs_done} done"
        for w in live
    ]
    return JobsSnapshot(found, workers, t)


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
