"""Issue 16, findings 7 and 9: the palette per screen, confirmations, the export dialog,
provenance's version, and the smaller points (F, V, the 80-column footer, no jargon)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette
from textual.widgets import Button, Checkbox, Footer, Input, OptionList, Select, Static
from textual.widgets._footer import FooterKey

from ambiscope.core import versions
from ambiscope.core.scaling.job import enqueue_resample
from ambiscope.core.scaling.run import RunSpec
from ambiscope.db import Workspace
from ambiscope.db.jobs import list_jobs
from ambiscope.tui import export_bridge
from ambiscope.tui.app import AmbiscopeApp
from ambiscope.tui.messages import TaskFailed
from ambiscope.tui.screens.jobs import JobsScreen
from ambiscope.tui.screens.modals import ChoiceModal, ConfirmModal, ExportModal
from ambiscope.tui.widgets.clip_table import ClipTable
from tests.tui.helpers import make_app, open_screen, ready, until

SIZE = (80, 24)


def _titles(app: AmbiscopeApp, screen: object) -> set[str]:
    return {c.title for c in app.get_system_commands(screen)}  # type: ignore[arg-type]


def _notes(app: AmbiscopeApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


# ------------------------------------------------------------------ palette and confirm
async def test_palette_is_scoped_and_cancelling_a_job_asks_first(workspace: Path) -> None:
    with Workspace.open(workspace) as ws:
        spec = RunSpec(dataset="demo", model="nowhere/model", n=2)
        job = enqueue_resample(ws, spec, clip_ids=[1])

    def status() -> str:
        with Workspace.open(workspace) as ws:
            return next(j.status for j in list_jobs(ws) if j.id == job.id)

    app = make_app(workspace, poll=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        titles = _titles(app, screen)
        assert "Export wav (x)" in titles and "Flag (f)" in titles
        assert "Cancel (x)" not in titles and "Retry (r)" not in titles
        assert "Recompute (r)" not in titles and "Browser" not in titles
        assert "Jobs (J)" in titles  # app-wide actions stay everywhere
        jobs = await open_screen(pilot, "J", JobsScreen)
        titles = _titles(app, jobs)
        assert {"Cancel (x)", "Retry (r)", "Browser", "Jobs (J)"} <= titles
        assert "Export wav (x)" not in titles and "Flag (f)" not in titles

        await until(pilot, lambda: jobs.snapshot is not None and jobs.snapshot.rows)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("escape")  # no: the job stays queued
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        await pilot.pause(0.2)
        assert status() == "queued"
        # the palette's command asks too
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"Cancel (x)")
        await until(pilot, lambda: app.screen.query_one(CommandList).option_count > 0)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert app.screen_stack[-2] is jobs
        await pilot.press("enter")
        await until(
            pilot,
            lambda: any(
                r.job.id == job.id and r.job.status == "cancelled"
                for r in jobs.snapshot.rows  # type: ignore[union-attr]
            ),
        )
        assert status() == "cancelled"


# ------------------------------------------------------------------ export dialog
async def _open_export(pilot: object, app: AmbiscopeApp) -> ExportModal:
    await pilot.press("e")  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, ExportModal))  # type: ignore[arg-type]
    assert isinstance(app.screen, ExportModal)
    return app.screen


async def test_export_dialog_refuses_a_full_folder_until_overwrite(
    workspace: Path, tmp_path: Path
) -> None:
    target = tmp_path / "subset"
    target.mkdir()
    (target / "provenance.json").write_text("{}")  # an earlier export
    (target / "old.txt").write_text("old")
    app = make_app(workspace)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        dialog = await _open_export(pilot, app)
        dialog.query_one("#path", Input).value = str(target)
        dialog.query_one("#ok", Button).press()  # as a click, without its coordinates
        await pilot.pause()
        status = str(dialog.query_one("#export-status", Static).render())
        assert app.screen is dialog  # still open, saying why, in the dialog's words
        assert "tick overwrite" in status and "--force" not in status
        dialog.query_one("#overwrite", Checkbox).value = True
        await pilot.pause()
        dialog.query_one("#ok", Button).press()  # as a click, without its coordinates
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("escape")  # not replaced: back in the dialog
        await until(pilot, lambda: app.screen is dialog)
        assert "not replaced" in str(dialog.query_one("#export-status", Static).render())
        await pilot.pause()
        dialog.query_one("#ok", Button).press()  # as a click, without its coordinates
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("enter")
        # the browser runs the checked request
        await until(pilot, lambda: (target / "provenance.json").exists(), timeout=20)
        assert not (target / "old.txt").exists()


async def test_export_dialog_with_an_exporter_stays_open_on_error(
    workspace: Path, tmp_path: Path
) -> None:
    app = make_app(workspace)
    answers: list[object] = []
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        query = screen.query_state.with_(filter_text="js>0.5")

        def exporter(request: export_bridge.ExportRequest) -> export_bridge.ExportResult:
            return export_bridge.export_result(app.access, request, query)

        dialog = ExportModal(["audiofolder"], ["md"], "js>0.5", 3, exporter=exporter)
        await app.push_screen(dialog, answers.append)
        dialog.query_one("#path", Input).value = str(tmp_path / "not-a-dir.txt")
        (tmp_path / "not-a-dir.txt").write_text("x")
        app.screen.query_one("#ok", Button).press()
        await pilot.pause()
        await pilot.pause()
        assert "not a folder" in str(dialog.query_one("#export-status", Static).render())
        # a failure inside the export (a bad format) is shown and the dialog stays
        dialog.query_one("#path", Input).value = str(tmp_path / "out")
        bad = export_bridge.ExportRequest("subset", "no-such-format", str(tmp_path / "out"))
        dialog._go(bad)
        await until(pilot, lambda: not dialog.running)
        status = str(dialog.query_one("#export-status", Static).render())
        assert status.startswith("not exported:") and "no-such-format" in status
        assert app.screen is dialog and not answers
        app.screen.query_one("#ok", Button).press()
        await pilot.pause()
        await until(pilot, lambda: bool(answers), timeout=20)
    (result,) = answers
    assert isinstance(result, export_bridge.ExportResult)
    assert result.path == tmp_path / "out" and result.what == "subset"


async def test_metric_table_export_is_the_filtered_cli_table(
    workspace: Path, tmp_path: Path
) -> None:
    out = tmp_path / "metrics.md"
    app = make_app(workspace, bootstrap=50)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("slash")
        await pilot.press(*"ambiguity:high", "enter")
        await until(pilot, lambda: screen.query_state.filter_text == "ambiguity:high")
        table = screen.query_one(ClipTable)
        await until(pilot, lambda: table.counted and table.first_page_ready)
        matching = table.row_count
        dialog = await _open_export(pilot, app)
        scope = dialog.query_one("#export-scope", Static)
        assert str(scope.render()) == f"{matching:,} clips match: ambiguity:high"
        dialog.query_one("#what", Select).value = "metrics:md"
        await pilot.pause()
        assert "run and strategy as shown" in str(scope.render())
        dialog.query_one("#path", Input).value = str(out)
        app.screen.query_one("#ok", Button).press()
        await pilot.pause()
        await until(pilot, lambda: out.with_name("metrics.md.provenance.json").exists(), 30)
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| demo")]
    # the shown strategy only, high-ambiguity clips only (the "all" row is the same set)
    assert rows and all(" high " in r or " all " in r for r in rows)
    assert {r.split("|")[3].strip() for r in rows} == {screen.query_state.strategy}
    n_all = next(int(r.split("|")[5]) for r in rows if " all " in r)
    assert 0 < n_all <= matching
    assert " [0." in rows[0]  # intervals as `ambiscope metrics --format md`
    assert "bootstrap resamples" in text
    provenance = json.loads(out.with_name("metrics.md.provenance.json").read_text())
    assert provenance["filter"] == "ambiguity:high"
    assert provenance["ambiscope"] == versions.ambiscope_version() != "unknown"


# ------------------------------------------------------------------ version
def test_version_from_the_source_tree_when_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "ambiscope"\nversion = "9.8.7"\n')
    monkeypatch.setattr(versions, "_installed_version", lambda: None)
    versions.ambiscope_version.cache_clear()
    try:
        assert versions.ambiscope_version(tmp_path) == "9.8.7"  # no .git here: no commit
        assert versions.ambiscope_version(tmp_path / "nowhere") == "unknown"
    finally:
        versions.ambiscope_version.cache_clear()


def test_version_of_this_checkout_names_its_commit() -> None:
    version = versions.ambiscope_version()
    assert version.startswith(versions._installed_version() or "0.")
    commit = versions._git_describe(versions.SOURCE_ROOT)  # None without git or a checkout
    assert version.endswith(f"+git.{commit}") if commit else "+git." not in version
    assert versions.package_versions(("ambiscope",)) == {"ambiscope": version}


# ------------------------------------------------------------------ smaller points (9)
async def test_smaller_points_in_the_browser_at_80x24(workspace: Path) -> None:
    app = make_app(workspace, flag_names=["ambiguous", "check"])
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        table = screen.query_one(ClipTable)
        # the footer fits 80 columns and shows `?`
        await pilot.pause(0.2)
        keys = {k.key_display: k for k in screen.query_one(Footer).query(FooterKey)}
        palette = keys.pop("^p")  # docked right, over whatever does not fit
        assert "?" in keys
        for key in keys.values():
            assert key.region.width > 0 and key.region.right <= palette.region.x, key.key_display

        # no audio device: one plain message, no `no-device: <PortAudio error>` beside it
        screen.post_message(TaskFailed("no-device", "Error querying device -1"))
        await until(pilot, lambda: bool(_notes(app)))
        await pilot.pause(0.1)
        notes = _notes(app)
        assert len(notes) == 1 and notes[0].startswith("No audio output device")

        # F shows which flags are set
        await pilot.press("f")  # sets the default flag, "ambiguous"
        await until(pilot, lambda: "ambiguous" in (table.row(0).flags or ""))  # type: ignore[union-attr]
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, ChoiceModal))
        modal = app.screen
        assert isinstance(modal, ChoiceModal)
        options = modal.query_one(OptionList)
        shown = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert shown == ["[x] ambiguous", "[ ] check"]
        assert "set: ambiguous" in modal.title_text
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)

        # a vote stays on the clip, unless V asks to advance
        await pilot.press("2")
        await pilot.pause(0.2)
        assert table.cursor_row == 0
        await pilot.press("V")
        assert app.settings.advance_after_vote  # a setting, saved with the others
        await pilot.press("3")
        await until(pilot, lambda: table.cursor_row == 1)
        await until(pilot, lambda: not screen._writing and not screen._edits)
        first = table.ids[0]  # type: ignore[index]
        labels = screen.context.datasets[0].label_set  # type: ignore[union-attr]
    with Workspace.open(workspace) as ws:
        votes = ws.conn.execute(
            "SELECT v.label FROM votes v JOIN annotators a ON a.id = v.annotator_id "
            "WHERE a.external_id = 'self:tester' AND v.clip_id = ?",
            (first,),
        ).fetchall()
    assert votes == [(labels[2],)]  # the vote went to the clip it was cast on
