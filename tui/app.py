"""The ambiscope Textual app: screens as modes, job polling, palette commands, settings.

Screens are modes (browser, jobs, metrics) so each keeps its state while another is
shown: the metrics table survives a trip to the jobs screen, the browser keeps its
cursor. The app owns what the screens share: the workspace access (pooled read connections,
ambiscope.tui.data), the user's settings, the audio player and the latest jobs snapshot, which a
thread worker refreshes every second so progress is live without blocking the UI.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, SystemCommand
from textual.screen import Screen
from textual.worker import get_current_worker

from ambiscope.tui import data, jobs_bridge
from ambiscope.tui.keys import KEYS, KeySpec, bindings
from ambiscope.tui.messages import JobsChanged, JobsPolled, TaskFailed
from ambiscope.tui.playback import Player
from ambiscope.tui.screens.browser import BrowserScreen
from ambiscope.tui.screens.help import HelpScreen
from ambiscope.tui.screens.jobs import JobsScreen
from ambiscope.tui.screens.metrics import MetricsScreen
from ambiscope.tui.settings import Settings, load_settings, save_settings

ACTIVE = ("queued", "running")
GIL_SWITCH_INTERVAL_S = 0.001


class JobsSnapshotPolled(JobsPolled):
    """JobsPolled carrying the bridge's snapshot (descriptions, staleness, ETA)."""

    def __init__(self, snapshot: jobs_bridge.JobsSnapshot) -> None:
        super().__init__([r.job for r in snapshot.rows], snapshot.now)
        self.snapshot = snapshot


class AmbiscopeApp(App[None]):
    """See module docstring."""

    CSS_PATH = "app.tcss"
    TITLE = "ambiscope"
    MODES: ClassVar[dict[str, Any]] = {
        "browser": BrowserScreen,
        "jobs": JobsScreen,
        "metrics": MetricsScreen,
    }
    DEFAULT_MODE = "browser"
    BINDINGS = bindings("app")

    def __init__(
        self,
        db_path: str | Path,
        *,
        settings: Settings | None = None,
        poll_interval: float = 1.0,
        save_user_settings: bool = True,
    ) -> None:
        super().__init__()
        self.access = data.WorkspaceAccess(Path(db_path))
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

    @property
    def browser(self) -> BrowserScreen | None:
        for screen in self._screen_stacks.get("browser", []):
            if isinstance(screen, BrowserScreen):
                return screen
        return None

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
                snapshot = getattr(message, "snapshot", None)
                rows = snapshot.rows if snapshot is not None else []
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
            error = " ".join(str(exc).split())
            return JobsPolled([], 0.0, error), ("error", error)
        return JobsSnapshotPolled(snapshot), ("ok", snapshot.rows, snapshot.workers)

    @on(JobsPolled)
    def _jobs_polled(self, message: JobsPolled) -> None:
        snapshot = getattr(message, "snapshot", None)
        if snapshot is None:
            return
        self.jobs_snapshot = snapshot
        changed = []
        for row in snapshot.rows:
            job = row.job
            before = self._job_status.get(job.id)
            now = (job.status, job.progress_done)
            # a finished job, or a running one that wrote more clips
            if (
                before is not None
                and before != now
                and job.kind == "resample"
                and (job.status == "done" or job.progress_done > before[1])
            ):
                changed.append(job)
            self._job_status[job.id] = now
        active = [r for r in snapshot.rows if r.job.status in ACTIVE]
        stale = [r for r in snapshot.rows if r.stale]
        summary = ""
        if active:
            running = [r.job for r in active if r.job.status == "running"]
            done = sum(j.progress_done for j in running)
            total = sum(j.progress_total for j in running)
            summary = f"jobs {len(active)} active"
            if total:
                summary += f" {done}/{total}"
        if stale:
            summary += f" · {len(stale)} stale"
        if summary != self.jobs_summary:
            self.jobs_summary = summary
            if self.browser is not None:
                self.browser.refresh_topbar()
        if isinstance(self.screen, JobsScreen):
            self.screen.update_jobs(snapshot)
        if changed and self.browser is not None:
            self.browser.post_message(JobsChanged(changed))

    # ------------------------------------------------------------------ actions
    def action_show_jobs(self) -> None:
        self.switch_mode("jobs")

    def action_show_metrics(self) -> None:
        self.switch_mode("metrics")

    def action_show_browser(self) -> None:
        self.switch_mode("browser")

    def action_show_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_pop_screen(self) -> None:  # type: ignore[override]
        """Escape on a mode screen goes back to the browser."""
        if len(self.screen_stack) > 1:
            self.pop_screen()
        else:
            self.switch_mode("browser")

    def action_toggle_own_votes(self) -> None:
        self.settings.include_own_votes = not self.settings.include_own_votes
        if self._save_settings:
            save_settings(self.settings)
        state = "counted in" if self.settings.include_own_votes else "left out of"
        self.notify(f"your own votes are {state} the human distribution; recomputing…")
        self.refresh_human(self.settings.include_own_votes)

    @work(thread=True, exclusive=True, group="human")
    def refresh_human(self, include_own: bool) -> None:
        try:
            changed = data.refresh_human_cache(self.access, include_own)
        except Exception as exc:
            self.post_message(TaskFailed("human distributions", " ".join(str(exc).split())))
            return
        self.call_from_thread(self._human_refreshed, changed)

    def _human_refreshed(self, changed: list[str]) -> None:
        if changed:
            self.notify(f"human distributions recomputed for {', '.join(changed)}", timeout=3)
        browser = self.browser
        if browser is not None:
            browser.load_context()
            browser.run_query(keep_position=True)
            browser.reload_detail()

    @on(TaskFailed)
    def _task_failed(self, message: TaskFailed) -> None:
        self.notify(f"{message.what}: {message.message}", severity="error", timeout=8)

    # ------------------------------------------------------------------ palette
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for spec in KEYS:
            if spec.palette and spec.action != "noop":
                yield SystemCommand(
                    f"{spec.title.capitalize()} ({spec.display})",
                    f"{spec.group}: {spec.help}",
                    self._palette_callback(spec),
                )
        yield SystemCommand(
            "Browser", "Back to the clip browser", lambda: self.switch_mode("browser")
        )

    def _palette_callback(self, spec: KeySpec) -> Any:
        async def run() -> None:
            if spec.scope == "app":
                await self.run_action(spec.action.removeprefix("app."))
                return
            target_mode = {"browser": "browser", "jobs": "jobs", "metrics": "metrics"}[spec.scope]
            if self.current_mode != target_mode:
                await self.switch_mode(target_mode)
            await self.run_action(spec.action, self.screen)

        return run
