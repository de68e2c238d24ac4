"""The browser's query and paging: context, ordered ids, pages, sort, filter, top bar.

Every read runs in a thread worker on a pooled connection of its own (ambiscope.tui.data)
and reports back with a message from ambiscope.tui.messages; handlers only update
widgets. Queries are numbered (`generation`): when the sort or filter changes, answers to
the old query are dropped, and the superseded query's SQL is interrupted.
"""

from __future__ import annotations

import contextlib
import gc
import sqlite3
import threading
from array import array
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.timer import Timer
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from ambiscope.core.browse import query as browse
from ambiscope.core.browse.audit_queue import DEFAULT_TOP
from ambiscope.core.browse.filters import FilterError, parse_filter
from ambiscope.core.browse.query import SORTS, BrowseQuery
from ambiscope.core.scaling.strategies import preferred_strategy
from ambiscope.core.text import one_line
from ambiscope.db.access import WorkspaceAccess
from ambiscope.tui import data, jobs_bridge
from ambiscope.tui.data import ClipDetail, WorkspaceContext
from ambiscope.tui.messages import (
    ContextLoaded,
    DetailLoaded,
    IdsLoaded,
    PageLoaded,
    QueryFailed,
)
from ambiscope.tui.screens.base import AppScreen
from ambiscope.tui.screens.browser import header
from ambiscope.tui.settings import Settings
from ambiscope.tui.widgets.clip_table import COLUMNS, ClipTable
from ambiscope.tui.widgets.detail import DetailView

NUMERIC_SORTS = {"entropy", "model_entropy", "js", "flags", "ambiguity", "priority"}
QUEUE = DEFAULT_TOP  # clips of the audit queue the header counts (`ambiscope queue --top`)
TOPBAR_PADDING = 2  # #topbar's padding (app.tcss)


class QueryPaging(AppScreen):
    """The query on screen and the rows it brings (see module docstring)."""

    context: WorkspaceContext | None
    query_state: BrowseQuery
    detail: ClipDetail | None  # of the clip under the cursor, once loaded
    _detail_timer: Timer | None  # debounces the detail while the cursor moves

    def __init__(self) -> None:
        super().__init__()
        self.context = None
        self.query_state = BrowseQuery()
        self.generation = 0
        self.detail = None
        self._detail_timer = None
        self._query_conn: sqlite3.Connection | None = None
        self._query_lock = threading.Lock()
        self._deferred_pages: set[int] = set()
        self._query_page = 0
        self._filter_error = ""
        # filter text applied but not yet run: run_query takes it into `query_state` once
        # it can run, and shows the error state meanwhile (see apply_filter)
        self._pending_filter: str | None = None
        self._topbar: Text | None = None

    @property
    def table(self) -> ClipTable:
        return self.query_one(ClipTable)

    @property
    def detail_view(self) -> DetailView:
        return self.query_one(DetailView)

    @property
    def access(self) -> WorkspaceAccess:
        return self.app.access

    @property
    def settings(self) -> Settings:
        return self.app.settings

    # ------------------------------------------------------------------ context
    @work(thread=True, exclusive=True, group="context")
    def load_context(self) -> None:
        try:
            ctx = data.load_context(self.access)
        except Exception as exc:  # a broken workspace must not crash the UI
            self.post_message(QueryFailed(self.generation, f"cannot read workspace: {exc}"))
            return
        self.post_message(ContextLoaded(ctx))

    @on(ContextLoaded)
    def _context_loaded(self, message: ContextLoaded) -> None:
        first = self.context is None
        self.context = ctx = message.context
        q = self.query_state
        run = ctx.run(q.run_id)
        if run is None and ctx.runs:
            run = ctx.runs[-1]
        strategy = q.strategy
        if run is not None:
            names = ctx.strategies.get(run.id, ())
            if strategy not in names:
                strategy = preferred_strategy(names) or (names[0] if names else None)
        changed = run is not None and (run.id != q.run_id or strategy != q.strategy)
        self.query_state = q.with_(
            run_id=run.id if run else None, strategy=strategy if run else None
        )
        if first or changed:
            self.run_query(keep_position=not first)
        self._update_topbar()

    # ------------------------------------------------------------------ queries
    def run_query(self, *, keep_position: bool = False, same_rows: bool = False) -> None:
        """Start the current query: the ordered ids first, then the page at the cursor.

        One worker reads every matching id in order (which is also the row count) and
        then the rows of the page on screen by id, so a sort or filter costs one ordered
        read instead of a top-N page sort, a count and the id list (three full scans).
        Pages wanted before the ids arrive wait for them (`_deferred_pages`).
        `same_rows` (a sort) keeps the known count on screen meanwhile.
        """
        self.generation += 1
        table = self.table
        known = table.row_count if same_rows and table.counted else None
        hidden = set()
        if self.context is not None and len(self.context.datasets) <= 1:
            hidden.add("dataset")
        table.set_display(
            sort=self.query_state.sort,
            descending=self.query_state.descending,
            has_model=self.query_state.has_model,
            hidden=hidden,
        )
        problem = self._take_pending_filter()
        if problem:
            self._stop_running_query()
            self._show_error_state(problem)
            return
        table.empty_message = (
            "no clips match this filter (c clears it)"
            if self.query_state.filter_text.strip()
            else "this workspace has no clips yet: import a corpus or run `ambiscope demo`"
        )
        table.new_query(self.generation, keep_position=keep_position)
        if known is not None:
            table.set_count(self.generation, known)
        if not keep_position and self._detail_timer is not None:
            self._detail_timer.stop()  # the cursor goes to the new first row
        page = table.cursor_row // table.page_size if keep_position else 0
        table.pending.add(page)
        self._deferred_pages = set()
        self._query_page = page
        self._stop_running_query()
        self.fetch_query(self.generation, self.query_state, page, table.cursor_row)
        self._update_topbar()

    def _stop_running_query(self) -> None:
        """Interrupt the superseded query's SQL instead of waiting for it."""
        with self._query_lock:
            running = self._query_conn
            if running is not None:
                with contextlib.suppress(Exception):
                    running.interrupt()

    @work(thread=True, exclusive=True, group="query")
    def fetch_query(self, generation: int, query: BrowseQuery, page: int, row: int) -> None:
        worker = get_current_worker()
        size = self.table.page_size
        if worker.is_cancelled:
            return
        try:
            with self.access.reader() as ws:
                with self._query_lock:
                    self._query_conn = ws.conn
                try:
                    ids = browse.ordered_ids(ws.conn, query)
                    browse.check_filter(ws.conn, query, len(ids))  # `split:tset` is an error
                    if worker.is_cancelled:
                        return
                    rows = browse.fetch_rows(ws.conn, query, ids[page * size : (page + 1) * size])
                finally:
                    with self._query_lock:  # before the connection goes back to the pool
                        if self._query_conn is ws.conn:
                            self._query_conn = None
        except Exception as exc:
            if not worker.is_cancelled:  # an interrupted, superseded query is no error
                self.post_message(QueryFailed(generation, one_line(exc)))
            return
        detail = None
        if row < len(ids):  # the clip under the cursor, so the detail pane updates with it
            with contextlib.suppress(Exception):  # else the cursor handler loads it
                detail = data.load_detail(
                    self.access, ids[row], query.run_id, query.strategy, self.settings.user
                )
        if not worker.is_cancelled:  # together, so the screen updates once
            self.post_message(IdsLoaded(generation, ids))
            self.post_message(PageLoaded(generation, page, rows))
            if detail is not None:
                self.post_message(DetailLoaded(detail))

    @work(thread=True, group="pages")
    def fetch_page(self, generation: int, query: BrowseQuery, page: int, ids: Any) -> None:
        size = self.table.page_size
        try:
            with self.access.reader() as ws:
                if ids is not None:
                    rows = browse.fetch_rows(ws.conn, query, ids[page * size : (page + 1) * size])
                else:
                    rows = browse.fetch_page(ws.conn, query, page * size, size)
        except Exception as exc:
            self.post_message(QueryFailed(generation, one_line(exc)))
            return
        self.post_message(PageLoaded(generation, page, rows))

    @on(ClipTable.PageNeeded)
    def _page_needed(self, message: ClipTable.PageNeeded) -> None:
        if message.generation != self.generation:
            return
        ids = self.table.ids
        if ids is None:  # fetched by id once the query's ids are known
            self._deferred_pages.add(message.page)
            return
        self.fetch_page(message.generation, self.query_state, message.page, ids)

    @on(PageLoaded)
    def _page_loaded(self, message: PageLoaded) -> None:
        self.table.set_page(message.generation, message.page, message.rows)
        if not _heap_frozen:
            self.call_after_refresh(freeze_startup_heap)

    @on(IdsLoaded)
    def _ids_loaded(self, message: IdsLoaded) -> None:
        table = self.table
        if message.generation != self.generation:
            return
        table.set_ids(message.generation, message.ids)
        count = len(message.ids)
        table.set_count(message.generation, count)
        self._update_topbar()
        if count == 0:
            self.detail = None
            self.detail_view.detail = None
            self.detail_view.message = table.empty_message
        deferred, self._deferred_pages = self._deferred_pages, set()
        deferred.discard(self._query_page)  # the query worker brings that page itself
        for page in sorted(deferred):
            if page in table.pending and page * table.page_size < count:
                self.fetch_page(message.generation, self.query_state, page, message.ids)
            else:
                table.page_failed(message.generation, page)

    @on(QueryFailed)
    def _query_failed(self, message: QueryFailed) -> None:
        if message.generation == self.generation:  # a superseded query's failure is moot
            self._show_error_state(message.message)

    def _show_error_state(self, message: str) -> None:
        """No rows while the filter cannot run or the query failed: an empty table, the
        reason under the filter line, and no clip under the cursor, so that no key acts
        on a clip of the previous results (they would show under the new filter text)."""
        self.generation += 1  # pages of the failed query still on their way are dropped
        table = self.table
        table.empty_message = "no rows: see the error above (c clears the filter)"
        table.new_query(self.generation, keep_position=False)
        table.set_ids(self.generation, array("q"))
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self.detail = None
        self.detail_view.detail = None
        self.detail_view.message = table.empty_message
        self._show_filter_error(message)
        self._update_topbar()

    def set_sort(self, column: str, descending: bool | None = None) -> None:
        """Sort by a column id or `priority` (ambiscope.core.browse.query.SORTS); numeric
        ones descend."""
        if column not in SORTS:
            return
        if descending is None:
            descending = column in NUMERIC_SORTS
        self.query_state = self.query_state.with_(sort=column, descending=descending)
        self.run_query(same_rows=True)

    def apply_filter(self, text: str) -> bool:
        """Apply filter text; False when it cannot run as typed (the reason then shows).

        A filter that cannot run, or whose values the workspace lacks (the query worker
        finds those), leaves the error state on screen until one that runs is applied;
        `query_state` keeps the last filter that could run (what bulk edits act on).
        """
        text = " ".join(text.split())
        filt = self.query_one("#filter", Input)
        if filt.value != text:
            with filt.prevent(Input.Changed):
                filt.value = text
        self._pending_filter = text
        self.run_query()
        return self._pending_filter is None

    def _take_pending_filter(self) -> str:
        """Move the applied filter text into `query_state` if it can run, else say why.

        Checked on every query, so a filter refused for want of a model run applies as
        soon as a run is picked, and a sort meanwhile keeps the error state.
        """
        text = self._pending_filter
        if text is None:
            return ""
        problem = self._filter_problem(text)
        if not problem:
            self._pending_filter = None
            self.query_state = self.query_state.with_(filter_text=text)
            self._show_filter_error("")
        return problem

    def _filter_problem(self, text: str) -> str:
        """Why filter text cannot run ('' when it can), without reading the workspace."""
        try:
            flt = parse_filter(text)
        except FilterError as exc:
            return str(exc)
        if (flt.needs_prediction or flt.needs_run) and not self.query_state.has_model:
            return "this filter needs a model run: press R to pick a run and strategy"
        return ""

    def refuse_while_filter_error(self, what: str) -> bool:
        """True (and say so) when the filter line holds an error: bulk edits and exports
        act on the filter, and the table shows none while it is wrong."""
        if not self._filter_error:
            return False
        self.notify(f"fix the filter first: {what} acts on it", severity="warning", timeout=4)
        return True

    def _show_filter_error(self, message: str) -> None:
        if message == self._filter_error:  # an update re-lays the screen out
            return
        self._filter_error = message
        widget = self.query_one("#filter-error", Static)
        widget.update(message)
        widget.set_class(bool(message), "visible")

    # ------------------------------------------------------------------ topbar
    def _update_topbar(self) -> None:
        """Redraw the header, fitted to the screen (ambiscope.tui.screens.browser.header)."""
        text = header.fit(self._topbar_parts(), self.size.width - TOPBAR_PADDING)
        if text != self._topbar:  # an update re-lays the screen out
            self._topbar = text
            self.query_one("#topbar", Static).update(text)

    @property
    def in_queue(self) -> bool:
        """The table shows the audit queue: sorted by priority, highest first."""
        return self.query_state.sort == "priority" and self.query_state.descending

    def _topbar_parts(self) -> list[header.Part]:
        ctx = self.context
        q = self.query_state
        name = Path(self.access.path).name
        parts = [
            header.Part(("ambiscope", ""), "bold", give=0),
            header.Part((name, name[:11] + "…" if len(name) > 12 else name, ""), "dim", give=1),
        ]
        if self.access.readonly:
            parts.append(header.Part(("read-only", "ro"), "bold yellow", give=3))
        if ctx is None:
            parts.append(header.Part(("opening…",)))
        else:
            count = f"{self.table.row_count:,}" if self.table.counted else "…"
            shown = f"{count}/{ctx.total_clips:,}"
            parts.append(header.Part((f"{shown} clips", shown), give=2))
            run = ctx.run(q.run_id)
            if run is None:
                parts.append(
                    header.Part(("no model runs yet (r queues one)", "no runs"), "yellow", give=4)
                )
            else:
                parts.append(header.run_part(run))
                strategy = q.strategy or "no predictions yet"
                parts.append(header.Part((strategy,), "bold"))
            col = next((c for c in COLUMNS if c.id == q.sort), None)
            arrow = "↓" if q.descending else "↑"
            parts.append(header.Part((f"sort {col.header if col else q.sort}{arrow}",), "dim"))
            if self.in_queue and self.table.counted:
                parts.append(header.queue_part(self.table.cursor_row, self.table.row_count, QUEUE))
            if self.settings.include_own_votes:
                parts.append(header.Part(("own votes in human", "+own", ""), "dim", give=1))
        snapshot = self.app.jobs_snapshot
        jobs = jobs_bridge.summary(snapshot) if snapshot is not None else ""
        if jobs:
            parts.append(header.Part((jobs,), "cyan"))
        return parts

    @on(events.Resize)
    def _refit_topbar(self) -> None:
        self._update_topbar()

    def refresh_topbar(self) -> None:
        self._update_topbar()


_heap_frozen = False


def freeze_startup_heap() -> None:
    """Keep the objects alive after startup out of the cyclic collector (once a process).

    Textual, numpy and the app leave ~120k long-lived objects behind; every full
    collection walked them all (45-70 ms on the UI thread, about once a second while
    keys repeat). After one collection they go to the permanent generation (gc.freeze).
    """
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()
