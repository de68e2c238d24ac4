"""The jobs screen: live list of background jobs with progress, ETA, status and errors.

The app polls the job rows every second in a thread worker (ambiscope.tui.app) and hands each
snapshot here; this screen only draws. A running job whose lease has expired is shown as
stale: its worker died and the next worker to look will re-queue it (ambiscope.core.jobs.queue). The
highlighted job gets a progress bar and its last log lines. A failed job shows no bar:
its clips were tried, not done, and a full bar beside `failed` read as success.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, ProgressBar, Static

from ambiscope.core.text import one_line
from ambiscope.tui import jobs_bridge
from ambiscope.tui.keys import bindings
from ambiscope.tui.messages import TaskFailed
from ambiscope.tui.screens.base import AppScreen

STATUS_STYLE = {
    "queued": "cyan",
    "running": "bold green",
    "done": "dim",
    "failed": "bold red",
    "cancelled": "yellow",
    "stale": "bold magenta",
}


def text_bar(done: int, total: int, width: int = 14) -> str:
    if total <= 0:
        return " " * width
    filled = round(width * min(done / total, 1.0))
    return "█" * filled + "░" * (width - filled)


def fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class JobsScreen(AppScreen):
    BINDINGS = bindings("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: jobs_bridge.JobsSnapshot | None = None
        self._events_for: int | None = None

    def compose(self) -> ComposeResult:
        yield Static("Jobs", id="jobs-title", classes="screen-title")
        yield DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        with Vertical(id="job-detail"):
            yield Static("", id="job-summary")
            yield ProgressBar(total=100, show_eta=False, id="job-progress")
            yield Static("", id="job-log")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("id", "kind", "status", "progress", "done", "ETA", "try", "what / error")
        table.focus()
        snap = self.app.jobs_snapshot
        if snap is not None:
            self.update_jobs(snap)
        else:
            self.query_one("#job-summary", Static).update("reading jobs…")

    def on_screen_resume(self) -> None:
        snap = self.app.jobs_snapshot
        if snap is not None:
            self.update_jobs(snap)

    def update_jobs(self, snapshot: jobs_bridge.JobsSnapshot) -> None:
        self.snapshot = snapshot
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        for row in snapshot.rows:
            job = row.job
            status = "stale" if row.stale else job.status
            label = "stale (worker lost)" if row.stale else job.status
            if job.cancel_requested and job.status == "running":
                label = "cancelling"
            pct = f"{job.progress_done}/{job.progress_total}" if job.progress_total else ""
            detail = job.error if job.error else row.what
            bar = "" if job.status == "failed" else text_bar(job.progress_done, job.progress_total)
            table.add_row(
                str(job.id),
                job.kind,
                Text(label, style=STATUS_STYLE.get(status, "")),
                Text(bar, style="green"),
                pct,
                fmt_eta(row.eta_s),
                str(job.attempts),
                Text(detail or "", style="red" if job.error else ""),
                key=str(job.id),
            )
        if snapshot.rows:
            table.move_cursor(row=min(keep, len(snapshot.rows) - 1))
        workers = (
            "workers: " + "; ".join(snapshot.workers)
            if snapshot.workers
            else "no worker: w starts one"
        )
        counts = jobs_bridge.status_counts(snapshot)
        by_status = "".join(f" · {counts[s]} {s}" for s in STATUS_STYLE if counts[s])
        title = f"Jobs · {len(snapshot.rows)}{by_status} · {workers}"
        self.query_one("#jobs-title", Static).update(title)
        self._show_selected()

    def _selected(self) -> jobs_bridge.JobRow | None:
        if self.snapshot is None or not self.snapshot.rows:
            return None
        row = self.query_one(DataTable).cursor_row
        if 0 <= row < len(self.snapshot.rows):
            return self.snapshot.rows[row]
        return None

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._show_selected()

    def _show_selected(self) -> None:
        row = self._selected()
        summary = self.query_one("#job-summary", Static)
        bar = self.query_one(ProgressBar)
        if row is None:
            summary.update("no jobs yet: press r on a clip in the browser to queue a re-sample")
            bar.display = True
            bar.update(total=100, progress=0)
            self.query_one("#job-log", Static).update("")
            return
        job = row.job
        if job.status == "failed":
            summary.update(f"job {job.id} · {job.kind} · failed: {job.error or 'no reason given'}")
        else:
            summary.update(f"job {job.id} · {job.kind} · {row.what}")
        bar.display = job.status != "failed"
        bar.update(total=max(job.progress_total, 1), progress=job.progress_done)
        self.load_events(job.id)

    @work(thread=True, exclusive=True, group="job-events")
    def load_events(self, job_id: int) -> None:
        try:
            lines = jobs_bridge.events(self.app.access.path, job_id)
        except Exception as exc:
            lines = [f"cannot read the job log: {exc}"]
        self.app.call_from_thread(self._set_log, job_id, lines)

    def _set_log(self, job_id: int, lines: list[str]) -> None:
        row = self._selected()
        if row is not None and row.job.id == job_id:
            self.query_one("#job-log", Static).update("\n".join(lines[-8:]))

    def action_cancel_job(self) -> None:
        row = self._selected()
        if row is not None:
            self.job_action("cancel", row.job.id)

    def action_retry_job(self) -> None:
        row = self._selected()
        if row is not None:
            self.job_action("retry", row.job.id)

    def action_start_worker(self) -> None:
        self.job_action("worker", 0)

    @work(thread=True, group="job-action")
    def job_action(self, what: str, job_id: int) -> None:
        path = self.app.access.path
        try:
            if what == "cancel":
                message = jobs_bridge.cancel(path, job_id)
            elif what == "retry":
                message = jobs_bridge.retry(path, job_id)
            else:
                message = f"worker pid {jobs_bridge.ensure_worker(path)} is running"
        except Exception as exc:
            self.post_message(TaskFailed(what, one_line(exc)))
            return
        self.app.call_from_thread(self.notify, message, timeout=4)
        self.app.call_from_thread(self.app.poll_jobs)

    @on(TaskFailed)
    def _failed(self, message: TaskFailed) -> None:
        self.notify(f"{message.what}: {message.message}", severity="error", timeout=6)
