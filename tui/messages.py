"""Typed messages that thread workers post back to the UI thread.

Workers never touch widgets: they compute, then `post_message` one of these (which is
thread-safe), and the screen's handler updates the widgets on the event loop. Each
message carries what it answers (a query generation, a clip id) so a late answer to a
superseded request is recognised and dropped.
"""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import Any

from textual.message import Message

from ambiscope.core.browse.query import BrowseRow
from ambiscope.db import Job
from ambiscope.tui.data import BulkKind, ClipDetail, EditResult, Waveform, WorkspaceContext
from ambiscope.tui.jobs_bridge import JobsSnapshot


class ContextLoaded(Message):
    def __init__(self, context: WorkspaceContext) -> None:
        super().__init__()
        self.context = context


class IdsLoaded(Message):
    def __init__(self, generation: int, ids: array) -> None:
        super().__init__()
        self.generation = generation
        self.ids = ids


class PageLoaded(Message):
    def __init__(self, generation: int, page: int, rows: list[BrowseRow]) -> None:
        super().__init__()
        self.generation = generation
        self.page = page
        self.rows = rows


class QueryFailed(Message):
    """The filter or a read failed; `message` is one line for the status bar."""

    def __init__(self, generation: int, message: str) -> None:
        super().__init__()
        self.generation = generation
        self.message = message


class DetailLoaded(Message):
    def __init__(self, detail: ClipDetail) -> None:
        super().__init__()
        self.detail = detail


class DetailFailed(Message):
    def __init__(self, clip_id: int, message: str) -> None:
        super().__init__()
        self.clip_id = clip_id
        self.message = message


class WaveformLoaded(Message):
    def __init__(self, waveform: Waveform) -> None:
        super().__init__()
        self.waveform = waveform


class EditSaved(Message):
    def __init__(self, result: EditResult, undo: bool) -> None:
        super().__init__()
        self.result = result
        self.undo = undo


class EditFailed(Message):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class BulkCounted(Message):
    """How many clips a bulk flag/tag would change (for the confirmation modal)."""

    def __init__(self, kind: BulkKind, name: str, on: bool, clip_ids: list[int]) -> None:
        super().__init__()
        self.kind = kind
        self.name = name
        self.on = on
        self.clip_ids = clip_ids


class JobsPolled(Message):
    """The app's job poll: the jobs snapshot, or why the jobs table could not be read."""

    def __init__(self, snapshot: JobsSnapshot | None, error: str | None = None) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.error = error


class JobsChanged(Message):
    """Jobs finished since the last poll: affected rows and the detail need a reload."""

    def __init__(self, finished: list[Job]) -> None:
        super().__init__()
        self.finished = finished


class MetricsReady(Message):
    def __init__(self, rows: list[dict[str, Any]], bootstrap: int, seconds: float) -> None:
        super().__init__()
        self.rows = rows
        self.bootstrap = bootstrap
        self.seconds = seconds


class MetricsFailed(Message):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class ExportDone(Message):
    def __init__(self, path: Path, count: int, what: str) -> None:
        super().__init__()
        self.path = path
        self.count = count
        self.what = what


class TaskFailed(Message):
    """A background action (export, enqueue, playback) failed with a one-line reason."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__()
        self.what = what
        self.message = message
