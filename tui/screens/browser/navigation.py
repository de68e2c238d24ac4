"""Browser keys that change what is shown: cursor, sort, run and strategy, filter terms,
and the walk through the audit queue.

The quick filter keys (A P L D ! M >) edit the same filter text the `/` line shows, so a
researcher can always see, and type over, what the keys did. When a re-sample job
finishes having created a run, a toast offers to switch to it: the run picker (R) then
opens on that run, so R, enter switches.

The audit queue is the table sorted by `priority` (ambiscope.core.browse.priority),
highest first, under the current filter, run and strategy: `Q` shows it from its top,
`.` / `,` step to the next / previous clip of its first `QUEUE` clips (the header says
`queue 3/50`), and the flag, tag, note and vote keys act on the clip under the cursor
as anywhere. (`n` and `p`, the obvious pair, are taken: `n` edits the note.) Edits
re-read the table in place, so the walk goes on from the same row; a flag or tag does
not move a clip in the queue, an own vote only when own votes count in the human
distribution (`O`), as the priority reads it.
"""

from __future__ import annotations

import shlex

from textual import events, on, work
from textual.widgets import Input

from ambiscope.core.browse.filters import parse_filter
from ambiscope.core.browse.query import empty_columns
from ambiscope.core.scaling.strategies import preferred_strategy
from ambiscope.core.text import one_line
from ambiscope.tui import jobs_bridge
from ambiscope.tui.messages import JobsChanged, TaskFailed
from ambiscope.tui.screens.browser.detail import DetailLoading
from ambiscope.tui.screens.browser.header import run_title
from ambiscope.tui.screens.browser.query import QUEUE
from ambiscope.tui.screens.modals import RunPickerModal
from ambiscope.tui.widgets.clip_table import COLUMNS, ClipTable


class NavigationActions(DetailLoading):
    """Actions of the Browse and Filter key groups (ambiscope.tui.keys)."""

    _new_run_id: int | None = None  # created by a finished re-sample, offered by a toast

    # ------------------------------------------------------------------ browse
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
        """The next visible column with a value somewhere (empty ones are skipped; a header
        click still sorts by them)."""
        with self.access.reader() as ws:
            empty = empty_columns(ws.conn)
        visible = [
            c.id
            for c in COLUMNS
            if c.id not in self.table.hidden
            and (self.query_state.has_model or not c.model)
            and c.id not in empty
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
        """Runs newest first, each named (`#id name` or `#id model`) above its strategies."""
        ctx = self.context
        if ctx is None:
            return
        rows: list[tuple[str | None, str]] = [("none", "no model (human columns only)")]
        for run in reversed(ctx.runs):
            strategies = ctx.strategies.get(run.id, ())
            if not strategies:
                continue
            ds = ctx.dataset(run.dataset_id)
            about = [run_title(run), ds.name if ds else "?", f"{run.mode} N={run.n}"]
            if run.name and run.model:
                about.insert(1, run.model)
            rows.append((None, "run " + " · ".join(about)))
            rows += [(f"{run.id}:{strategy}", f"   {strategy}") for strategy in strategies]
        if len(rows) == 1:
            self.notify("no runs with predictions yet: press r to queue a sampling job")
        q = self.query_state
        current = self._offered_choice() or (f"{q.run_id}:{q.strategy}" if q.has_model else "none")
        self.app.push_screen(RunPickerModal("Run and strategy", rows, current), self._run_picked)

    def _offered_choice(self) -> str | None:
        """The picker row of the run a re-sample created (its preferred strategy), once:
        the toast that offered it said R, enter switches."""
        run_id = self._new_run_id
        names = self.context.strategies.get(run_id, ()) if self.context and run_id else ()
        if not names:  # the run has no predictions yet (or the context is not reloaded)
            return None
        self._new_run_id = None
        if run_id == self.query_state.run_id:
            return None
        return f"{run_id}:{preferred_strategy(names) or names[0]}"

    @on(JobsChanged)
    def _offer_created_runs(self, message: JobsChanged) -> None:
        done = [j.id for j in message.finished if j.kind == "resample" and j.status == "done"]
        if done:
            self.find_created_run(done)

    @work(thread=True, group="created-run")
    def find_created_run(self, job_ids: list[int]) -> None:
        """Read which run the finished jobs created (their stored result) and offer it."""
        try:
            created = [jobs_bridge.created_run(self.access.path, j) for j in job_ids]
        except Exception as exc:  # the offer is a convenience: say why, never crash
            self.post_message(TaskFailed("finished re-sample", one_line(exc)))
            return
        run_id = next((r for r in reversed(created) if r is not None), None)
        if run_id is not None:
            self.app.call_from_thread(self._offer_run, run_id)

    def _offer_run(self, run_id: int) -> None:
        self._new_run_id = run_id
        self.notify(
            f"re-sample done: switch to run #{run_id}? press R, enter", title="New run", timeout=20
        )

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

    # ------------------------------------------------------------------ audit queue
    def action_audit_queue(self) -> None:
        """Sort by priority, highest first; the cursor goes to the queue's first clip."""
        self.set_sort("priority", True)

    def action_queue_step(self, step: int) -> None:
        """The next (1) or previous (-1) clip of the queue; starts it under another sort."""
        if not self.in_queue:
            self.action_audit_queue()
            self.notify("audit queue: sorted by priority (. next, , previous)", timeout=3)
            return
        table = self.table
        length = min(QUEUE, table.row_count)
        row = table.cursor_row + step
        if step > 0 and row >= length:
            self.notify(f"end of the audit queue ({length} clips; Q goes back to its top)")
            return
        if row < 0:
            self.notify("first clip of the audit queue", timeout=2)
            return
        table.move_cursor(min(row, length - 1))

    @on(ClipTable.CursorMoved)
    def _queue_position(self, message: ClipTable.CursorMoved) -> None:
        if self.in_queue:  # the header's `queue 3/50` follows the cursor
            self.refresh_topbar()

    # ------------------------------------------------------------------ filter
    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if self.apply_filter(event.value):
            self.table.focus()

    def on_key(self, event: events.Key) -> None:
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
