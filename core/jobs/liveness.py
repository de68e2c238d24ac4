"""Is a worker still there? Clocks, nodes and process checks shared by queue and spawner.

A worker is alive while its heartbeat is within its lease; on the machine (and pid
namespace) where it runs, a vanished process also counts as dead at once, so a kill -9
is recovered in one poll instead of one lease.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ambiscope.db import jobs as rows

if TYPE_CHECKING:
    from ambiscope.db import Workspace
    from ambiscope.db.jobs import WorkerRow


def now() -> float:
    """Wall-clock Unix seconds: leases are compared across processes, so not monotonic."""
    return time.time()


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


def worker_alive(worker: WorkerRow, at: float | None = None) -> bool:
    """Heartbeat within its lease, and (on this machine) its process exists."""
    t = now() if at is None else at
    if worker.status != "running" or worker.heartbeat + worker.lease_s < t:
        return False
    return worker.node != this_node() or pid_alive(worker.pid)


def live_workers(ws: Workspace) -> list[WorkerRow]:
    """Workers with a fresh heartbeat, most recently heard from first."""
    alive = [w for w in rows.list_workers(ws) if worker_alive(w)]
    return sorted(alive, key=lambda w: w.heartbeat, reverse=True)


def abandoned_reason(
    lease: float | None, pid: int | None, node: str | None, at: float, pid_check: bool
) -> str | None:
    """Why a running job's worker counts as gone (None: it is alive)."""
    if lease is None or lease < at:
        return "its lease expired"
    if pid_check and node == this_node() and pid is not None and not pid_alive(pid):
        return f"its process {pid} is gone"
    return None
