"""Walking the audit queue in the browser: Q sorts by priority, . and , step, the header
counts, and a flag set on the way is stored while the walk goes on from the same clip."""

from __future__ import annotations

from pathlib import Path

from ambiscope.core.browse import query as browse
from ambiscope.core.browse.query import BrowseQuery
from ambiscope.db import Workspace
from ambiscope.tui.widgets.clip_table import ClipTable
from tests.tui.helpers import make_app, ready, settle, until


def _queue_ids(path: Path, run_id: int, strategy: str) -> list[int]:
    q = BrowseQuery(run_id=run_id, strategy=strategy, sort="priority", descending=True)
    with Workspace.open(path, readonly=True) as ws:
        return list(browse.ordered_ids(ws.conn, q))


async def test_walk_the_queue_flag_on_the_way(workspace: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        table = screen.query_one(ClipTable)
        q = screen.query_state
        expected = _queue_ids(workspace, q.run_id, q.strategy)

        def header() -> str:
            return screen._topbar.plain if screen._topbar is not None else ""

        await pilot.press("Q")
        await until(pilot, lambda: screen.query_state.sort == "priority" and table.ids is not None)
        assert screen.query_state.descending
        assert list(table.ids) == expected
        assert table.cursor_row == 0
        await until(pilot, lambda: "queue 1/24" in header())
        assert "sort priority↓" in header()

        await pilot.press("full_stop", "full_stop")
        await until(pilot, lambda: "queue 3/24" in header())
        assert table.current_clip_id == expected[2]
        await pilot.press("comma")
        await until(pilot, lambda: table.current_clip_id == expected[1])
        assert "queue 2/24" in header()

        await pilot.press("f")  # the flag key works as anywhere
        await settle(pilot, screen)
        with Workspace.open(workspace, readonly=True) as ws:
            assert ws.flags(expected[1]) == ["ambiguous"]
        await until(pilot, lambda: (table.row(1).flags or "") == "ambiguous")
        assert table.current_clip_id == expected[1]  # a flag does not move the clip
        assert list(table.ids) == expected
        await pilot.press("full_stop")
        await until(pilot, lambda: table.current_clip_id == expected[2])

        table.move_cursor(23)  # the last clip: `.` says so and stays
        await until(pilot, lambda: "queue 24/24" in header())
        await pilot.press("full_stop")
        await pilot.pause()
        assert table.cursor_row == 23

        await pilot.press("s")  # another sort leaves the queue; `.` starts it again
        await until(pilot, lambda: screen.query_state.sort != "priority")
        assert "queue" not in header()
        await pilot.press("full_stop")
        await until(
            pilot, lambda: screen.query_state.sort == "priority" and "queue 1/24" in header()
        )
