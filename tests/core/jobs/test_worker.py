"""Worker processes on a real workspace: kill -9, rival workers, cancel, a concurrent writer.

Every worker here is a separate `python -m ambiscope.core.jobs` process, as in production
(or the `ambiscope worker` command, which runs the same loop); the
resample jobs use the tiny random-weight checkpoint on a demo workspace with real audio
(2 candidates, 2 new tokens: a clip takes a fraction of a second on a CPU).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ambiscope.core.jobs.liveness import live_workers, pid_alive
from ambiscope.core.jobs.queue import cancel_job, enqueue, job_detail
from ambiscope.core.jobs.spawn import ensure_worker, worker_log_path
from ambiscope.core.scaling.job import enqueue_resample
from ambiscope.db import Workspace
from ambiscope.db.jobs import get_job, list_events
from tests.core.jobs.flag_kind import FLAG_KIND, flag_params
from tests.core.jobs.test_queue import make_workspace

ROOT = Path(__file__).resolve().parents[3]
PLUGIN = "tests.core.jobs.flag_kind"
N_CLIPS = 12


WORKER = (sys.executable, "-m", "ambiscope.core.jobs")
CLI_WORKER = (sys.executable, "-m", "ambiscope.tui.cli.main", "worker")


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "AMBISCOPE_JOB_MODULES": PLUGIN}


def spawn_worker(
    path: Path, *args: str, log: Path | None = None, command: tuple[str, ...] = WORKER
) -> subprocess.Popen:
    log = log or path.with_name(f"worker-{time.monotonic_ns()}.log")
    with open(log, "wb") as out:
        return subprocess.Popen(
            [*command, "--db", str(path), "--poll", "0.1", *args],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env(),
            cwd=ROOT,
        )  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 90) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def wait_for(cond: Callable[[], Any], timeout: float = 60.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(step)


def logs(path: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(path.parent.glob("*.log")))


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ambiscope.core.demo import DemoSpec, build_demo

    path = tmp_path_factory.mktemp("demo") / "demo.db"
    build_demo(path, DemoSpec(n_clips=N_CLIPS, seed=3))
    return path


def copy_workspace(src: Path, dst: Path) -> Path:
    """A private copy of a workspace (the demo's audio paths are absolute, so shared)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    a.backup(b)
    a.close()
    b.close()
    return dst


@pytest.fixture
def demo_ws(demo_template: Path, tmp_path: Path) -> Path:
    return copy_workspace(demo_template, tmp_path / "ws.db")


def tiny_spec(model_dir: Path) -> Any:
    from ambiscope.core.scaling.run import RunSpec

    return RunSpec(
        dataset="demo",
        model=str(model_dir),
        n=2,
        max_new_tokens=2,
        likelihood=True,  # gibberish candidates are invalid; this strategy always predicts
        device="cpu",
        seed=1,
    )


@pytest.fixture
def spec(tiny_model_dir: Path) -> Any:
    return tiny_spec(tiny_model_dir)


@pytest.fixture
def ws(demo_ws: Path) -> Iterator[Workspace]:
    with Workspace.open(demo_ws) as opened:
        yield opened


def assert_whole_clips(ws: Workspace, run_id: int, n: int) -> set[int]:
    """Every clip with candidates is done, with exactly n candidates and predictions."""
    counts = dict(
        ws.conn.execute(
            "SELECT clip_id, count(*) FROM samples WHERE run_id = ? GROUP BY clip_id", (run_id,)
        )
    )
    distinct = ws.conn.execute(
        "SELECT count(*), count(DISTINCT clip_id || ':' || idx) FROM samples WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    assert distinct[0] == distinct[1]
    assert set(counts.values()) <= {n}
    done = ws.run_clip_ids(run_id, status="done")
    predicted = {
        r[0]
        for r in ws.conn.execute(
            "SELECT DISTINCT clip_id FROM predictions WHERE run_id = ?", (run_id,)
        )
    }
    assert set(counts) == done == predicted
    return done


def claims(ws: Workspace, job_id: int) -> list[str]:
    return [e.message for e in list_events(ws, job_id) if e.message.startswith("claimed by")]


# ------------------------------------------------------------------- tests
def test_killed_worker_job_is_finished_by_another_exactly_once(
    demo_ws: Path, ws: Workspace, spec: Any
) -> None:
    ids = sorted(ws.clip_ids(ws.get_dataset("demo").id).values())[:8]
    job = enqueue_resample(ws, spec, clip_ids=ids)
    first = spawn_worker(demo_ws, "--lease", "2", "--heartbeat", "0.3", "--no-pid-check")
    wait_for(lambda: get_job(ws, job.id).progress_done >= 2, 90)
    first.kill()  # SIGKILL: no cleanup, the lease simply stops being renewed
    first.wait()
    killed_at = time.time()
    done_before = len(ws.run_clip_ids(ws.runs()[0].id, status="done"))
    assert get_job(ws, job.id).status == "running"
    second = spawn_worker(demo_ws, "--lease", "2", "--no-pid-check", "--max-jobs", "1")
    assert finish(second) == 0, logs(demo_ws)
    detail = job_detail(ws, job.id)
    assert detail.job.status == "done", logs(demo_ws)
    assert detail.job.attempts == 2
    owners = claims(ws, job.id)
    assert len(owners) == 2 and owners[0] != owners[1]
    requeued = [e for e in detail.events if e.message.startswith("re-queued")]
    assert len(requeued) == 1 and "lease expired" in requeued[0].message
    reclaimed = [e for e in detail.events if e.message.startswith("claimed by")][1]
    assert reclaimed.time - killed_at <= 2 + 5
    assert detail.result["skipped"] == done_before >= 2  # resumed, not redone
    assert detail.result["skipped"] + detail.result["processed"] == len(ids)
    assert len(assert_whole_clips(ws, detail.result["run_id"], 2)) == len(ids)


def test_two_workers_share_a_workspace_without_double_claims(tmp_path: Path) -> None:
    path = tmp_path / "ws.db"
    clips = make_workspace(path, n_clips=6)
    # one library worker and one `ambiscope worker`: the same loop behind two entry points
    procs = [spawn_worker(path, "--poll", "0.02", command=c) for c in (WORKER, CLI_WORKER)]
    with Workspace.open(path) as ws:
        wait_for(lambda: len(live_workers(ws)) == 2, 30)
        with ws.transaction():
            jobs = [
                enqueue(ws, FLAG_KIND, flag_params(clips, f"job{i}", delay=0.03)).id
                for i in range(10)
            ]
        wait_for(lambda: all(get_job(ws, j).status == "done" for j in jobs), 60)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        assert [finish(p) for p in procs] == [0, 0], logs(path)
        owners = set()
        for job_id in jobs:
            (claim,) = claims(ws, job_id)
            owners.add(claim.split()[2])
            ran = ws.conn.execute(
                "SELECT count(*) FROM tags WHERE name LIKE ?", (f"ran:{job_id}:%",)
            ).fetchone()[0]
            assert ran == 1
            assert get_job(ws, job_id).attempts == 1
        assert len(owners) == 2  # both really worked
        statuses = {r[0] for r in ws.conn.execute("SELECT status FROM workers")}
        assert statuses == {"stopped"}


WRITER = textwrap.dedent(
    """
    import random, sys, time
    from pathlib import Path
    from ambiscope.db.jobs import list_jobs
    from ambiscope.db import Workspace
    path, stop = sys.argv[1], Path(sys.argv[2])
    ws = Workspace.open(path)
    ids = sorted(ws.clip_ids(ws.get_dataset("demo").id).values())
    rng = random.Random(0)
    ops = 0
    while not stop.exists():
        clip = rng.choice(ids)
        ws.set_flag(clip, "check", ops % 2 == 0)
        ws.set_tag(clip, "tui", ops % 3 != 0)
        list_jobs(ws)
        ops += 1
        time.sleep(0.003)
    print(ops)
    """
)


@dataclass
class Session:
    """One worker process working through a queue while a TUI-like process writes."""

    path: Path
    jobs: dict[str, int]
    worker_rc: int
    writer_rc: int
    writer_out: str
    writer_err: str
    done_at_cancel: int
    run_of_long: int


@pytest.fixture(scope="module")
def session(demo_template: Path, tiny_model_dir: Path, tmp_path_factory: Any) -> Session:
    """Queue: an unloadable model, two jobs on the tiny model, then a long one to cancel.

    A writer process flags and tags clips every few ms for the whole session, as the TUI
    does. One worker start-up (torch, model load) serves three tests.
    """
    from dataclasses import replace

    tmp = tmp_path_factory.mktemp("session")
    path = copy_workspace(demo_template, tmp / "ws.db")
    spec = tiny_spec(tiny_model_dir)
    stop = tmp / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(stop)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(), cwd=ROOT,
    )  # fmt: skip
    with Workspace.open(path) as ws:
        ids = sorted(ws.clip_ids(ws.get_dataset("demo").id).values())
        jobs = {
            "bad": enqueue_resample(
                ws, replace(spec, model="/nonexistent/model"), clip_ids=ids[:2]
            ),
            "good": enqueue_resample(ws, spec, clip_ids=ids[:6]),
            "again": enqueue_resample(ws, replace(spec, n=3), clip_ids=ids[6:7]),
            "long": enqueue_resample(ws, replace(spec, seed=2)),
        }
        worker = spawn_worker(path, "--once")
        long_id = jobs["long"].id
        wait_for(lambda: get_job(ws, long_id).progress_done >= 2, 120)
        cancel_job(ws, long_id)
        run_of_long = ws.runs()[-1].id
        done_at_cancel = len(ws.run_clip_ids(run_of_long, status="done"))
    worker_rc = finish(worker)
    stop.touch()
    out, err = writer.communicate(timeout=30)
    return Session(
        path,
        {name: job.id for name, job in jobs.items()},
        worker_rc,
        writer.returncode,
        out,
        err,
        done_at_cancel,
        run_of_long,
    )


def test_unloadable_model_fails_readably_and_the_worker_goes_on(session: Session) -> None:
    assert session.worker_rc == 0, logs(session.path)
    with Workspace.open(session.path) as ws:
        failed = job_detail(ws, session.jobs["bad"])
        assert failed.job.status == "failed"
        assert failed.job.error == "model directory not found: /nonexistent/model"
        assert "ModelLoadError" in failed.traceback
        assert get_job(ws, session.jobs["good"]).status == "done"
        assert get_job(ws, session.jobs["again"]).status == "done"
        loads = [
            e
            for name in ("good", "again", "long")
            for e in list_events(ws, session.jobs[name])
            if e.message.startswith("loaded ")
        ]
        assert len(loads) == 1  # the model stayed loaded for the later jobs


def test_concurrent_writer_and_worker_never_see_a_locked_database(session: Session) -> None:
    assert session.writer_rc == 0, session.writer_err
    assert "locked" not in session.writer_err
    assert int(session.writer_out) > 100  # it really wrote all along
    assert session.worker_rc == 0 and "locked" not in logs(session.path), logs(session.path)
    with Workspace.open(session.path) as ws:
        good = job_detail(ws, session.jobs["good"])
        assert good.job.status == "done"
        assert good.result["failed"] == 0
        assert len(assert_whole_clips(ws, good.result["run_id"], 2)) == 6


def test_cancel_stops_a_running_resample_within_one_clip(session: Session) -> None:
    with Workspace.open(session.path) as ws:
        final = get_job(ws, session.jobs["long"])
        assert final.status == "cancelled"
        kept = assert_whole_clips(ws, session.run_of_long, 2)
        assert session.done_at_cancel <= len(kept) <= session.done_at_cancel + 1
        assert 2 <= len(kept) < N_CLIPS
        assert final.progress_done == len(kept)


def test_sighup_is_ignored_and_sigterm_hands_the_job_back(tmp_path: Path) -> None:
    path = tmp_path / "ws.db"
    clips = make_workspace(path, n_clips=30)
    with Workspace.open(path) as ws:
        job = enqueue(ws, FLAG_KIND, flag_params(clips, "t", delay=0.1))
        proc = spawn_worker(path)
        wait_for(lambda: get_job(ws, job.id).progress_done >= 2, 30)
        proc.send_signal(signal.SIGHUP)  # the SSH session went away: keep working
        seen = get_job(ws, job.id).progress_done
        wait_for(lambda: get_job(ws, job.id).progress_done >= seen + 2, 30)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert finish(proc, 10) == 0, logs(path)
        back = get_job(ws, job.id)
        assert (back.status, back.owner, back.attempts) == ("queued", None, 0)
        assert 3 <= back.progress_done < len(clips)
        assert any("handed back" in e.message for e in list_events(ws, job.id))


def test_ensure_worker_starts_one_detached_worker(tmp_path: Path) -> None:
    path = tmp_path / "ws.db"
    clips = make_workspace(path, n_clips=3)
    env = child_env()
    pid = ensure_worker(path, env=env)
    try:
        assert ensure_worker(path, env=env) == pid
        assert os.getsid(pid) != os.getsid(0)  # its own session: a hang-up does not reach it
        with Workspace.open(path) as ws:
            assert [w.pid for w in live_workers(ws)] == [pid]
            job = enqueue(ws, FLAG_KIND, flag_params(clips, "bg"))
            wait_for(lambda: get_job(ws, job.id).status == "done", 30)
        assert worker_log_path(path.resolve()).exists()
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), 15)
    with Workspace.open(path) as ws:
        assert ws.conn.execute("SELECT status FROM workers").fetchall() == [("stopped",)]
        assert live_workers(ws) == []
