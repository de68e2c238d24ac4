"""Runs on Ray actors (a local Ray instance on this 2-core machine, 2 actors).

The driver stays the workspace's only writer; the candidates equal a local run with the
same seed; an actor killed mid-run has its clips re-dispatched, nothing lost or written
twice; a bad address or an impossible request stops before a run row exists.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ambiscope.core.alm.base import BackendError
from ambiscope.core.demo import DemoSpec, build_demo
from ambiscope.core.scaling.run import RunSpec, execute_run
from ambiscope.core.synthetic.raters import execute_synthetic
from ambiscope.core.synthetic.spec import SyntheticSpec
from ambiscope.db import Workspace, codec

ray = pytest.importorskip("ray")
pytest.importorskip("torch")

N_CLIPS = 8


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray instance for the module (starting one takes seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ray-runs") / "ws.db"
    build_demo(path, DemoSpec(n_clips=N_CLIPS, seed=5))
    return path


def _copy(demo_db: Path, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / name
    shutil.copy(demo_db, copy)
    return copy


def _spec(model: Path, **kw: Any) -> RunSpec:
    base = dict(
        dataset="demo",
        model=str(model),
        n=3,
        max_new_tokens=5,
        seed=3,
        device="cpu",
        verifier="self",
    )
    base.update(kw)
    return RunSpec(**base)


def _stored(ws: Workspace, run_id: int) -> tuple[list[tuple], list[tuple]]:
    """(candidates, predictions) of a run, in a comparable order."""
    samples = sorted(
        ((s.clip_id, s.idx, s.raw_text, s.label, s.valid, s.logprob) for s in ws.samples(run_id)),
        key=lambda t: (t[0], t[1]),
    )
    rows = ws.conn.execute(
        "SELECT strategy, clip_id, distribution FROM predictions WHERE run_id = ? "
        "ORDER BY strategy, clip_id",
        (run_id,),
    ).fetchall()
    predictions = [(r[0], r[1], codec.decode_dist(r[2])) for r in rows]
    return samples, predictions


def _assert_same(a: tuple[list[tuple], list[tuple]], b: tuple[list[tuple], list[tuple]]) -> None:
    """Token-identical candidates; log-probs and distributions equal to float rounding
    (actors run 1 torch thread, the local run the default)."""
    (sa, pa), (sb, pb) = a, b
    assert [s[:5] for s in sa] == [s[:5] for s in sb]
    np.testing.assert_allclose([s[5] for s in sa], [s[5] for s in sb], rtol=1e-4, atol=1e-4)
    assert [p[:2] for p in pa] == [p[:2] for p in pb]
    for (_, _, x), (_, _, y) in zip(pa, pb, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-4)


@pytest.fixture(scope="module")
def local_result(demo_db: Path, tmp_path_factory, tiny_model_dir: Path):
    """The reference: the same spec run in this process."""
    path = _copy(demo_db, tmp_path_factory.mktemp("local"), "ws.db")
    with Workspace.open(path) as ws:
        result = execute_run(ws, _spec(tiny_model_dir))
        assert (result.processed, result.failed) == (N_CLIPS, 0)
        return _stored(ws, result.run.id)


def test_two_actors_give_the_local_candidates(
    local_ray, demo_db: Path, tmp_path: Path, tiny_model_dir: Path, local_result
) -> None:
    with Workspace.open(_copy(demo_db, tmp_path, "ws.db")) as ws:
        seen: list[int] = []
        result = execute_run(
            ws,
            _spec(tiny_model_dir, ray="local", ray_actors=2),
            on_progress=lambda p: seen.append(p.done),
        )
        assert (result.processed, result.failed) == (N_CLIPS, 0)
        assert seen == list(range(1, N_CLIPS + 1))  # progress after every committed clip
        assert any("2 actors" in n for n in result.notes)
        assert result.run.config["model"]["ray"]["actors"] == 2
        _assert_same(_stored(ws, result.run.id), local_result)
        again = execute_run(ws, _spec(tiny_model_dir, ray="local", ray_actors=2))
        assert (again.processed, again.skipped) == (0, N_CLIPS)  # resume as a local run does
    assert not [n for n in ray.util.list_named_actors() if n.startswith("ambiscope-")]


def test_a_killed_actor_loses_and_duplicates_nothing(
    local_ray, demo_db: Path, tmp_path: Path, tiny_model_dir: Path, local_result
) -> None:
    killed: list[str] = []

    def kill_one(progress: Any) -> None:
        if not killed:  # after the first commit: both actors hold batches in flight
            name = sorted(n for n in ray.util.list_named_actors() if n.startswith("ambiscope-"))
            killed.append(name[-1])
            ray.kill(ray.get_actor(name[-1]))

    with Workspace.open(_copy(demo_db, tmp_path, "ws.db")) as ws:
        result = execute_run(
            ws, _spec(tiny_model_dir, ray="local", ray_actors=2), on_progress=kill_one
        )
        assert killed
        assert (result.processed, result.failed) == (N_CLIPS, 0)
        assert any("re-dispatched" in n for n in result.notes), result.notes
        assert any("was lost" in n for n in result.notes)
        samples, _ = stored = _stored(ws, result.run.id)
        assert len({(s[0], s[1]) for s in samples}) == len(samples) == N_CLIPS * 3
        assert len(ws.run_clip_ids(result.run.id, status="done")) == N_CLIPS
        _assert_same(stored, local_result)


def test_synthetic_raters_on_ray_equal_a_local_run(
    local_ray, demo_db: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    def spec(**kw: Any) -> SyntheticSpec:
        return SyntheticSpec(
            dataset="demo", model=str(tiny_model_dir), raters=3, device="cpu", **kw
        )

    texts = []
    for name, extra in (("local.db", {}), ("ray.db", {"ray": "local", "ray_actors": 2})):
        with Workspace.open(_copy(demo_db, tmp_path, name)) as ws:
            result = execute_synthetic(ws, spec(**extra), limit=4)
            assert (result.processed, result.failed) == (4, 0)
            texts.append([(s.clip_id, s.idx, s.raw_text) for s in ws.samples(result.run.id)])
    assert texts[0] == texts[1] and len(texts[0]) == 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_address_that_does_not_answer_stops_before_the_run(
    demo_db: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    address = f"127.0.0.1:{_free_port()}"
    with Workspace.open(_copy(demo_db, tmp_path, "ws.db")) as ws:
        with pytest.raises(BackendError, match=f"Ray cluster at {address} does not answer"):
            execute_run(ws, _spec(tiny_model_dir, ray=address))
        with pytest.raises(BackendError, match="expected HOST:PORT"):
            execute_run(ws, _spec(tiny_model_dir, ray="http://x/y"))
        assert ws.runs(ws.get_dataset("demo").id) == []
    from click.testing import CliRunner

    from ambiscope.tui.cli.main import main

    args = ["--db", str(tmp_path / "ws.db"), "sample", "-d", "demo", "-m", str(tiny_model_dir)]
    out = CliRunner().invoke(main, [*args, "--ray", address])
    assert out.exit_code == 1
    assert out.output.strip().count("\n") == 0 and "does not answer" in out.output


def test_what_the_cluster_cannot_place_or_load_stops_before_the_run(
    local_ray, demo_db: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    with Workspace.open(_copy(demo_db, tmp_path, "ws.db")) as ws:
        with pytest.raises(BackendError, match=r"2 CPUs .* 3 actors .* do not fit"):
            execute_run(ws, _spec(tiny_model_dir, ray="local", ray_actors=3))
        with pytest.raises(BackendError) as info:
            execute_run(ws, _spec(tmp_path / "no-such-model", ray="local", ray_actors=1))
        assert "\n" not in str(info.value) and "no-such-model" in str(info.value)
        assert ws.runs(ws.get_dataset("demo").id) == []
    assert not [n for n in ray.util.list_named_actors() if n.startswith("ambiscope-")]


def test_a_worker_started_with_ray_runs_queued_jobs_on_the_cluster(
    local_ray, demo_db: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    from click.testing import CliRunner

    from ambiscope.db.jobs import get_job, list_events
    from ambiscope.tui.cli.main import main

    db = _copy(demo_db, tmp_path, "ws.db")

    def cli(*args: str) -> Any:
        return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)

    queued = cli("enqueue", "resample", "-d", "demo", "-m", str(tiny_model_dir), "--n", "2",
                 "--max-new-tokens", "4", "--device", "cpu", "--limit", "3")  # fmt: skip
    assert queued.exit_code == 0, queued.output
    assert cli("worker", "--once", "--ray", "--max-jobs", "1").exit_code == 0
    with Workspace.open(db) as ws:
        (job_id,) = ws.conn.execute("SELECT id FROM jobs").fetchone()
        job = get_job(ws, job_id)
        assert job.status == "done", job.error
        assert (job.progress_done, job.progress_total) == (3, 3)
        assert any("ran on Ray" in e.message for e in list_events(ws, job_id))
        (run,) = ws.runs(ws.get_dataset("demo").id)
        assert run.config["model"]["ray"]["address"] == "local"
        assert len(ws.samples(run.id)) == 6
