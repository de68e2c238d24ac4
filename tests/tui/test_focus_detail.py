"""Issue 16, findings 2, 4 and 5: the detail pane by keyboard at 80x24, one entropy unit
and one bar scale, and votes shown with their weights.

Pilot tests drive the real app on the demo workspace; the rendering tests draw a real
clip's detail (read from the same workspace) with hand-made votes and distributions.
"""

from __future__ import annotations

import io
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.style import Style
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widgets import Input

from ambiscope.core.browse.query import BrowseRow, ClipPrediction
from ambiscope.db import VoteRow
from ambiscope.db.access import WorkspaceAccess
from ambiscope.tui import data
from ambiscope.tui.data import ClipDetail, vote_counts
from ambiscope.tui.widgets.clip_table import COLUMNS, ClipTable, cell_text
from ambiscope.tui.widgets.detail import (
    DetailPane,
    DetailRenderable,
    DetailStyles,
    DetailView,
    bar,
)
from tests.tui.helpers import make_app, ready

PLAIN = DetailStyles(*(Style() for _ in DetailStyles.__dataclass_fields__))


def _pane_text(view: DetailView, pane: DetailPane) -> list[str]:
    """The detail's lines that the pane shows without scrolling."""
    height = pane.scrollable_content_region.height
    strips = view.render_lines(Region(0, 0, view.size.width, height))
    return [strip.text.strip() for strip in strips]


async def test_tab_cycles_focus_and_the_focused_detail_scrolls(workspace: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        pane = screen.query_one(DetailPane)
        table = screen.query_one(ClipTable)
        flt = screen.query_one("#filter", Input)
        assert app.focused is table
        assert pane.styles.border_top[0] == "solid"
        await pilot.press("tab")
        assert app.focused is pane
        assert pane.styles.border_top[0] == "heavy"  # the focus marker
        await pilot.press("tab")
        assert app.focused is flt
        await pilot.press("tab")
        assert app.focused is table
        await pilot.press("shift+tab")
        assert app.focused is flt
        await pilot.press("shift+tab")
        assert app.focused is pane
        assert table.cursor_row == 0
        # the focused detail scrolls with the table's keys
        assert pane.max_scroll_y > 3  # votes, waveform and candidates are below the fold
        await pilot.press("j", "j")
        assert pane.scroll_y == 2 and table.cursor_row == 0
        await pilot.press("k")
        assert pane.scroll_y == 1
        await pilot.press("end")
        assert pane.scroll_y == pane.max_scroll_y
        await pilot.press("home")
        assert pane.scroll_y == 0
        await pilot.press("pagedown")
        assert pane.scroll_y > 2
        assert table.cursor_row == 0


async def test_80x24_shows_every_label_bar_and_ctrl_d_pages(workspace: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        view = screen.query_one(DetailView)
        pane = screen.query_one(DetailPane)
        table = screen.query_one(ClipTable)
        detail = view.detail
        assert detail is not None
        text = _pane_text(view, pane)
        assert text[0].startswith(detail.clip.key)
        labels = detail.dataset.label_set
        for i, label in enumerate(labels):
            assert any(line.startswith(f"{i + 1} {label} ") for line in text), label
        legend = "own vote: " + "  ".join(f"{i + 1} {x}" for i, x in enumerate(labels))
        assert any(line.startswith(legend) for line in text)
        # the waveform yielded its place: no braille in the visible part
        assert not any("⣿" in line for line in text)
        # ctrl+d / ctrl+u page the detail while the table keeps focus and cursor
        await pilot.press("ctrl+d")
        await pilot.pause()
        assert pane.scroll_y > 2
        assert app.focused is table and table.cursor_row == 0
        await pilot.press("ctrl+u")
        await pilot.pause()
        assert pane.scroll_y == 0


# ---------------------------------------------------------------------------- rendering
def _detail(workspace: Path) -> ClipDetail:
    access = WorkspaceAccess(workspace)
    try:
        with access.reader() as ws:
            clip = ws.clips(ws.get_dataset("demo").id)[0]
        return data.load_detail(access, clip.id, None, None, "tester")
    finally:
        access.close()


def _render(detail: ClipDetail, width: int = 78, fit: int | None = None) -> list[str]:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(DetailRenderable(detail, None, "", PLAIN, fit_height=fit))
    return console.export_text().splitlines()


def _crowd(clip_id: int, weights: dict[str, float]) -> tuple[VoteRow, ...]:
    """CREMA-D's shape: one anonymous annotator, one weighted row per label."""
    return tuple(
        VoteRow(clip_id, 1, "crowd-voice", "human", label, 0, w, None)
        for label, w in weights.items()
    )


def test_weighted_crowd_votes_read_as_nine_votes(workspace: Path) -> None:
    detail = _detail(workspace)
    assert detail.human is not None
    votes = _crowd(detail.clip.id, {"neutral": 1.0, "angry": 6.0, "disgust": 2.0})
    crowd = replace(detail, votes=votes, human=replace(detail.human, n_votes=9.0, n_raters=1))
    lines = _render(crowd)
    assert "human · 9 votes: angry 6 · disgust 2 · neutral 1" in lines
    assert not any("raters:" in line or "+" in line for line in lines)
    footer = next(line for line in lines if line.strip().startswith("9 votes"))
    assert "rater" not in footer  # one stored annotator is not one rater


def test_vote_counts_sum_weights_of_primary_votes() -> None:
    votes = [
        VoteRow(1, 1, "a", "human", "sad", 0, 0.5, None),
        VoteRow(1, 1, "a", "human", "angry", 0, 0.5, None),
        VoteRow(1, 2, "b", "human", "sad", 0, 1.0, None),
        VoteRow(1, 2, "b", "human", "fear", 1, 1.0, None),  # secondary: not counted
    ]
    assert vote_counts(votes) == [("sad", 1.5), ("angry", 0.5)]


def test_model_entropy_is_normalised_in_detail_and_table(workspace: Path) -> None:
    detail = _detail(workspace)
    k = len(detail.labels)
    bits = math.log2(k) / 2  # half the maximum: 0.50 normalised
    pred = ClipPrediction("vote", np.full(k, 1 / k), None, bits, 0.1, 0.9, True)
    lines = _render(replace(detail, predictions=(pred,), strategy="vote"))
    assert any("H 0.50 agrees" in line for line in lines)
    row = BrowseRow(1, "k", "demo", None, None, 0.5, None, "sad", bits, 0.1, True, None, None, None)
    hm = next(c for c in COLUMNS if c.id == "model_entropy")
    assert cell_text(hm, row, k) == ".500"
    assert cell_text(hm, row, None) == ""  # no label count known: no number in bits


def test_wrapped_blocks_share_one_bar_scale(workspace: Path) -> None:
    detail = _detail(workspace)
    k = len(detail.labels)
    half, full = np.zeros(k), np.zeros(k)
    half[0], half[1], full[0] = 0.5, 0.5, 1.0
    preds = tuple(
        ClipPrediction(name, dist, None, 1.0, 0.1, 0.9, True)
        for name, dist in (("a", half), ("b", half), ("c", full))
    )
    lines = _render(replace(detail, predictions=preds, strategy="a"), width=60)
    first = detail.labels[0]
    rows = [line for line in lines if line.startswith(f"1 {first} ")]
    assert len(rows) == 2  # four columns wrapped into two blocks
    bars = [seg for row in rows for seg in row.split() if set(seg) <= set("█▏▎▍▌▋▊▉")]
    width = max(len(b) for b in bars)
    assert bars[-1] == bar(1.0, width).strip()  # the 1.00 bar, in the wrapped block
    assert all(len(b) <= width for b in bars)
    assert any(b == bar(0.5, width).strip() for b in bars)  # a 0.50 bar is half as long


async def _detail_focused(pilot: Pilot[None]) -> None:
    await ready(pilot)
    await pilot.press("tab")
    await pilot.pause(0.1)


def test_detail_focused_80x24(snap_compare, workspace: Path) -> None:
    """The heavy accent edge marks the focused detail; every bar and vote key shows."""
    assert snap_compare(make_app(workspace), terminal_size=(80, 24), run_before=_detail_focused)


def test_ten_labels_fit_a_13_line_pane(workspace: Path) -> None:
    """IEMOCAP's ten labels in the 13 lines the pane has at 80x24: title, column
    titles, ten bars and a one-line vote legend; the rest follows below the fold."""
    detail = _detail(workspace)
    assert detail.human is not None
    labels = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")
    labels += ("frustrated", "excited", "other")
    even = np.full(10, 0.1)
    pred = ClipPrediction("vote", even, None, 1.0, 0.1, 0.9, True)
    ten = replace(
        detail,
        dataset=replace(detail.dataset, label_set=labels),
        human=replace(detail.human, distribution=even),
        predictions=(pred,),
        strategy="vote",
    )
    lines = _render(ten, fit=13)
    top = lines[:13]
    assert top[0].startswith(detail.clip.key)
    for i, label in enumerate(labels[:9]):
        assert any(line.startswith(f"{i + 1} {label[:10]} ") for line in top), label
    assert any(line.startswith("  other ") for line in top)
    assert "own vote: press the number before a label (1-9) · 0 clears" in top
    assert any("── votes" in line for line in lines[13:])  # below the fold, not lost
    assert any("distributions · run" in line for line in lines)
