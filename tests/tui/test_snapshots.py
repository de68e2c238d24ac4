"""Snapshot tests (pytest-textual-snapshot) of the browser, detail and metrics screens.

Deterministic by construction: fixed-seed demo data and stored predictions, no job
polling, no clocks or absolute paths on screen (only the workspace file name), and every
screenshot is taken after the workers have answered. Update with
`pytest tests/tui/test_snapshots.py --snapshot-update` and look at the SVGs before
committing them.
"""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable

from ambiscope.tui.screens.metrics import MetricsScreen
from tests.tui.helpers import make_app, open_screen, ready, until


async def _browser_ready(pilot: Pilot) -> None:
    await ready(pilot)


async def _detail_full(pilot: Pilot) -> None:
    screen = await ready(pilot)
    await pilot.press("down", "down")
    await until(
        pilot,
        lambda: (
            screen.detail is not None
            and screen.detail.clip.id == screen.table.current_clip_id
            and screen.detail_view.waveform is not None
            and screen.detail_view.waveform.clip_id == screen.detail.clip.id
        ),
    )
    await pilot.press("enter")
    await pilot.pause(0.1)


async def _metrics_ready(pilot: Pilot[None]) -> None:
    screen = await open_screen(pilot, "m", MetricsScreen)
    await until(pilot, lambda: bool(screen.rows))
    table = screen.query_one(DataTable)

    def header_fits_rows() -> bool:  # columns are sized to new rows when the table idles
        header, first = table.render_line(0).text, table.render_line(1).text
        return header.index("strategy") == first.index(screen.rows[0]["strategy"])

    await until(pilot, header_fits_rows)
    # the resized header can still be an old paint in the screen's cache, which a running
    # terminal repaints on its next refresh; a screenshot takes what is cached
    table.refresh()
    await pilot.pause(0.1)


def test_browser_80x24(snap_compare, workspace: Path) -> None:
    assert snap_compare(make_app(workspace), terminal_size=(80, 24), run_before=_browser_ready)


def test_browser_160x48(snap_compare, workspace: Path) -> None:
    assert snap_compare(make_app(workspace), terminal_size=(160, 48), run_before=_browser_ready)


def test_detail_fullscreen_80x24(snap_compare, workspace: Path) -> None:
    assert snap_compare(make_app(workspace), terminal_size=(80, 24), run_before=_detail_full)


def test_detail_160x48(snap_compare, workspace: Path) -> None:
    assert snap_compare(make_app(workspace), terminal_size=(160, 48), run_before=_detail_full)


def test_metrics_80x24(snap_compare, workspace: Path) -> None:
    assert snap_compare(make_app(workspace), terminal_size=(80, 24), run_before=_metrics_ready)


def test_metrics_160x48(snap_compare, workspace: Path) -> None:
    assert snap_compare(make_app(workspace), terminal_size=(160, 48), run_before=_metrics_ready)
