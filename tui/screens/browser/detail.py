"""The detail pane follows the cursor: the clip's facts, then its waveform.

A held key repeats every ~30-50 ms; the detail (a read and a re-layout of the pane)
follows once the cursor rests instead of on every row it passes. The waveform is read
in a worker of its own after the facts, so a slow audio file never delays them.
"""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.worker import get_current_worker

from ambiscope.core.text import one_line
from ambiscope.tui import data
from ambiscope.tui.data import ClipDetail
from ambiscope.tui.messages import ContextLoaded, DetailFailed, DetailLoaded, WaveformLoaded
from ambiscope.tui.screens.browser.query import QueryPaging
from ambiscope.tui.widgets.clip_table import ClipTable

DETAIL_DEBOUNCE_S = 0.1


class DetailLoading(QueryPaging):
    """Loads the highlighted clip's detail and waveform (see module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._pending_clip: int | None = None

    @on(ContextLoaded)
    def _label_counts(self, message: ContextLoaded) -> None:
        """The table normalises `Hm` by each dataset's label count (the unit of `H`)."""
        counts = {d.name: len(d.label_set) for d in message.context.datasets}
        self.table.set_label_counts(counts)

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
            self.post_message(DetailFailed(clip_id, one_line(exc)))
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
