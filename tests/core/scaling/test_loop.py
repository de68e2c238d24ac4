"""The clip loop shared by sampling and synthetic runs: resume, failures, stop, progress."""

from __future__ import annotations

from pathlib import Path

import pytest

from ambiscope.core.alm.base import BackendError
from ambiscope.core.demo import DemoSpec, build_demo
from ambiscope.core.scaling.loop import (
    ClipOutcome,
    LoopResult,
    ModelClock,
    RunProgress,
    attempt_clip,
    find_run,
    run_selected,
)
from ambiscope.db import Clip, RunIn, Workspace


@pytest.fixture()
def ws(tmp_path: Path):
    path = tmp_path / "demo.db"
    build_demo(path, DemoSpec(n_clips=4, seed=5))
    with Workspace.open(path) as opened:
        yield opened


def _run(ws: Workspace):
    ds = ws.get_dataset("demo")
    run = ws.add_run(RunIn(ds.id, "fake", "openai", "label", 1, config={"identity_hash": "abc123"}))
    return ds, run


def test_resume_failures_and_progress(ws: Workspace) -> None:
    ds, run = _run(ws)
    assert find_run(ws, ds, "abc123") == run and find_run(ws, ds, "other") is None
    first = ws.clips(ds.id)[0]

    def process(clip: Clip) -> ClipOutcome:
        def work(clock: ModelClock) -> ClipOutcome:
            if clip.id == first.id:
                raise BackendError("model fell over\nwith a traceback")
            with ws.transaction():
                ws.set_run_clip(run.id, clip.id, "done")
            return ClipOutcome(clip.id, True, clock.elapsed(), 0.0, answers=3, valid=2)

        return attempt_clip(ws, run, clip, work)

    seen: list[RunProgress] = []
    result = run_selected(ws, ds, LoopResult(run, True), process, on_progress=seen.append)
    assert (result.total, result.skipped, result.processed, result.failed) == (4, 0, 4, 1)
    assert (result.answers, result.valid, result.invalid) == (9, 6, 3)
    assert result.failures == [(first.key, "model fell over")]
    assert [p.done for p in seen] == [1, 2, 3, 4] and seen[-1].last is not None
    assert ws.run_clip_ids(run.id, "failed") == {first.id}
    again = run_selected(ws, ds, LoopResult(run, False), process)
    assert (again.skipped, again.processed, again.failed) == (3, 1, 1)  # only the failure


def test_stops_between_clips(ws: Workspace) -> None:
    ds, run = _run(ws)
    done: list[int] = []

    def process(clip: Clip) -> ClipOutcome:
        done.append(clip.id)
        return ClipOutcome(clip.id, True, 0.0, 0.0)

    ids = [c.id for c in ws.clips(ds.id)]
    result = run_selected(
        ws, ds, LoopResult(run, True), process, clip_ids=ids, should_stop=lambda: len(done) >= 2
    )
    assert result.stopped and result.processed == 2 and done == ids[:2]
