"""Listening in the browser through `ambiscope serve` (issue 16, finding 1).

A browser's audio player fetches a file, then re-requests ranges of it to play and seek;
the single-use download textual-serve offers answered those with 404. These tests replay
what the player does (a plain GET, then Range requests, twice) against the server's audio
route, first in-process, then through the real `ambiscope serve` command, where pressing
space in the app must make the page play a URL (no new tab, no download), and, where
Chromium is installed (`apt-get install chromium`), in a real headless browser page: space
plays the clip in the page's one <audio> element, space again stops it, no tab opens and
the terminal keeps the keyboard focus.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from ambiscope.db import Workspace
from ambiscope.tui.playback import AUDIO_KEY_ENV, audio_token, play_url
from ambiscope.tui.web_audio import AmbiscopeServer

KEY = bytes(range(32))
AMBISCOPE = (sys.executable, "-m", "ambiscope.tui.cli.main")


def clip_file(db: Path, clip_id: int) -> Path:
    """The clip's audio file as the importer stored it (root + relative path)."""
    with Workspace.open(db, readonly=True) as ws:
        clip = ws.get_clip(clip_id)
        return Path(ws.get_dataset(clip.dataset_id).root or "") / (clip.path or "")


def first_clips(db: Path) -> list[tuple[int, Path]]:
    """(id, audio file) of the demo's first two clips."""
    with Workspace.open(db, readonly=True) as ws:
        ids = [c.id for c in ws.clips(ws.get_dataset("demo").id)[:2]]
    return [(clip_id, clip_file(db, clip_id)) for clip_id in ids]


async def replay_player(client: aiohttp.ClientSession | TestClient, url: str, body: bytes) -> None:
    """What an <audio> element does, twice: fetch the file, then ranges of it."""
    size = len(body)
    for _ in range(2):
        async with client.get(url) as whole:
            assert whole.status == 200
            assert await whole.read() == body
        async with client.get(url, headers={"Range": "bytes=0-"}) as head:
            assert head.status == 206
            assert head.headers["Content-Range"] == f"bytes 0-{size - 1}/{size}"
            assert await head.read() == body
        async with client.get(url, headers={"Range": "bytes=100-199"}) as middle:
            assert middle.status == 206
            assert middle.headers["Content-Range"] == f"bytes 100-199/{size}"
            assert await middle.read() == body[100:200]


def test_play_url_needs_the_servers_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUDIO_KEY_ENV, raising=False)
    assert play_url(7) is None
    monkeypatch.setenv(AUDIO_KEY_ENV, "not hex")
    assert play_url(7) is None
    monkeypatch.setenv(AUDIO_KEY_ENV, KEY.hex())
    assert play_url(7) == f"/audio/7/{audio_token(KEY, 7)}"
    assert len(audio_token(KEY, 7)) == 32
    assert audio_token(KEY, 7) != audio_token(KEY, 8)
    assert audio_token(KEY, 7) != audio_token(bytes(32), 7)


@pytest.fixture
async def client(workspace: Path) -> AsyncIterator[TestClient]:
    server = AmbiscopeServer("true", db=workspace)
    server.audio_key = KEY
    async with TestClient(TestServer(await server._make_app())) as test_client:
        yield test_client


async def test_page_has_one_player_and_the_open_hook(client: TestClient) -> None:
    async with client.get("/") as page:
        html = await page.text()
    assert page.status == 200
    assert html.count('<audio id="ambiscope-audio"') == 1
    assert "window.open = (url, target, features)" in html
    assert html.index("ambiscope-audio") > html.index('id="terminal"')  # textual's page kept


async def test_audio_survives_the_players_range_requests(
    client: TestClient, workspace: Path
) -> None:
    for clip_id, wav in first_clips(workspace):
        url = f"/audio/{clip_id}/{audio_token(KEY, clip_id)}"
        await replay_player(client, url, wav.read_bytes())


async def test_audio_refuses_what_was_not_asked_for(client: TestClient, workspace: Path) -> None:
    (first, _), (second, _) = first_clips(workspace)
    token = audio_token(KEY, first)
    for url in (
        f"/audio/{first}/{'0' * 32}",  # forged token
        f"/audio/{second}/{token}",  # another clip's token
        f"/audio/999999/{audio_token(KEY, 999999)}",  # no such clip
        f"/audio/{first}/{audio_token(bytes(32), first)}",  # another server's key
    ):
        async with client.get(url) as response:
            assert response.status == 404, url


async def test_audio_outside_the_corpus_root_is_not_served(
    client: TestClient, workspace: Path, tmp_path: Path
) -> None:
    (clip_id, _), _ = first_clips(workspace)
    outside = tmp_path / "secret.wav"
    outside.write_bytes(b"RIFF not audio")
    url = f"/audio/{clip_id}/{audio_token(KEY, clip_id)}"
    with sqlite3.connect(workspace) as conn:
        stored = conn.execute("SELECT path FROM clips WHERE id = ?", (clip_id,)).fetchone()[0]
        conn.execute("UPDATE clips SET path = ? WHERE id = ?", (str(outside), clip_id))
    try:
        async with client.get(url) as response:
            assert response.status == 404
    finally:
        with sqlite3.connect(workspace) as conn:
            conn.execute("UPDATE clips SET path = ? WHERE id = ?", (stored, clip_id))


# ------------------------------------------------------------- the real `ambiscope serve`
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def served(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`ambiscope serve` on the demo workspace in a child process; yields its base URL."""
    port = free_port()
    home = tmp_path_factory.mktemp("serve")
    log = home / "serve.log"
    env = {**os.environ, "AMBISCOPE_CONFIG": str(home / "settings.json"), "USER": "tester"}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*AMBISCOPE, "--db", str(workspace), "serve", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        assert listening(port, process), f"serve did not start: {log.read_text()}"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def listening(port: int, process: subprocess.Popen[bytes]) -> bool:
    """Wait (15 s at most) until `process` accepts connections on `port`."""
    deadline = time.monotonic() + 15
    while process.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


async def press_space_until_played(ws: aiohttp.ClientWebSocketResponse) -> list[list[object]]:
    """Press space every half second until the app asks the page to open a URL.

    Returns the text messages the page received, the last being that request.
    """
    received: list[list[object]] = []
    drawn = False
    next_press = 0.0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if drawn and time.monotonic() >= next_press:
            await ws.send_str(json.dumps(["stdin", " "]))
            next_press = time.monotonic() + 0.5
        try:
            message = await ws.receive(timeout=0.2)
        except TimeoutError:
            continue
        if message.type == aiohttp.WSMsgType.BINARY:
            drawn = drawn or len(message.data) > 10
        elif message.type == aiohttp.WSMsgType.TEXT:
            received.append(json.loads(message.data))
            if received[-1][0] in ("open_url", "deliver_file_start"):
                return received
        else:
            received.append([str(message.type), str(message.data)])
            break
    raise AssertionError(f"space never played a clip; the page got {received}")


async def test_space_in_serve_plays_in_the_page(served: str, workspace: Path) -> None:
    async with (
        aiohttp.ClientSession(base_url=served) as session,
        session.ws_connect("/ws?width=80&height=24") as ws,
    ):
        received = await press_space_until_played(ws)
        kind, payload = received[-1]
        assert kind == "open_url"  # not a single-use download in a new tab
        assert isinstance(payload, dict)
        url = str(payload["url"])
        _, route, clip_id, token = url.split("/")
        assert (route, len(token)) == ("audio", 32)
        await replay_player(session, url, clip_file(workspace, int(clip_id)).read_bytes())
        forged = url[: url.rindex("/") + 1] + "0" * 32
        async with session.get(forged) as response:
            assert response.status == 404


# ----------------------------------------------------------------- a real headless browser
CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None
)
HEADLESS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,700")
PLAYER = "document.getElementById('ambiscope-audio')"
PLAYER_STATE = (
    "(p => ({src: p.src, paused: p.paused, time: p.currentTime, ready: p.readyState,"
    " network: p.networkState, error: p.error && p.error.message}))"
    f"({PLAYER})"
)


class DevTools:
    """Just enough of the Chrome DevTools Protocol to type into a page and read it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.sent = 0

    async def call(self, method: str, **params: object) -> dict[str, Any]:
        self.sent += 1
        await self.ws.send_json({"id": self.sent, "method": method, "params": params})
        while True:  # events arrive in between; only the reply counts
            reply = await self.ws.receive_json()
            if reply.get("id") == self.sent:
                assert "error" not in reply, reply
                return dict(reply["result"])

    async def value(self, expression: str) -> Any:
        found = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return found["result"].get("value")

    async def press_space(self) -> None:
        key = {"key": " ", "code": "Space", "windowsVirtualKeyCode": 32}
        await self.call("Input.dispatchKeyEvent", type="keyDown", text=" ", **key)
        await self.call("Input.dispatchKeyEvent", type="keyUp", **key)

    async def until(self, expression: str, *, press: bool = False) -> None:
        """Wait until `expression` is true in the page, pressing space meanwhile if asked."""
        deadline = time.monotonic() + 30
        while not await self.value(expression):
            if time.monotonic() > deadline:
                state = await self.value(f"JSON.stringify({PLAYER_STATE})")
                raise AssertionError(f"never true in the page: {expression}; player: {state}")
            if press:
                await self.press_space()
            await asyncio.sleep(2.5 if press else 0.05)  # the app answers one press at a time


@pytest.fixture
async def page(served: str, tmp_path: Path) -> AsyncIterator[DevTools]:
    """The `ambiscope serve` page in headless Chromium, driven over DevTools."""
    assert CHROMIUM is not None
    port = free_port()
    profile = tmp_path / "profile"
    chromium = subprocess.Popen(
        [
            CHROMIUM,
            *HEADLESS,
            f"--remote-debugging-port={port}",
            f"--user-data-dir={profile}",
            served,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert listening(port, chromium), "chromium did not start"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as listing:
                target = next(t for t in await listing.json() if t["type"] == "page")
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield DevTools(ws)
    finally:
        chromium.terminate()
        chromium.wait(timeout=10)


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
async def test_space_plays_in_a_real_browser_page(
    page: DevTools, served: str, workspace: Path
) -> None:
    await page.until("document.body.classList.contains('-first-byte')")  # the app is drawn
    await page.value("document.querySelector('.xterm-helper-textarea').focus()")
    await asyncio.sleep(1)  # the first clip's detail loads; a press before says "loading"
    await page.until(f"{PLAYER}.src !== ''", press=True)
    # it plays (range requests answered); on a loaded machine the 2 s clip may have ended
    await page.until(f"{PLAYER}.currentTime > 0 && {PLAYER}.error === null")
    clip_id = int((await page.value(f"{PLAYER}.src")).split("/")[-2])
    with Workspace.open(workspace, readonly=True) as ws:
        seconds = ws.get_clip(clip_id).duration or 0.0
    assert await page.value(f"{PLAYER}.duration") == pytest.approx(seconds, abs=0.05)
    if not await page.value(f"{PLAYER}.ended"):
        await page.press_space()  # the same clip again stops it
        await page.until(f"{PLAYER}.paused")
    assert await page.value("document.activeElement.className") == "xterm-helper-textarea"
    targets = (await page.call("Target.getTargets"))["targetInfos"]
    assert [t["url"] for t in targets if t["type"] == "page"] == [f"{served}/"]  # no new tab


def test_no_device_help_names_a_missing_library_but_not_portaudio_jargon() -> None:
    from ambiscope.tui.playback import no_device_help

    plain = no_device_help("Error querying device -1")
    assert plain.startswith("No audio output device here. ") and "-1" not in plain
    missing = no_device_help("PortAudio library not found")
    assert missing.startswith("No audio output device here (missing: PortAudio library")
