"""The jobs tables' SQL (ambiscope.db.jobs) on a real workspace, without the queue protocol."""

from __future__ import annotations

from pathlib import Path

import pytest

from ambiscope.db import Workspace, WorkspaceError
from ambiscope.db import jobs as rows


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    with Workspace.open(tmp_path / "w.db", create=True) as opened:
        yield opened


def test_job_rows_round_trip_and_owner_guarded_writes(ws: Workspace) -> None:
    job_id = rows.insert_job(ws, "k", {"a": [1, 2]}, total=3, max_attempts=2, at=100.0)
    job = rows.get_job(ws, job_id)
    assert (job.kind, job.params, job.status, job.progress_total) == (
        "k",
        {"a": [1, 2]},
        "queued",
        3,
    )
    assert rows.oldest_queued(ws, ["k"]) == job_id and rows.queued_exists(ws, ["k"])
    assert rows.oldest_queued(ws, ["other"]) is None
    rows.mark_claimed(ws, job_id, "w1", lease_s=10, at=200.0)
    (running,) = rows.running_jobs(ws)
    assert (running.owner, running.lease_expires, running.attempts) == ("w1", 210.0, 1)
    assert rows.job_control(ws, job_id) == ("running", "w1", False)
    assert not rows.renew_job_lease(ws, job_id, "w2", lease_s=10, at=205.0)  # not its job
    assert rows.renew_job_lease(ws, job_id, "w1", lease_s=10, at=205.0)
    rows.set_progress(ws, job_id, "w2", 3, 3, at=206.0)  # ignored: w2 does not own it
    rows.set_progress(ws, job_id, "w1", 2, 3, at=206.0)
    assert rows.get_job(ws, job_id).progress_done == 2
    assert not rows.record_outcome(
        ws, job_id, "w2", "done", error=None, traceback=None, result={"x": 1}, at=207.0
    )
    assert rows.record_outcome(
        ws, job_id, "w1", "done", error=None, traceback=None, result={"x": 1}, at=207.0
    )
    extras = rows.job_extras(ws, job_id)
    assert (extras.result, extras.max_attempts, extras.updated_at) == ({"x": 1}, 2, 207.0)
    assert [j.id for j in rows.list_jobs(ws, status="done")] == [job_id]
    with pytest.raises(WorkspaceError, match="no job with id 99"):
        rows.get_job(ws, 99)


def test_events_in_order_and_the_last_n(ws: Workspace) -> None:
    job_id = rows.insert_job(ws, "k", {}, total=0, max_attempts=1, at=1.0)
    for i in range(5):
        rows.insert_event(ws, job_id, f"m{i}", level="info", worker=None, at=float(i))
    rows.insert_event(ws, None, "worker line", level="info", worker="w", at=9.0)
    assert [e.message for e in rows.list_events(ws, job_id)] == [f"m{i}" for i in range(5)]
    assert [e.message for e in rows.list_events(ws, job_id, limit=2)] == ["m3", "m4"]
    first = rows.list_events(ws)[0].id
    assert [e.message for e in rows.list_events(ws, after_id=first + 3)] == ["m4", "worker line"]


def test_worker_rows(ws: Workspace) -> None:
    rows.insert_worker(
        ws, "h:1:a", pid=1, host="h", node="h/ns", device=None, lease_s=5, log_path=None, at=10.0
    )
    assert rows.worker_registered(ws, 1, "h/ns") and not rows.worker_registered(ws, 1, "x")
    job_id = rows.insert_job(ws, "k", {}, total=0, max_attempts=1, at=1.0)
    rows.set_current_job(ws, "h:1:a", job_id)
    rows.job_left_worker(ws, "h:1:a", counted=True)
    (w,) = rows.list_workers(ws)
    assert (w.current_job, w.jobs_done, w.status) == (None, 1, "running")
    rows.mark_worker_stopped(ws, "h:1:a", at=20.0)
    rows.prune_workers(ws, heard_before=15.0)
    assert rows.list_workers(ws)[0].status == "stopped"
    rows.prune_workers(ws, heard_before=25.0)
    assert rows.list_workers(ws) == []
