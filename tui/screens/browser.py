"""The browser (home screen): filter bar, virtual clip table and the detail pane.

Every read and write runs in a thread worker on a connection of its own for the call
(pooled, ambiscope.tui.data) and reports back with a message from ambiscope.tui.messages; handlers only
update widgets. Queries are
numbered (`generation`): when the sort or filter changes, answers to the old query are
dropped. Audit edits are queued and applied one at a time in order, each returning its
inverse for the undo stack.
"""

from __future__ import annotations

import contextlib
import gc
import shlex
import sqlite3
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Static
from textual.worker import get_current_worker

from ambiscope.core.browse import query as browse
from ambiscope.core.browse.filters import FilterError, parse_filter
from ambiscope.core.browse.query import SORTABLE, BrowseQuery
from ambiscope.tui import data
from ambiscope.tui.data import ClipDetail, Edit, WorkspaceContext
from ambiscope.tui.keys import bindings
from ambiscope.tui.messages import (
    BulkCounted,
    ContextLoaded,
    CountLoaded,
    DetailFailed,
    DetailLoaded,
    EditFailed,
    EditSaved,
    ExportDone,
    IdsLoaded,
    JobsChanged,
    PageLoaded,
    QueryFailed,
    TaskFailed,
    WaveformLoaded,
)
from ambiscope.tui.playback import NO_DEVICE_HELP
from ambiscope.tui.screens.modals import (
    BulkModal,
    BulkRequest,
    ChoiceModal,
    ConfirmModal,
    ExportModal,
    ExportRequest,
    NoteModal,
    PromptModal,
)
from ambiscope.tui.screens.resample import ResampleModal, ResampleRequest
from ambiscope.tui.widgets.clip_table import COLUMNS, ClipTable
from ambiscope.tui.widgets.detail import DetailView

NUMERIC_SORTS = {"entropy", "model_entropy", "js", "flags", "ambiguity"}
PREFERRED_STRATEGIES = ("wbon", "wverifier", "vote", "bon")
MIN_SIZE = (80, 24)
DETAIL_DEBOUNCE_S = 0.1
WIDE = 140


class BrowserScreen(Screen[None]):
    """See module docstring."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *bindings("browser"),
        *(Binding(str(i), f"vote({i})", f"vote {i}", show=False) for i in range(1, 10)),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.context: WorkspaceContext | None = None
        self.query_state = BrowseQuery()
        self.generation = 0
        self.detail: ClipDetail | None = None
        self.undo_stack: list[Edit] = []
        self._edits: deque[tuple[Edit, bool]] = deque()
        self._writing = False
        self._detail_timer: Timer | None = None
        self._told_no_device = False
        self._pending_clip: int | None = None
        self._query_conn: sqlite3.Connection | None = None
        self._query_lock = threading.Lock()
        self._deferred_pages: set[int] = set()
        self._query_page = 0
        self._filter_error = ""
        self._topbar: Text | None = None

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static("", id="topbar")
        yield Input(
            placeholder="/ filter: ambiguity:high disagree js>0.3 tag:review label:angry words…",
            id="filter",
        )
        yield Static("", id="filter-error")
        yield Static("", id="size-warning")
        with Container(id="main"):
            yield ClipTable(page_size=self.app.settings.page_size, id="table")  # type: ignore[attr-defined]
            with VerticalScroll(id="detail-pane"):
                yield DetailView(id="detail")
        yield Footer()

    @property
    def table(self) -> ClipTable:
        return self.query_one(ClipTable)

    @property
    def detail_view(self) -> DetailView:
        return self.query_one(DetailView)

    @property
    def access(self) -> data.WorkspaceAccess:
        return self.app.access  # type: ignore[attr-defined]

    @property
    def settings(self) -> Any:
        return self.app.settings  # type: ignore[attr-defined]

    def on_mount(self) -> None:
        self.table.focus()
        self._layout_for(self.size.width, self.size.height)
        self.load_context()

    def on_resize(self) -> None:
        self._layout_for(self.size.width, self.size.height)

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
                strategy = next((s for s in PREFERRED_STRATEGIES if s in names), None)
                strategy = strategy or (names[0] if names else None)
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
        with self._query_lock:
            running = self._query_conn
            if running is not None:  # stop the superseded query's SQL instead of waiting
                with contextlib.suppress(Exception):
                    running.interrupt()
        self.fetch_query(self.generation, self.query_state, page, table.cursor_row)
        self._update_topbar()

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
                    if worker.is_cancelled:
                        return
                    rows = browse.fetch_rows(ws.conn, query, ids[page * size : (page + 1) * size])
                finally:
                    with self._query_lock:  # before the connection goes back to the pool
                        if self._query_conn is ws.conn:
                            self._query_conn = None
        except Exception as exc:
            if not worker.is_cancelled:  # an interrupted, superseded query is no error
                self.post_message(QueryFailed(generation, _one_line(exc)))
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
            self.post_message(QueryFailed(generation, _one_line(exc)))
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

    @on(CountLoaded)
    def _count_loaded(self, message: CountLoaded) -> None:
        self._counted(message.generation, message.count)

    def _counted(self, generation: int, count: int) -> None:
        self.table.set_count(generation, count)
        self._update_topbar()
        if count == 0 and generation == self.generation:
            self.detail = None
            self.detail_view.detail = None
            self.detail_view.message = self.table.empty_message

    @on(IdsLoaded)
    def _ids_loaded(self, message: IdsLoaded) -> None:
        table = self.table
        if message.generation != self.generation:
            return
        table.set_ids(message.generation, message.ids)
        self._counted(message.generation, len(message.ids))
        deferred, self._deferred_pages = self._deferred_pages, set()
        deferred.discard(self._query_page)  # the query worker brings that page itself
        for page in sorted(deferred):
            if page in table.pending and page * table.page_size < len(message.ids):
                self.fetch_page(message.generation, self.query_state, page, message.ids)
            else:
                table.page_failed(message.generation, page)

    @on(QueryFailed)
    def _query_failed(self, message: QueryFailed) -> None:
        self._show_filter_error(message.message)
        for page in list(self.table.pending):
            self.table.page_failed(message.generation, page)

    def set_sort(self, column: str, descending: bool | None = None) -> None:
        """Sort by a column id (see ambiscope.core.browse.query.SORTABLE); numeric columns default to desc."""
        if column not in SORTABLE:
            return
        if descending is None:
            descending = column in NUMERIC_SORTS
        self.query_state = self.query_state.with_(sort=column, descending=descending)
        self.run_query(same_rows=True)

    def apply_filter(self, text: str) -> bool:
        """Apply filter text after checking it; errors show under the filter line."""
        text = " ".join(text.split())
        try:
            flt = parse_filter(text)
        except FilterError as exc:
            self._show_filter_error(str(exc))
            return False
        if (flt.needs_prediction or flt.needs_run) and not self.query_state.has_model:
            self._show_filter_error(
                "this filter needs a model run: press R to pick a run and strategy"
            )
            return False
        self._show_filter_error("")
        filt = self.query_one("#filter", Input)
        if filt.value != text:
            with filt.prevent(Input.Changed):
                filt.value = text
        self.query_state = self.query_state.with_(filter_text=text)
        self.run_query()
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
        ctx = self.context
        q = self.query_state
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("ambiscope ", style="bold")
        text.append(Path(self.access.path).name, style="dim")
        if ctx is None:
            text.append(" · opening…")
        else:
            table = self.table
            count = f"{table.row_count:,}" if table.counted else "…"
            text.append(f" · {count}/{ctx.total_clips:,} clips")
            run = ctx.run(q.run_id)
            if run is None:
                text.append(" · no model runs yet (r queues one)", style="yellow")
            else:
                text.append(f" · run {run.label} · {q.strategy}", style="bold")
            col = next((c for c in COLUMNS if c.id == q.sort), None)
            arrow = "↓" if q.descending else "↑"
            text.append(f" · sort {col.header if col else q.sort}{arrow}", style="dim")
            if self.settings.include_own_votes:
                text.append(" · own votes in human", style="dim")
        jobs = getattr(self.app, "jobs_summary", "")
        if jobs:
            text.append(f" · {jobs}", style="cyan")
        if text != self._topbar:  # an update re-lays the screen out
            self._topbar = text
            self.query_one("#topbar", Static).update(text)

    def refresh_topbar(self) -> None:
        self._update_topbar()

    # ------------------------------------------------------------------ detail
    @on(ClipTable.CursorMoved)
    def _cursor_moved(self, message: ClipTable.CursorMoved) -> None:
        if message.clip_id is None:
            return
        self._pending_clip = message.clip_id
        if self._detail_timer is not None:
            self._detail_timer.stop()
        if not message.navigating:  # new rows under a still cursor: show them now
            if self.detail is None or self.detail.clip.id != message.clip_id:
                self._load_pending_detail()  # (a query brings its first detail itself)
            return
        # debounce: a held key repeats every ~30-50 ms; the detail (a read and a re-layout
        # of the pane) follows once the cursor rests instead of on every row it passes
        self._detail_timer = self.set_timer(DETAIL_DEBOUNCE_S, self._load_pending_detail)

    def _load_pending_detail(self) -> None:
        if self._pending_clip is not None:
            self.reload_detail(self._pending_clip)

    def reload_detail(self, clip_id: int | None = None) -> None:
        clip_id = clip_id if clip_id is not None else self.table.current_clip_id
        if clip_id is None:
            return
        q = self.query_state
        self.fetch_detail(clip_id, q.run_id, q.strategy)

    @work(thread=True, exclusive=True, group="detail")
    def fetch_detail(self, clip_id: int, run_id: int | None, strategy: str | None) -> None:
        try:
            detail = data.load_detail(self.access, clip_id, run_id, strategy, self.settings.user)
        except Exception as exc:
            self.post_message(DetailFailed(clip_id, _one_line(exc)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(DetailLoaded(detail))

    @work(thread=True, exclusive=True, group="waveform")
    def fetch_waveform(self, path: Path | None, clip_id: int) -> None:
        wave = data.load_waveform(path, clip_id)
        if not get_current_worker().is_cancelled:
            self.post_message(WaveformLoaded(wave))

    @on(DetailLoaded)
    def _detail_loaded(self, message: DetailLoaded) -> None:
        detail = message.detail
        if detail.clip.id != self.table.current_clip_id:
            return
        previous = self.detail
        self.detail = detail
        view = self.detail_view
        view.message = ""
        view.detail = detail
        wave = view.waveform
        if previous is None or previous.clip.id != detail.clip.id or wave is None:
            if detail.audio_path is None:  # nothing to read: no worker, one layout pass
                view.waveform = data.load_waveform(None, detail.clip.id)
                return
            if wave is not None and wave.clip_id != detail.clip.id:
                view.waveform = None
            self.fetch_waveform(detail.audio_path, detail.clip.id)

    @on(DetailFailed)
    def _detail_failed(self, message: DetailFailed) -> None:
        self.detail_view.detail = None
        self.detail_view.message = f"cannot show this clip: {message.message}"

    @on(WaveformLoaded)
    def _waveform_loaded(self, message: WaveformLoaded) -> None:
        if self.detail is not None and message.waveform.clip_id == self.detail.clip.id:
            self.detail_view.waveform = message.waveform

    def _current(self) -> ClipDetail | None:
        """The detail of the highlighted clip, if it is loaded (edits need its facts)."""
        d = self.detail
        if d is None or d.clip.id != self.table.current_clip_id:
            self.notify("the clip is still loading; try again", severity="warning", timeout=2)
            return None
        return d

    # ------------------------------------------------------------------ actions: browse
    def action_noop(self) -> None:
        """Documented keys handled by widgets themselves."""

    def action_table_cursor(self, delta: int) -> None:
        self.table.action_cursor(delta)

    def action_toggle_detail(self) -> None:
        maxed = not self.has_class("detail-max")
        self.set_class(maxed, "detail-max")
        self.table.focus()
        self.call_after_refresh(self.table._scroll_to_cursor)

    def action_next_sort(self) -> None:
        visible = [
            c.id
            for c in COLUMNS
            if c.id not in self.table.hidden and (self.query_state.has_model or not c.model)
        ]
        current = self.query_state.sort
        i = visible.index(current) if current in visible else -1
        self.set_sort(visible[(i + 1) % len(visible)])

    def action_reverse_sort(self) -> None:
        q = self.query_state
        self.set_sort(q.sort, not q.descending)

    @on(ClipTable.SortRequested)
    def _sort_requested(self, message: ClipTable.SortRequested) -> None:
        q = self.query_state
        if message.column == q.sort:
            self.set_sort(q.sort, not q.descending)
        else:
            self.set_sort(message.column)

    def action_pick_run(self) -> None:
        ctx = self.context
        if ctx is None:
            return
        choices = [("none", "no model (human columns only)")]
        for run in ctx.runs:
            ds = ctx.dataset(run.dataset_id)
            for strategy in ctx.strategies.get(run.id, ()):
                choices.append(
                    (
                        f"{run.id}:{strategy}",
                        f"{run.label} · {strategy} · {ds.name if ds else '?'} · "
                        f"{run.mode} N={run.n}",
                    )
                )
        if len(choices) == 1:
            self.notify("no runs with predictions yet: press r to queue a sampling job")
        q = self.query_state
        current = f"{q.run_id}:{q.strategy}" if q.has_model else "none"
        self.app.push_screen(ChoiceModal("Run and strategy", choices, current), self._run_picked)

    def _run_picked(self, choice: str | None) -> None:
        if choice is None:
            return
        if choice == "none":
            self.select_model(None, None)
        else:
            run_id, strategy = choice.split(":", 1)
            self.select_model(int(run_id), strategy)

    def select_model(self, run_id: int | None, strategy: str | None) -> None:
        q = self.query_state
        sort = q.sort
        flt = q.filter_text
        if run_id is None:
            if sort in ("model", "model_entropy", "js"):
                sort = "key"
            if parse_filter(flt).needs_prediction or parse_filter(flt).needs_run:
                flt = ""
                self.query_one("#filter", Input).value = ""
        self.query_state = q.with_(run_id=run_id, strategy=strategy, sort=sort, filter_text=flt)
        self.run_query(keep_position=True)
        self.reload_detail()

    def action_cycle_strategy(self, step: int) -> None:
        ctx = self.context
        q = self.query_state
        if ctx is None or q.run_id is None:
            self.notify("no run selected (R picks one)")
            return
        names = list(ctx.strategies.get(q.run_id, ()))
        if not names:
            return
        i = names.index(q.strategy) if q.strategy in names else -1
        self.select_model(q.run_id, names[(i + step) % len(names)])

    # ------------------------------------------------------------------ actions: filter
    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if self.apply_filter(event.value):
            self.table.focus()

    def on_key(self, event: Any) -> None:
        if event.key == "escape" and self.focused is self.query_one("#filter", Input):
            self.table.focus()
            event.stop()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.apply_filter("")

    def _terms(self) -> list[str]:
        try:
            return shlex.split(self.query_state.filter_text)
        except ValueError:
            return self.query_state.filter_text.split()

    def _set_terms(self, terms: list[str]) -> None:
        self.apply_filter(" ".join(shlex.quote(t) if " " in t else t for t in terms))

    def action_cycle_term(self, field: str) -> None:
        ctx = self.context
        if ctx is None:
            return
        values: list[str] = {
            "ambiguity": ["low", "medium", "high"],
            "split": list(ctx.splits),
            "label": list(ctx.majorities),
            "dataset": [d.name for d in ctx.datasets],
        }[field]
        if not values:
            self.notify(f"no {field} values to filter by")
            return
        terms = self._terms()
        prefix = f"{field}:"
        current = next((t[len(prefix) :] for t in terms if t.startswith(prefix)), None)
        terms = [t for t in terms if not t.startswith(prefix)]
        if current is None:
            terms.append(prefix + values[0])
        elif current in values and values.index(current) + 1 < len(values):
            terms.append(prefix + values[values.index(current) + 1])
        self._set_terms(terms)

    def action_toggle_term(self, name: str) -> None:
        terms = self._terms()
        if name == "js":
            term = f"js>{self.settings.js_threshold:g}"
            present = [t for t in terms if t.startswith("js>")]
        else:
            term = name
            present = [t for t in terms if t == name]
        if present:
            terms = [t for t in terms if t not in present]
        else:
            terms.append(term)
        self._set_terms(terms)

    # ------------------------------------------------------------------ actions: listen
    def action_play(self) -> None:
        detail = self._current()
        if detail is None:
            return
        if detail.audio_path is None:
            self.notify("this clip has no audio file", severity="warning")
            return
        if self.app.is_web:
            if not detail.audio_path.exists():
                self.notify(f"audio file not found: {detail.audio_path}", severity="error")
                return
            self.app.deliver_binary(
                detail.audio_path,
                open_method="browser",
                mime_type="audio/wav" if detail.audio_path.suffix.lower() == ".wav" else None,
                name=f"play:{detail.clip.key}",
            )
            self.notify(f"sent {detail.clip.key} to the browser", timeout=3)
            return
        player = self.app.player  # type: ignore[attr-defined]
        if player.playing == detail.clip.id:
            player.stop()
            self.notify("stopped", timeout=1)
            return
        player.stop()
        self.play_clip(detail.audio_path, detail.clip.id)

    @work(thread=True, exclusive=True, group="play")
    def play_clip(self, path: Path, clip_id: int) -> None:
        from ambiscope.core.audio import AudioError, load_audio

        player = self.app.player  # type: ignore[attr-defined]
        reason = player.check()
        if reason is not None:
            self.post_message(TaskFailed("no-device", reason))
            return
        try:
            audio = load_audio(path, max_seconds=600)
            player.play_blocking(clip_id, audio.samples, audio.sample_rate)
        except (AudioError, ValueError, RuntimeError, OSError) as exc:
            self.post_message(TaskFailed("play", _one_line(exc)))

    @on(TaskFailed)
    def _task_failed(self, message: TaskFailed) -> None:
        if message.what == "no-device":
            if self._told_no_device:
                self.notify(
                    "no audio device: x exports the clip; `ambiscope serve` plays in a browser",
                    severity="warning",
                    timeout=4,
                )
            else:
                self._told_no_device = True
                self.notify(
                    NO_DEVICE_HELP.format(reason=message.message),
                    title="Cannot play audio here",
                    severity="warning",
                    timeout=15,
                )
            return
        self.notify(f"{message.what} failed: {message.message}", severity="error", timeout=8)

    def action_export_clip(self) -> None:
        detail = self._current()
        if detail is None:
            return
        default = f"./{detail.clip.key}.wav"

        def chosen(path: str | None) -> None:
            if path:
                self.export_wav(detail.audio_path, Path(path).expanduser())

        self.app.push_screen(
            PromptModal(
                f"Export {detail.clip.key} as WAV",
                value=default,
                placeholder="output path",
                hint="16-bit PCM WAV at the clip's sample rate",
            ),
            chosen,
        )

    @work(thread=True, group="export")
    def export_wav(self, source: Path | None, target: Path) -> None:
        from ambiscope.core.audio import AudioError

        try:
            written = data.export_clip_wav(source, target)
        except (AudioError, ValueError, OSError) as exc:
            self.post_message(TaskFailed("export", _one_line(exc)))
            return
        self.post_message(ExportDone(written, 1, "clip"))

    @on(ExportDone)
    def _export_done(self, message: ExportDone) -> None:
        if message.what == "clip" and self.app.is_web:
            self.app.deliver_binary(message.path)
        noun = "clip" if message.count == 1 else "rows"
        self.notify(f"exported {message.count:,} {noun} to {message.path}", timeout=6)

    # ------------------------------------------------------------------ actions: audit
    def _row_flags(self) -> tuple[int, set[str]] | None:
        clip_id = self.table.current_clip_id
        row = self.table.row(self.table.cursor_row)
        if clip_id is None or row is None:
            return None
        return clip_id, set((row.flags or "").split(",")) - {""}

    def action_toggle_flag(self, name: str | None = None) -> None:
        found = self._row_flags()
        if found is None:
            return
        clip_id, flags = found
        name = name or self.settings.default_flag
        on_ = name not in flags
        verb = "flagged" if on_ else "unflagged"
        self.submit_edit(Edit("flag", (clip_id,), name, on_, description=f"{verb} {name!r}"))

    def action_pick_flag(self) -> None:
        names = self.settings.flag_names
        self.app.push_screen(
            ChoiceModal("Toggle flag", [(n, n) for n in names]),
            lambda name: self.action_toggle_flag(name) if name else None,
        )

    def action_tag(self) -> None:
        detail = self._current()
        if detail is None:
            return
        known = sorted(set(self.context.tag_names if self.context else ()) | set(detail.tags))
        current = ", ".join(detail.tags) or "none"

        def chosen(name: str | None) -> None:
            if not name:
                return
            on_ = name not in detail.tags
            verb = "tagged" if on_ else "untagged"
            self.submit_edit(
                Edit("tag", (detail.clip.id,), name, on_, description=f"{verb} {name!r}")
            )

        self.app.push_screen(
            PromptModal(
                f"Tag {detail.clip.key}",
                placeholder="tag name (→ completes)",
                suggestions=known,
                hint=f"current tags: {current}; an existing tag is removed",
            ),
            chosen,
        )

    def action_note(self) -> None:
        detail = self._current()
        if detail is None:
            return

        def saved(text: str | None) -> None:
            if text is not None and text != (detail.note or ""):
                self.submit_edit(
                    Edit("note", (detail.clip.id,), text=text, description="note saved")
                )

        self.app.push_screen(NoteModal(detail.clip.key, detail.note or ""), saved)

    def action_vote(self, index: int) -> None:
        detail = self._current()
        if detail is None:
            return
        labels = detail.labels
        mine = [v.label for v in detail.votes if v.kind == "self" and v.rank == 0]
        if index == 0:
            if not mine:
                self.notify("you have not voted on this clip", timeout=2)
                return
            votes: tuple[tuple[str, int, float], ...] = ()
            description = "own vote removed"
        elif index > len(labels):
            self.notify(f"{detail.dataset.name} has {len(labels)} labels", severity="warning")
            return
        else:
            label = labels[index - 1]
            if mine == [label]:
                self.notify(f"already your vote: {label} (0 clears)", timeout=2)
                return
            votes = ((label, 0, 1.0),)
            description = f"own vote: {label}"
        self.submit_edit(
            Edit(
                "vote",
                (detail.clip.id,),
                votes=votes,
                annotator=self.settings.self_annotator,
                description=description,
            )
        )

    def action_undo(self) -> None:
        if not self.undo_stack:
            self.notify("nothing to undo", timeout=2)
            return
        self.submit_edit(self.undo_stack.pop(), undo=True)

    def submit_edit(self, edit: Edit, undo: bool = False) -> None:
        """Queue an edit; edits are written one at a time, in order."""
        self._edits.append((edit, undo))
        self._next_edit()

    def _next_edit(self) -> None:
        if self._writing or not self._edits:
            return
        self._writing = True
        edit, undo = self._edits.popleft()
        self.write_edit(edit, undo)

    @work(thread=True, group="write")
    def write_edit(self, edit: Edit, undo: bool) -> None:
        try:
            result = data.apply_edit(
                self.access, edit, self.settings.user, self.settings.include_own_votes
            )
        except Exception as exc:  # the database may be locked or the clip gone
            self.post_message(EditFailed(f"{edit.description or edit.kind}: {_one_line(exc)}"))
            return
        self.post_message(EditSaved(result, undo))

    @on(EditSaved)
    def _edit_saved(self, message: EditSaved) -> None:
        self._writing = False
        result = message.result
        if not message.undo:
            self.undo_stack.append(result.inverse)
            del self.undo_stack[:-200]
            self.notify(result.edit.description or "saved", timeout=2)
        else:
            self.notify(f"undone: {result.edit.description}", timeout=3)
        if result.edit.kind in ("tag", "bulk_tag") or result.human_refreshed:
            self.load_context()
        self.run_query(keep_position=True)
        self.reload_detail()
        self._next_edit()

    @on(EditFailed)
    def _edit_failed(self, message: EditFailed) -> None:
        self._writing = False
        self.notify(f"not saved: {message.message}", severity="error", timeout=8)
        self._next_edit()

    def action_bulk(self) -> None:
        names = self.settings.flag_names
        tags = self.context.tag_names if self.context else ()
        self.app.push_screen(
            BulkModal(names, tags, self.query_state.filter_text), self._bulk_requested
        )

    def _bulk_requested(self, request: BulkRequest | None) -> None:
        if request is not None:
            self.count_bulk(self.query_state, request)

    @work(thread=True, exclusive=True, group="bulk")
    def count_bulk(self, query: BrowseQuery, request: BulkRequest) -> None:
        try:
            ids = data.bulk_targets(self.access, query, request.kind, request.name, request.on)
        except Exception as exc:
            self.post_message(EditFailed(f"bulk: {_one_line(exc)}"))
            return
        self.post_message(BulkCounted(request.kind, request.name, request.on, ids))

    @on(BulkCounted)
    def _bulk_counted(self, message: BulkCounted) -> None:
        what = "flag" if message.kind == "bulk_flag" else "tag"
        n = len(message.clip_ids)
        if n == 0:
            self.notify(f"no clip of the filter would change ({what} {message.name!r})")
            return
        verb = "Add" if message.on else "Remove"
        body = (
            f"{verb} {what} {message.name!r} {'to' if message.on else 'from'} {n:,} clips "
            f"matching: {self.query_state.filter_text or '(all clips)'}\n"
            "You can undo this with u."
        )

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.submit_edit(
                    Edit(
                        message.kind,  # type: ignore[arg-type]
                        tuple(message.clip_ids),
                        message.name,
                        message.on,
                        description=f"{what} {message.name!r} "
                        f"{'added to' if message.on else 'removed from'} {n:,} clips",
                    )
                )

        self.app.push_screen(ConfirmModal(f"{verb} {what} on {n:,} clips?", body), confirmed)

    # ------------------------------------------------------------------ actions: models
    def action_resample(self) -> None:
        detail = self._current()
        if detail is None:
            return
        run = detail.run
        defaults: dict[str, Any] = {}
        if run is not None:
            from ambiscope.core.synthetic.raters import is_synthetic_run

            spec = run.config.get("spec") if isinstance(run.config, dict) else None
            # a synthetic-annotator run's spec is not a sampling spec: start from its model
            usable = isinstance(spec, dict) and not is_synthetic_run(run)
            defaults = dict(spec) if usable else {}
            defaults.update(
                model=run.model,
                backend=run.backend,
                mode=run.mode,
                n=run.n,
                temperature=run.temperature if run.temperature is not None else 0.8,
                search=run.search,
                verifier=run.verifier,
            )
        counts = {"filter": self.table.row_count if self.table.counted else None}
        self.app.push_screen(
            ResampleModal(detail.dataset.name, defaults, counts, detail.clip.key),
            lambda req: self._resample_requested(req, detail),
        )

    def _resample_requested(self, request: ResampleRequest | None, detail: ClipDetail) -> None:
        if request is None:
            return
        query = self.query_state.with_(dataset_id=detail.dataset.id)
        self.enqueue_resample(request, detail.clip.id, query)

    @work(thread=True, group="enqueue")
    def enqueue_resample(self, request: ResampleRequest, clip_id: int, query: BrowseQuery) -> None:
        from ambiscope.tui import jobs_bridge

        try:
            if request.scope == "clip":
                ids = [clip_id]
            elif request.scope == "flagged":
                ids = data.clip_ids_for(self.access, replace(query, filter_text="flagged"))
            else:
                ids = data.clip_ids_for(self.access, query)
            if not ids:
                raise ValueError(f"no clips in scope {request.scope!r}")
            message = jobs_bridge.enqueue_resample(self.access.path, request.spec, ids)
        except Exception as exc:
            self.post_message(TaskFailed("re-sample", _one_line(exc)))
            return
        self.app.call_from_thread(self.notify, message, timeout=6)
        self.app.call_from_thread(self.app.poll_jobs)  # type: ignore[attr-defined]

    @on(JobsChanged)
    def _jobs_changed(self, message: JobsChanged) -> None:
        self.load_context()
        self.run_query(keep_position=True)
        self.reload_detail()

    def action_export(self) -> None:
        from ambiscope.tui import export_bridge

        subset, metrics = export_bridge.formats()
        self.app.push_screen(
            ExportModal(
                subset,
                metrics,
                self.query_state.filter_text,
                self.table.row_count,
                subset_is_dir=export_bridge.subset_is_directory(),
            ),
            self._export_requested,
        )

    def _export_requested(self, request: ExportRequest | None) -> None:
        if request is not None:
            self.run_export(request, self.query_state)

    @work(thread=True, exclusive=True, group="export")
    def run_export(self, request: ExportRequest, query: BrowseQuery) -> None:
        from ambiscope.tui import export_bridge

        started = time.perf_counter()
        try:
            path, count = export_bridge.export(
                self.access, request, query, self.settings.include_own_votes
            )
        except Exception as exc:
            self.post_message(TaskFailed("export", _one_line(exc)))
            return
        del started
        self.post_message(ExportDone(path, count, request.what))


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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
