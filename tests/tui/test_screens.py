"""Metrics and jobs screens, bad input (no runs, missing audio, foreign files), the CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

from click.testing import CliRunner
from textual.widgets import DataTable, Input, Static

from ambiscope.core.demo import DemoSpec, build_demo
from ambiscope.core.jobs.queue import claim_next
from ambiscope.core.scaling.job import enqueue_resample
from ambiscope.core.scaling.run import RunSpec
from ambiscope.db import Workspace
from ambiscope.db.jobs import list_jobs, list_workers
from ambiscope.tui.cli.main import main
from ambiscope.tui.screens.jobs import JobsScreen
from ambiscope.tui.screens.metrics import MetricsScreen
from ambiscope.tui.screens.modals import ConfirmModal
from ambiscope.tui.screens.resample import ResampleModal
from ambiscope.tui.widgets.clip_table import ClipTable
from ambiscope.tui.widgets.detail import DetailView
from tests.tui.helpers import make_app, open_screen, ready, until


async def test_metrics_screen_computes_and_cancels(workspace: Path) -> None:
    app = make_app(workspace, bootstrap=50)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(pilot, "m", MetricsScreen)
        await until(pilot, lambda: any("js_lo" in r for r in screen.rows), timeout=30)
        table = screen.query_one(DataTable)
        # 2 strategies x (3 levels + all)
        assert table.row_count == 8
        assert {r["strategy"] for r in screen.rows} == {"vote", "wbon"}
        chart = str(screen.query_one("#metrics-chart", Static).render())
        assert "JS divergence" in chart
        # recompute, then escape cancels the running computation instead of leaving
        screen.action_recompute()
        screen.action_cancel_or_back()
        await pilot.pause()
        assert app.current_mode == "metrics"
        assert "cancelled" in str(screen.query_one("#metrics-title", Static).render())
        await pilot.press("escape")
        await until(pilot, lambda: app.current_mode == "browser")


async def test_jobs_screen_shows_stale_and_cancels(workspace: Path) -> None:
    with Workspace.open(workspace) as ws:
        spec = RunSpec(dataset="demo", model="nowhere/model", n=2)
        queued = enqueue_resample(ws, spec, clip_ids=[1, 2])
        stale = enqueue_resample(ws, spec, clip_ids=[3])
        claimed = claim_next(ws, "ghost:1:x", lease_s=0.01, pid_check=False)
        assert claimed is not None and claimed.id == queued.id
    del stale
    time.sleep(0.05)
    app = make_app(workspace, poll=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_screen(pilot, "J", JobsScreen)
        await until(pilot, lambda: screen.snapshot is not None and screen.snapshot.rows)
        rows = {r.job.id: r for r in screen.snapshot.rows}
        assert rows[queued.id].stale
        table = screen.query_one(DataTable)
        cells = [str(c) for c in table.get_row(str(queued.id))]
        assert any("stale" in c for c in cells)
        # cancel the queued (second) job: rows are newest first, so it is row 0
        table.move_cursor(row=0)
        await pilot.press("x")  # cancelling asks first
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("enter")
        await until(
            pilot,
            lambda: any(r.job.status == "cancelled" for r in screen.snapshot.rows),
            timeout=10,
        )


async def test_workspace_without_runs_and_missing_audio(tmp_path: Path) -> None:
    path = tmp_path / "bare.db"
    summary = build_demo(path, DemoSpec(n_clips=6, seed=5))
    with Workspace.open(path) as ws:
        first = ws.clips(ws.get_dataset("demo").id)[0]
    (summary.audio_dir / first.path).unlink()
    app = make_app(path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        top = str(screen.query_one("#topbar", Static).render())
        assert "no model runs yet" in top
        table = screen.query_one(ClipTable)
        assert "–" in table.render_line(1).text
        view = screen.query_one(DetailView)
        assert view.waveform is not None and "not found" in (view.waveform.error or "")
        assert not screen.apply_filter("disagree")  # needs a run: a hint, not a crash
        assert "run" in str(screen.query_one("#filter-error", Static).render())


def test_cli_rejects_missing_and_foreign_workspaces(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["tui", "--db", str(tmp_path / "nope.db")])
    assert result.exit_code == 1
    assert "no workspace here" in result.output
    assert "Traceback" not in result.output
    foreign = tmp_path / "other.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    result = runner.invoke(main, ["serve", "--db", str(foreign)])
    assert result.exit_code == 1
    assert "not an ambiscope workspace" in result.output
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not sqlite at all" * 100)
    result = runner.invoke(main, ["tui", "--db", str(text)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output


async def test_resample_job_runs_on_a_real_worker(workspace: Path, tiny_model_dir: Path) -> None:
    """r -> dialog -> job queued -> detached worker with the tiny model -> detail refreshes."""
    app = make_app(workspace, poll=0.3)
    pids: list[int] = []
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await ready(pilot)
            table = screen.query_one(ClipTable)
            await pilot.press("down")  # a clip of the stored run
            await until(
                pilot,
                lambda: (
                    screen.detail is not None and screen.detail.clip.id == table.current_clip_id
                ),
            )
            clip_id = table.current_clip_id
            assert screen.context is not None
            runs_before = len(screen.context.runs)
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, ResampleModal))
            modal = app.screen
            modal.query_one("#model", Input).value = str(tiny_model_dir)
            modal.query_one("#n", Input).value = "2"
            modal.query_one("#verifier", Input).value = ""
            await pilot.click("#ok")
            await until(pilot, lambda: not isinstance(app.screen, ResampleModal))
            with Workspace.open(workspace, readonly=True) as ws:
                pids = [w.pid for w in list_workers(ws)]
            await until(
                pilot,
                lambda: (
                    app.jobs_snapshot is not None
                    and any(
                        r.job.status in ("done", "failed")
                        for r in app.jobs_snapshot.rows
                        if r.job.params.get("clip_ids") == [clip_id]
                    )
                ),
                timeout=150,
            )
            with Workspace.open(workspace, readonly=True) as ws:
                pids = [w.pid for w in list_workers(ws)]
                job = next(j for j in list_jobs(ws) if j.params.get("clip_ids") == [clip_id])
            assert job.status == "done", job.error
            # the finished job reloads the context (a new run) and the detail
            await until(
                pilot,
                lambda: screen.context is not None and len(screen.context.runs) > runs_before,
                timeout=10,
            )
    finally:
        for pid in pids:  # the detached worker this test started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


async def test_metrics_screen_switches_reference(workspace: Path) -> None:

    with Workspace.open(workspace) as ws:  # two synthetic raters who always say "sad"
        ds = ws.get_dataset("demo")
        ann = ws.ensure_annotators(ds.id, [("syn-a", "synthetic"), ("syn-b", "synthetic")])
        ws.add_vote_rows(
            ds.id,
            [(c.id, a, "sad", 0, 1.0, None) for c in ws.clips(ds.id) for a in ann.values()],
            bump=False,
        )
    app = make_app(workspace, bootstrap=0)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(pilot, "m", MetricsScreen)
        await until(pilot, lambda: bool(screen.rows), timeout=30)
        human_js = {(r["strategy"], r["group"]): r["js"] for r in screen.rows}
        screen.rows = []
        await pilot.press("h")
        await until(pilot, lambda: bool(screen.rows), timeout=30)
        assert screen.reference == "synthetic"
        assert "vs synthetic votes" in str(screen.query_one("#metrics-title", Static).render())
        synthetic_js = {(r["strategy"], r["group"]): r["js"] for r in screen.rows}
        assert synthetic_js.keys() == human_js.keys()
        assert synthetic_js != human_js
        await pilot.press("h")
        await until(pilot, lambda: screen.reference == "combined")
