"""The annotators screen (`a`): the raters `ambiscope reliability show` lists, with the same
numbers, the highlighted rater's confusion rows, and a stale fit said so in the title."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from ambiscope.core.reference.reliability import FitSettings, fit_dataset, rater_report
from ambiscope.db import VoteIn, Workspace
from ambiscope.tui.cli.main import main
from ambiscope.tui.screens.annotators import AnnotatorsScreen
from tests.tui.helpers import make_app, open_screen, until


@pytest.fixture(scope="module")
def fitted(workspace: Path) -> Path:
    """The module's demo workspace with both models fitted (MACE: 10 iterations, ~1 s)."""
    with Workspace.open(workspace) as ws:
        fit_dataset(ws, "demo", ("ds", "mace"), FitSettings(max_iter=10))
    return workspace


async def _annotators(pilot: Pilot[None]) -> AnnotatorsScreen:
    screen = await open_screen(pilot, "a", AnnotatorsScreen)
    await until(pilot, lambda: screen.report is not None)
    await pilot.pause(0.1)
    return screen


def _title(screen: AnnotatorsScreen) -> str:
    return str(screen.query_one("#annotators-title", Static).render())


def _pane(screen: AnnotatorsScreen) -> str:
    return str(screen.query_one("#annotators-confusion", Static).render())


def test_annotators_80x24(snap_compare, fitted: Path) -> None:
    assert snap_compare(make_app(fitted), terminal_size=(80, 24), run_before=_annotators)


async def test_annotators_screen_lists_the_cli_numbers_and_marks_a_stale_fit(
    fitted: Path,
) -> None:
    """Runs after the snapshot: it ends by changing a vote of the module's workspace."""
    with Workspace.open(fitted, readonly=True) as ws:
        expected = rater_report(ws, "demo")
    cli = CliRunner().invoke(main, ["--db", str(fitted), "reliability", "show", "-d", "demo"])
    assert cli.exit_code == 0, cli.output
    app = make_app(fitted)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _annotators(pilot)
        assert "12 raters · ds fit, mace fit" in _title(screen)
        table = screen.query_one(DataTable)
        assert table.row_count == len(expected.rows) == 12
        for i, row in enumerate(expected.rows):
            cells = [str(c) for c in table.get_row_at(i)]
            shown = f"{row.reliability['ds']:.2f}", f"{row.reliability['mace']:.2f}"
            assert cells == [
                row.external_id,
                "human",
                str(row.n_votes),
                f"{row.agreement:.2f}",
                *shown,
            ]
            # the CLI's line for this rater holds the same numbers
            line = next(x for x in cli.output.splitlines() if x.split()[:1] == [row.external_id])
            assert line.split()[2:] == cells[2:]
        first = expected.rows[0].external_id
        assert _pane(screen).startswith(f"{first} · Dawid-Skene confusion")
        await pilot.press("down")
        await until(pilot, lambda: _pane(screen).startswith(expected.rows[1].external_id))
        await pilot.press("c")
        assert "MACE confusion" in _pane(screen)
        with Workspace.open(fitted) as ws:  # another process changes a vote
            ds = ws.get_dataset("demo")
            clip = ws.clips(ds.id, limit=1)[0]
            rater = ws.clip_votes(clip.id)[0].annotator_id
            ws.replace_clip_votes(clip.id, rater, [VoteIn(clip.id, rater, "fear")])
        await pilot.press("escape")
        await until(pilot, lambda: app.current_mode == "browser")
        await pilot.press("a")  # back on the screen: reread, the fits are now stale
        await until(pilot, lambda: "ds STALE, mace STALE" in _title(screen))
