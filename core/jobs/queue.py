"""Durable background jobs: the queue in the workspace, the job kinds, and worker start-up.

Researchers send clips back for re-sampling while they keep auditing, and the work has to
survive a dropped SSH session, a killed worker and a crashed TUI. So nothing about a job
lives in a process: its parameters, status, progress, owner and lease are a row of `jobs`,
its log lines are rows of `job_events`, and the workers themselves are rows of `workers`.
Any process (the TUI, `ambiscope jobs`, another worker) reads the same truth.

Protocol (DESIGN.md "Background jobs"):

* `enqueue` writes a `queued` row; `claim_next` turns the oldest queued job of a kind the
  worker knows into `running` with an owner and a lease, inside one `BEGIN IMMEDIATE`
  transaction, so two workers can never claim the same job.
* The worker renews the lease on a heartbeat (core/worker.py). A job whose lease expired,
  or whose owner is a worker process on this machine that no longer exists, is abandoned:
  whichever worker next looks for work puts it back in the queue (or fails it after
  `max_attempts` deaths, so a job that kills its worker cannot loop forever).
* Cancel of a queued job is immediate; of a running job it sets `cancel_requested`, which
  the worker reads between clips.
* Handlers resume: `resample` calls `execute_run`, which skips clips already done, so a
  re-claimed job continues where the dead worker stopped and writes nothing twice.

Kinds are pluggable (`register_job_kind`) so later issues (synthetic annotators) add
their own; `resample` is built in. This module stays import-light (no numpy/torch at
import) because the TUI and `ambiscope jobs` import it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ambiscope.db.errors import WorkspaceError

if TYPE_CHECKING:
    from ambiscope.core.alm.base import Backend
    from ambiscope.core.scaling.run import RunSpec
    from ambiscope.db import Job, Workspace
DEFAULT_LEASE_S = 30.0
DEFAULT_MAX_ATTEMPTS = 3
EVENT_LEVELS = ("debug", "info", "warning", "error")
FINISHED = ("done", "failed", "cancelled")
# The detached worker's command is `python -m ambiscope.tui.cli.main --db PATH worker` (core/cli.py
# registers `worker` from core/jobs_cli.py); tests before that registration pass
# module="ambiscope.tui.cli.jobs", whose own group takes the same arguments.
WORKER_MODULE = "ambiscope.tui.cli.main"
JOB_MODULES_ENV = "AMBISCOPE_JOB_MODULES"


def now() -> float:
    """Wall-clock Unix seconds: leases are compared across processes, so not monotonic."""
    return time.time()


# ------------------------------------------------------------------ registry
@dataclass
class JobContext:
    """What a handler gets: the worker's workspace, the job, and the worker's services.

    Handlers run in the worker's main thread and write through `ws` (its only
    connection). They call `should_stop()` between units of work (a clip) and return
    promptly when it is true; the worker then decides from `stop_reason` whether the job
    was cancelled, lost its lease, or is being handed back because the worker is stopping.
    """

    ws: Workspace
    job: Job
    worker_id: str
    device: str | None = None
    backend_for: Callable[[RunSpec, str | None], Backend] | None = None
    check_stop: Callable[[], str | None] = lambda: None
    stop_reason: str | None = None
    _last_progress: tuple[int, int] = (-1, -1)

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    def should_stop(self) -> bool:
        """True when the handler must stop now (reads the job row: cancel, lost lease)."""
        if self.stop_reason is None:
            self.stop_reason = self.check_stop()
        return self.stop_reason is not None

    def progress(self, done: int, total: int) -> None:
        """Record progress in the job row (only while this worker still owns the job)."""
        if (done, total) == self._last_progress:
            return
        self._last_progress = (done, total)
        self.ws.conn.execute(
            "UPDATE jobs SET progress_done = ?, progress_total = ?, updated_at = ? "
            "WHERE id = ? AND owner = ? AND status = 'running'",
            (done, total, now(), self.job.id, self.worker_id),
        )

    def log(self, message: str, level: str = "info") -> None:
        """A log line other processes can read (`ambiscope jobs show`, the TUI)."""
        log_event(self.ws, self.job.id, message, level=level, worker=self.worker_id)

    def backend(self, spec: RunSpec, model: str | None = None) -> Backend:
        """The worker's cached backend for the spec (a model stays loaded between jobs)."""
        if self.backend_for is None:
            from ambiscope.core.scaling.run import open_backend

            return open_backend(spec, model)
        return self.backend_for(spec, model)


JobHandler = Callable[[JobContext], "dict[str, Any] | None"]


@dataclass(frozen=True)
class JobKind:
    """A registered kind: the handler, plus a one-line description of a job's params."""

    name: str
    handler: JobHandler
    describe: Callable[[dict[str, Any]], str] | None = None


_KINDS: dict[str, JobKind] = {}


def register_job_kind(
    kind: str,
    handler: JobHandler,
    *,
    describe: Callable[[dict[str, Any]], str] | None = None,
    replace: bool = False,
) -> JobKind:
    """Make `kind` runnable by workers of this process.

    A worker only claims kinds registered in its own process, so a job of a kind no
    running worker knows stays queued (visible in `ambiscope jobs`) instead of failing.
    Modules that register kinds are imported by the worker from `--import MODULE` or
    $AMBISCOPE_JOB_MODULES (comma-separated).
    """
    if not kind or not kind.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"job kind must be a word (letters, digits, - or _), got {kind!r}")
    if kind in _KINDS and not replace and _KINDS[kind].handler is not handler:
        raise ValueError(f"job kind {kind!r} is already registered")
    _KINDS[kind] = JobKind(kind, handler, describe)
    return _KINDS[kind]


def job_kind(kind: str) -> JobKind:
    try:
        return _KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(_KINDS)) or "none"
        raise WorkspaceError(f"unknown job kind {kind!r} (known: {known})") from None


def registered_kinds() -> list[str]:
    return sorted(_KINDS)


def import_job_modules(modules: Sequence[str] = ()) -> list[str]:
    """Import modules that register job kinds (args plus $AMBISCOPE_JOB_MODULES)."""
    import importlib

    names = [*modules, *os.environ.get(JOB_MODULES_ENV, "").split(",")]
    done: list[str] = []
    for name in dict.fromkeys(n.strip() for n in names if n.strip()):
        importlib.import_module(name)
        done.append(name)
    return done


def describe_job(job: Job) -> str:
    kind = _KINDS.get(job.kind)
    if kind is not None and kind.describe is not None:
        try:
            return kind.describe(job.params)
        except Exception:  # a malformed row must not break a listing
            return "(unreadable parameters)"
    return json.dumps(job.params, sort_keys=True)[:80]


# -------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class JobEvent:
    id: int
    job_id: int | None
    time: float
    level: str
    message: str
    worker: str | None

    COLUMNS = "id, job_id, time, level, message, worker"


def log_event(
    ws: Workspace,
    job_id: int | None,
    message: str,
    *,
    level: str = "info",
    worker: str | None = None,
) -> None:
    if level not in EVENT_LEVELS:
        raise ValueError(f"event level must be one of {', '.join(EVENT_LEVELS)}")
    ws.conn.execute(
        "INSERT INTO job_events (job_id, time, level, message, worker) VALUES (?, ?, ?, ?, ?)",
        (job_id, now(), level, message, worker),
    )


def job_events(
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


# --------------------------------------------------------------------- queue
def enqueue(
    ws: Workspace,
    kind: str,
    params: dict[str, Any],
    *,
    total: int = 0,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Job:
    """Queue a job of a registered kind; the row and its first event commit together."""
    from ambiscope.db import codec

    job_kind(kind)
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    with ws.transaction():
        t = now()
        cur = ws.conn.execute(
            "INSERT INTO jobs (kind, params, progress_total, max_attempts, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (kind, codec.dumps(params), total, max_attempts, t, t),
        )
        job_id = int(cur.lastrowid or 0)
        log_event(ws, job_id, f"queued ({kind})")
    return ws.get_job(job_id)


def list_jobs(ws: Workspace, status: str | None = None, limit: int | None = None) -> list[Job]:
    """Jobs, newest first (what `ambiscope jobs` and the TUI's job list show)."""
    from ambiscope.db import Job

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


@dataclass(frozen=True)
class JobDetail:
    """A job with what the v1 `Job` row type does not carry (traceback, result, events)."""

    job: Job
    traceback: str | None
    result: dict[str, Any] | None
    max_attempts: int
    updated_at: float | None
    events: list[JobEvent] = field(default_factory=list)


def job_detail(ws: Workspace, job_id: int, *, events: int | None = 50) -> JobDetail:
    from ambiscope.db import codec

    job = ws.get_job(job_id)
    tb, result, max_attempts, updated = ws.conn.execute(
        "SELECT traceback, result, max_attempts, updated_at FROM jobs WHERE id = ?", (job_id,)
    ).fetchone()
    return JobDetail(
        job,
        tb,
        codec.loads(result, None) if result else None,
        max_attempts,
        updated,
        job_events(ws, job_id, limit=events),
    )


def cancel_job(ws: Workspace, job_id: int) -> Job:
    """Cancel: a queued job at once; a running one when its worker next checks (one clip)."""
    with ws.transaction():
        job = ws.get_job(job_id)
        if job.status in FINISHED:
            raise WorkspaceError(f"job {job_id} is already {job.status}")
        t = now()
        if job.status == "queued":
            ws.conn.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, updated_at = ? "
                "WHERE id = ?",
                (t, t, job_id),
            )
            log_event(ws, job_id, "cancelled while queued")
        else:
            ws.conn.execute(
                "UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (t, job_id)
            )
            log_event(ws, job_id, "cancel requested; the worker stops after the current clip")
    return ws.get_job(job_id)


def retry_job(ws: Workspace, job_id: int) -> Job:
    """Queue a failed or cancelled job again; it resumes (finished clips are kept)."""
    with ws.transaction():
        job = ws.get_job(job_id)
        if job.status not in ("failed", "cancelled"):
            raise WorkspaceError(
                f"job {job_id} is {job.status}; only failed or cancelled jobs can be retried"
            )
        ws.conn.execute(
            "UPDATE jobs SET status = 'queued', owner = NULL, lease_expires = NULL, "
            "heartbeat = NULL, cancel_requested = 0, attempts = 0, error = NULL, "
            "traceback = NULL, finished_at = NULL, updated_at = ? WHERE id = ?",
            (now(), job_id),
        )
        log_event(ws, job_id, f"retry requested (was {job.status})")
    return ws.get_job(job_id)


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
    from ambiscope.db import Job

    kinds = list(kinds if kinds is not None else registered_kinds())
    if not kinds or not _work_waiting(ws, kinds, pid_check):
        return None
    marks = ",".join("?" * len(kinds))
    with ws.transaction():
        requeue_abandoned(ws, pid_check=pid_check, exclude_owner=owner)
        row = ws.conn.execute(
            f"SELECT id FROM jobs WHERE status = 'queued' AND kind IN ({marks}) "
            "ORDER BY id LIMIT 1",
            kinds,
        ).fetchone()
        if row is None:
            return None
        t = now()
        ws.conn.execute(
            "UPDATE jobs SET status = 'running', owner = ?, lease_expires = ?, heartbeat = ?, "
            "attempts = attempts + 1, cancel_requested = 0, started_at = coalesce(started_at, ?), "
            "updated_at = ? WHERE id = ?",
            (owner, t + lease_s, t, t, t, row[0]),
        )
        job = Job.from_row(
            ws.conn.execute(f"SELECT {Job.COLUMNS} FROM jobs WHERE id = ?", (row[0],)).fetchone()
        )
        log_event(ws, job.id, f"claimed by {owner} (attempt {job.attempts})", worker=owner)
    return job


def _work_waiting(ws: Workspace, kinds: Sequence[str], pid_check: bool) -> bool:
    """Read-only: is there a queued job of `kinds`, or a running one whose worker is gone?"""
    marks = ",".join("?" * len(kinds))
    queued = ws.conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued' AND kind IN ({marks}))",
        list(kinds),
    ).fetchone()[0]
    if queued:
        return True
    t, node = now(), this_node()
    return any(
        _is_abandoned(lease, pid, wnode, t, node, pid_check)
        for lease, pid, wnode in ws.conn.execute(
            "SELECT j.lease_expires, w.pid, w.node FROM jobs j "
            "LEFT JOIN workers w ON w.id = j.owner WHERE j.status = 'running'"
        )
    )


def _is_abandoned(
    lease: float | None, pid: int | None, wnode: str | None, t: float, node: str, pid_check: bool
) -> str | None:
    """Why a running job's worker counts as gone (None: it is alive)."""
    if lease is None or lease < t:
        return "its lease expired"
    if pid_check and wnode == node and pid is not None and not pid_alive(pid):
        return f"its process {pid} is gone"
    return None


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
    node = this_node()
    out: list[int] = []
    with ws.transaction():  # read and write under one lock: nobody claims in between
        rows = ws.conn.execute(
            "SELECT j.id, j.owner, j.lease_expires, j.attempts, j.max_attempts, "
            "j.cancel_requested, w.pid, w.node FROM jobs j "
            "LEFT JOIN workers w ON w.id = j.owner WHERE j.status = 'running'"
        ).fetchall()
        for job_id, owner, lease, attempts, max_attempts, cancel, pid, wnode in rows:
            if owner is not None and owner == exclude_owner:
                continue
            why = _is_abandoned(lease, pid, wnode, t, node, pid_check)
            if why is None:
                continue
            _abandon(ws, job_id, owner, why, attempts, max_attempts, bool(cancel), t)
            out.append(job_id)
    return out


def _abandon(
    ws: Workspace,
    job_id: int,
    owner: str | None,
    why: str,
    attempts: int,
    max_attempts: int,
    cancel: bool,
    t: float,
) -> None:
    reason = f"worker {owner} stopped responding ({why})"
    if cancel:
        status, message = "cancelled", f"cancelled: {reason}"
    elif attempts >= max_attempts:
        status, message = "failed", f"abandoned {attempts} times: {reason}"
    else:
        status, message = "queued", f"re-queued: {reason}"
    finished = t if status != "queued" else None
    error = message if status == "failed" else None
    ws.conn.execute(
        "UPDATE jobs SET status = ?, owner = NULL, lease_expires = NULL, finished_at = ?, "
        "error = coalesce(?, error), updated_at = ? "
        "WHERE id = ? AND status = 'running' AND owner IS ?",
        (status, finished, error, t, job_id, owner),
    )
    ws.conn.execute(
        "UPDATE workers SET status = 'lost', current_job = NULL "
        "WHERE id = ? AND status = 'running'",
        (owner,),
    )
    log_event(ws, job_id, message, level="warning")


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
    """Record the outcome, only if `owner` still holds the job; False when it lost it."""
    from ambiscope.db import codec

    if status not in (*FINISHED, "queued"):
        raise ValueError(f"cannot finish a job as {status!r}")
    t = now()
    with ws.transaction():
        if status == "queued":  # handed back by a stopping worker: this try does not count
            cur = ws.conn.execute(
                "UPDATE jobs SET status = 'queued', owner = NULL, lease_expires = NULL, "
                "attempts = max(attempts - 1, 0), updated_at = ? "
                "WHERE id = ? AND owner = ? AND status = 'running'",
                (t, job.id, owner),
            )
        else:
            cur = ws.conn.execute(
                "UPDATE jobs SET status = ?, error = ?, traceback = ?, result = ?, "
                "finished_at = ?, lease_expires = NULL, updated_at = ? "
                "WHERE id = ? AND owner = ? AND status = 'running'",
                (
                    status,
                    error,
                    traceback,
                    None if result is None else codec.dumps(result),
                    t,
                    t,
                    job.id,
                    owner,
                ),
            )
        if cur.rowcount == 0:
            return False
        ws.conn.execute(
            "UPDATE workers SET current_job = NULL, jobs_done = jobs_done + ? WHERE id = ?",
            (int(status != "queued"), owner),
        )
        level = {"failed": "error", "queued": "warning"}.get(status, "info")
        log_event(ws, job.id, message or status, level=level, worker=owner)
    return True


# ------------------------------------------------------------------- workers
@dataclass(frozen=True, slots=True)
class WorkerInfo:
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

    COLUMNS = (
        "id, pid, host, node, device, lease_s, started_at, heartbeat, current_job, status, "
        "stopped_at, jobs_done, log_path"
    )

    def alive(self, at: float | None = None) -> bool:
        """Heartbeat within its lease, and (on this machine) its process exists."""
        t = now() if at is None else at
        if self.status != "running" or self.heartbeat + self.lease_s < t:
            return False
        return self.node != this_node() or pid_alive(self.pid)


def workers(ws: Workspace) -> list[WorkerInfo]:
    rows = ws.conn.execute(f"SELECT {WorkerInfo.COLUMNS} FROM workers ORDER BY started_at DESC")
    return [WorkerInfo(*r) for r in rows]


def live_workers(ws: Workspace) -> list[WorkerInfo]:
    """Workers with a fresh heartbeat, most recently heard from first."""
    alive = [w for w in workers(ws) if w.alive()]
    return sorted(alive, key=lambda w: w.heartbeat, reverse=True)


@functools.cache
def this_node() -> str:
    """Host name plus pid namespace: where a worker row's pid can be checked with kill(0)."""
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        ns = ""
    return f"{socket.gethostname()}/{ns}"


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (a killed, unreaped worker is dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


class WorkerStartError(RuntimeError):
    """The detached worker exited before registering; the message has its log's tail."""


def worker_command(
    workspace_path: str | os.PathLike[str], module: str = WORKER_MODULE
) -> list[str]:
    """The detached worker's argv (the TUI's `ensure_worker` runs exactly this)."""
    return [sys.executable, "-m", module, "--db", str(workspace_path), "worker"]


def worker_log_path(workspace_path: str | os.PathLike[str]) -> Path:
    return Path(f"{Path(workspace_path)}.worker.log")


def ensure_worker(
    workspace_path: str | os.PathLike[str],
    *,
    module: str = WORKER_MODULE,
    log_path: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    wait_s: float = 30.0,
) -> int:
    """Return the pid of a live worker for the workspace, starting a detached one if none.

    The worker runs in its own session with stdin closed and output appended to
    `<db>.worker.log`, so closing the TUI or losing the SSH session (SIGHUP to the
    terminal's session) does not stop it. A file lock serialises concurrent callers, and
    the call waits until the new worker has registered, so two TUIs starting at once get
    one worker, and a worker that cannot start raises WorkerStartError with its log tail.
    """
    from ambiscope.db import Workspace

    path = Path(workspace_path).resolve()
    with _spawn_lock(path):
        with Workspace.open(path) as ws:
            live = live_workers(ws)
        if live:
            return live[0].pid
        log = Path(log_path) if log_path else worker_log_path(path)
        proc = _spawn(path, module, log, env)
        _wait_registered(path, proc, log, wait_s)
        return proc.pid


@contextlib.contextmanager
def _spawn_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, at worst two workers (which is allowed)
        yield
        return
    with open(f"{path}.worker.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _spawn(path: Path, module: str, log: Path, env: dict[str, str] | None) -> subprocess.Popen:
    _rotate(log)
    child_env = dict(os.environ if env is None else env)
    root = str(
        Path(__file__).resolve().parent.parent
    )  # so `-m ambiscope.tui.cli.main` imports this code
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, child_env.get("PYTHONPATH", "")) if p
    )
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            worker_command(path, module),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env,
            cwd=str(path.parent),
        )
    # Reap it if it ever exits while we live, so a dead worker is not a zombie "alive" pid.
    threading.Thread(target=proc.wait, name=f"reap-worker-{proc.pid}", daemon=True).start()
    return proc


def _rotate(log: Path, max_bytes: int = 5_000_000) -> None:
    with contextlib.suppress(OSError):
        if log.stat().st_size > max_bytes:
            log.replace(log.with_name(log.name + ".1"))


def _wait_registered(path: Path, proc: subprocess.Popen, log: Path, wait_s: float) -> None:
    from ambiscope.db import Workspace

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        with Workspace.open(path) as ws:
            row = ws.conn.execute(
                "SELECT 1 FROM workers WHERE pid = ? AND node = ? AND status = 'running'",
                (proc.pid, this_node()),
            ).fetchone()
        if row is not None:
            return
        if proc.poll() is not None:
            raise WorkerStartError(
                f"worker exited with status {proc.returncode}: {_tail(log)} (log: {log})"
            )
        time.sleep(0.1)
    raise WorkerStartError(f"worker {proc.pid} did not register within {wait_s:.0f} s (log: {log})")


def _tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


# ------------------------------------------------------------------ resample
def enqueue_resample(
    ws: Workspace,
    spec: RunSpec,
    *,
    clip_ids: Sequence[int] | None = None,
    where: str | None = None,
    limit: int | None = None,
) -> Job:
    """Queue a re-sampling job: a run spec over explicit clips and/or a filter.

    The selection is resolved now and frozen into the job (the filter text is kept for
    provenance), so what runs is what the researcher saw when sending the clips back,
    and a resumed job covers exactly the same clips even if flags changed meanwhile.
    """
    ds = ws.get_dataset(spec.dataset)
    ids = _resolve_selection(ws, ds.id, clip_ids, where, limit)
    if not ids:
        raise WorkspaceError(f"the selection matches no clips of dataset {ds.name!r}")
    params = {"spec": spec.to_dict(), "clip_ids": ids, "where": where, "limit": limit}
    return enqueue(ws, "resample", params, total=len(ids))


def _resolve_selection(
    ws: Workspace,
    dataset_id: int,
    clip_ids: Sequence[int] | None,
    where: str | None,
    limit: int | None,
) -> list[int]:
    from ambiscope.core.browse.filters import select_clip_ids

    if not clip_ids:
        return select_clip_ids(ws.conn, where, dataset_id=dataset_id, limit=limit)
    wanted = list(dict.fromkeys(int(c) for c in clip_ids))
    known = _clips_in_dataset(ws, dataset_id, wanted)
    missing = [c for c in wanted if c not in known]
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise WorkspaceError(f"clip id(s) not in this dataset: {shown}")
    if where:
        matching = set(select_clip_ids(ws.conn, where, dataset_id=dataset_id))
        wanted = [c for c in wanted if c in matching]
    return wanted[:limit] if limit is not None else wanted


def _clips_in_dataset(ws: Workspace, dataset_id: int, ids: list[int]) -> set[int]:
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(
            r[0]
            for r in ws.conn.execute(
                f"SELECT id FROM clips WHERE dataset_id = ? AND id IN ({marks})",
                [dataset_id, *chunk],
            )
        )
    return found


def _describe_resample(params: dict[str, Any]) -> str:
    spec = params.get("spec", {})
    n = len(params.get("clip_ids") or [])
    where = f" where {params['where']!r}" if params.get("where") else ""
    return (
        f"{spec.get('model')} n={spec.get('n')} {spec.get('mode', 'label')} "
        f"on {n} clips of {spec.get('dataset')}{where}"
    )


def _resample(ctx: JobContext) -> dict[str, Any]:
    """Run (or resume) the spec over the job's clips with the worker's cached models."""
    from dataclasses import replace

    from ambiscope.core.scaling.run import RunSpec, execute_run

    spec = RunSpec.from_dict(ctx.params["spec"])
    if ctx.device:  # the worker owns its device (e.g. one worker per GPU)
        spec = replace(spec, device=ctx.device)
    backend = ctx.backend(spec)
    verifier = None
    if spec.verifier:
        verifier = backend if spec.verifier == "self" else ctx.backend(spec, spec.verifier)

    def on_progress(p: Any) -> None:
        ctx.progress(p.done, p.total)
        if p.last is not None and not p.last.ok:
            ctx.log(f"clip {p.last.clip_id} failed: {p.last.error}", "warning")

    result = execute_run(
        ctx.ws,
        spec,
        clip_ids=ctx.params["clip_ids"],
        backend=backend,
        verifier=verifier,
        on_progress=on_progress,
        should_stop=ctx.should_stop,
    )
    if result.processed and result.failed == result.processed and not result.stopped:
        raise RuntimeError(f"all {result.failed} clips failed: {result.failures[0][1]}")
    verb = "created" if result.created else "resumed"
    ctx.log(
        f"run {result.run.id} {verb}: {result.processed} clips sampled, {result.skipped} "
        f"already done, {result.failed} failed, {result.invalid}/{result.candidates} "
        f"invalid candidates, {result.seconds:.1f} s"
    )
    return {
        "run_id": result.run.id,
        "created": result.created,
        "processed": result.processed,
        "skipped": result.skipped,
        "failed": result.failed,
        "candidates": result.candidates,
        "invalid": result.invalid,
        "seconds": round(result.seconds, 3),
        "model_seconds": round(result.model_seconds, 3),
        "stopped": result.stopped,
    }


register_job_kind("resample", _resample, describe=_describe_resample)
