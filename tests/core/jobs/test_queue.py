"""The job queue on real SQLite: claims, leases, cancel, retry, and the worker loop in-process.

Jobs here are of the test-only kind `test-flag` (flag_kind.py: a handler that flags clips,
real work on the workspace), which worker *processes* import as a plug-in with
`--import tests.core.jobs.flag_kind` or $AMBISCOPE_JOB_MODULES.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ambiscope.core.jobs.kinds import JOB_KINDS, job_kind
from ambiscope.core.jobs.liveness import live_workers, this_node
from ambiscope.core.jobs.queue import (
    cancel_job,
    claim_next,
    enqueue,
    finish_job,
    job_detail,
    requeue_abandoned,
    retry_job,
)
from ambiscope.core.jobs.spawn import worker_command
from ambiscope.core.jobs.worker import Worker, WorkerConfig
from ambiscope.core.registry import RegistryError
from ambiscope.core.scaling.job import enqueue_resample
from ambiscope.db import ClipIn, Workspace, WorkspaceError
from ambiscope.db.jobs import get_job, list_events, list_jobs
from tests.core.jobs.flag_kind import FLAG_KIND, flag_params


def make_workspace(path: Path, n_clips: int = 20) -> list[int]:
    """A workspace with one dataset of `n_clips` clips (no audio: queue tests need none)."""
    with Workspace.open(path, create=True) as ws:
        ds = ws.add_dataset("t", "manifest", ["neutral", "happy", "sad"])
        ws.add_clips(
            ds.id,
            [ClipIn(key=f"c{i:03d}", split="test" if i % 2 else "train") for i in range(n_clips)],
        )
        return sorted(ws.clip_ids(ds.id).values())


@pytest.fixture
def wsp(tmp_path: Path) -> tuple[Path, list[int]]:
    path = tmp_path / "ws.db"
    return path, make_workspace(path)


@pytest.fixture
def ws(wsp: tuple[Path, list[int]]) -> Workspace:
    with Workspace.open(wsp[0]) as opened:
        yield opened


def flags(ws: Workspace, name: str) -> list[int]:
    return [r[0] for r in ws.conn.execute("SELECT clip_id FROM flags WHERE name = ?", (name,))]


def run_tags(ws: Workspace, job_id: int) -> list[str]:
    return [
        r[0]
        for r in ws.conn.execute("SELECT name FROM tags WHERE name LIKE ?", (f"ran:{job_id}:%",))
    ]


def in_process_worker(path: Path, **kw: Any) -> Worker:
    kw.setdefault("once", True)
    kw.setdefault("poll_s", 0.02)
    return Worker(path, WorkerConfig(**kw))


def wait_for(cond: Any, timeout: float = 10.0, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(step)


# ------------------------------------------------------------------- enqueue
def test_enqueue_writes_a_queued_row_and_an_event(ws: Workspace) -> None:
    job = enqueue(ws, FLAG_KIND, flag_params([1, 2], "f"), total=2)
    assert (job.status, job.kind, job.progress_total, job.attempts) == ("queued", FLAG_KIND, 2, 0)
    assert [e.message for e in list_events(ws, job.id)] == [f"queued ({FLAG_KIND})"]
    with pytest.raises(RegistryError, match="unknown job kind 'nope'"):
        enqueue(ws, "nope", {})


def test_job_kind_rejects_silent_replacement_and_odd_names() -> None:
    with pytest.raises(RegistryError, match="already registered"):
        job_kind(FLAG_KIND)(lambda ctx: None)
    with pytest.raises(RegistryError, match="must be a word"):
        job_kind("bad kind")(lambda ctx: None)


def test_built_in_kinds_register_where_they_are_defined() -> None:
    from ambiscope.core.jobs.kinds import describe_job
    from ambiscope.core.scaling.job import resample
    from ambiscope.core.synthetic.job import annotate_synthetic

    assert {"resample", "annotate-synthetic", FLAG_KIND} <= set(JOB_KINDS.names())
    assert JOB_KINDS["resample"] is resample
    assert JOB_KINDS["annotate-synthetic"] is annotate_synthetic
    job = job_row("resample", {"spec": {"model": "m", "n": 2, "dataset": "d"}})
    assert describe_job(job) == "m n=2 label on 0 clips of d"
    assert describe_job(job_row("unknown-kind", {"a": 1})) == '{"a": 1}'


def job_row(kind: str, params: dict[str, Any]) -> Any:
    """A Job row as listings see it (kind possibly unknown to this process)."""
    from ambiscope.db import Job

    return Job(1, kind, params, "queued", 0, 0, None, None, None, False, 0, None, 0.0, None, None)


# --------------------------------------------------------------------- claim
def test_claims_oldest_first_and_never_twice(ws: Workspace) -> None:
    ids = [enqueue(ws, FLAG_KIND, flag_params([1], f"f{i}")).id for i in range(3)]
    first = claim_next(ws, "w1", kinds=[FLAG_KIND])
    second = claim_next(ws, "w2", kinds=[FLAG_KIND])
    assert [first.id, second.id] == ids[:2]
    assert (first.status, first.owner, first.attempts) == ("running", "w1", 1)
    assert first.lease_expires > time.time() + 20
    third = claim_next(ws, "w1", kinds=[FLAG_KIND])
    assert third.id == ids[2]
    assert claim_next(ws, "w1", kinds=[FLAG_KIND]) is None


def test_claim_skips_kinds_this_worker_does_not_know(ws: Workspace) -> None:
    other = enqueue(ws, "resample", {"spec": {}, "clip_ids": [1]})
    mine = enqueue(ws, FLAG_KIND, flag_params([1], "f"))
    assert claim_next(ws, "w", kinds=[FLAG_KIND]).id == mine.id
    assert get_job(ws, other.id).status == "queued"


def test_concurrent_claims_from_threads_take_each_job_once(wsp: tuple[Path, list[int]]) -> None:
    path, _ = wsp
    with Workspace.open(path) as ws, ws.transaction():
        for i in range(60):
            enqueue(ws, FLAG_KIND, flag_params([1], f"f{i}"))
    claimed: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def claimer(name: str) -> None:
        with Workspace.open(path) as own:
            got = claimed.setdefault(name, [])
            start.wait()
            while (job := claim_next(own, name, kinds=[FLAG_KIND])) is not None:
                got.append(job.id)
                time.sleep(0.002)  # "work", so the others get their turn

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [j for got in claimed.values() for j in got]
    assert sorted(every) == list(range(1, 61))
    assert sum(1 for got in claimed.values() if got) >= 2  # they really competed


def test_idle_polling_does_not_take_the_write_lock(wsp: tuple[Path, list[int]]) -> None:
    """With nothing to claim (only a healthy running job), a poll is read-only."""
    import sqlite3

    path, _ = wsp
    with Workspace.open(path) as ws:
        enqueue(ws, FLAG_KIND, flag_params([1], "f"))
        claim_next(ws, "busy", kinds=[FLAG_KIND], lease_s=30)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # e.g. the TUI in the middle of a write
        try:
            ws.conn.execute("PRAGMA busy_timeout = 50")
            assert claim_next(ws, "idle", kinds=[FLAG_KIND]) is None
        finally:
            holder.execute("ROLLBACK")
            holder.close()


# --------------------------------------------------------------- abandonment
def test_expired_lease_is_requeued_and_claimed_again(ws: Workspace) -> None:
    job = enqueue(ws, FLAG_KIND, flag_params([1], "f"))
    claim_next(ws, "dead-worker", kinds=[FLAG_KIND], lease_s=0.01)
    time.sleep(0.03)
    again = claim_next(ws, "w2", kinds=[FLAG_KIND])
    assert (again.id, again.owner, again.attempts) == (job.id, "w2", 2)
    messages = [e.message for e in list_events(ws, job.id)]
    assert any("re-queued: worker dead-worker stopped responding" in m for m in messages)


def test_live_lease_is_not_requeued(ws: Workspace) -> None:
    enqueue(ws, FLAG_KIND, flag_params([1], "f"))
    claim_next(ws, "alive", kinds=[FLAG_KIND], lease_s=30)
    assert requeue_abandoned(ws) == []
    assert claim_next(ws, "w2", kinds=[FLAG_KIND]) is None


def test_job_that_keeps_killing_its_worker_fails_after_max_attempts(ws: Workspace) -> None:
    job = enqueue(ws, FLAG_KIND, flag_params([1], "f"), max_attempts=2)
    for attempt in range(2):
        claimed = claim_next(ws, f"doomed{attempt}", kinds=[FLAG_KIND], lease_s=0.01)
        assert claimed is not None
        time.sleep(0.03)
    assert requeue_abandoned(ws) == [job.id]
    final = get_job(ws, job.id)
    assert final.status == "failed"
    assert "abandoned 2 times" in final.error
    assert final.finished_at is not None


def test_cancel_requested_job_of_a_dead_worker_becomes_cancelled(ws: Workspace) -> None:
    job = enqueue(ws, FLAG_KIND, flag_params([1], "f"))
    claim_next(ws, "dead", kinds=[FLAG_KIND], lease_s=0.01)
    cancel_job(ws, job.id)
    time.sleep(0.03)
    requeue_abandoned(ws)
    assert get_job(ws, job.id).status == "cancelled"


def test_job_of_a_dead_local_process_is_requeued_before_its_lease_ends(ws: Workspace) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    t = time.time()
    ws.conn.execute(
        "INSERT INTO workers (id, pid, host, node, lease_s, started_at, heartbeat) "
        "VALUES ('ghost', ?, 'h', ?, 30, ?, ?)",
        (gone.pid, this_node(), t, t),
    )
    job = enqueue(ws, FLAG_KIND, flag_params([1], "f"))
    claim_next(ws, "ghost", kinds=[FLAG_KIND], lease_s=30)
    assert requeue_abandoned(ws, pid_check=False) == []  # lease alone: still valid
    assert requeue_abandoned(ws) == [job.id]
    assert get_job(ws, job.id).status == "queued"
    status = ws.conn.execute("SELECT status FROM workers WHERE id = 'ghost'").fetchone()[0]
    assert status == "lost"


# ------------------------------------------------------------- cancel, retry
def test_cancel_queued_is_immediate_and_running_is_requested(ws: Workspace) -> None:
    running = enqueue(ws, FLAG_KIND, flag_params([1], "b"))
    assert claim_next(ws, "w", kinds=[FLAG_KIND]).id == running.id
    queued = enqueue(ws, FLAG_KIND, flag_params([1], "a"))
    cancelled = cancel_job(ws, queued.id)
    assert (cancelled.status, cancelled.finished_at is not None) == ("cancelled", True)
    assert claim_next(ws, "w2", kinds=[FLAG_KIND]) is None
    requested = cancel_job(ws, running.id)
    assert (requested.status, requested.cancel_requested) == ("running", True)
    with pytest.raises(WorkspaceError, match="already cancelled"):
        cancel_job(ws, queued.id)


def test_retry_requeues_failed_and_cancelled_only(ws: Workspace) -> None:
    job = enqueue(ws, FLAG_KIND, flag_params([1], "f"))
    with pytest.raises(WorkspaceError, match="only failed or cancelled"):
        retry_job(ws, job.id)
    claimed = claim_next(ws, "w", kinds=[FLAG_KIND])
    assert finish_job(ws, claimed, "w", "failed", error="boom", traceback="tb")
    again = retry_job(ws, job.id)
    assert (again.status, again.attempts, again.error, again.owner) == ("queued", 0, None, None)
    assert job_detail(ws, job.id).traceback is None
    cancel_job(ws, job.id)
    assert retry_job(ws, job.id).status == "queued"
    claimed = claim_next(ws, "w", kinds=[FLAG_KIND])
    finish_job(ws, claimed, "w", "done")
    with pytest.raises(WorkspaceError, match="is done"):
        retry_job(ws, job.id)


def test_finish_by_a_worker_that_lost_the_job_changes_nothing(ws: Workspace) -> None:
    enqueue(ws, FLAG_KIND, flag_params([1], "f"))
    old = claim_next(ws, "old", kinds=[FLAG_KIND], lease_s=0.01)
    time.sleep(0.03)
    claim_next(ws, "new", kinds=[FLAG_KIND])
    assert not finish_job(ws, old, "old", "done")
    assert get_job(ws, old.id).owner == "new"


# ------------------------------------------------------- the worker, in-process
def test_worker_runs_jobs_in_order_and_records_results(wsp: tuple[Path, list[int]]) -> None:
    path, clips = wsp
    with Workspace.open(path) as ws:
        a = enqueue(ws, FLAG_KIND, flag_params(clips[:5], "a"), total=5)
        b = enqueue(ws, FLAG_KIND, flag_params(clips[:3], "b", fail="no luck"), total=3)
        c = enqueue(ws, FLAG_KIND, flag_params(clips[5:8], "c"), total=3)
    stats = in_process_worker(path).run()
    assert (stats.jobs, stats.done, stats.failed) == (3, 2, 1)
    with Workspace.open(path) as ws:
        done = job_detail(ws, a.id)
        assert (done.job.status, done.job.progress_done, done.result) == ("done", 5, {"flagged": 5})
        assert sorted(flags(ws, "a")) == clips[:5]
        failed = job_detail(ws, b.id)
        assert failed.job.status == "failed"
        assert failed.job.error == "RuntimeError: no luck"
        assert "Traceback" in failed.traceback and "no luck" in failed.traceback
        assert get_job(ws, c.id).status == "done"  # the failure did not stop the worker
        (row,) = ws.conn.execute("SELECT status, jobs_done, current_job FROM workers").fetchall()
        assert row == ("stopped", 3, None)
        assert live_workers(ws) == []


def test_worker_max_jobs(wsp: tuple[Path, list[int]]) -> None:
    path, clips = wsp
    with Workspace.open(path) as ws:
        for i in range(3):
            enqueue(ws, FLAG_KIND, flag_params(clips[:1], f"f{i}"))
    assert in_process_worker(path, max_jobs=2).run().jobs == 2
    with Workspace.open(path) as ws:
        assert [j.status for j in list_jobs(ws)] == ["queued", "done", "done"]


def _start(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_cancel_stops_a_running_job_between_units(wsp: tuple[Path, list[int]]) -> None:
    path, clips = wsp
    with Workspace.open(path) as ws:
        job = enqueue(ws, FLAG_KIND, flag_params(clips, "slow", delay=0.05), total=len(clips))
        thread = _start(in_process_worker(path))
        wait_for(lambda: get_job(ws, job.id).progress_done >= 3)
        cancel_job(ws, job.id)
        thread.join(timeout=10)
        final = get_job(ws, job.id)
        assert final.status == "cancelled"
        kept = flags(ws, "slow")
        assert 3 <= len(kept) < len(clips)
        assert final.progress_done == len(kept)


def test_stopping_worker_hands_the_job_back_and_the_next_resumes(
    wsp: tuple[Path, list[int]],
) -> None:
    path, clips = wsp
    with Workspace.open(path) as ws:
        job = enqueue(ws, FLAG_KIND, flag_params(clips, "r", delay=0.03), total=len(clips))
        first = in_process_worker(path, once=False)
        thread = _start(first)
        wait_for(lambda: get_job(ws, job.id).progress_done >= 4)
        first.stop("test")
        thread.join(timeout=10)
        handed = get_job(ws, job.id)
        assert (handed.status, handed.owner, handed.attempts) == ("queued", None, 0)
        stats = in_process_worker(path).run()
        assert stats.done == 1
        final = get_job(ws, job.id)
        assert (final.status, final.progress_done) == ("done", len(clips))
        assert sorted(flags(ws, "r")) == clips
        assert len(run_tags(ws, job.id)) == 2  # started twice, each clip flagged once


def test_heartbeat_keeps_a_long_job_leased(wsp: tuple[Path, list[int]]) -> None:
    path, clips = wsp
    with Workspace.open(path) as ws:
        job = enqueue(ws, FLAG_KIND, flag_params(clips[:6], "hb", delay=0.2))
        worker = in_process_worker(path, lease_s=0.4, heartbeat_s=0.05)
        thread = _start(worker)
        while thread.is_alive():  # a rival looking for work all along finds nothing to take
            assert requeue_abandoned(ws, exclude_owner="rival") == []
            time.sleep(0.02)
        final = get_job(ws, job.id)
        assert (final.status, final.attempts) == ("done", 1)
        assert worker.stats.heartbeats >= 10


def test_worker_that_lost_its_lease_stops_without_recording(
    wsp: tuple[Path, list[int]],
) -> None:
    path, clips = wsp
    with Workspace.open(path) as ws:
        job = enqueue(ws, FLAG_KIND, flag_params(clips, "lost", delay=0.05))
        worker = in_process_worker(path, lease_s=30)
        thread = _start(worker)
        wait_for(lambda: get_job(ws, job.id).progress_done >= 2)
        # as if its lease had run out (a suspended machine): a rival re-queues and claims it
        requeue_abandoned(ws, at=time.time() + 60)
        assert claim_next(ws, "rival", kinds=[FLAG_KIND]).id == job.id
        thread.join(timeout=10)
        assert worker.stats.lost == 1
        row = get_job(ws, job.id)
        assert (row.status, row.owner) == ("running", "rival")


# --------------------------------------------------------------- resample
def test_enqueue_resample_freezes_the_selection(tmp_path: Path) -> None:
    from ambiscope.core.scaling.run import RunSpec

    path = tmp_path / "ws.db"
    clips = make_workspace(path, n_clips=10)
    spec = RunSpec(dataset="t", model="/models/x", n=2)
    with Workspace.open(path) as ws:
        by_filter = enqueue_resample(ws, spec, where="split:test", limit=3)
        assert by_filter.params["clip_ids"] == [clips[1], clips[3], clips[5]]
        assert (by_filter.progress_total, by_filter.params["where"]) == (3, "split:test")
        assert by_filter.params["spec"] == spec.to_dict()
        both = enqueue_resample(ws, spec, clip_ids=clips[:4], where="split:train")
        assert both.params["clip_ids"] == [clips[0], clips[2]]
        everything = enqueue_resample(ws, spec)
        assert everything.progress_total == 10
        with pytest.raises(WorkspaceError, match="not in this dataset: 999"):
            enqueue_resample(ws, spec, clip_ids=[clips[0], 999])
        with pytest.raises(WorkspaceError, match="matches no clips"):
            enqueue_resample(ws, spec, where="key:no-such-clip")
        with pytest.raises(ValueError, match="no clip has split 'nope' \\(splits: test, train\\)"):
            enqueue_resample(ws, spec, where="split:nope")  # a typo, said as one


def test_worker_command_is_the_documented_one(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    assert worker_command(db) == [sys.executable, "-m", "ambiscope.core.jobs", "--db", str(db)]


# ------------------------------------------------------------------- CLI
def test_cli_enqueue_list_show_cancel_retry(wsp: tuple[Path, list[int]]) -> None:
    from ambiscope.tui.cli.main import main as cli

    path, clips = wsp
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["--db", str(path), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    out = run(
        "enqueue", "resample", "-d", "t", "-m", "/models/x", "--n", "2",
        "--clip", str(clips[0]), "--clip", str(clips[1]),
    )  # fmt: skip
    assert "job 1 queued: resample /models/x n=2 label on 2 clips of t" in out
    out = run("enqueue", "resample", "-d", "t", "-m", "/models/y", "--where", "split:test")
    assert "on 10 clips of t where 'split:test'" in out
    listing = run("jobs")
    assert "queued" in listing and "/models/y" in listing
    assert "cancelled" in run("jobs", "cancel", "1")
    assert "queued again" in run("jobs", "retry", "1")
    shown = run("jobs", "show", "1")
    assert "job 1 resample: queued" in shown and "retry requested (was cancelled)" in shown
    assert "no live worker" in run("jobs", "workers")
    bad = runner.invoke(cli, ["--db", str(path), "jobs", "retry", "2"])
    assert bad.exit_code == 1 and "only failed or cancelled" in bad.output
    bad = runner.invoke(
        cli, ["--db", str(path), "enqueue", "resample", "-d", "t", "-m", "x", "--clip", "999"]
    )
    assert bad.exit_code == 1 and "not in this dataset" in bad.output


def test_cli_worker_once_runs_queued_jobs(wsp: tuple[Path, list[int]]) -> None:
    from ambiscope.tui.cli.main import main as cli

    path, clips = wsp
    with Workspace.open(path) as ws:
        enqueue(ws, FLAG_KIND, flag_params(clips[:2], "cli"))
    result = CliRunner().invoke(cli, ["--db", str(path), "worker", "--once", "--poll", "0.05"])
    assert result.exit_code == 0, result.output
    with Workspace.open(path) as ws:
        assert get_job(ws, 1).status == "done"


def test_module_is_importable_by_worker_processes() -> None:
    """Worker processes import the plug-in module by name to get the test-only kind."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    out = subprocess.run(
        [sys.executable, "-c", "import tests.core.jobs.flag_kind; "
         "from ambiscope.core.jobs.kinds import JOB_KINDS as k; print(k.names())"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert FLAG_KIND in out.stdout


def test_worker_entry_point_is_the_library_not_the_cli(wsp: tuple[Path, list[int]]) -> None:
    """`python -m ambiscope.core.jobs` runs a worker without loading the front ends."""
    path, clips = wsp
    with Workspace.open(path) as ws:
        enqueue(ws, FLAG_KIND, flag_params(clips[:2], "lib"))
    code = "\n".join(
        [
            "import runpy, sys",
            "sys.argv = ['w', '--db', sys.argv[1], '--once', '--poll', '0.05',"
            " '--import', 'tests.core.jobs.flag_kind']",
            "try:",
            "    runpy.run_module('ambiscope.core.jobs', run_name='__main__', alter_sys=True)",
            "except SystemExit as stop:",
            "    front = ('ambiscope.tui', 'textual', 'click')",
            "    print('loaded', [m for m in sys.modules if m.startswith(front)])",
            "    sys.exit(stop.code)",
        ]
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "worker finished: 1 jobs: 1 done" in done.stderr
    assert done.stdout.strip() == "loaded []"
    with Workspace.open(path) as ws:
        assert flags(ws, "lib") == clips[:2]
