"""Job log lines: rows of `job_events` any process can read (`ambiscope jobs show`, the TUI).

A line with no job is a worker-level line (started, idle, stopped). Read them back with
`ambiscope.db.jobs.list_events`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ambiscope.core.jobs.liveness import now
from ambiscope.db import jobs as rows

if TYPE_CHECKING:
    from ambiscope.db import Workspace

EVENT_LEVELS = ("debug", "info", "warning", "error")


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
    rows.insert_event(ws, job_id, message, level=level, worker=worker, at=now())
