"""The background worker (`python -m ambiscope.core.jobs`, `ambiscope worker`): claim,
heartbeat, run, record.

One worker runs one job at a time in its main thread, writing through the workspace's
single connection (each clip in one transaction: execute_run's behaviour). A heartbeat
thread with its *own* connection renews the job's lease and the worker's liveness while
the main thread is busy inside a model call, so a slow clip is never mistaken for a dead
worker; SQLite connections are not shared between threads here.

Stopping is cooperative: SIGTERM/SIGINT set a flag the job sees between clips; the job is
then handed back to the queue (the try does not count as an attempt) and the worker
exits. A second signal interrupts at once (the open clip transaction rolls back). SIGHUP
is ignored, so a worker started by hand survives its SSH session ending. A kill -9 leaves
the job `running` with a lease that stops being renewed; any other worker re-queues it.

Models stay loaded between jobs that use them (a small LRU of backends keyed by what
changes the loaded weights), and are closed after the worker has been idle a while so an
idle worker does not pin GPU memory forever.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ambiscope.core.jobs.backends import BackendCache
from ambiscope.core.jobs.events import log_event
from ambiscope.core.jobs.kinds import JOB_KINDS, JobContext, import_job_modules, job_needs
from ambiscope.core.jobs.liveness import now, this_node
from ambiscope.core.jobs.policy import LOCAL_RAY, PolicyError, WorkerPolicy
from ambiscope.core.jobs.queue import DEFAULT_LEASE_S, claim_next, finish_job
from ambiscope.db import jobs as rows
from ambiscope.db.errors import WorkspaceError

if TYPE_CHECKING:
    from ambiscope.core.alm import BackendSpec
    from ambiscope.core.alm.base import Backend
    from ambiscope.db import Job, Workspace
log = logging.getLogger("ambiscope.worker")

_PRUNE_WORKERS_AFTER_S = 7 * 86400


@dataclass
class WorkerConfig:
    """How a worker behaves; the CLI options map onto these one to one."""

    device: str | None = None  # overrides each job's device (one worker per GPU)
    ray: str | None = None  # runs every job's model work on this Ray cluster ("local": here)
    lease_s: float = DEFAULT_LEASE_S
    heartbeat_s: float | None = None  # default: lease / 6, so five beats may be missed
    poll_s: float = 1.0
    once: bool = False  # exit when nothing is queued or running (Worker._others_running)
    max_jobs: int | None = None
    idle_exit_s: float | None = None
    unload_idle_s: float = 300.0
    pid_check: bool = True  # also re-queue jobs of dead workers on this machine at once
    kinds: Sequence[str] | None = None  # default: every registered kind
    modules: Sequence[str] = ()  # imported first: they register job kinds
    max_models: int = 2  # a model plus its verifier
    # what stored jobs may do (core/jobs/policy.py); only this process's caller decides
    allow_remote_code: bool = False
    allow_endpoints: Sequence[str] = ()
    allow_key_envs: Sequence[str] = ()
    allow_dirs: Sequence[str] = ()  # besides the workspace's own folder (always allowed)

    @property
    def beat_s(self) -> float:
        return self.heartbeat_s if self.heartbeat_s is not None else self.lease_s / 6

    @property
    def policy(self) -> WorkerPolicy:
        clusters = (self.ray,) if self.ray and self.ray != LOCAL_RAY else ()
        return WorkerPolicy(
            self.allow_remote_code,
            self.allow_endpoints,
            self.allow_key_envs,
            self.allow_dirs,
            clusters,
        )


@dataclass
class WorkerStats:
    """Counters a benchmark or the final log line reports."""

    jobs: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    released: int = 0
    lost: int = 0
    heartbeats: int = 0
    heartbeat_s: float = 0.0
    heartbeat_max_s: float = 0.0
    checks: int = 0
    check_s: float = 0.0
    job_s: float = 0.0
    outcomes: dict[int, str] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{self.jobs} jobs: {self.done} done, {self.failed} failed, "
            f"{self.cancelled} cancelled, {self.released} handed back, {self.lost} lost"
        )


# ------------------------------------------------------------------ heartbeat
class Heartbeat(threading.Thread):
    """Renews the worker's and the current job's lease from its own connection."""

    def __init__(self, path: Path, worker_id: str, config: WorkerConfig, stats: WorkerStats):
        super().__init__(name="ambiscope-heartbeat", daemon=True)
        self.path = path
        self.worker_id = worker_id
        self.lease_s = config.lease_s
        self.interval = config.beat_s
        self.stats = stats
        self.lost_job: int | None = None
        self._current: int | None = None
        self._lock = threading.Lock()
        self._halt = threading.Event()

    @property
    def current(self) -> int | None:
        with self._lock:
            return self._current

    @current.setter
    def current(self, job_id: int | None) -> None:
        with self._lock:
            self._current = job_id

    def run(self) -> None:
        from ambiscope.db import Workspace

        ws = Workspace.open(self.path)
        try:
            while not self._halt.wait(self.interval):
                self.beat(ws)
        finally:
            ws.close()

    def beat(self, ws: Workspace) -> None:
        job_id = self.current
        started = time.perf_counter()
        t = now()
        try:
            with ws.transaction():
                rows.touch_worker(ws, self.worker_id, t)
                if job_id is not None:
                    held = rows.renew_job_lease(
                        ws, job_id, self.worker_id, lease_s=self.lease_s, at=t
                    )
                    if not held and self.current == job_id:
                        self.lost_job = job_id
        except Exception as exc:  # a locked or busy moment: the next beat tries again
            log.warning("heartbeat failed: %s", exc)
            return
        spent = time.perf_counter() - started
        self.stats.heartbeats += 1
        self.stats.heartbeat_s += spent
        self.stats.heartbeat_max_s = max(self.stats.heartbeat_max_s, spent)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=5)


# --------------------------------------------------------------------- worker
def _readable(exc: BaseException) -> str:
    """The one-line reason stored in jobs.error: our own errors speak for themselves."""
    from ambiscope.core.alm.base import BackendError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, BackendError | WorkspaceError | PolicyError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Worker:
    """Claims and runs jobs of one workspace until told to stop (see module docstring)."""

    def __init__(self, db_path: str | os.PathLike[str], config: WorkerConfig | None = None):
        self.path = Path(db_path)
        self.config = config or WorkerConfig()
        # a bad --allow-endpoint fails before any claim; the workspace's folder is readable
        policy = self.config.policy
        self.policy = replace(policy, allow_dirs=(*policy.allow_dirs, str(self.path.parent)))
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.stats = WorkerStats()
        self.backends = BackendCache(self.config.max_models)
        self._stopping = threading.Event()
        self._stop_reason = ""
        self._signals = 0
        self.ws: Workspace | None = None
        self.heartbeat: Heartbeat | None = None
        self._waited: set[int] = set()  # jobs `--once` said it waits for

    # ----------------------------------------------------------- lifecycle
    def stop(self, reason: str = "stop requested") -> None:
        """Ask the worker to stop after the current clip (thread- and signal-safe)."""
        self._stop_reason = self._stop_reason or reason
        self._stopping.set()

    def install_signal_handlers(self) -> dict[int, Any]:
        """SIGTERM/SIGINT: stop after the clip (twice: now); SIGHUP: keep running.

        Returns the previous handlers so `run_worker` can restore them when it returns.
        """
        previous = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, self._on_signal),
            signal.SIGINT: signal.signal(signal.SIGINT, self._on_signal),
        }
        if hasattr(signal, "SIGHUP"):
            previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, signal.SIG_IGN)
        return previous

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals += 1
        if self._signals > 1:
            raise KeyboardInterrupt
        self.stop(f"signal {signal.Signals(signum).name}")

    def run(self) -> WorkerStats:
        """Work until stopped, `once` finds nothing queued, or `max_jobs` is reached."""
        from ambiscope.db import Workspace

        import_job_modules(self.config.modules)
        self.ws = Workspace.open(self.path)
        try:
            self._register()
            self.heartbeat = Heartbeat(self.path, self.id, self.config, self.stats)
            self.heartbeat.start()
            try:
                self._loop()
            finally:
                self.heartbeat.stop()
                self.backends.close_all()
                self._unregister()
        finally:
            self.ws.close()
        return self.stats

    def _loop(self) -> None:
        idle_since = time.monotonic()
        while not self._stopping.is_set():
            if self.config.max_jobs is not None and self.stats.jobs >= self.config.max_jobs:
                break
            job = self._claim()
            if job is not None:
                self._process(job)
                idle_since = time.monotonic()
                continue
            if self.config.once and not self._others_running():
                break
            idle = time.monotonic() - idle_since
            if len(self.backends) and idle >= self.config.unload_idle_s:
                self._event(None, f"idle {idle:.0f} s: unloading models")
                self.backends.close_all()
            if self.config.idle_exit_s is not None and idle >= self.config.idle_exit_s:
                self._event(None, f"idle {idle:.0f} s: exiting")
                break
            self._stopping.wait(self.config.poll_s)

    def _others_running(self) -> bool:
        """`--once`: is a job of our kinds still running under another worker?

        `--once` means "run what is queued, then exit", and such a job is not finished: its
        worker may still die and the job come back to the queue when the lease runs out
        (claim_next then re-queues it and this worker runs it). So the worker waits, saying
        once in one line which job it waits for, and exits when none is left.
        """
        assert self.ws is not None
        kinds = set(self.config.kinds or JOB_KINDS.names())
        t = now()
        others = [
            j
            for j in rows.list_jobs(self.ws, status="running")
            if j.kind in kinds and j.owner != self.id  # an expired lease: claimed next
        ]
        for job in others:
            if job.id not in self._waited:
                self._waited.add(job.id)
                left = max((job.lease_expires or t) - t, 0.0)
                self._event(
                    None,
                    f"--once: nothing queued; waiting for job {job.id}, running on worker "
                    f"{job.owner} (lease ends in {left:.0f} s unless renewed): it may come "
                    "back to the queue (Ctrl-C leaves it to that worker)",
                )
        return bool(others)

    # --------------------------------------------------------- registration
    def _register(self) -> None:
        assert self.ws is not None
        t = now()
        with self.ws.transaction():
            rows.prune_workers(self.ws, t - _PRUNE_WORKERS_AFTER_S)
            rows.insert_worker(
                self.ws,
                self.id,
                pid=os.getpid(),
                host=socket.gethostname(),
                node=this_node(),
                device=self.config.device,
                lease_s=self.config.lease_s,
                log_path=_stdout_file(),
                at=t,
            )
            kinds = ", ".join(self.config.kinds or JOB_KINDS.names())
            self._event(None, f"worker {self.id} started (kinds: {kinds})")

    def _unregister(self) -> None:
        assert self.ws is not None
        rows.mark_worker_stopped(self.ws, self.id, now())
        why = f" ({self._stop_reason})" if self._stop_reason else ""
        self._event(None, f"worker {self.id} stopped{why}: {self.stats.summary()}")

    def _event(self, job_id: int | None, message: str, level: str = "info") -> None:
        assert self.ws is not None
        log.log(
            logging.getLevelName(level.upper()), "%s%s", f"job {job_id}: " * bool(job_id), message
        )
        log_event(self.ws, job_id, message, level=level, worker=self.id)

    # ----------------------------------------------------------------- jobs
    def _claim(self) -> Job | None:
        assert self.ws is not None and self.heartbeat is not None
        job = claim_next(
            self.ws,
            self.id,
            kinds=self.config.kinds,
            lease_s=self.config.lease_s,
            pid_check=self.config.pid_check,
        )
        if job is not None:
            self.heartbeat.current = job.id
            rows.set_current_job(self.ws, self.id, job.id)
        return job

    def _context(self, job: Job) -> JobContext:
        assert self.ws is not None

        def backend_for(spec: BackendSpec, model: str | None) -> Backend:
            return self.backends.get(spec, model, on_load=lambda m: self._event(job.id, m))

        return JobContext(
            self.ws,
            job,
            self.id,
            device=self.config.device,
            ray=self.config.ray,
            backend_for=backend_for,
            check_stop=lambda: self._check_stop(job.id),
        )

    def _check_stop(self, job_id: int) -> str | None:
        """Between clips: cancelled? lease lost? worker stopping? (reads the job row)."""
        assert self.ws is not None and self.heartbeat is not None
        started = time.perf_counter()
        control = rows.job_control(self.ws, job_id)
        self.stats.checks += 1
        self.stats.check_s += time.perf_counter() - started
        if control is None:
            return "lost"
        status, owner, cancel_requested = control
        if cancel_requested:
            return "cancel"
        if status != "running" or owner != self.id or self.heartbeat.lost_job == job_id:
            return "lost"
        if self._stopping.is_set():
            return "shutdown"
        return None

    def _process(self, job: Job) -> None:
        assert self.ws is not None and self.heartbeat is not None
        self.stats.jobs += 1
        ctx = self._context(job)
        started = time.perf_counter()
        self._event(job.id, f"running {job.kind} on {self.id}")
        try:
            self.policy.check(job_needs(job.kind, job.params))
            result = JOB_KINDS.get(job.kind)(ctx)
        except Exception as exc:
            self._failed(job, ctx, exc)
        except BaseException:
            self._finish(job, "queued", message="interrupted: handed back to the queue")
            raise
        else:
            self._finished(job, ctx, result)
        finally:
            self.heartbeat.current = None
            self.stats.job_s += time.perf_counter() - started

    def _failed(self, job: Job, ctx: JobContext, exc: Exception) -> None:
        if ctx.stop_reason == "lost":
            self._lost(job)
            return
        reason = _readable(exc)
        self._finish(
            job,
            "failed",
            error=reason,
            traceback=None if isinstance(exc, PolicyError) else traceback.format_exc(),
            message=f"failed: {reason}",
        )

    def _finished(self, job: Job, ctx: JobContext, result: dict[str, Any] | None) -> None:
        reason = ctx.stop_reason
        if reason == "lost":
            self._lost(job)
        elif reason == "cancel":
            self._finish(job, "cancelled", result=result, message="cancelled")
        elif reason == "shutdown":
            why = self._stop_reason or "worker stopping"
            self._finish(job, "queued", message=f"handed back to the queue ({why})")
        else:
            self._finish(job, "done", result=result, message="done")

    def _lost(self, job: Job) -> None:
        self.stats.lost += 1
        self.stats.outcomes[job.id] = "lost"
        self._event(job.id, "lease lost to another worker; stopped without recording", "warning")

    def _finish(self, job: Job, status: str, **kw: Any) -> None:
        assert self.ws is not None
        if finish_job(self.ws, job, self.id, status, **kw):
            counter = {"queued": "released"}.get(status, status)
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)
            self.stats.outcomes[job.id] = status
            log.info("job %s: %s", job.id, kw.get("message") or status)
        else:
            self._lost(job)


def _stdout_file() -> str | None:
    """Where this process's output goes, when it is a file (the detached worker's log)."""
    try:
        target = os.readlink("/proc/self/fd/1")
    except OSError:
        return None
    return target if target.startswith("/") and Path(target).is_file() else None


def configure_logging(level: int = logging.INFO) -> None:
    """Timestamped lines on stderr (the detached worker's stderr is its log file)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s worker[%(process)d] %(message)s")
    )
    root = logging.getLogger("ambiscope")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def run_worker(db_path: str | os.PathLike[str], config: WorkerConfig | None = None) -> WorkerStats:
    """The worker entry point (`python -m ambiscope.core.jobs`, `ambiscope worker`):
    signals, logging, then the loop."""
    configure_logging()
    worker = Worker(db_path, config)
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = worker.install_signal_handlers() if on_main_thread else {}
    raise_exceptions = logging.raiseExceptions
    logging.raiseExceptions = False  # a vanished terminal (SSH gone) must not kill the worker
    try:
        return worker.run()
    except KeyboardInterrupt:
        log.warning("interrupted")
        return worker.stats
    finally:
        logging.raiseExceptions = raise_exceptions
        for signum, handler in previous.items():
            signal.signal(signum, handler)
