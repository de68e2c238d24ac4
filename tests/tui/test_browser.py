"""The browser driven like a researcher would: navigate, sort, filter, audit, undo."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from ambiscope.core.browse.query import BrowseQuery, count_rows, empty_columns
from ambiscope.db import Workspace
from ambiscope.db import workspace as workspace_module
from ambiscope.tui.screens.modals import BulkModal, ConfirmModal, NoteModal, PromptModal
from ambiscope.tui.widgets.clip_table import ClipTable
from ambiscope.tui.widgets.detail import DetailView
from tests.tui.helpers import make_app, ready, settle, until


def _count(path: Path, text: str, run: int | None = None, strategy: str | None = None) -> int:
    with Workspace.open(path, readonly=True) as ws:
        return count_rows(ws.conn, BrowseQuery(filter_text=text, run_id=run, strategy=strategy))


def _self_votes(path: Path, clip_id: int) -> list[str]:
    with Workspace.open(path, readonly=True) as ws:
        return [v.label for v in ws.clip_votes(clip_id) if v.kind == "self"]


async def test_opens_with_rows_detail_and_model(workspace: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        table = screen.query_one(ClipTable)
        assert table.row_count == 24
        q = screen.query_state
        assert q.run_id is not None and q.strategy == "wbon"
        detail = screen.query_one(DetailView).detail
        assert detail is not None and detail.run is not None
        assert {p.strategy for p in detail.predictions} >= {"vote", "wbon"}
        assert detail.votes and all(v.kind == "human" for v in detail.votes)
        wave = screen.query_one(DetailView).waveform
        assert wave is not None and wave.envelope is not None and wave.error is None
        # moving the cursor loads the new clip's detail
        await pilot.press("down", "down")
        await until(
            pilot,
            lambda: screen.detail is not None and screen.detail.clip.id == table.current_clip_id,
        )
        assert table.cursor_row == 2


async def test_sort_by_js_and_by_header_click(workspace: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        table = screen.query_one(ClipTable)
        screen.set_sort("js")
        await until(pilot, lambda: table.first_page_ready and table.ids is not None)
        js = [table.row(i).js for i in range(table.row_count) if table.row(i) is not None]
        present = [v for v in js if v is not None]
        assert present == sorted(present, reverse=True)
        assert js[-1] is None  # clips without predictions sort last
        # clicking the header of the sorted column reverses it
        col_x = 21 + 6 + 8 + 5 + 5 + 8 + 5  # key split human H amb model Hm -> JS
        await pilot.click(ClipTable, offset=(col_x + 1, 0))
        await until(pilot, lambda: not screen.query_state.descending)
        assert screen.query_state.sort == "js"
        # `s` moves on to the next column that has a value somewhere (the demo has no
        # flags, tags or own votes yet: it wraps round to the clip key)
        with Workspace.open(workspace, readonly=True) as ws:
            empty = empty_columns(ws.conn)
        expected = next(c for c in ("flags", "tags", "vote", "key") if c not in empty)
        await pilot.press("s")
        await until(pilot, lambda: screen.query_state.sort == expected)


async def test_filter_language_quick_keys_and_errors(workspace: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        table = screen.query_one(ClipTable)
        await pilot.press("slash")
        await pilot.press(*"ambiguity:high")
        await pilot.press("enter")
        await until(pilot, lambda: table.counted and screen.query_state.filter_text != "")
        assert table.row_count == _count(workspace, "ambiguity:high")
        assert app.focused is table
        # a bad term keeps the old filter and says why in one line
        assert not screen.apply_filter("label:banana")
        error = screen.query_one("#filter-error", Static)
        assert "banana" in str(error.render())
        assert screen.query_state.filter_text == "ambiguity:high"
        # quick keys edit the same filter text
        await pilot.press("c")
        await until(pilot, lambda: screen.query_state.filter_text == "")
        await pilot.press("exclamation_mark")
        await until(pilot, lambda: screen.query_state.filter_text == "disagree" and table.counted)
        q = screen.query_state
        assert table.row_count == _count(workspace, "disagree", q.run_id, q.strategy)
        await pilot.press("A")
        await until(pilot, lambda: "ambiguity:low" in screen.query_one("#filter", Input).value)
        await pilot.press("greater_than_sign")
        await until(pilot, lambda: "js>0.3" in screen.query_state.filter_text)
        await until(pilot, lambda: table.counted)
        q = screen.query_state
        assert table.row_count == _count(workspace, q.filter_text, q.run_id, q.strategy)


async def test_flag_tag_note_vote_and_undo(workspace: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        table = screen.query_one(ClipTable)
        clip_id = table.current_clip_id
        assert clip_id is not None

        await pilot.press("f")
        await settle(pilot, screen)
        with Workspace.open(workspace, readonly=True) as ws:
            assert ws.flags(clip_id) == ["ambiguous"]
        await until(pilot, lambda: (table.row(0).flags or "") == "ambiguous")

        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, PromptModal))
        await pilot.press(*"needs-review", "enter")
        await settle(pilot, screen)
        with Workspace.open(workspace, readonly=True) as ws:
            assert ws.tags(clip_id) == ["needs-review"]

        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NoteModal))
        await pilot.press(*"sounds sarcastic", "ctrl+s")
        await settle(pilot, screen)
        with Workspace.open(workspace, readonly=True) as ws:
            assert ws.get_note(clip_id, author="tester") == "sounds sarcastic"

        assert screen.detail is not None
        labels = screen.detail.labels
        await pilot.press("3")
        await settle(pilot, screen)
        assert _self_votes(workspace, clip_id) == [labels[2]]
        await until(pilot, lambda: table.row(0).own_vote == labels[2])
        await until(
            pilot,
            lambda: (
                screen.detail is not None and any(v.kind == "self" for v in screen.detail.votes)
            ),
        )

        # undo walks back: vote, note, tag, flag
        await pilot.press("u")
        await settle(pilot, screen)
        assert _self_votes(workspace, clip_id) == []
        await pilot.press("u")
        await settle(pilot, screen)
        await pilot.press("u")
        await settle(pilot, screen)
        await pilot.press("u")
        await settle(pilot, screen)
        with Workspace.open(workspace, readonly=True) as ws:
            assert ws.flags(clip_id) == []
            assert ws.tags(clip_id) == []
            assert ws.get_note(clip_id, author="tester") is None
        assert screen.undo_stack == []


async def test_bulk_flag_with_confirmation_and_undo(workspace: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        assert screen.apply_filter("ambiguity:medium")
        expected = _count(workspace, "ambiguity:medium")
        await until(pilot, lambda: screen.query_one(ClipTable).counted)
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, BulkModal))
        name = app.screen.query_one("#name", Input)
        name.value = "check"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert f"{expected:,} clips" in str(app.screen.title_text)
        await pilot.press("enter")
        await settle(pilot, screen)
        assert _count(workspace, "flag:check") == expected
        with Workspace.open(workspace, readonly=True) as ws:  # the researcher, as single edits
            authors = {r[0] for r in ws.conn.execute("SELECT author FROM flags")}
        assert authors == {app.settings.user} and app.settings.user
        await pilot.press("u")
        await settle(pilot, screen)
        assert _count(workspace, "flag:check") == 0


async def test_play_without_device_shows_one_clear_message(workspace: Path, monkeypatch) -> None:
    import ambiscope.tui.playback as playback

    monkeypatch.setattr(
        playback, "_import_sounddevice", lambda: (None, "PortAudio library not found")
    )
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        await pilot.press("space")
        await until(pilot, lambda: screen._told_no_device)
        await pilot.pause(0.1)
        messages = [n.message for n in app._notifications]
        assert len([m for m in messages if "No audio output device" in m]) == 1
        text = next(m for m in messages if "No audio output device" in m)
        assert "PULSE_SERVER" in text and "ambiscope serve" in text and "x" in text


def test_real_player_check_never_raises() -> None:
    from ambiscope.tui.playback import Player

    reason = Player().check()
    assert reason is None or isinstance(reason, str)


async def test_export_clip_wav_and_filter_csv(workspace: Path, tmp_path: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, PromptModal))
        app.screen.query_one(Input).value = str(tmp_path / "clip.wav")
        await pilot.press("enter")
        await until(pilot, lambda: (tmp_path / "clip.wav").exists())

        assert screen.apply_filter("ambiguity:high")
        await until(pilot, lambda: screen.query_one(ClipTable).counted)
        await pilot.press("e")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ExportModal")
        from textual.widgets import Select

        app.screen.query_one("#what", Select).value = "subset:csv"
        await pilot.pause()
        target = tmp_path / "subset-out"
        app.screen.query_one("#path", Input).value = str(target)
        await pilot.press("enter")
        await until(pilot, lambda: any("exported" in n.message for n in app._notifications))
        # a folder with the data and its provenance, as `ambiscope export subset`
        csv_file = next(target.glob("*.csv"))
        assert any(target.glob("*provenance*"))
        import csv

        with csv_file.open() as f:
            records = list(csv.reader(f))
        assert len(records) == 1 + _count(workspace, "ambiguity:high")


async def test_export_offers_the_registered_formats_and_writes_a_table(
    workspace: Path, tmp_path: Path
) -> None:
    from textual.widgets import Select

    from ambiscope.core.export import SUBSET_FORMATS, TABLE_FORMATS
    from ambiscope.tui.screens.modals import ExportModal

    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ExportModal))
        modal = app.screen
        assert isinstance(modal, ExportModal)
        assert modal.subset_formats == list(SUBSET_FORMATS.names())
        assert modal.table_formats == list(TABLE_FORMATS.names())
        modal.query_one("#what", Select).value = "metrics:md"
        await pilot.pause()
        assert modal.query_one("#path", Input).value == "./ambiscope-metrics.md"
        target = tmp_path / "table.md"
        modal.query_one("#path", Input).value = str(target)
        await pilot.press("enter")
        await until(pilot, lambda: any("exported" in n.message for n in app._notifications))
    assert target.read_text().lstrip().startswith("|")
    assert (tmp_path / "table.md.provenance.json").exists()


async def test_run_picker_and_no_model(workspace: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        screen.select_model(None, None)
        await until(pilot, lambda: not screen.query_state.has_model)
        table = screen.query_one(ClipTable)
        await until(pilot, lambda: table.first_page_ready)
        assert "–" in table.render_line(1).text
        await pilot.press("right_square_bracket")  # no run: a hint, no crash
        await pilot.press("R")
        await until(pilot, lambda: app.screen.__class__.__name__ == "RunPickerModal")
        await pilot.press("down", "down", "enter")
        await until(pilot, lambda: screen.query_state.strategy == "wbon")


async def test_small_terminal_shows_a_message(workspace: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(60, 20)) as pilot:
        screen = await ready(pilot)
        warning = screen.query_one("#size-warning", Static)
        assert "60x20" in str(warning.render())
        assert warning.display
        assert not screen.query_one("#detail-pane").display
        await pilot.press("enter")
        await pilot.pause()
        assert screen.query_one("#detail-pane").display


async def test_help_palette_and_screens(workspace: Path) -> None:
    from ambiscope.tui.keys import KEYS
    from ambiscope.tui.screens.help import HelpScreen

    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for spec in KEYS:  # the browser's palette: its own actions and the app's
            if spec.palette and spec.action != "noop" and spec.scope in ("app", "browser"):
                assert any(t.startswith(spec.title.capitalize()) for t in titles), spec.title
        assert any("theme" in t.lower() for t in titles)
        await pilot.press("J")
        await until(pilot, lambda: app.current_mode == "jobs")
        await pilot.press("escape")
        await until(pilot, lambda: app.current_mode == "browser")


async def test_read_only_workspace_opens_and_says_so(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workspace file nobody lets us write (issue 12): browse, say read-only, write nothing."""
    copy = tmp_path / "ro.db"
    shutil.copy(workspace, copy)
    copy.chmod(0o444)
    if os.geteuid() == 0:  # root may write anything: stand in for an ordinary user
        monkeypatch.setattr(workspace_module, "_writable", lambda path: False)
    before = copy.read_bytes()
    app = make_app(copy)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        assert screen.query_one(ClipTable).row_count == 24
        assert app.access.readonly
        assert "read-only" in str(screen._topbar)
        await pilot.press("f")
        await until(
            pilot, lambda: any("read-only workspace" in n.message for n in app._notifications)
        )
    assert copy.read_bytes() == before
