"""Benchmarks of the background job system (core/jobs/: queue, worker).

1. Queue overhead: 1,000 trivial jobs claimed and completed by 2 worker processes
   (target <= 10 s).
2. Heartbeat / lease cost with the tiny model: heartbeat writes per second x their
   measured cost, against a resample job's duration (target < 2 %); plus the per-clip
   cancel check.
3. Recovery: a job abandoned by a kill -9'd worker is claimed by another worker within
   lease + 5 s (target), by lease expiry alone and with the same-machine pid check.

Worker processes import this module (`--import bench.bench_jobs`) for the trivial kinds.
Run from the repository root: `.venv/bin/python bench/bench_jobs.py`. Prints numbers and
one JSON line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ambiscope.core.jobs.kinds import JobContext, job_kind  # noqa: E402

NOOP, SLEEP = "bench-noop", "bench-sleep"
WORKER = (sys.executable, "-m", "ambiscope.core.jobs")


@job_kind(NOOP)
def _noop(ctx: JobContext) -> dict[str, Any]:
    ctx.progress(1, 1)
    return {}


@job_kind(SLEEP)
def _sleep(ctx: JobContext) -> dict[str, Any]:
    steps = int(ctx.params.get("steps", 50))
    for i in range(steps):
        if ctx.should_stop():
            break
        time.sleep(float(ctx.params.get("step_s", 0.2)))
        ctx.progress(i + 1, steps)
    return {}


def _workspace(path: Path) -> None:
    from ambiscope.db import ClipIn, Workspace

    with Workspace.open(path, create=True) as ws:
        ds = ws.add_dataset("bench", "manifest", ["neutral", "happy"])
        ws.add_clips(ds.id, [ClipIn(key="c0")])


def _spawn(path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = open(f"{path}.{time.monotonic_ns()}.log", "wb")  # noqa: SIM115 (child keeps it)
    return subprocess.Popen(
        [*WORKER, "--db", str(path), "--import", "bench.bench_jobs", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )


def _wait(cond: Any, timeout: float, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(step)


# --------------------------------------------------------------- 1. queue
def bench_queue(tmp: Path, n_jobs: int = 1000) -> dict[str, Any]:
    from ambiscope.core.jobs.queue import enqueue
    from ambiscope.db import Workspace

    path = tmp / "queue.db"
    _workspace(path)
    with Workspace.open(path) as ws, ws.transaction():
        for _ in range(n_jobs):
            enqueue(ws, NOOP, {})
    started = time.perf_counter()
    procs = [_spawn(path, "--once", "--poll", "0.05") for _ in range(2)]
    codes = [p.wait(timeout=120) for p in procs]
    wall = time.perf_counter() - started
    with Workspace.open(path) as ws:
        by_status = dict(ws.conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"))
        first, last = ws.conn.execute(
            "SELECT min(started_at), max(finished_at) FROM jobs"
        ).fetchone()
        per_owner = dict(ws.conn.execute("SELECT owner, count(*) FROM jobs GROUP BY owner"))
        claims = ws.conn.execute(
            "SELECT count(*), count(DISTINCT job_id) FROM job_events WHERE message LIKE "
            "'claimed by %'"
        ).fetchone()
    assert codes == [0, 0] and by_status == {"done": n_jobs}, (codes, by_status)
    assert claims == (n_jobs, n_jobs), claims
    return {
        "queue_jobs": n_jobs,
        "queue_wall_s": round(wall, 3),
        "queue_claim_to_finish_s": round(last - first, 3),
        "queue_jobs_per_s": round(n_jobs / (last - first), 1),
        "queue_split": sorted(per_owner.values()),
    }


# ----------------------------------------------------------- 2. heartbeat
def bench_heartbeat(tmp: Path, n_clips: int = 12) -> dict[str, Any]:
    from ambiscope.core.alm.tiny import build_tiny_model
    from ambiscope.core.demo import DemoSpec, build_demo
    from ambiscope.core.jobs.queue import DEFAULT_LEASE_S, job_detail
    from ambiscope.core.jobs.worker import Worker, WorkerConfig
    from ambiscope.core.scaling.job import enqueue_resample
    from ambiscope.core.scaling.run import RunSpec
    from ambiscope.db import Workspace

    model = build_tiny_model(tmp / "tiny")
    path = tmp / "hb.db"
    build_demo(path, DemoSpec(n_clips=n_clips, seed=3))
    spec = RunSpec(dataset="demo", model=str(model), n=2, max_new_tokens=2, device="cpu")
    with Workspace.open(path) as ws:
        job = enqueue_resample(ws, spec)
    # Beat 10x more often than the default (lease/6) so the cost is measured, not guessed.
    beat_s = 0.5
    worker = Worker(path, WorkerConfig(once=True, heartbeat_s=beat_s))
    stats = worker.run()
    with Workspace.open(path) as ws:
        d = job_detail(ws, job.id)
    assert d.job.status == "done", d.job.error
    job_s = d.job.finished_at - d.job.started_at
    cost = stats.heartbeat_s / max(stats.heartbeats, 1)
    check = stats.check_s / max(stats.checks, 1)
    default_rate = 1 / (DEFAULT_LEASE_S / 6)
    return {
        "hb_job_s": round(job_s, 2),
        "hb_clip_s": round(job_s / n_clips, 3),
        "hb_beats": stats.heartbeats,
        "hb_cost_ms": round(cost * 1000, 3),
        "hb_cost_max_ms": round(stats.heartbeat_max_s * 1000, 3),
        "hb_fraction_at_0.5s": round(cost / beat_s, 6),
        "hb_fraction_default": round(cost * default_rate, 7),
        "check_cost_ms": round(check * 1000, 3),
        "check_fraction_per_clip": round(check / (job_s / n_clips), 6),
    }


# ------------------------------------------------------------ 3. recovery
def bench_recovery(tmp: Path, *, lease_s: float, pid_check: bool) -> float:
    """Seconds from kill -9 of the owner to another worker's claim of its job."""
    from ambiscope.core.jobs.queue import enqueue
    from ambiscope.db import Workspace
    from ambiscope.db.jobs import get_job, list_events

    path = tmp / f"recovery-{int(pid_check)}.db"
    _workspace(path)
    extra = () if pid_check else ("--no-pid-check",)
    with Workspace.open(path) as ws:
        job = enqueue(ws, SLEEP, {"steps": 200, "step_s": 0.1})
        first = _spawn(path, "--lease", str(lease_s), *extra)
        _wait(lambda: get_job(ws, job.id).progress_done >= 1, 30)
        rescuer = _spawn(path, "--lease", str(lease_s), *extra)  # default poll: 1 s
        _wait(lambda: ws.conn.execute("SELECT count(*) FROM workers").fetchone()[0] == 2, 30)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed = time.time()
        _wait(lambda: get_job(ws, job.id).owner not in (None, _owner_of(ws, first.pid)), 60)
        claimed = [e.time for e in list_events(ws, job.id) if e.message.startswith("claimed")][-1]
        rescuer.send_signal(signal.SIGTERM)
        rescuer.wait(timeout=30)
    return claimed - killed


def _owner_of(ws: Any, pid: int) -> str | None:
    row = ws.conn.execute("SELECT id FROM workers WHERE pid = ?", (pid,)).fetchone()
    return row[0] if row else None


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as name:
        tmp = Path(name)
        out: dict[str, Any] = {"bench": "jobs"}
        out.update(bench_queue(tmp))
        print(
            f"queue: {out['queue_jobs']} trivial jobs by 2 worker processes in "
            f"{out['queue_wall_s']} s wall (incl. start-up), {out['queue_claim_to_finish_s']} s "
            f"first claim to last finish = {out['queue_jobs_per_s']} jobs/s, "
            f"split {out['queue_split']}  [target <= 10 s]"
        )
        out.update(bench_heartbeat(tmp))
        print(
            f"heartbeat: {out['hb_beats']} beats at 0.5 s during a {out['hb_job_s']} s tiny-model "
            f"job ({out['hb_clip_s']} s/clip): {out['hb_cost_ms']} ms each "
            f"(max {out['hb_cost_max_ms']}) -> {out['hb_fraction_at_0.5s']:.4%} of job time "
            f"at 2 beats/s, {out['hb_fraction_default']:.5%} at the default 1 beat / 5 s "
            f"[target < 2 %]; cancel check {out['check_cost_ms']} ms/clip "
            f"({out['check_fraction_per_clip']:.4%})"
        )
        lease = 3.0
        out["recovery_lease_s"] = lease
        out["recovery_by_lease_s"] = round(bench_recovery(tmp, lease_s=lease, pid_check=False), 2)
        out["recovery_by_pid_s"] = round(bench_recovery(tmp, lease_s=lease, pid_check=True), 2)
        print(
            f"recovery after kill -9: {out['recovery_by_lease_s']} s by lease expiry "
            f"(lease {lease} s, target <= {lease + 5} s), {out['recovery_by_pid_s']} s with the "
            "same-machine pid check"
        )
        out["targets_met"] = {
            "queue_le_10s": out["queue_claim_to_finish_s"] <= 10 and out["queue_wall_s"] <= 10,
            "heartbeat_lt_2pct": out["hb_fraction_at_0.5s"] < 0.02,
            "recovery_le_lease_plus_5": out["recovery_by_lease_s"] <= lease + 5,
        }
        print(json.dumps(out))


if __name__ == "__main__":
    main()
