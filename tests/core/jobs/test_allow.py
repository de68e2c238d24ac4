"""A stored job may not run code, send a secret or reach a server unless the worker was
started allowing it (issue 12, findings 3 and 4), and `worker --once` never exits with a
job still running (finding 9)."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ambiscope.core.jobs.kinds import job_needs
from ambiscope.core.jobs.policy import (
    Needs,
    PolicyError,
    WorkerPolicy,
    execution_needs,
    normalise_endpoint,
)
from ambiscope.core.jobs.queue import claim_next, enqueue
from ambiscope.core.jobs.spawn import worker_command
from ambiscope.core.jobs.worker import Worker, WorkerConfig
from ambiscope.core.scaling.job import enqueue_resample
from ambiscope.core.scaling.run import RunSpec
from ambiscope.db import Workspace
from ambiscope.db.jobs import get_job, list_events
from ambiscope.tui.cli.main import main
from ambiscope.tui.settings import Settings
from tests.core.jobs.flag_kind import FLAG_KIND, flag_params
from tests.core.jobs.test_queue import make_workspace

SECRET_ENV = "AMBISCOPE_TEST_SECRET"
SECRET = "s3cret-value-never-sent"


# ------------------------------------------------------------------- policy unit
def test_endpoints_are_compared_by_what_they_reach() -> None:
    assert normalise_endpoint("HTTP://Example.org/v1/") == "http://example.org:80/v1"
    assert normalise_endpoint("https://h:8443/v1") == "https://h:8443/v1"
    assert normalise_endpoint("http://ok.example@evil.example/v1") == "http://evil.example:80/v1"
    assert normalise_endpoint("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
    for bad in ("file:///etc/passwd", "ftp://h/", "http:///v1", "http://h:99999/"):
        with pytest.raises(ValueError, match="not an http"):
            normalise_endpoint(bad)


def test_needs_are_found_in_any_nested_spec_and_transformers_ignores_base_url() -> None:
    params = {
        "spec": {"backend": "transformers", "trust_remote_code": False, "base_url": "http://x/"},
        "extra": [{"verifier": {"backend": "openai", "base_url": "http://v:1/v1/"}}],
        "api": {"api_key_env": "TOKEN"},
    }
    assert execution_needs(params) == Needs(False, ("http://v:1/v1",), ("TOKEN",))
    assert execution_needs({"spec": {"model": "/models/local", "backend": "transformers"}}) == (
        Needs()
    )


def test_policy_refuses_in_one_line_naming_each_flag() -> None:
    needs = Needs(True, ("http://evil:80/v1",), ("SOME_TOKEN",))
    with pytest.raises(PolicyError) as err:
        WorkerPolicy().check(needs)
    message = str(err.value)
    assert "\n" not in message
    for flag in (
        "--allow-remote-code",
        "--allow-endpoint http://evil:80/v1",
        "--allow-key-env SOME_TOKEN",
    ):
        assert flag in message
    allowed = WorkerPolicy(True, ["http://EVIL/v1/"], ["SOME_TOKEN"])
    allowed.check(needs)
    assert WorkerPolicy(True, [], ["OTHER"]).missing_flags(needs) == [
        "--allow-endpoint http://evil:80/v1",
        "--allow-key-env SOME_TOKEN",
    ]


def test_a_stored_ray_cluster_needs_the_workers_own_ray_address() -> None:
    params = {"spec": {"backend": "transformers", "ray": "10.0.0.5:6379"}}
    assert execution_needs(params).clusters == ("10.0.0.5:6379",)
    assert execution_needs({"spec": {"ray": "local"}}) == Needs()  # a Ray instance here
    with pytest.raises(
        PolicyError, match=r"Ray cluster at 10\.0\.0\.5:6379.*--ray 10\.0\.0\.5:6379"
    ):
        WorkerPolicy().check(execution_needs(params))
    WorkerConfig(ray="10.0.0.5:6379").policy.check(execution_needs(params))
    assert WorkerConfig(ray="10.0.0.5:6379").policy.argv() == ["--ray", "10.0.0.5:6379"]
    assert WorkerConfig(ray="local").policy.argv() == []


def test_a_kind_may_declare_its_own_needs() -> None:
    from ambiscope.core.jobs.kinds import JOB_KINDS, job_kind

    @job_kind("test-needs", needs=lambda p: Needs(key_envs=(p["token_from"],)))
    def handler(ctx: Any) -> None:  # pragma: no cover - never run
        return None

    try:
        assert job_needs("test-needs", {"token_from": "X"}).key_envs == ("X",)
    finally:
        JOB_KINDS._entries.pop("test-needs", None)  # test-only cleanup
        JOB_KINDS._meta.pop("test-needs", None)


# ------------------------------------------------------------- end to end (CLI)
def cli(db: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ambiscope.core.demo import DemoSpec, build_demo

    path = tmp_path_factory.mktemp("demo") / "demo.db"
    build_demo(path, DemoSpec(n_clips=3, seed=3))
    return path


@pytest.fixture
def demo(demo_template: Path, tmp_path: Path) -> Path:
    from tests.core.jobs.test_worker import copy_workspace

    return copy_workspace(demo_template, tmp_path / "ws.db")


def job_status(db: Path, job_id: int) -> tuple[str, str | None]:
    with Workspace.open(db) as ws:
        job = get_job(ws, job_id)
    return job.status, job.error


def runs(db: Path) -> int:
    with Workspace.open(db) as ws:
        return ws.conn.execute("SELECT count(*) FROM runs").fetchone()[0]


def test_stored_trust_remote_code_is_refused_unless_the_worker_allows_it(demo: Path) -> None:
    out = cli(demo, "enqueue", "resample", "-d", "demo", "-m", str(demo.parent / "no-model"),
              "--trust-remote-code", "--n", "1", "--limit", "1")  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "--allow-remote-code" in out.output  # the note at enqueue
    with Workspace.open(demo) as ws:
        (job,) = ws.conn.execute("SELECT id, params FROM jobs").fetchall()
    assert json.loads(job[1])["spec"]["trust_remote_code"] is True  # stored as asked

    assert cli(demo, "worker", "--once").exit_code == 0
    status, error = job_status(demo, job[0])
    assert status == "failed"
    assert error is not None and error.startswith("refused:") and "\n" not in error
    assert "--allow-remote-code" in error and runs(demo) == 0  # nothing ran

    assert cli(demo, "jobs", "retry", str(job[0])).exit_code == 0
    assert cli(demo, "worker", "--once", "--allow-remote-code").exit_code == 0
    status, error = job_status(demo, job[0])
    assert status == "failed" and error is not None and not error.startswith("refused")
    assert "no-model" in error  # it got past the policy to loading the (absent) model


class Recorder(BaseHTTPRequestHandler):
    """Records every request (path and Authorization header) and answers 401."""

    seen: list[tuple[str, str | None]]

    def _answer(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Authorization")))  # type: ignore[attr-defined]
        body = b'{"error": {"message": "no", "type": "authentication_error"}}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_stored_endpoint_and_key_env_send_nothing_unless_the_worker_allows_them(
    demo: Path, recorder: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    url = f"http://127.0.0.1:{recorder.server_address[1]}/v1"
    out = cli(demo, "enqueue", "resample", "-d", "demo", "-m", "m", "--backend", "openai",
              "--base-url", url, "--api-key-env", SECRET_ENV, "--n", "1", "--limit", "1",
              "--no-likelihood", "--timeout", "5")  # fmt: skip
    assert out.exit_code == 0, out.output
    with Workspace.open(demo) as ws:
        (job_id,) = ws.conn.execute("SELECT id FROM jobs").fetchone()

    assert cli(demo, "worker", "--once", "--allow-endpoint", url).exit_code == 0
    status, error = job_status(demo, job_id)
    assert status == "failed" and error is not None and error.startswith("refused:")
    assert f"--allow-key-env {SECRET_ENV}" in error and "--allow-endpoint" not in error
    assert recorder.seen == []  # type: ignore[attr-defined]

    assert cli(demo, "jobs", "retry", str(job_id)).exit_code == 0
    assert cli(demo, "worker", "--once", "--allow-key-env", SECRET_ENV).exit_code == 0
    status, error = job_status(demo, job_id)
    assert error is not None and f"--allow-endpoint {normalise_endpoint(url)}" in error
    assert recorder.seen == []  # type: ignore[attr-defined]

    assert cli(demo, "jobs", "retry", str(job_id)).exit_code == 0
    allowed = ("--allow-endpoint", url + "/", "--allow-key-env", SECRET_ENV)
    assert cli(demo, "worker", "--once", *allowed).exit_code == 0
    status, error = job_status(demo, job_id)
    assert status == "failed" and error is not None and not error.startswith("refused")
    assert recorder.seen[0][1] == f"Bearer {SECRET}"  # type: ignore[attr-defined]


def test_bad_allow_endpoint_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "ws.db"
    make_workspace(db, 1)
    out = CliRunner().invoke(main, ["--db", str(db), "worker", "--once", "--allow-endpoint", "x"])
    assert out.exit_code != 0 and "not an http(s) endpoint URL" in out.output
    assert "Traceback" not in out.output


# ------------------------------------------------------------------ TUI worker
def test_tui_worker_gets_the_allow_list_from_user_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ambiscope.tui import jobs_bridge

    config = tmp_path / "settings.json"
    config.write_text(
        json.dumps(
            {
                "allow_remote_code": True,
                "allow_endpoints": ["http://127.0.0.1:9/v1"],
                "allow_key_envs": [SECRET_ENV],
            }
        )
    )
    monkeypatch.setenv("AMBISCOPE_CONFIG", str(config))
    db = tmp_path / "ws.db"
    make_workspace(db, 1)
    pid = jobs_bridge.ensure_worker(db)
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    finally:
        os.kill(pid, signal.SIGTERM)
    assert [a.decode() for a in argv if a][-5:] == [
        "--allow-remote-code",
        "--allow-endpoint",
        "http://127.0.0.1:9/v1",
        "--allow-key-env",
        SECRET_ENV,
    ]
    assert worker_command(db)[-2:] == ["--db", str(db)]  # nothing allowed by default
    assert Settings().worker_policy().argv() == []
    assert Settings.from_dict({"allow_remote_code": "yes"}).allow_remote_code is False


# --------------------------------------------------------------- worker --once
def test_once_waits_for_a_job_another_worker_still_holds(tmp_path: Path) -> None:
    db = tmp_path / "ws.db"
    ids = make_workspace(db, 2)
    with Workspace.open(db) as ws:
        job = enqueue(ws, FLAG_KIND, flag_params(ids, "seen"))
        # a worker on another machine took it and then vanished: its lease runs 1.5 s more
        assert claim_next(ws, "elsewhere:1:ab", lease_s=1.5, pid_check=False) is not None
    config = WorkerConfig(once=True, poll_s=0.05, modules=["tests.core.jobs.flag_kind"])
    stats = Worker(db, config).run()
    with Workspace.open(db) as ws:
        assert get_job(ws, job.id).status == "done"
        said = [e.message for e in list_events(ws, None, limit=50)]
    assert stats.done == 1
    assert any(f"waiting for job {job.id}" in m and "elsewhere:1:ab" in m for m in said)


def test_prompt_files_outside_the_workspace_folder_need_allow_dir(tmp_path: Path) -> None:
    """A stored prompt_file is read by the worker and its text stored in the run: a file
    outside the workspace's folder (e.g. ~/.ssh/id_rsa) needs --allow-dir."""
    home = tmp_path / "study"
    (home / "prompts").mkdir(parents=True)
    inside = home / "prompts" / "p.toml"
    secret = tmp_path / "elsewhere" / "id_rsa"
    secret.parent.mkdir()
    link = home / "prompts" / "link.toml"
    link.symlink_to(secret)
    policy = WorkerPolicy(allow_dirs=(str(home),))
    assert policy.refusal(execution_needs({"spec": {"prompt_file": str(inside)}})) is None
    climbing = str(home / "prompts" / ".." / ".." / "elsewhere" / "id_rsa")
    for stored in (str(secret), str(link), climbing):  # symlinks and `..` resolved
        reason = policy.refusal(execution_needs({"spec": {"prompt_file": stored}}))
        assert reason is not None and f"read {stored}" in reason
        assert f"--allow-dir {secret.parent}" in reason
    wider = WorkerPolicy(allow_dirs=(str(home), str(secret.parent)))
    assert wider.refusal(execution_needs({"spec": {"prompt_file": str(link)}})) is None


def test_worker_refuses_a_stored_prompt_file_outside_the_workspace(demo: Path) -> None:
    secret = demo.parent.parent / f"{demo.parent.name}-secret.toml"
    secret.write_text('mode = "label"\nuser = "secret"\n')
    with Workspace.open(demo) as ws:
        job = enqueue_resample(
            ws, RunSpec(dataset="demo", model=str(demo.parent / "no-model"),
                        prompt_file=str(secret), n=1), limit=1,
        )  # fmt: skip
    assert cli(demo, "worker", "--once").exit_code == 0
    status, error = job_status(demo, job.id)
    assert status == "failed" and error is not None and error.startswith("refused:")
    assert f"read {secret}" in error and f"--allow-dir {secret.parent}" in error
    assert runs(demo) == 0
