"""Runs over the OpenAI-compatible backend against real `serve-model` servers.

Clips in flight across clips (the run's thread the only writer), replicas sharing the
requests and covering for a dead one, the preflight that stops a bad endpoint / model name
before a run row exists, neutral sampling parameters, and ``--no-logprobs``.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from ambiscope.core.alm.base import ModelLoadError
from ambiscope.core.alm.serve_openai import ModelServer, make_server, start_in_thread
from ambiscope.core.demo import DemoSpec, build_demo
from ambiscope.core.scaling.run import RunSpec, execute_run
from ambiscope.db import Workspace


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("openai-runs") / "ws.db"
    build_demo(path, DemoSpec(n_clips=6, seed=5))
    return path


@pytest.fixture
def ws(demo_db: Path, tmp_path: Path) -> Iterator[Workspace]:
    copy = tmp_path / "ws.db"
    shutil.copy(demo_db, copy)
    with Workspace.open(copy) as workspace:
        yield workspace


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spec(srv: ModelServer, **kw: Any) -> RunSpec:
    base = dict(
        dataset="demo",
        model=srv.model_name,
        backend="openai",
        base_url=srv.url,
        n=3,
        max_new_tokens=4,
        seed=1,
        timeout=60.0,
    )
    base.update(kw)
    return RunSpec(**base)


def test_clips_in_flight_are_all_written_once(ws: Workspace, serve) -> None:
    srv = serve(delay=0.05)
    result = execute_run(ws, _spec(srv, concurrency=4, verifier="self"), limit=6)
    assert (result.processed, result.failed) == (6, 0)
    samples = ws.samples(result.run.id)
    assert len(samples) == 18 and len({(s.clip_id, s.idx) for s in samples}) == 18
    assert set(ws.run_clip_ids(result.run.id, status="done")) == {s.clip_id for s in samples}
    again = execute_run(ws, _spec(srv, concurrency=4, verifier="self"), limit=6)
    assert (again.processed, again.skipped) == (0, 6)  # resume: nothing left to do


def test_replicas_share_the_requests_and_cover_for_a_dead_one(ws: Workspace, serve) -> None:
    one, two = serve(), serve()
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    spec = _spec(one, base_url=(one.url, two.url), concurrency=4, likelihood=False)
    result = execute_run(ws, spec, limit=6)
    assert result.failed == 0 and one.chat_requests > 0 and two.chat_requests > 0
    # a replica that is down: the preflight refuses it before any run row is written
    runs_before = len(ws.runs(ws.get_dataset("demo").id))
    with pytest.raises(ModelLoadError, match=r"cannot use http://127\.0\.0\.1") as err:
        execute_run(ws, _spec(one, base_url=(one.url, dead), seed=2), limit=2)
    assert "\n" not in str(err.value)
    assert len(ws.runs(ws.get_dataset("demo").id)) == runs_before


def test_a_replica_failing_mid_run_is_retried_elsewhere_and_reported(ws: Workspace, serve) -> None:
    healthy, flaky = serve(), serve(fail_first=3, fail_status=503)
    spec = _spec(healthy, base_url=(flaky.url, healthy.url), concurrency=2, likelihood=False)
    result = execute_run(ws, spec, limit=4)
    assert (result.processed, result.failed) == (4, 0)
    assert any(flaky.url in note and "failed" in note for note in result.notes)


def test_wrong_model_name_stops_before_the_run_exists(ws: Workspace, serve) -> None:
    srv = serve()
    with pytest.raises(ModelLoadError) as err:
        execute_run(ws, _spec(srv, model="tiny"), limit=2)
    message = str(err.value)
    assert "does not serve model 'tiny'" in message and srv.model_name in message
    assert ws.runs(ws.get_dataset("demo").id) == [] and srv.chat_requests == 0


def test_neutral_sampling_parameters_are_explicit(ws: Workspace, serve) -> None:
    srv = serve()
    execute_run(ws, _spec(srv, likelihood=False), limit=1)
    body = next(r.body for r in srv.records if r.body and r.body.get("n") == 3)
    assert body["top_p"] == 1.0 and body["top_k"] == -1
    assert body["repetition_penalty"] == 1.0 and body["min_p"] == 0.0


def test_without_logprobs_the_parts_that_need_them_are_skipped_with_a_note(
    ws: Workspace, serve
) -> None:
    srv = serve()
    result = execute_run(ws, _spec(srv, logprobs=False, verifier="self"), limit=2)
    assert result.failed == 0
    chats = [r.body for r in srv.records if r.body]
    assert chats and all("logprobs" not in b and "top_logprobs" not in b for b in chats)
    assert any("likelihood not computed" in n for n in result.notes)
    assert any("verifier strategies skipped" in n for n in result.notes)
    strategies = set(ws.strategies(result.run.id))
    assert not strategies & {"likelihood", "bon", "wbon", "verifier", "wverifier"}


def test_cli_unreachable_endpoint_is_one_line_and_no_run(ws: Workspace) -> None:
    from click.testing import CliRunner

    from ambiscope.tui.cli.main import main

    args = ["--db", str(ws.path), "sample", "-d", "demo", "-m", "m", "--backend", "openai"]
    args += ["--base-url", f"http://127.0.0.1:{_free_port()}/v1", "--limit", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0, result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot use" in lines[0] and "server running" in lines[0]
    assert ws.runs(ws.get_dataset("demo").id) == []


def test_cli_run_with_failed_clips_exits_non_zero_and_says_how_to_resume(
    ws: Workspace, serve
) -> None:
    from click.testing import CliRunner

    from ambiscope.tui.cli.main import main

    srv = serve(fail_first=1000, fail_status=400)
    args = ["--db", str(ws.path), "sample", "-d", "demo", "-m", srv.model_name]
    args += ["--backend", "openai", "--base-url", srv.url, "--limit", "2", "--n", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "2 clips failed; run the same command again to retry them" in result.output


def test_likelihood_over_http_is_exact_or_marked_approximate(ws: Workspace, serve, tb) -> None:
    from ambiscope.core.alm.backends.openai import OpenAIBackend
    from ambiscope.core.alm.prompts import label_scoring_prompt
    from ambiscope.core.scaling.loop import clip_audio

    exact_server = serve()
    result = execute_run(ws, _spec(exact_server), limit=2)
    assert "likelihood" in ws.strategies(result.run.id)
    assert "likelihood~" not in ws.strategies(result.run.id)
    ds = ws.get_dataset("demo")
    clip = ws.get_clip(sorted(ws.run_clip_ids(result.run.id, status="done"))[0])
    labels = list(ds.label_set)
    want = tb.score_labels(
        clip_audio(ds, clip, tb), label_scoring_prompt(labels, transcript=None), labels
    )
    row = ws.conn.execute(
        "SELECT label_loglik FROM run_clips WHERE run_id = ? AND clip_id = ?",
        (result.run.id, clip.id),
    ).fetchone()
    from ambiscope.db import codec

    np.testing.assert_allclose(codec.decode_dist(row[0]), want, atol=1e-4)

    # a server with first-token top-k log-probs only (serve-model over an openai backend)
    relay = make_server(OpenAIBackend(exact_server.model_name, base_url=exact_server.url))
    start_in_thread(relay)
    try:
        approx = execute_run(ws, _spec(relay, seed=7), limit=2)
    finally:
        relay.shutdown()
        relay.server_close()
    assert "likelihood~" in ws.strategies(approx.run.id)
    assert "likelihood" not in ws.strategies(approx.run.id)
    assert any("likelihood~" in note for note in approx.notes)
