"""Re-sampling from the browser keeps the run: the dialog edits a copy of its full spec.

The run is made the way `ambiscope sample` makes it (find_or_create_run with a real
openai backend pointed at a port where nothing listens), with a custom prompt file,
a transcript, a non-default max_new_tokens and a base URL, none of which the dialog shows.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static

from ambiscope.core.alm import open_backend
from ambiscope.core.scaling.run import RunSpec, find_or_create_run, load_prompt
from ambiscope.db import Job, Run, Workspace
from ambiscope.db.jobs import list_workers
from ambiscope.tui import jobs_bridge
from ambiscope.tui.app import AmbiscopeApp
from ambiscope.tui.screens.resample import ResampleModal, spec_of_run
from tests.tui.helpers import browser, make_app, ready, until

PROMPT = '''name = "careful-listener"
mode = "label"
system = "You are a careful listener."
user = """
{transcript_line}Which emotion does the speaker express? One of: {labels}. One word."""
'''
NOWHERE = "http://127.0.0.1:9/v1"  # the discard port: the backend's /models probe fails fast
KEY_VARIABLE = "AMBISCOPE_TEST_KEY"


@pytest.fixture(scope="module", autouse=True)
def _api_key() -> Iterator[None]:
    """The backend checks at construction that its API-key variable is set."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_VARIABLE, "not-a-real-key")
        yield


@pytest.fixture(scope="module")
def remote_run(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, RunSpec]:
    prompt = tmp_path_factory.mktemp("prompts") / "careful.toml"
    prompt.write_text(PROMPT, encoding="utf-8")
    spec = RunSpec(
        dataset="demo",
        model="remote-alm",
        backend="openai",
        base_url=NOWHERE,
        api_key_env=KEY_VARIABLE,
        prompt_file=str(prompt),
        transcript=True,
        max_new_tokens=64,
        n=3,
        temperature=0.5,
        name="remote",
    )
    run, created = _find_or_create_run(workspace, spec)
    assert created
    return run, spec


def _find_or_create_run(path: Path, spec: RunSpec) -> tuple[Run, bool]:
    """What `ambiscope sample` (and the re-sample job) does to find or create the run."""
    backend = open_backend(spec)
    try:
        with Workspace.open(path) as ws:
            dataset = ws.get_dataset(spec.dataset)
            return find_or_create_run(ws, dataset, spec, load_prompt(spec), backend)
    finally:
        backend.close()


def _notice(app: AmbiscopeApp) -> str:
    return str(app.screen.query_one("#identity", Static).render())


async def _open_dialog(app: AmbiscopeApp, pilot: Pilot[None], run: Run) -> ResampleModal:
    """The dialog for the first clip, with `run` selected in the browser."""
    screen = await ready(pilot)
    screen.select_model(run.id, None)
    await until(
        pilot,
        lambda: (
            screen.detail is not None
            and screen.detail.run is not None
            and screen.detail.run.id == run.id
        ),
    )
    await pilot.press("r")
    await until(pilot, lambda: isinstance(app.screen, ResampleModal))
    await pilot.pause()
    modal = app.screen
    assert isinstance(modal, ResampleModal)
    return modal


def test_the_copy_is_the_runs_full_spec(remote_run: tuple[Run, RunSpec]) -> None:
    run, spec = remote_run
    assert spec_of_run("demo", run) == spec
    # a run without a stored spec starts from its columns
    copy = spec_of_run("demo", replace(run, config={}))
    assert (copy.model, copy.backend, copy.n, copy.temperature) == ("remote-alm", "openai", 3, 0.5)
    assert copy.prompt_file is None


async def test_resample_resumes_the_run(workspace: Path, remote_run: tuple[Run, RunSpec]) -> None:
    run, spec = remote_run
    app = make_app(workspace)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            modal = await _open_dialog(app, pilot, run)
            assert modal.query_one("#model", Input).value == "remote-alm"
            assert modal.query_one("#backend", Select).value == "openai"
            assert _notice(app) == ""  # resumes: nothing to warn about
            kept = str(modal.query_one("#kept", Static).render())
            for shown in ("careful.toml", "transcript=True", "max_new_tokens=64", NOWHERE):
                assert shown in kept
            assert modal.query_one("#scope", Select).value == "clip"
            detail = browser(app).detail
            assert detail is not None
            clip_id = detail.clip.id
            await pilot.click("#ok")
            # the job is queued, then a worker started (or not): the browser says which
            await until(
                pilot, lambda: any("queued" in n.message for n in app._notifications), timeout=40
            )
    finally:
        _stop_workers(workspace)
    (job,) = _queued(workspace, clip_id)
    assert job.params["spec"] == spec.to_dict()
    found, created = _find_or_create_run(workspace, RunSpec.from_dict(job.params["spec"]))
    assert (found.id, created) == (run.id, False)


async def test_changing_n_or_temperature_says_a_new_run(
    workspace: Path, remote_run: tuple[Run, RunSpec]
) -> None:
    run, _ = remote_run
    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        modal = await _open_dialog(app, pilot, run)
        modal.query_one("#n", Input).value = "5"
        await until(pilot, lambda: "new run" in _notice(app))
        assert "n" in _notice(app).split("changed: ")[1]
        modal.query_one("#n", Input).value = "3"
        await until(pilot, lambda: _notice(app) == "")
        modal.query_one("#temperature", Input).value = "0.9"
        await until(pilot, lambda: "temperature" in _notice(app))
        edited = modal._check()
        assert edited is not None
        assert (edited.temperature, edited.prompt_file, edited.name) == (
            0.9,
            run.config["spec"]["prompt_file"],
            None,  # a new run does not take the old run's name
        )
        modal.query_one("#temperature", Input).value = "abc"
        await until(pilot, lambda: bool(str(modal.query_one("#error", Static).render())))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ResampleModal))


def _queued(path: Path, clip_id: int) -> list[Job]:
    return [
        r.job
        for r in jobs_bridge.poll(path).rows
        if r.job.kind == "resample" and r.job.params.get("clip_ids") == [clip_id]
    ]


def _stop_workers(path: Path) -> None:
    """Stop the detached worker the queued job started (it would sample from NOWHERE)."""
    with Workspace.open(path, readonly=True) as ws:
        pids = [w.pid for w in list_workers(ws)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
