"""Issue 16, finding 3: the metrics screen at 80x24 by keyboard alone.

Focused on open (Right scrolls at once), the identity columns stay while the metrics
scroll, `c` chooses the metric columns, and the markers follow `metrics --format md`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, SelectionList

from ambiscope.db.access import WorkspaceAccess
from ambiscope.tui import data
from ambiscope.tui.screens.metrics import (
    IDENTITY,
    MetricColumnsDialog,
    MetricsScreen,
    best_cells,
    cell,
    legend,
    with_significance,
)
from tests.tui.helpers import make_app, open_screen, until


def _labels(table: DataTable[Any]) -> list[str]:
    return [str(c.label) for c in table.columns.values()]


async def test_metrics_keys_at_80x24(workspace: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_screen(pilot, "m", MetricsScreen)
        await until(pilot, lambda: bool(screen.rows))
        table = screen.query_one(DataTable)
        assert app.focused is table
        assert table.fixed_columns == len(IDENTITY)
        await pilot.press(*["right"] * 8)
        await until(pilot, lambda: table.scroll_x > 0)
        header = table.render_line(0).text
        assert header.split()[:4] == ["dataset", "run", "strategy", "level"]
        assert "JS" not in header.split()  # scrolled out, the identity stayed
        assert table.render_line(1).text.split()[:3] == ["demo", "stored", "vote"]
        # c: keep only BC and F1
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, MetricColumnsDialog))
        choices = app.screen.query_one(SelectionList)
        choices.deselect_all()
        choices.select("bc")
        choices.select("macro_f1")
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is screen)
        assert _labels(table) == [*IDENTITY, "n", "BC", "F1"]
        assert len(table.rows) == len(screen.rows)
        # esc in the dialog keeps the columns
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, MetricColumnsDialog))
        await pilot.press("space", "escape")
        await until(pilot, lambda: app.screen is screen)
        assert _labels(table) == [*IDENTITY, "n", "BC", "F1"]


def _row(strategy: str, group: str, js: float, js_p: float | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"dataset": "demo", "strategy": strategy, "group": group, "js": js}
    if js_p is not None:
        row["js_p"] = js_p
    return row


def test_markers_follow_the_markdown_table() -> None:
    rows = [
        _row("single", "low", 0.3001),
        _row("vote", "low", 0.2004, js_p=0.01),  # best (lower JS) and significant
        _row("wbon", "low", 0.2001, js_p=0.20),  # same rounded value: best too
        _row("vote", "high", 0.5),  # alone in its block: never best
    ]
    assert best_cells(rows, ("js",)) == {(1, "js"), (2, "js")}
    vote = cell({**rows[1], "js_lo": 0.15, "js_hi": 0.25}, "js", best=True)
    assert vote.plain == "0.200* [0.15,0.25]"
    assert vote.spans[0].style == "bold"
    assert cell(rows[2], "js").plain == "0.200"
    assert cell({"js": math.nan}, "js").plain == "–"
    assert "* p < 0.05" in legend(rows)
    assert "* needs `ambiscope metrics`" in legend([rows[0]])


async def _metrics_scrolled(pilot: Pilot[None]) -> None:
    screen = await open_screen(pilot, "m", MetricsScreen)
    await until(pilot, lambda: bool(screen.rows))
    table = screen.query_one(DataTable)
    await pilot.press(*["right"] * 8)
    await until(pilot, lambda: table.scroll_x > 0)
    table.refresh()
    await pilot.pause(0.1)


def test_metrics_scrolled_right_80x24(snap_compare, workspace: Path) -> None:
    """Scrolled to the last metric columns, the row identity is still on screen."""
    assert snap_compare(make_app(workspace), terminal_size=(80, 24), run_before=_metrics_scrolled)


def test_significance_comes_from_the_paired_bootstrap(workspace: Path) -> None:
    """`ambiscope metrics`' paired test merged into the screen's rows: every strategy
    against the run's baseline (here `vote`, the demo run has no `single`)."""
    access = WorkspaceAccess(workspace)
    try:
        rows = data.evaluate_rows(access, False, 20)
        marked = with_significance(access, rows, 20, baseline="vote")
    finally:
        access.close()
    assert [(r["strategy"], r["group"]) for r in marked] == [
        (r["strategy"], r["group"]) for r in rows
    ]
    for r in marked:
        p = r["js_p"]
        assert math.isnan(p) if r["strategy"] == "vote" else 0 <= p <= 1
    assert "* p < 0.05" in legend(marked)
    assert "* needs" in legend(rows)
