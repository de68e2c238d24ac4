"""The SQL of the background-job tables: `jobs`, `job_events` and `workers`.

The queue protocol (who may claim, when a job counts as abandoned, what a retry resets)
lives in ambiscope.core.jobs; this module only reads and writes rows, so every statement
on these tables is in one place and the protocol reads as decisions, not SQL. Functions
take an open Workspace and never open transactions of their own: the caller groups them
(a claim is a read and a write under one `BEGIN IMMEDIATE`).

Writes that only the owning worker may make (progress, outcome, lease renewal) carry
``owner = ? AND status = 'running'`` in their WHERE clause and report whether a row
changed, which is how a worker learns that it lost its job to another.

Import-light on purpose (the codec and row types, which need numpy, load inside the
functions): the job registry, `ambiscope jobs` and the TUI's job list import this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ambiscope.db.errors import WorkspaceError

if TYPE_CHECKING:
    from ambiscope.db.models import Job
    from ambiscope.db.workspace import Workspace


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One log line of a job (or of a worker, when `job_id` is None)."""

    id: int
    job_id: int | None
    time: float
    level: str
    message: str
    worker: str | None

    COLUMNS: ClassVar[str] = "id, job_id, time, level, message, worker"


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A worker process as registered in the workspace (liveness is decided in core)."""

    id: str
    pid: int
    host: str
    node: str
    device: str | None
    lease_s: float
    started_at: float
    heartbeat: float
    current_job: int | None
    status: str
    stopped_at: float | None
    jobs_done: int
    log_path: str | None

    COLUMNS: ClassVar[str] = (
        "id, pid, host, node, device, lease_s, started_at, heartbeat, current_job, status, "
        "stopped_at, jobs_done, log_path"
    )


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A running job with its owner's registration (what abandonment is judged on)."""

    id: int
    owner: str | None
    lease_expires: float | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    pid: int | None
    node: str | None


@dataclass(frozen=True, slots=True)
class JobExtras:
    """The columns of a job row that the `Job` row type does not carry."""

    traceback: str | None
    result: dict[str, Any] | None
    max_attempts: int
    updated_at: float | None


# ---------------------------------------------------------------------- jobs
def insert_job(
    ws: Workspace, kind: str, params: dict[str, Any], *, total: int, max_attempts: int, at: float
) -> int:
    from ambiscope.db import codec

    cur = ws.conn.execute(
        "INSERT INTO jobs (kind, params, progress_total, max_attempts, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (kind, codec.dumps(params), total, max_attempts, at, at),
    )
    return int(cur.lastrowid or 0)


def get_job(ws: Workspace, job_id: int) -> Job:
    from ambiscope.db.models import Job

    row = ws.conn.execute(f"SELECT {Job.COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise WorkspaceError(f"no job with id {job_id}")
    return Job.from_row(row)


def list_jobs(ws: Workspace, status: str | None = None, limit: int | None = None) -> list[Job]:
    """Jobs, newest first."""
    from ambiscope.db.models import Job

    sql = f"SELECT {Job.COLUMNS} FROM jobs"
    params: list[Any] = []
    if status is not None:
        sql += " WHERE status = ?"
        params.append(status)
    sql += " ORDER BY id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [Job.from_row(r) for r in ws.conn.execute(sql, params)]


def job_extras(ws: Workspace, job_id: int) -> JobExtras:
    from ambiscope.db import codec

    row = ws.conn.execute(
        "SELECT traceback, result, max_attempts, updated_at FROM jobs WHERE id = ?", (job_id,)
    ).fetchone()
    if row is None:
        raise WorkspaceError(f"no job with id {job_id}")
    tb, result, max_attempts, updated = row
    return JobExtras(tb, codec.loads(result, None) if result else None, max_attempts, updated)


def job_control(ws: Workspace, job_id: int) -> tuple[str, str | None, bool] | None:
    """(status, owner, cancel_requested): what a running handler checks between clips."""
    row = ws.conn.execute(
        "SELECT status, owner, cancel_requested FROM jobs WHERE id = ?", (job_id,)
    ).fetchone()
    return None if row is None else (row[0], row[1], bool(row[2]))


def cancel_queued(ws: Workspace, job_id: int, at: float) -> None:
    ws.conn.execute(
        "UPDATE jobs SET status = 'cancelled', finished_at = ?, updated_at = ? WHERE id = ?",
        (at, at, job_id),
    )


def request_cancel(ws: Workspace, job_id: int, at: float) -> None:
    ws.conn.execute(
        "UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (at, job_id)
    )


def reset_for_retry(ws: Workspace, job_id: int, at: float) -> None:
    """Back to `queued` with a clean slate (attempts, owner, error), keeping its progress."""
    ws.conn.execute(
        "UPDATE jobs SET status = 'queued', owner = NULL, lease_expires = NULL, "
        "heartbeat = NULL, cancel_requested = 0, attempts = 0, error = NULL, "
        "traceback = NULL, finished_at = NULL, updated_at = ? WHERE id = ?",
        (at, job_id),
    )


def queued_exists(ws: Workspace, kinds: Sequence[str]) -> bool:
    marks = ",".join("?" * len(kinds))
    sql = f"SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued' AND kind IN ({marks}))"
    return bool(ws.conn.execute(sql, list(kinds)).fetchone()[0])


def oldest_queued(ws: Workspace, kinds: Sequence[str]) -> int | None:
    marks = ",".join("?" * len(kinds))
    row = ws.conn.execute(
        f"SELECT id FROM jobs WHERE status = 'queued' AND kind IN ({marks}) ORDER BY id LIMIT 1",
        list(kinds),
    ).fetchone()
    return None if row is None else int(row[0])


def running_jobs(ws: Workspace) -> list[RunningJob]:
    """Running jobs joined with their owner's worker row (pid, node), if registered."""
    rows = ws.conn.execute(
        "SELECT j.id, j.owner, j.lease_expires, j.attempts, j.max_attempts, "
        "j.cancel_requested, w.pid, w.node FROM jobs j "
        "LEFT JOIN workers w ON w.id = j.owner WHERE j.status = 'running'"
    )
    return [RunningJob(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7]) for r in rows]


def mark_claimed(ws: Workspace, job_id: int, owner: str, *, lease_s: float, at: float) -> None:
    ws.conn.execute(
        "UPDATE jobs SET status = 'running', owner = ?, lease_expires = ?, heartbeat = ?, "
        "attempts = attempts + 1, cancel_requested = 0, started_at = coalesce(started_at, ?), "
        "updated_at = ? WHERE id = ?",
        (owner, at + lease_s, at, at, at, job_id),
    )


def release_abandoned(
    ws: Workspace, job_id: int, owner: str | None, status: str, error: str | None, at: float
) -> None:
    """Take a running job away from its vanished owner (`queued`, `cancelled` or `failed`)."""
    finished = at if status != "queued" else None
    ws.conn.execute(
        "UPDATE jobs SET status = ?, owner = NULL, lease_expires = NULL, finished_at = ?, "
        "error = coalesce(?, error), updated_at = ? "
        "WHERE id = ? AND status = 'running' AND owner IS ?",
        (status, finished, error, at, job_id, owner),
    )


def hand_back(ws: Workspace, job_id: int, owner: str, at: float) -> bool:
    """A stopping worker returns its job to the queue; the try does not count."""
    cur = ws.conn.execute(
        "UPDATE jobs SET status = 'queued', owner = NULL, lease_expires = NULL, "
        "attempts = max(attempts - 1, 0), updated_at = ? "
        "WHERE id = ? AND owner = ? AND status = 'running'",
        (at, job_id, owner),
    )
    return cur.rowcount > 0


def record_outcome(
    ws: Workspace,
    job_id: int,
    owner: str,
    status: str,
    *,
    error: str | None,
    traceback: str | None,
    result: dict[str, Any] | None,
    at: float,
) -> bool:
    """Write a finished job's outcome, only while `owner` still holds it."""
    from ambiscope.db import codec

    cur = ws.conn.execute(
        "UPDATE jobs SET status = ?, error = ?, traceback = ?, result = ?, finished_at = ?, "
        "lease_expires = NULL, updated_at = ? WHERE id = ? AND owner = ? AND status = 'running'",
        (
            status,
            error,
            traceback,
            None if result is None else codec.dumps(result),
            at,
            at,
            job_id,
            owner,
        ),
    )
    return cur.rowcount > 0


def set_progress(ws: Workspace, job_id: int, owner: str, done: int, total: int, at: float) -> None:
    ws.conn.execute(
        "UPDATE jobs SET progress_done = ?, progress_total = ?, updated_at = ? "
        "WHERE id = ? AND owner = ? AND status = 'running'",
        (done, total, at, job_id, owner),
    )


def renew_job_lease(ws: Workspace, job_id: int, owner: str, *, lease_s: float, at: float) -> bool:
    """Extend the lease of a job `owner` still runs; False when it no longer does."""
    cur = ws.conn.execute(
        "UPDATE jobs SET heartbeat = ?, lease_expires = ? "
        "WHERE id = ? AND owner = ? AND status = 'running'",
        (at, at + lease_s, job_id, owner),
    )
    return cur.rowcount > 0


# -------------------------------------------------------------------- events
def insert_event(
    ws: Workspace, job_id: int | None, message: str, *, level: str, worker: str | None, at: float
) -> None:
    ws.conn.execute(
        "INSERT INTO job_events (job_id, time, level, message, worker) VALUES (?, ?, ?, ?, ?)",
        (job_id, at, level, message, worker),
    )


def list_events(
    ws: Workspace, job_id: int | None = None, *, after_id: int = 0, limit: int | None = None
) -> list[JobEvent]:
    """Log lines in order; `after_id` lets a poller fetch only what is new."""
    sql = f"SELECT {JobEvent.COLUMNS} FROM job_events WHERE id > ?"
    params: list[Any] = [after_id]
    if job_id is not None:
        sql += " AND job_id = ?"
        params.append(job_id)
    if limit is None:
        sql += " ORDER BY id"
    else:  # the last `limit` lines, still in order
        sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) ORDER BY id"
        params.append(limit)
    return [JobEvent(*row) for row in ws.conn.execute(sql, params)]


# ------------------------------------------------------------------- workers
def insert_worker(
    ws: Workspace,
    worker_id: str,
    *,
    pid: int,
    host: str,
    node: str,
    device: str | None,
    lease_s: float,
    log_path: str | None,
    at: float,
) -> None:
    ws.conn.execute(
        "INSERT INTO workers (id, pid, host, node, device, lease_s, started_at, heartbeat, "
        "log_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (worker_id, pid, host, node, device, lease_s, at, at, log_path),
    )


def prune_workers(ws: Workspace, heard_before: float) -> None:
    """Forget stopped or lost workers not heard from since `heard_before`."""
    ws.conn.execute(
        "DELETE FROM workers WHERE status != 'running' AND heartbeat < ?", (heard_before,)
    )


def mark_worker_stopped(ws: Workspace, worker_id: str, at: float) -> None:
    ws.conn.execute(
        "UPDATE workers SET status = 'stopped', stopped_at = ?, heartbeat = ?, "
        "current_job = NULL WHERE id = ?",
        (at, at, worker_id),
    )


def mark_worker_lost(ws: Workspace, worker_id: str | None) -> None:
    ws.conn.execute(
        "UPDATE workers SET status = 'lost', current_job = NULL "
        "WHERE id = ? AND status = 'running'",
        (worker_id,),
    )


def touch_worker(ws: Workspace, worker_id: str, at: float) -> None:
    """The worker's own heartbeat (it is running)."""
    ws.conn.execute(
        "UPDATE workers SET heartbeat = ?, status = 'running' WHERE id = ?", (at, worker_id)
    )


def set_current_job(ws: Workspace, worker_id: str, job_id: int) -> None:
    ws.conn.execute("UPDATE workers SET current_job = ? WHERE id = ?", (job_id, worker_id))


def job_left_worker(ws: Workspace, worker_id: str, *, counted: bool) -> None:
    """The worker is free again; `counted` adds the job to its `jobs_done`."""
    ws.conn.execute(
        "UPDATE workers SET current_job = NULL, jobs_done = jobs_done + ? WHERE id = ?",
        (int(counted), worker_id),
    )


def list_workers(ws: Workspace) -> list[WorkerRow]:
    """Every registered worker, most recently started first."""
    rows = ws.conn.execute(f"SELECT {WorkerRow.COLUMNS} FROM workers ORDER BY started_at DESC")
    return [WorkerRow(*r) for r in rows]


def worker_registered(ws: Workspace, pid: int, node: str) -> bool:
    """Whether process `pid` on `node` has registered as a running worker."""
    row = ws.conn.execute(
        "SELECT 1 FROM workers WHERE pid = ? AND node = ? AND status = 'running'", (pid, node)
    ).fetchone()
    return row is not None
