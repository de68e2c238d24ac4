"""Audit edits from the browser: flags, tags, notes, own votes, bulk changes and undo.

Edits are queued and written one at a time, in order, each in a worker of its own; the
write returns the edit's inverse (ambiscope.tui.data.apply_edit), which is what the undo
stack keeps, so undo restores exactly what was there (a bulk change only touches the
clips whose flag or tag actually changes).
"""

from __future__ import annotations

from collections import deque

from textual import on, work

from ambiscope.core.browse.query import BrowseQuery
from ambiscope.core.text import one_line
from ambiscope.tui import data
from ambiscope.tui.data import Edit
from ambiscope.tui.messages import BulkCounted, EditFailed, EditSaved
from ambiscope.tui.screens.browser.detail import DetailLoading
from ambiscope.tui.screens.modals import (
    BulkModal,
    BulkRequest,
    ChoiceModal,
    ConfirmModal,
    NoteModal,
    PromptModal,
)

UNDO_DEPTH = 200


class AuditActions(DetailLoading):
    """Actions of the Audit key group (ambiscope.tui.keys) and the edit queue."""

    def __init__(self) -> None:
        super().__init__()
        self.undo_stack: list[Edit] = []
        self._edits: deque[tuple[Edit, bool]] = deque()
        self._writing = False

    # ------------------------------------------------------------------ one clip
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
        """Choose a flag to toggle; each choice shows whether the clip has it now (flags
        set by other means than the configured names are listed too)."""
        found = self._row_flags()
        if found is None:
            return
        _, flags = found
        names = list(dict.fromkeys([*self.settings.flag_names, *sorted(flags)]))
        choices = [(n, f"{'[x]' if n in flags else '[ ]'} {n}") for n in names]
        title = f"Toggle flag (set: {', '.join(sorted(flags)) or 'none'})"
        self.app.push_screen(
            ChoiceModal(title, choices),
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
                self._advance()
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
        if index:
            self._advance()

    def _advance(self) -> None:
        if self.settings.advance_after_vote:
            self.table.action_cursor(1)

    def action_toggle_advance(self) -> None:
        """Auditing a whole filter by ear: each vote 1-9 moves on to the next clip (a
        setting: it stays on for the next session)."""
        self.settings.advance_after_vote = not self.settings.advance_after_vote
        self.app.persist_settings()  # type: ignore[attr-defined]
        state = (
            "moves to the next clip" if self.settings.advance_after_vote else "stays on the clip"
        )
        self.notify(f"a vote now {state} (V toggles)", timeout=3)

    # ------------------------------------------------------------------ queue and undo
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
            self.post_message(EditFailed(f"{edit.description or edit.kind}: {one_line(exc)}"))
            return
        self.post_message(EditSaved(result, undo))

    @on(EditSaved)
    def _edit_saved(self, message: EditSaved) -> None:
        self._writing = False
        result = message.result
        if not message.undo:
            self.undo_stack.append(result.inverse)
            del self.undo_stack[:-UNDO_DEPTH]
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

    # ------------------------------------------------------------------ bulk
    def action_bulk(self) -> None:
        if self.refuse_while_filter_error("a bulk edit"):  # type: ignore[attr-defined]
            return
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
            self.post_message(EditFailed(f"bulk: {one_line(exc)}"))
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
                        message.kind,
                        tuple(message.clip_ids),
                        message.name,
                        message.on,
                        description=f"{what} {message.name!r} "
                        f"{'added to' if message.on else 'removed from'} {n:,} clips",
                    )
                )

        self.app.push_screen(ConfirmModal(f"{verb} {what} on {n:,} clips?", body), confirmed)
