"""Browser actions that start background tasks: play, WAV export, re-sample, export.

Each opens its dialog, then runs in a thread worker and reports back with `TaskFailed`
or `ExportDone` (ambiscope.tui.messages). Re-sampling only queues a job: a background
worker process runs the model (ambiscope.tui.jobs_bridge), and the browser reloads what
the job changed when the app's job poll says it finished (`JobsChanged`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from textual import on, work

from ambiscope.core.browse.query import BrowseQuery
from ambiscope.core.text import one_line
from ambiscope.tui import data, export_bridge, jobs_bridge
from ambiscope.tui.data import ClipDetail
from ambiscope.tui.export_bridge import ExportRequest, ExportResult
from ambiscope.tui.messages import ExportDone, JobsChanged, TaskFailed
from ambiscope.tui.playback import no_device_help, play_url
from ambiscope.tui.screens.browser.detail import DetailLoading
from ambiscope.tui.screens.modals import ExportModal, PromptModal
from ambiscope.tui.screens.resample import ResampleModal, ResampleRequest


class TaskActions(DetailLoading):
    """Actions of the Listen and Models key groups (ambiscope.tui.keys)."""

    def __init__(self) -> None:
        super().__init__()
        self._told_no_device = False

    # ------------------------------------------------------------------ listen
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
            url = play_url(detail.clip.id)
            if url is None:
                self.notify(
                    "listening in the page needs `ambiscope serve`; x exports the clip",
                    severity="warning",
                )
                return
            self.app.open_url(url)  # the page plays it in place (ambiscope.tui.web_audio)
            self.notify(f"{detail.clip.key}: play / stop in this page", timeout=3)
            return
        player = self.app.player
        if player.playing == detail.clip.id:
            player.stop()
            self.notify("stopped", timeout=1)
            return
        player.stop()
        self.play_clip(detail.audio_path, detail.clip.id)

    @work(thread=True, exclusive=True, group="play")
    def play_clip(self, path: Path, clip_id: int) -> None:
        from ambiscope.core.audio import AudioError, load_audio

        player = self.app.player
        reason = player.check()
        if reason is not None:
            self.post_message(TaskFailed("no-device", reason))
            return
        try:
            audio = load_audio(path, max_seconds=600)
            player.play_blocking(clip_id, audio.samples, audio.sample_rate)
        except (AudioError, ValueError, RuntimeError, OSError) as exc:
            self.post_message(TaskFailed("play", one_line(exc)))

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
                    no_device_help(message.message),
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
            self.post_message(TaskFailed("export", one_line(exc)))
            return
        self.post_message(ExportDone(written, 1, "clip"))

    @on(ExportDone)
    def _export_done(self, message: ExportDone) -> None:
        if message.what == "clip" and self.app.is_web:
            self.app.deliver_binary(message.path)
        noun = "clip" if message.count == 1 else "rows"
        self.notify(f"exported {message.count:,} {noun} to {message.path}", timeout=6)

    # ------------------------------------------------------------------ models
    def action_resample(self) -> None:
        detail = self._current()
        if detail is None:
            return
        counts = {"filter": self.table.row_count if self.table.counted else None}
        self.app.push_screen(
            ResampleModal(detail.dataset.name, detail.run, counts, detail.clip.key),
            lambda req: self._resample_requested(req, detail),
        )

    def _resample_requested(self, request: ResampleRequest | None, detail: ClipDetail) -> None:
        if request is None:
            return
        query = self.query_state.with_(dataset_id=detail.dataset.id)
        self.enqueue_resample(request, detail.clip.id, query)

    @work(thread=True, group="enqueue")
    def enqueue_resample(self, request: ResampleRequest, clip_id: int, query: BrowseQuery) -> None:
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
            self.post_message(TaskFailed("re-sample", one_line(exc)))
            return
        self.app.call_from_thread(self.notify, message, timeout=6)
        self.app.call_from_thread(self.app.poll_jobs)

    @on(JobsChanged)
    def _jobs_changed(self, message: JobsChanged) -> None:
        self.load_context()
        self.run_query(keep_position=True)
        self.reload_detail()

    def action_export(self) -> None:
        """The dialog runs the export itself, so an error keeps it open and says why."""
        if self.refuse_while_filter_error("an export"):  # type: ignore[attr-defined]
            return
        query = self.query_state

        def exporter(request: ExportRequest) -> ExportResult:
            return export_bridge.export_result(
                self.access,
                request,
                query,
                self.settings.include_own_votes,
                self.settings.bootstrap,
            )

        self.app.push_screen(
            ExportModal(
                export_bridge.subset_formats(),
                export_bridge.table_formats(),
                query.filter_text,
                self.table.row_count,
                exporter=exporter,
            ),
            self._exported,
        )

    def _exported(self, result: ExportResult | None) -> None:
        if result is not None:
            self.post_message(ExportDone(result.path, result.count, result.what))
