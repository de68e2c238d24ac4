"""The base of the app's full screens: `self.app` is typed, once, for every screen.

Screens read what the app shares (the workspace access, settings, the audio player, the
jobs snapshot: ambiscope.tui.workspace_app.WorkspaceApp). Textual types `Screen.app` as
a plain `App`, so each of those reads needed a `type: ignore`; Textual's `getters.app`
narrows the property (and checks it). The screens name the base class, not the app
itself, because the app module imports the screens.
"""

from __future__ import annotations

from textual import getters
from textual.screen import Screen

from ambiscope.tui.workspace_app import WorkspaceApp


class AppScreen(Screen[None]):
    """A mode screen of the ambiscope app (browser, jobs, metrics)."""

    app = getters.app(WorkspaceApp)
