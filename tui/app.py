"""The ambiscope Textual app: screens as modes, keys, palette commands.

Screens are modes (browser, jobs, metrics) so each keeps its state while another is
shown: the metrics table survives a trip to the jobs screen, the browser keeps its
cursor. What the screens share (workspace access, settings, player, the jobs snapshot)
is the base class's, ambiscope.tui.workspace_app.WorkspaceApp; this class tells the
screens when the jobs or the human distributions change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from textual import on, work
from textual.app import SystemCommand
from textual.screen import Screen

from ambiscope.core.text import one_line
from ambiscope.tui import data
from ambiscope.tui.keys import KEYS, KeySpec, bindings, spec_for
from ambiscope.tui.messages import JobsChanged, JobsPolled
from ambiscope.tui.screens.annotators import AnnotatorsScreen
from ambiscope.tui.screens.browser import BrowserScreen
from ambiscope.tui.screens.help import HelpScreen
from ambiscope.tui.screens.jobs import JobsScreen
from ambiscope.tui.screens.metrics import MetricsScreen
from ambiscope.tui.screens.modals import ConfirmModal
from ambiscope.tui.settings import save_settings
from ambiscope.tui.workspace_app import WorkspaceApp


class AmbiscopeApp(WorkspaceApp):
    """See module docstring."""

    CSS_PATH = "app.tcss"
    TITLE = "ambiscope"
    MODES: ClassVar[dict[str, Any]] = {
        "browser": BrowserScreen,
        "jobs": JobsScreen,
        "metrics": MetricsScreen,
        "annotators": AnnotatorsScreen,
    }
    DEFAULT_MODE = "browser"
    BINDINGS = bindings("app")

    @property
    def browser(self) -> BrowserScreen | None:
        for screen in self._screen_stacks.get("browser", []):
            if isinstance(screen, BrowserScreen):
                return screen
        return None

    @on(JobsPolled)
    def _jobs_polled(self, message: JobsPolled) -> None:
        snapshot = message.snapshot
        if snapshot is None:
            return
        summary = self.jobs_summary
        changed = self.record_jobs(snapshot)
        browser = self.browser
        if browser is not None and self.jobs_summary != summary:
            browser.refresh_topbar()
        if isinstance(self.screen, JobsScreen) and self.screen.is_mounted:
            self.screen.update_jobs(snapshot)  # (a screen still mounting reads it itself)
        if browser is not None and changed:
            browser.post_message(JobsChanged(changed))

    # ------------------------------------------------------------------ actions
    def action_show_jobs(self) -> None:
        self.switch_mode("jobs")

    def action_show_metrics(self) -> None:
        self.switch_mode("metrics")

    def action_show_annotators(self) -> None:
        self.switch_mode("annotators")

    def action_show_browser(self) -> None:
        self.switch_mode("browser")

    def action_show_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_pop_screen(self) -> None:
        """Escape on a mode screen goes back to the browser."""
        if len(self.screen_stack) > 1:
            self.pop_screen()
        else:
            self.switch_mode("browser")

    def action_cycle_label_rule(self) -> None:
        """Next weighting of label lists / secondary labels (stored as the workspace's
        default conventions, so `stats`, `metrics` and exports agree with the screen)."""
        try:
            now = data.cycle_label_rule(self.access)
        except Exception as exc:
            self.notify(one_line(exc), severity="error")
            return
        self.notify(f"{now}; recomputing…")
        self.refresh_human(self.settings.include_own_votes)

    def persist_settings(self) -> None:
        """Save the settings file (unless this app runs with settings given by a test)."""
        if self._save_settings:
            save_settings(self.settings)

    def action_toggle_own_votes(self) -> None:
        self.settings.include_own_votes = not self.settings.include_own_votes
        self.persist_settings()
        state = "counted in" if self.settings.include_own_votes else "left out of"
        self.notify(f"your own votes are {state} the human distribution; recomputing…")
        self.refresh_human(self.settings.include_own_votes)

    @work(thread=True, exclusive=True, group="human")
    def refresh_human(self, include_own: bool) -> None:
        try:
            changed = data.refresh_human_cache(self.access, include_own)
        except Exception as exc:
            self.call_from_thread(
                self.notify,
                f"human distributions not recomputed: {one_line(exc)}",
                severity="error",
                timeout=8,
            )
            return
        self.call_from_thread(self._human_refreshed, changed)

    def _human_refreshed(self, changed: list[str]) -> None:
        if not changed:  # nothing recomputed: nothing on screen is stale
            return
        self.notify(f"human distributions recomputed for {', '.join(changed)}", timeout=3)
        browser = self.browser
        if browser is not None:
            browser.load_context()
            browser.run_query(keep_position=True)
            browser.reload_detail()

    def action_confirm_action(self, scope: str, action: str) -> None:
        """A destructive key (KeySpec.confirm): ask, then run it on the active screen."""
        self._confirm_then_run(spec_for(scope, action), self.screen)

    def _confirm_then_run(self, spec: KeySpec, screen: Screen[Any]) -> None:
        """Run `spec`'s action on `screen` once the researcher has said yes (the screen is
        the one the key or palette was used on, not the dialog that covers it)."""
        name = spec.title.capitalize()

        def answered(ok: bool | None) -> None:
            if ok:
                self.call_later(self.run_action, spec.action, screen)

        self.push_screen(ConfirmModal(f"{name}?", spec.confirm, ok=name), answered)

    # ------------------------------------------------------------------ palette
    SCREEN_SCOPES: ClassVar[dict[type[Screen[Any]], str]] = {
        BrowserScreen: "browser",
        JobsScreen: "jobs",
        MetricsScreen: "metrics",
        AnnotatorsScreen: "annotators",
    }

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette offers the app's actions and those of the screen it was opened on
        (the jobs screen's `x cancel` is not offered in the browser, where x exports)."""
        yield from super().get_system_commands(screen)
        scope = self.SCREEN_SCOPES.get(type(screen))
        for spec in KEYS:
            if spec.palette and spec.action != "noop" and spec.scope in ("app", scope):
                yield SystemCommand(
                    f"{spec.title.capitalize()} ({spec.display})",
                    f"{spec.group}: {spec.help}",
                    self._palette_callback(spec, screen),
                )
        if scope != "browser":
            yield SystemCommand(
                "Browser", "Back to the clip browser", lambda: self.switch_mode("browser")
            )

    def _palette_callback(self, spec: KeySpec, screen: Screen) -> Any:
        async def run() -> None:
            if spec.scope == "app":
                await self.run_action(spec.action.removeprefix("app."))
            elif spec.confirm:
                self._confirm_then_run(spec, screen)
            else:
                await self.run_action(spec.action, screen)

        return run
