"""The browser screen: filter bar, virtual clip table and the detail pane, put together.

Each concern is a layer of its own, all on one Textual screen (handlers and workers
need the screen itself): QueryPaging (query, pages, sort, filter, top bar) under
DetailLoading (the pane follows the cursor), and on top of both the key groups:
NavigationActions, AuditActions (edits, undo, bulk) and TaskActions (play, export,
re-sample). This class adds the layout and the key bindings.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.widgets import Footer, Input, Static

from ambiscope.tui.keys import bindings
from ambiscope.tui.screens.browser.audit import AuditActions
from ambiscope.tui.screens.browser.navigation import NavigationActions
from ambiscope.tui.screens.browser.tasks import TaskActions
from ambiscope.tui.widgets.clip_table import ClipTable
from ambiscope.tui.widgets.detail import DetailPane, DetailView

MIN_SIZE = (80, 24)
WIDE = 140
FOCUS_CYCLE = ("#table", "#detail-pane", "#filter")


class BrowserScreen(NavigationActions, AuditActions, TaskActions):
    """The home screen (see module docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *bindings("browser"),
        *(Binding(str(i), f"vote({i})", f"vote {i}", show=False) for i in range(1, 10)),
    ]

    def compose(self) -> ComposeResult:
        yield Static("", id="topbar")
        yield Input(
            placeholder="/ filter: ambiguity:high disagree js>0.3 tag:review label:angry words…",
            id="filter",
        )
        yield Static("", id="filter-error")
        yield Static("", id="size-warning")
        with Container(id="main"):
            yield ClipTable(page_size=self.settings.page_size, id="table")
            with DetailPane(id="detail-pane"):
                yield DetailView(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self._layout_for(self.size.width, self.size.height)
        self.load_context()

    def on_resize(self) -> None:
        self._layout_for(self.size.width, self.size.height)

    def action_focus_next(self) -> None:
        """Tab: table -> detail -> filter -> table, past a hidden detail (the DOM order,
        Screen's own chain, would put the filter first)."""
        self._cycle_focus(1)

    def action_focus_previous(self) -> None:
        self._cycle_focus(-1)

    def _cycle_focus(self, step: int) -> None:
        panes = [w for w in (self.query_one(s) for s in FOCUS_CYCLE) if w.display]
        current = self.focused if self.focused in panes else None
        i = panes.index(current) if current is not None else -step
        panes[(i + step) % len(panes)].focus()

    def action_scroll_detail(self, pages: int) -> None:
        """Page the detail from whichever pane has focus (ctrl+d / ctrl+u)."""
        pane = self.query_one(DetailPane)
        if pages > 0:
            pane.scroll_page_down(animate=False)
        else:
            pane.scroll_page_up(animate=False)

    def _layout_for(self, width: int, height: int) -> None:
        self.set_class(width >= WIDE, "wide")
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        self.set_class(small, "small")
        warning = self.query_one("#size-warning", Static)
        warning.update(
            f"Terminal is {width}x{height}; ambiscope needs at least 80x24. "
            "The detail pane is hidden: press enter to view it full-screen."
            if small
            else ""
        )
