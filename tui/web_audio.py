"""Listening in the browser page that `ambiscope serve` shows.

textual-serve can only hand a file to the browser through a single-use download URL that
it opens in a new tab: the audio player there fetches the file once, then its range
re-request (needed to play or seek) gets 404, so it stays at 0:00, and every clip leaves
a dead tab behind. Instead `AmbiscopeServer` adds one route, `/audio/<clip id>/<token>`,
that serves the clip's audio file with HTTP range support (206 + Content-Range, which
aiohttp's FileResponse implements) for as long as the server runs, and adds to the page
one hidden `<audio>` element plus a hook on `window.open`: when the app asks the browser
to open such a URL (`App.open_url`, the only message textual-serve forwards to the page),
the page plays it in that element instead of opening a tab, so the terminal keeps focus.
Opening the same URL while it plays stops it (space plays / stops, as in the terminal).

What may be served: the token is an HMAC of the clip id under a key made when the server
starts and handed only to the app processes it launches (`playback.play_url` makes the
URL there), so only clips the app asked to play are reachable, and the same token stays
valid for every re-request while the server runs. The file is looked up in the workspace
by clip id and served only when it passes the root check of every other audio read
(`ambiscope.core.paths`): inside its dataset's root, unless the dataset was imported with
--allow-outside-root.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.server import Server

from ambiscope.db import Workspace, WorkspaceError
from ambiscope.tui.data import audio_path
from ambiscope.tui.playback import AUDIO_KEY_ENV, AUDIO_PREFIX, audio_token

PAGE_AUDIO = """
<audio id="ambiscope-audio" preload="auto" hidden
  style="position: fixed; right: 8px; bottom: 8px; z-index: 30"></audio>
<script>
  /* ambiscope: play /audio/ URLs in this page instead of opening a tab (tui/web_audio.py) */
  (() => {
    const player = document.getElementById("ambiscope-audio");
    const openTab = window.open.bind(window);
    player.addEventListener("ended", () => { player.hidden = true; });
    window.open = (url, target, features) => {
      const where = new URL(url, window.location.href);
      if (where.origin !== window.location.origin
          || !where.pathname.startsWith("/audio/")) {
        return openTab(url, target, features);
      }
      if (player.src === where.href && !player.paused) {
        player.pause();
        return null;
      }
      if (player.src === where.href) {
        player.currentTime = 0;
      } else {
        player.src = where.href;
      }
      player.play().catch((error) => {
        if (error.name === "NotAllowedError") {  /* autoplay blocked: one click plays it */
          player.controls = true;
          player.hidden = false;
        }
      });
      return null;
    };
  })();
</script>
"""
"""Injected before `</body>` of textual-serve's page."""


def clip_audio_file(db: Path, clip_id: int) -> Path | None:
    """The audio file of `clip_id` in the workspace `db` when it may be served, else None."""
    try:
        with Workspace.open(db, readonly=True) as ws:
            clip = ws.get_clip(clip_id)
            dataset = ws.get_dataset(clip.dataset_id)
    except WorkspaceError:
        return None
    path = audio_path(dataset, clip)
    return path if path is not None and path.is_file() else None


class _PageLoader(jinja2.FileSystemLoader):
    """textual-serve's templates, with the page's player added to its index page."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Any]:
        source, filename, uptodate = super().get_source(environment, template)
        if template == "app_index.html":
            source = source.replace("</body>", f"{PAGE_AUDIO}</body>", 1)
        return source, filename, uptodate


class AmbiscopeServer(Server):
    """textual-serve's server plus the in-page player and its audio route."""

    def __init__(self, command: str, *, db: Path, **options: Any) -> None:
        super().__init__(command, **options)
        self.db = db
        self.audio_key = secrets.token_bytes(32)

    def serve(self, debug: bool = False) -> None:
        """Serve until Ctrl-C; the app processes started from now on get the token key."""
        os.environ[AUDIO_KEY_ENV] = self.audio_key.hex()
        super().serve(debug=debug)

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        aiohttp_jinja2.setup(app, loader=_PageLoader(self.templates_path))
        app.router.add_get(AUDIO_PREFIX + "{clip_id:\\d+}/{token}", self.handle_audio)
        return app

    async def handle_audio(self, request: web.Request) -> web.StreamResponse:
        """The clip's audio file (200, or 206 for a Range request); 404 when not allowed."""
        clip_id = int(request.match_info["clip_id"])
        expected = audio_token(self.audio_key, clip_id)
        if not hmac.compare_digest(expected, request.match_info["token"]):
            raise web.HTTPNotFound()
        path = await asyncio.to_thread(clip_audio_file, self.db, clip_id)
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})
