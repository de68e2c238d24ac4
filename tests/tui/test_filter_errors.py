"""Issue 16 (8) at 80x24: an invalid filter empties the table and says why, in one place,
until a filter that runs is applied; no rows of the previous filter stay on screen."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Static

from ambiscope.core.browse.query import BrowseQuery, count_rows
from ambiscope.db import Workspace
from ambiscope.tui.widgets.clip_table import ClipTable
from ambiscope.tui.widgets.detail import DetailView
from tests.tui.helpers import make_app, ready, until


def _count(path: Path, text: str) -> int:
    with Workspace.open(path, readonly=True) as ws:
        return count_rows(ws.conn, BrowseQuery(filter_text=text))


async def test_invalid_filters_show_the_error_state_until_fixed(workspace: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        table = screen.query_one(ClipTable)
        view = screen.query_one(DetailView)
        line = screen.query_one("#filter", Input)
        error = screen.query_one("#filter-error", Static)

        def error_state() -> bool:
            empty = "no rows: see the error above (c clears the filter)"
            return (
                table.counted
                and table.row_count == 0
                and table.current_clip_id is None
                and view.detail is None
                and table.render_line(1).text.strip() == empty
                and error.display
            )

        # a typed value is refused up front; the filter line keeps focus to fix it
        await pilot.press("slash", *"js>abc", "enter")
        await pilot.pause()
        assert str(error.render()) == "js>abc: js takes a number after '>', not 'abc' (e.g. js>0.3)"
        assert error_state()
        assert app.focused is line and line.value == "js>abc"
        assert screen.query_state.filter_text == ""  # what bulk edits act on: the last good
        screen.set_sort("entropy")  # a new sort does not bring the old rows back
        await pilot.pause()
        assert error_state()
        for action in (screen.action_bulk, screen.action_export):  # they act on the filter
            action()
            await pilot.pause()
            assert app.screen is screen
        assert "fix the filter first" in [n.message for n in app._notifications][-1]

        # a value the workspace lacks: the query worker lists the valid ones
        line.value = ""
        await pilot.press(*"split:tset", "enter")
        expected = (
            "split:tset: no clip has split 'tset'; did you mean test? "
            "(splits: test, train, validation)"
        )
        await until(pilot, lambda: str(error.render()) == expected and error_state())
        assert error.region.height == 2  # the whole message, wrapped at 80 columns

        # fixing the filter brings the rows back and clears the error
        screen.query_one("#filter", Input).focus()
        line.value = ""
        await pilot.press(*"split:test", "enter")
        await until(pilot, lambda: table.counted and table.row_count > 0)
        assert table.row_count == _count(workspace, "split:test")
        assert not error.display and str(error.render()) == ""
        assert screen.query_state.filter_text == "split:test"
