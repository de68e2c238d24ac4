"""The job queue protocol: enqueue, claim, finish, cancel, retry, recover abandoned jobs.

Researchers send clips back for re-sampling while they keep auditing, and the work has to
survive a dropped SSH session, a killed worker and a crashed TUI. So nothing about a job
lives in a process: its parameters, status, progress, owner and lease are a row of `jobs`,
its log lines are rows of `job_events`, and the workers themselves are rows of `workers`
(the SQL is in ambiscope.db.jobs). Any process (the TUI, `ambiscope jobs`, another
worker) reads the same truth.

Protocol (DESIGN.md "Background jobs"):

* `enqueue` writes a `queued` row; `claim_next` turns the oldest queued job of a kind the
  worker knows into `running` with an owner and a lease, inside one `BEGIN IMMEDIATE`
  transaction, so two workers can never claim the same job.
* The worker renews the lease on a heartbeat (worker.py). A job whose lease expired, or
  whose owner is a worker process on this machine that no longer exists, is abandoned:
  whichever worker next looks for work puts it back in the queue (or fails it after
  `max_attempts` deaths, so a job that kills its worker cannot loop forever).
* Cancel of a queued job is immediate; of a running job it sets `cancel_requested`, which
  the worker reads between clips.
* Handlers resume (e.g. `resample` skips clips already done), so a re-claimed job
  continues where the dead worker stopped and writes nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ambiscope.core.jobs.events import log_event
from ambiscope.core.jobs.kinds import JOB_KINDS
from ambiscope.core.jobs.liveness import abandoned_reason, now
from ambiscope.db import jobs as rows
from ambiscope.db.errors import WorkspaceError

if TYPE_CHECKING:
    from ambiscope.db import Job, Workspace
    from ambiscope.db.jobs import JobEvent, RunningJob

DEFAULT_LEASE_S = 30.0
DEFAULT_MAX_ATTEMPTS = 3
FINISHED = ("done", "failed", "cancelled")


def enqueue(
    ws: Workspace,
    kind: str,
    params: dict[str, Any],
    *,
    total: int = 0,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Job:
    """Queue a job of a registered kind; the row and its first event commit together."""
    JOB_KINDS.get(kind)  # an unknown kind is refused here, not left queued forever
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    with ws.transaction():
        job_id = rows.insert_job(ws, kind, params, total=total, max_attempts=max_attempts, at=now())
        log_event(ws, job_id, f"queued ({kind})")
    return rows.get_job(ws, job_id)


@dataclass(frozen=True)
class JobDetail:
    """A job with what the `Job` row type does not carry (traceback, result, events)."""

    job: Job
    traceback: str | None
    result: dict[str, Any] | None
    max_attempts: int
    updated_at: float | None
    events: list[JobEvent] = field(default_factory=list)


def job_detail(ws: Workspace, job_id: int, *, events: int | None = 50) -> JobDetail:
    job = rows.get_job(ws, job_id)
    extras = rows.job_extras(ws, job_id)
    return JobDetail(
        job,
        extras.traceback,
        extras.result,
        extras.max_attempts,
        extras.updated_at,
        rows.list_events(ws, job_id, limit=events),
    )


def cancel_job(ws: Workspace, job_id: int) -> Job:
    """Cancel: a queued job at once; a running one when its worker next checks (one clip)."""
    with ws.transaction():
        job = rows.get_job(ws, job_id)
        if job.status in FINISHED:
            raise WorkspaceError(f"job {job_id} is already {job.status}")
        if job.status == "queued":
            rows.cancel_queued(ws, job_id, now())
            log_event(ws, job_id, "cancelled while queued")
        else:
            rows.request_cancel(ws, job_id, now())
            log_event(ws, job_id, "cancel requested; the worker stops after the current clip")
    return rows.get_job(ws, job_id)


def retry_job(ws: Workspace, job_id: int) -> Job:
    """Queue a failed or cancelled job again; it resumes (finished clips are kept)."""
    with ws.transaction():
        job = rows.get_job(ws, job_id)
        if job.status not in ("failed", "cancelled"):
            raise WorkspaceError(
                f"job {job_id} is {job.status}; only failed or cancelled jobs can be retried"
            )
        rows.reset_for_retry(ws, job_id, now())
        log_event(ws, job_id, f"retry requested (was {job.status})")
    return rows.get_job(ws, job_id)


def claim_next(
    ws: Workspace,
    owner: str,
    *,
    kinds: Sequence[str] | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    pid_check: bool = True,
) -> Job | None:
    """Atomically take the oldest queued job of `kinds` (default: every registered kind).

    First re-queues abandoned jobs, so any worker looking for work recovers a dead one's.
    A cheap read decides whether the write lock is needed at all: an idle worker polling
    every second must not keep taking the lock the TUI writes under.
    """
    kinds = list(kinds if kinds is not None else JOB_KINDS.names())
    if not kinds or not _work_waiting(ws, kinds, pid_check):
        return None
    with ws.transaction():
        requeue_abandoned(ws, pid_check=pid_check, exclude_owner=owner)
        job_id = rows.oldest_queued(ws, kinds)
        if job_id is None:
            return None
        rows.mark_claimed(ws, job_id, owner, lease_s=lease_s, at=now())
        job = rows.get_job(ws, job_id)
        log_event(ws, job.id, f"claimed by {owner} (attempt {job.attempts})", worker=owner)
    return job


def _work_waiting(ws: Workspace, kinds: Sequence[str], pid_check: bool) -> bool:
    """Read-only: is there a queued job of `kinds`, or a running one whose worker is gone?"""
    if rows.queued_exists(ws, kinds):
        return True
    t = now()
    return any(_why_abandoned(job, t, pid_check) for job in rows.running_jobs(ws))


def _why_abandoned(job: RunningJob, at: float, pid_check: bool) -> str | None:
    return abandoned_reason(job.lease_expires, job.pid, job.node, at, pid_check)


def requeue_abandoned(
    ws: Workspace,
    *,
    pid_check: bool = True,
    exclude_owner: str | None = None,
    at: float | None = None,
) -> list[int]:
    """Re-queue running jobs whose worker is gone; returns their ids.

    Gone = the lease expired (any host), or, with `pid_check`, the owner is a worker on
    this machine whose process no longer exists (a kill -9 is then recovered in one poll,
    not one lease). A job that was asked to cancel becomes cancelled; one that lost its
    worker `max_attempts` times becomes failed.
    """
    t = now() if at is None else at
    out: list[int] = []
    with ws.transaction():  # read and write under one lock: nobody claims in between
        for job in rows.running_jobs(ws):
            if job.owner is not None and job.owner == exclude_owner:
                continue
            why = _why_abandoned(job, t, pid_check)
            if why is not None:
                _abandon(ws, job, why, t)
                out.append(job.id)
    return out


def _abandon(ws: Workspace, job: RunningJob, why: str, t: float) -> None:
    reason = f"worker {job.owner} stopped responding ({why})"
    if job.cancel_requested:
        status, message = "cancelled", f"cancelled: {reason}"
    elif job.attempts >= job.max_attempts:
        status, message = "failed", f"abandoned {job.attempts} times: {reason}"
    else:
        status, message = "queued", f"re-queued: {reason}"
    error = message if status == "failed" else None
    rows.release_abandoned(ws, job.id, job.owner, status, error, t)
    rows.mark_worker_lost(ws, job.owner)
    log_event(ws, job.id, message, level="warning")


def finish_job(
    ws: Workspace,
    job: Job,
    owner: str,
    status: str,
    *,
    error: str | None = None,
    traceback: str | None = None,
    result: dict[str, Any] | None = None,
    message: str | None = None,
) -> bool:
    """Record the outcome, only if `owner` still holds the job; False when it lost it.

    `queued` hands the job back (a stopping worker): that try does not count.
    """
    if status not in (*FINISHED, "queued"):
        raise ValueError(f"cannot finish a job as {status!r}")
    t = now()
    with ws.transaction():
        if status == "queued":
            held = rows.hand_back(ws, job.id, owner, t)
        else:
            held = rows.record_outcome(
                ws, job.id, owner, status, error=error, traceback=traceback, result=result, at=t
            )
        if not held:
            return False
        rows.job_left_worker(ws, owner, counted=status != "queued")
        level = {"failed": "error", "queued": "warning"}.get(status, "info")
        log_event(ws, job.id, message or status, level=level, worker=owner)
    return True
