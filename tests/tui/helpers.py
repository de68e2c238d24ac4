"""Shared helpers for driving the app headlessly."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from textual.pilot import Pilot
from textual.screen import Screen

from ambiscope.tui.app import AmbiscopeApp
from ambiscope.tui.screens.browser import BrowserScreen
from ambiscope.tui.settings import Settings
from ambiscope.tui.widgets.clip_table import ClipTable
from ambiscope.tui.widgets.detail import DetailView

ScreenT = TypeVar("ScreenT", bound=Screen[Any])


def make_app(path: Path, poll: float = 0.0, **settings: Any) -> AmbiscopeApp:
    base: dict[str, Any] = {"user": "tester", "bootstrap": 0, "theme": "textual-dark"}
    base.update(settings)
    return AmbiscopeApp(
        path,
        settings=Settings(**base),
        poll_interval=poll,
        save_user_settings=False,
    )


async def until(pilot: Pilot[None], predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until `predicate()` holds (workers answer asynchronously)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.02)


def browser(app: AmbiscopeApp) -> BrowserScreen:
    screen = app.browser
    assert screen is not None
    return screen


async def ready(pilot: Pilot[None]) -> BrowserScreen:
    """Wait for the first page, the count and the first clip's detail and waveform."""
    app = pilot.app
    assert isinstance(app, AmbiscopeApp)
    await until(pilot, lambda: app.browser is not None)
    screen = browser(app)
    table = screen.query_one(ClipTable)
    view = screen.query_one(DetailView)
    await until(pilot, lambda: table.first_page_ready and table.ids is not None)
    if table.row_count:
        await until(
            pilot,
            lambda: (
                view.detail is not None
                and view.detail.clip.id == table.current_clip_id
                and view.waveform is not None
                and view.waveform.clip_id == table.current_clip_id
            ),
        )
    await pilot.pause()
    return screen


async def settle(pilot: Pilot[None], screen: BrowserScreen) -> None:
    """Wait until queued edits are written and the table/detail show the result."""
    table = screen.query_one(ClipTable)
    view = screen.query_one(DetailView)
    await until(pilot, lambda: not screen._writing and not screen._edits)
    await until(pilot, lambda: table.first_page_ready and table.ids is not None)
    await until(
        pilot,
        lambda: view.detail is not None and view.detail.clip.id == table.current_clip_id,
    )
    await pilot.pause(0.1)


async def open_screen(pilot: Pilot[None], key: str, kind: type[ScreenT]) -> ScreenT:
    """From the ready browser, press `key` and wait for a screen of type `kind`."""
    await ready(pilot)
    await pilot.press(key)
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, kind))
    screen = app.screen
    assert isinstance(screen, kind)
    return screen
