"""The run and job lifecycle at 80x24 (issue 16, finding 6), through the real app.

A re-sample is refused before queueing when the model or the audio cannot be used; a
failed job reads `failed` without a full bar and the header counts it; a re-sample that
created a run offers to switch to it; the run picker names runs and groups their
strategies; the 80-column header keeps run, strategy, sort and jobs and never says None.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, OptionList, ProgressBar, Select, Static

from ambiscope.db import Workspace, codec
from ambiscope.db import jobs as job_rows
from ambiscope.tui import jobs_bridge
from ambiscope.tui.app import AmbiscopeApp
from ambiscope.tui.screens.browser import header
from ambiscope.tui.screens.jobs import JobsScreen
from ambiscope.tui.screens.modals import RunPickerModal
from ambiscope.tui.screens.resample import ResampleModal
from tests.tui.conftest import add_stored_run
from tests.tui.helpers import browser, make_app, ready, until

SIZE = (80, 24)


@pytest.fixture
def private(demo_template: Path, tmp_path: Path) -> Path:
    """A copy of the demo workspace for one test (the tests add jobs and runs)."""
    with Workspace.open(demo_template) as ws:
        ws.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    target = tmp_path / "demo.db"
    shutil.copy(demo_template, target)
    return target


@pytest.fixture
def checkpoint(tmp_path: Path) -> str:
    """A local checkpoint directory: the model check passes without the network."""
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    return str(folder)


def _jobs(path: Path) -> list[Any]:
    return jobs_bridge.poll(path).rows


def _add_job(path: Path, status: str, done: int, total: int, **extra: Any) -> int:
    """A resample job row in `status`, as a worker would have left it."""
    with Workspace.open(path) as ws:
        job_id = job_rows.insert_job(
            ws,
            "resample",
            {"spec": {"dataset": "demo", "model": "tiny-alm", "n": 4}, "clip_ids": [1]},
            total=total,
            max_attempts=1,
            at=time.time(),
        )
        _set_job(ws, job_id, status, done, **extra)
    return job_id


def _set_job(
    ws: Workspace, job_id: int, status: str, done: int, error: str | None = None, **result: Any
) -> None:
    """Set the job's state; a running job holds a live lease (else it reads as stale)."""
    ws.conn.execute(
        "UPDATE jobs SET status = ?, progress_done = ?, error = ?, result = ?, "
        "lease_expires = ? WHERE id = ?",
        (status, done, error, codec.dumps(result) if result else None, time.time() + 600, job_id),
    )


def _topbar(app: AmbiscopeApp) -> str:
    return str(browser(app).query_one("#topbar", Static).render())


def _error(app: AmbiscopeApp) -> str:
    return str(app.screen.query_one("#error", Static).render())


async def _resample_dialog(app: AmbiscopeApp, pilot: Pilot[None], model: str) -> ResampleModal:
    await ready(pilot)
    await pilot.press("r")
    await until(pilot, lambda: isinstance(app.screen, ResampleModal))
    modal = app.screen
    assert isinstance(modal, ResampleModal)
    modal.query_one("#model", Input).value = model
    await pilot.pause()
    return modal


async def test_resample_refuses_a_missing_checkpoint(private: Path) -> None:
    app = make_app(private)
    async with app.run_test(size=SIZE) as pilot:
        await _resample_dialog(app, pilot, "./no/such/checkpoint")
        app.screen.query_one("#ok", Button).press()
        await pilot.pause()
        await until(pilot, lambda: bool(_error(app)))
        assert _error(app) == "model directory not found: ./no/such/checkpoint"
        assert isinstance(app.screen, ResampleModal)  # still open, nothing queued
    assert _jobs(private) == []


async def test_resample_refuses_clips_without_audio(private: Path, checkpoint: str) -> None:
    with Workspace.open(private) as ws:
        ws.conn.execute("UPDATE datasets SET root = ?", (str(private.parent / "gone"),))
    app = make_app(private)
    async with app.run_test(size=SIZE) as pilot:
        modal = await _resample_dialog(app, pilot, checkpoint)
        key = modal.clip_key
        app.screen.query_one("#ok", Button).press()  # scope: this clip, checked in the dialog
        await pilot.pause()
        await until(pilot, lambda: bool(_error(app)))
        assert _error(app).startswith(f"no readable audio for {key} (")
        assert isinstance(app.screen, ResampleModal)
        modal.query_one("#scope", Select).value = "filter"  # every clip: checked on queueing
        await pilot.pause()
        app.screen.query_one("#ok", Button).press()
        await pilot.pause()
        await until(pilot, lambda: not isinstance(app.screen, ResampleModal))
        await until(pilot, lambda: any("re-sample" in n.message for n in app._notifications))
        (toast,) = [n.message for n in app._notifications if "re-sample" in n.message]
        assert "no readable audio for" in toast and "and 23 more of 24 clips" in toast
    assert _jobs(private) == []


async def test_a_failed_job_reads_failed_and_the_header_counts_it(private: Path) -> None:
    _add_job(private, "failed", 1, 1, error="all 1 clips failed: no audio file")
    app = make_app(private)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        app.poll_jobs()
        await until(pilot, lambda: app.jobs_snapshot is not None)
        screen.refresh_topbar()  # what the app does when the jobs summary changes
        await pilot.pause()
        assert _topbar(app).endswith("· jobs 1 failed")
        await pilot.press("J")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        jobs = app.screen
        table = jobs.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 1)
        row = table.get_row_at(0)
        assert (str(row[2]), str(row[3]), row[4]) == ("failed", "", "1/1")
        assert not jobs.query_one(ProgressBar).display
        summary = str(jobs.query_one("#job-summary", Static).render())
        assert summary.endswith("failed: all 1 clips failed: no audio file")
        assert "· 1 failed ·" in str(jobs.query_one("#jobs-title", Static).render())


async def test_a_resample_that_created_a_run_offers_to_switch(private: Path) -> None:
    job_id = _add_job(private, "running", 0, 24)
    app = make_app(private)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        first = screen.query_state.run_id
        app.poll_jobs()
        await until(pilot, lambda: app.jobs_snapshot is not None)
        new_run = add_stored_run(private, seed=5)  # what the job wrote
        with Workspace.open(private) as ws:
            _set_job(ws, job_id, "done", 24, run_id=new_run, created=True)
        app.poll_jobs()
        await until(pilot, lambda: any("switch" in n.message for n in app._notifications))
        toasts = [n.message for n in app._notifications if "switch" in n.message]
        assert toasts == [f"re-sample done: switch to run #{new_run}? press R, enter"]
        await until(pilot, lambda: new_run in (screen.context.strategies if screen.context else {}))
        assert screen.query_state.run_id == first != new_run
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, RunPickerModal))
        await pilot.press("enter")
        await until(pilot, lambda: screen.query_state.run_id == new_run)
        assert screen.query_state.strategy == "wbon"  # the preferred one
        await until(pilot, lambda: f"run #{new_run} stored · wbon" in _topbar(app))


async def test_the_run_picker_groups_strategies_under_named_runs(private: Path) -> None:
    second = add_stored_run(private, seed=5)
    app = make_app(private)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, RunPickerModal))
        options = app.screen.query_one(OptionList)
        rows = [
            (str(options.get_option_at_index(i).prompt), options.get_option_at_index(i).disabled)
            for i in range(options.option_count)
        ]
        assert rows == [
            ("no model (human columns only)", False),
            (f"run #{second} stored · tiny-alm · demo · label N=4", True),
            ("   vote", False),
            ("   wbon", False),
            (f"run #{second - 1} stored · tiny-alm · demo · label N=4", True),
            ("   vote", False),
            ("   wbon", False),
        ]
        highlighted = options.get_option_at_index(options.highlighted or 0)
        assert highlighted.id == f"{second}:wbon"  # the run shown: the newest


async def test_the_80_column_header_keeps_run_strategy_sort_and_jobs(private: Path) -> None:
    with Workspace.open(private) as ws:
        run_id = ws.conn.execute("SELECT max(id) FROM runs").fetchone()[0]
        ws.conn.execute("UPDATE runs SET name = NULL, model = ? WHERE id = ?", ("x" * 40, run_id))
    _add_job(private, "running", 3, 24)
    _add_job(private, "failed", 1, 1, error="boom")
    app = make_app(private, include_own_votes=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        app.poll_jobs()
        await until(pilot, lambda: app.jobs_snapshot is not None)
        screen.refresh_topbar()
        await pilot.pause()
        line = _topbar(app)
        # the file name, the own-votes mark, "clips" and the run's 40-character model
        # yield; the run's id, the strategy, the sort and both job counts stay
        assert line == f"24/24 · run #{run_id} · wbon · sort key↑ · jobs 1 active 3/24 · 1 failed"
        assert "None" not in line
        assert len(line) <= SIZE[0] - 2


def test_fit_shortens_the_parts_that_give_most_first() -> None:
    parts = [
        header.Part(("ambiscope", ""), give=0),
        header.Part(("workspace.db", "work…", ""), give=1),
        header.Part(("12/40 clips", "12/40"), give=2),
        header.Part(("run #3 model",)),
        header.Part(("sort js↓",)),
    ]
    full = "ambiscope · workspace.db · 12/40 clips · run #3 model · sort js↓"
    assert header.fit(parts, 80).plain == full
    assert header.fit(parts, len(full)).plain == full
    assert header.fit(parts, 52).plain == "workspace.db · 12/40 clips · run #3 model · sort js↓"
    assert header.fit(parts, 45).plain == "work… · 12/40 clips · run #3 model · sort js↓"
    assert header.fit(parts, 37).plain == "12/40 clips · run #3 model · sort js↓"
    assert header.fit(parts, 31).plain == "12/40 · run #3 model · sort js↓"
    shortest = header.fit(parts, 10)  # the kept parts stay; the line ends in … on screen
    assert (shortest.plain, shortest.overflow) == ("12/40 · run #3 model · sort js↓", "ellipsis")
    assert isinstance(shortest, Text)


# ------------------------------------------------------------------ snapshots at 80x24
async def _resample_dialog_open(pilot: Pilot[None]) -> None:
    modal = await _resample_dialog(pilot.app, pilot, "./checkpoint")  # type: ignore[arg-type]
    await until(pilot, lambda: bool(modal.clip_key))
    model = modal.query_one("#model", Input)
    model.cursor_blink = False  # a blinking cursor would make the picture random
    model.focus()
    await until(pilot, lambda: model.has_focus)
    await pilot.pause(0.1)


async def _jobs_listed(pilot: Pilot[None]) -> None:
    app: AmbiscopeApp = pilot.app  # type: ignore[assignment]
    await ready(pilot)
    app.poll_jobs()
    await until(pilot, lambda: app.jobs_snapshot is not None)
    await pilot.press("J")
    await until(pilot, lambda: isinstance(app.screen, JobsScreen))
    table = app.screen.query_one(DataTable)
    await until(pilot, lambda: table.row_count == 3)
    await pilot.press("down")  # the running job: its bar and log below the table
    await pilot.pause(0.1)


def test_resample_dialog_80x24(snap_compare, private: Path) -> None:
    assert snap_compare(make_app(private), terminal_size=SIZE, run_before=_resample_dialog_open)


def test_jobs_screen_80x24(snap_compare, private: Path) -> None:
    """A finished re-sample that made run #N, one running and one failed: the failed one
    has no bar, the title counts each status, no clock or path is on screen."""
    new_run = add_stored_run(private, seed=5)
    with Workspace.open(private) as ws:
        done = _add_job(private, "done", 24, 24)
        _set_job(ws, done, "done", 24, run_id=new_run, created=True)
    _add_job(private, "running", 3, 24)
    _add_job(private, "failed", 1, 1, error="all 1 clips failed: no audio file")
    assert snap_compare(make_app(private), terminal_size=SIZE, run_before=_jobs_listed)
