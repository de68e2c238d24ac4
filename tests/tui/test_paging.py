"""The fast paths behind the browser: ids first, pages by id, cached row strips, the
debounced detail pane and the pooled read connections."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.geometry import Region

from ambiscope.core.browse import query as browse
from ambiscope.db import Workspace
from ambiscope.db.access import WorkspaceAccess
from ambiscope.tui import data
from ambiscope.tui.widgets.clip_table import ClipTable
from tests.tui.helpers import make_app, ready, until


def _ordered(path: Path, query: browse.BrowseQuery) -> list[int]:
    with Workspace.open(path, readonly=True) as ws:
        return list(browse.ordered_ids(ws.conn, query))


def _loaded_ids(table: ClipTable) -> dict[int, int]:
    return {i: row.clip_id for i in range(table.row_count) if (row := table.row(i)) is not None}


async def test_small_pages_follow_the_ordered_ids(workspace: Path) -> None:
    app = make_app(workspace, page_size=5)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        table = screen.query_one(ClipTable)
        assert table.row_count == 24 and len(table.ids) == 24
        assert list(table.ids) == _ordered(workspace, screen.query_state)
        # a page wanted before the ids are known waits for them, then comes by id
        screen.set_sort("js")
        table._want(3)
        await until(pilot, lambda: table.ids is not None and 3 in table.pages)
        expected = _ordered(workspace, screen.query_state)
        assert list(table.ids) == expected
        loaded = _loaded_ids(table)
        assert 15 in loaded and all(expected[i] == c for i, c in loaded.items())
        # the last page, reached with the keyboard
        table.focus()
        await pilot.press("end")
        await until(pilot, lambda: table.row(23) is not None)
        assert table.current_clip_id == expected[23]
        await until(
            pilot,
            lambda: screen.detail is not None and screen.detail.clip.id == expected[23],
        )


@pytest.fixture
def detail_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The clip ids the detail pane reads, in order (the real reads still happen)."""
    calls: list[int] = []
    real = data.load_detail

    def load_detail(access: WorkspaceAccess, clip_id: int, *rest: Any) -> data.ClipDetail:
        calls.append(clip_id)
        return real(access, clip_id, *rest)

    monkeypatch.setattr(data, "load_detail", load_detail)
    return calls


async def test_a_new_query_brings_its_first_detail(
    workspace: Path, detail_reads: list[int]
) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        table = screen.table
        detail_reads.clear()  # from here on
        screen.set_sort("entropy", descending=True)
        await until(
            pilot,
            lambda: (
                table.ids is not None
                and screen.detail is not None
                and screen.detail.clip.id == table.ids[0]
            ),
        )
        await pilot.pause(0.3)
        assert detail_reads == [table.ids[0]]  # read once, with the query's ids


async def test_held_keys_load_the_detail_once_the_cursor_rests(
    workspace: Path, detail_reads: list[int]
) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        table = screen.table
        detail_reads.clear()  # from here on
        table.focus()
        for _ in range(6):
            table.action_cursor(1)  # faster than any key repeat
        await until(
            pilot,
            lambda: screen.detail is not None and screen.detail.clip.id == table.current_clip_id,
        )
        assert table.cursor_row == 6
        assert detail_reads == [table.current_clip_id]


async def test_row_strips_are_redrawn_when_rows_or_cursor_change(workspace: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        table = screen.query_one(ClipTable)

        def lines() -> list[str]:
            region = Region(0, 0, table.size.width, table.size.height)
            return [strip.text for strip in table.render_lines(region)]

        first = lines()
        assert table.row(0).key in first[1]
        assert lines() == first  # from the cache
        renamed = replace(table.row(0), key="renamed-clip")
        table.set_page(table.generation, 0, [renamed, *table.pages[0][1:]])
        assert "renamed-clip" in lines()[1]
        cursor_style = table.render_lines(Region(0, 1, table.size.width, 1))[0]
        table.move_cursor(1)
        moved = table.render_lines(Region(0, 1, table.size.width, 2))
        assert moved[0].text == cursor_style.text  # same text, no cursor any more
        assert list(moved[0]) != list(cursor_style)
        await pilot.pause()


def test_reader_pool_reuses_connections_and_sees_writes(workspace: Path) -> None:
    access = WorkspaceAccess(workspace)
    with access.reader() as ws:
        first = ws
        count = ws.conn.execute("SELECT count(*) FROM flags").fetchone()[0]
        with access.reader() as other:  # in use: a second connection
            assert other is not first
    with access.reader() as ws:
        assert ws is first or ws is other
    with access.writer() as ws:
        clip = ws.conn.execute("SELECT min(id) FROM clips").fetchone()[0]
        ws.set_flag(clip, "pool-test", True)
    try:
        with access.reader() as ws:
            assert ws.conn.execute("SELECT count(*) FROM flags").fetchone()[0] == count + 1
        with access.reader() as ws:  # a transaction left open is not given out again
            ws.conn.execute("BEGIN")
        with access.reader() as again:
            assert not again.conn.in_transaction
    finally:
        with access.writer() as ws:
            ws.set_flag(clip, "pool-test", False)
    access.close()
    assert access._idle == []
    with access.reader() as ws:  # still usable after close, without pooling
        ws.conn.execute("SELECT 1")
    assert access._idle == []
