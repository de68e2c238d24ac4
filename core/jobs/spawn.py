"""Start a detached worker process for a workspace (`python -m ambiscope.core.jobs`).

The TUI and `ambiscope enqueue --start-worker` call `ensure_worker`; the child is the
library's own entry point (core/jobs/__main__.py), never the command line, so the job
system works without the front end. The project is installed, so the child imports
`ambiscope` like any other process: no PYTHONPATH is set for it. What the worker may let
stored jobs do is the caller's `WorkerPolicy`, passed as the worker's own command-line
flags (the TUI's comes from its user's settings file, never from the workspace).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ambiscope.core.jobs.liveness import live_workers, this_node
from ambiscope.core.jobs.policy import WorkerPolicy
from ambiscope.db import jobs as rows

WORKER_MODULE = "ambiscope.core.jobs"


class WorkerStartError(RuntimeError):
    """The detached worker exited before registering; the message has its log's tail."""


def worker_command(
    workspace_path: str | os.PathLike[str], policy: WorkerPolicy | None = None
) -> list[str]:
    """The detached worker's argv (`ensure_worker` runs exactly this)."""
    allow = policy.argv() if policy is not None else []
    return [sys.executable, "-m", WORKER_MODULE, "--db", str(workspace_path), *allow]


def worker_log_path(workspace_path: str | os.PathLike[str]) -> Path:
    return Path(f"{Path(workspace_path)}.worker.log")


def ensure_worker(
    workspace_path: str | os.PathLike[str],
    *,
    log_path: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    wait_s: float = 30.0,
    policy: WorkerPolicy | None = None,
) -> int:
    """Return the pid of a live worker for the workspace, starting a detached one if none.

    The worker runs in its own session with stdin closed and output appended to
    `<db>.worker.log`, so closing the TUI or losing the SSH session (SIGHUP to the
    terminal's session) does not stop it. A file lock serialises concurrent callers, and
    the call waits until the new worker has registered, so two TUIs starting at once get
    one worker, and a worker that cannot start raises WorkerStartError with its log tail.
    A new worker gets `policy`'s allow list (default: nothing); a live one keeps its own.
    """
    from ambiscope.db import Workspace

    path = Path(workspace_path).resolve()
    with _spawn_lock(path):
        with Workspace.open(path) as ws:
            live = live_workers(ws)
        if live:
            return live[0].pid
        log = Path(log_path) if log_path else worker_log_path(path)
        proc = _spawn(worker_command(path, policy), path, log, env)
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


def _spawn(
    argv: list[str], path: Path, log: Path, env: dict[str, str] | None
) -> subprocess.Popen[bytes]:
    _rotate(log)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ if env is None else env),
            cwd=str(path.parent),
        )
    # Reap it if it ever exits while we live, so a dead worker is not a zombie "alive" pid.
    threading.Thread(target=proc.wait, name=f"reap-worker-{proc.pid}", daemon=True).start()
    return proc


def _rotate(log: Path, max_bytes: int = 5_000_000) -> None:
    with contextlib.suppress(OSError):
        if log.stat().st_size > max_bytes:
            log.replace(log.with_name(log.name + ".1"))


def _wait_registered(path: Path, proc: subprocess.Popen[bytes], log: Path, wait_s: float) -> None:
    from ambiscope.db import Workspace

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        with Workspace.open(path) as ws:
            if rows.worker_registered(ws, proc.pid, this_node()):
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
