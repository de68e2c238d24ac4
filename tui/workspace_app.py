"""What every screen of the app shares: the workspace, settings, player and jobs.

`WorkspaceApp` owns the workspace access (pooled read connections, ambiscope.tui.data),
the user's settings, the audio player and the latest jobs snapshot, which one thread
worker refreshes every second so progress is live without blocking the UI. Screens reach
it typed (ambiscope.tui.screens.base); the screens themselves, the modes and the keys
are the subclass's (ambiscope.tui.app), so this module imports no screen.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.worker import get_current_worker

from ambiscope.core.text import one_line
from ambiscope.db import Job
from ambiscope.db.access import WorkspaceAccess
from ambiscope.tui import jobs_bridge
from ambiscope.tui.messages import JobsPolled
from ambiscope.tui.playback import Player
from ambiscope.tui.settings import Settings, load_settings, save_settings

ACTIVE = ("queued", "running")
GIL_SWITCH_INTERVAL_S = 0.001


class WorkspaceApp(App[None]):
    """See module docstring."""

    def __init__(
        self,
        db_path: str | Path,
        *,
        settings: Settings | None = None,
        poll_interval: float = 1.0,
        save_user_settings: bool = True,
    ) -> None:
        super().__init__()
        self.access = WorkspaceAccess(Path(db_path))
        warning = None
        if settings is None:
            settings, warning = load_settings()
        self.settings = settings
        self._settings_warning = warning
        self._save_settings = save_user_settings
        self.player = Player()
        self.poll_interval = poll_interval
        self.jobs_snapshot: jobs_bridge.JobsSnapshot | None = None
        self.jobs_summary = ""
        self._job_status: dict[int, tuple[str, int]] = {}
        self._switch_interval = sys.getswitchinterval()
        self._poll_now = threading.Event()
        self._stop_polling = threading.Event()
        self._watching_jobs = False

    # ------------------------------------------------------------------ lifecycle
    def on_mount(self) -> None:
        # Reads run in worker threads; each SQLite call releases the GIL and must win it
        # back from the UI thread, which by default keeps it for up to 5 ms per switch:
        # a 60 ms read took ~150 ms while the table repainted. 1 ms turns that around.
        sys.setswitchinterval(min(self._switch_interval, GIL_SWITCH_INTERVAL_S))
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        if self._settings_warning:
            self.notify(self._settings_warning, severity="warning", timeout=8)
        if self.poll_interval > 0:
            self.watch_jobs()

    def on_unmount(self) -> None:
        self._stop_polling.set()
        self._poll_now.set()
        self.player.stop()
        self.access.close()
        sys.setswitchinterval(self._switch_interval)

    def _theme_changed(self, theme: Any) -> None:
        self.settings.theme = self.theme
        if self._save_settings:
            error = save_settings(self.settings)
            if error:
                self.notify(error, severity="warning")

    # ------------------------------------------------------------------ jobs polling
    @work(thread=True, exclusive=True, group="jobs-poll")
    def watch_jobs(self) -> None:
        """Poll the jobs table every `poll_interval` seconds on one long-lived thread.

        A worker per poll cost the UI thread a few ms each second (worker bookkeeping
        and state messages) for a read of ~0.1 ms; snapshots that changed nothing (no
        active job, same rows) are not posted either. `poll_jobs` polls at once.
        """
        worker = get_current_worker()
        self._watching_jobs = True
        last: tuple[Any, ...] | None = None
        try:
            while not (worker.is_cancelled or self._stop_polling.is_set()):
                self._poll_now.clear()
                message, key = self._poll_once()
                rows = message.snapshot.rows if message.snapshot is not None else []
                if key != last or any(r.job.status in ACTIVE for r in rows):  # ETAs move
                    last = key
                    self.post_message(message)
                self._poll_now.wait(self.poll_interval)
        finally:
            self._watching_jobs = False

    def poll_jobs(self) -> None:
        """Refresh the jobs snapshot now (after queuing, cancelling or retrying a job)."""
        if self._watching_jobs:
            self._poll_now.set()
        else:
            self.poll_jobs_once()

    @work(thread=True, exclusive=True, group="jobs-poll-once")
    def poll_jobs_once(self) -> None:
        self.post_message(self._poll_once()[0])

    def _poll_once(self) -> tuple[JobsPolled, tuple[Any, ...]]:
        try:
            with self.access.reader() as ws:
                snapshot = jobs_bridge.poll_workspace(ws)
        except Exception as exc:  # an unreadable jobs table must not spam tracebacks
            error = one_line(exc)
            return JobsPolled(None, error), ("error", error)
        return JobsPolled(snapshot), ("ok", snapshot.rows, snapshot.workers)

    def record_jobs(self, snapshot: jobs_bridge.JobsSnapshot) -> list[Job]:
        """Keep `snapshot` and its summary line for the top bar.

        Returns the re-sample jobs that finished or wrote more clips since the previous
        snapshot: the browser reloads what they changed.
        """
        self.jobs_snapshot = snapshot
        changed = []
        for row in snapshot.rows:
            job = row.job
            before = self._job_status.get(job.id)
            now = (job.status, job.progress_done)
            if (
                before is not None
                and before != now
                and job.kind == "resample"
                and (job.status == "done" or job.progress_done > before[1])
            ):
                changed.append(job)
            self._job_status[job.id] = now
        self.jobs_summary = jobs_bridge.summary(snapshot)
        return changed
