"""The OpenAI backend against a real HTTP server that answers with a real (tiny) model.

`ambiscope.core.alm.serve_openai` wraps the transformers backend on the tiny random-weight
checkpoint, so requests, retries, timeouts and parsing are exercised over real sockets and
the numbers can be compared with calling the transformers backend directly.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from ambiscope.core.alm.backends.openai import (
    OpenAIBackend,
    _candidate,
    _choices,
    encode_wav_base64,
    label_scores_from_top_logprobs,
    yes_probability,
)
from ambiscope.core.alm.base import AudioInput, BackendError, GenerationParams, ModelLoadError
from ambiscope.core.alm.prompts import (
    DEFAULT_TEMPLATES,
    label_scoring_prompt,
    render,
    render_verifier,
)
from ambiscope.core.alm.serve_openai import ModelServer, make_server, start_in_thread

LABELS = ["neutral", "happy", "sad", "angry"]
PROMPT = render(DEFAULT_TEMPLATES["label"], LABELS)
KEY_ENV = "AMBISCOPE_TEST_OPENAI_KEY"
SECRET = "sk-test-do-not-leak-0123"


def _audio() -> AudioInput:
    """1.5 s on the 16-bit grid, so the WAV round trip through the server is bit-exact."""
    rng = np.random.default_rng(0)
    t = np.arange(24000) / 16000
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    return AudioInput((np.round(x * 32768) / 32768).astype(np.float32), 16000)


AUDIO = _audio()


@pytest.fixture(scope="module")
def server(tb: Any) -> Iterator[ModelServer]:
    srv = make_server(tb, record=True)
    start_in_thread(srv)
    yield srv
    srv.shutdown()
    srv.server_close()


def client(srv: ModelServer, **kwargs: Any) -> OpenAIBackend:
    kwargs.setdefault("retry_base", 0.01)
    kwargs.setdefault("timeout", 60.0)
    return OpenAIBackend(srv.model_name, base_url=srv.url, **kwargs)


PARAMS = GenerationParams(n=4, temperature=1.0, max_new_tokens=6, seed=3)

# ------------------------------------------------------------------ against the real model


def test_sample_returns_the_wrapped_backends_candidates(server: ModelServer, tb: Any) -> None:
    cands = client(server).sample(AUDIO, PROMPT, PARAMS)
    direct = tb.sample(AUDIO, PROMPT, PARAMS)
    assert len(cands) == PARAMS.n
    for got, want in zip(cands, direct, strict=True):
        assert got.text == want.text
        assert got.n_tokens == want.n_tokens and got.n_tokens >= 1
        assert math.isfinite(got.logprob)
        assert got.logprob == pytest.approx(want.logprob, rel=1e-5, abs=1e-4)
        assert got.logprob_norm == pytest.approx(got.logprob / got.n_tokens)
    body = server.records[-1].body
    assert body["n"] == 4 and body["seed"] == 3 and body["logprobs"] is True
    assert body["max_tokens"] == 6 and body["top_p"] == 1.0  # explicit: no server default
    assert body["messages"][0] == {"role": "system", "content": PROMPT.system}
    audio_part, text_part = body["messages"][1]["content"]
    assert audio_part["type"] == "input_audio" and audio_part["input_audio"]["format"] == "wav"
    assert text_part == {"type": "text", "text": PROMPT.user}


def test_verify_matches_the_wrapped_backend(server: ModelServer, tb: Any) -> None:
    prompts = [render_verifier(LABELS, label) for label in LABELS]
    got = client(server, concurrency=3).verify(AUDIO, prompts)
    assert got.shape == (len(LABELS),)
    assert np.all((got >= 0) & (got <= 1))
    np.testing.assert_allclose(got, tb.verify(AUDIO, prompts), atol=1e-6)
    body = server.records[-1].body
    assert body["max_tokens"] == 1 and body["top_logprobs"] == 20 and body["temperature"] == 0


def test_score_labels_through_the_server_is_the_documented_floor(server: ModelServer) -> None:
    # The server answers one-token requests with Yes/No only, so no label is listed and
    # every label gets the same floor: the likelihood strategy is uniform (documented).
    scores = client(server).score_labels(AUDIO, label_scoring_prompt(LABELS), LABELS)
    assert scores.shape == (len(LABELS),) and np.all(np.isfinite(scores))
    assert np.ptp(scores) == 0


def test_beam_search_is_rejected(server: ModelServer) -> None:
    beam = GenerationParams(n=2, search="beam", beams=2)
    with pytest.raises(BackendError, match="beam search is not part of the OpenAI API"):
        client(server).sample(AUDIO, PROMPT, beam)


def test_describe_reports_the_server_model_and_survives_no_server(server: ModelServer) -> None:
    info = client(server).describe()
    assert info["backend"] == "openai" and info["base_url"] == server.url
    assert info["server_model"]["id"] == server.model_name
    assert info["server_model"]["owned_by"] == "ambiscope"
    offline = OpenAIBackend("m", base_url=f"http://127.0.0.1:{_free_port()}/v1").describe()
    assert offline["server_model"] is None and "connection failed" in offline["server_models_error"]


# ------------------------------------------------------------------ transport behaviour


def test_503_is_retried_until_success(serve: Callable[..., ModelServer]) -> None:
    srv = serve(fail_first=2)
    cands = client(srv).sample(AUDIO, PROMPT, GenerationParams(n=2, max_new_tokens=4, seed=0))
    assert len(cands) == 2
    assert srv.chat_requests == 3


def test_429_honours_retry_after(serve: Callable[..., ModelServer]) -> None:
    srv = serve(fail_first=1, fail_status=429, retry_after="0.4")
    started = time.perf_counter()
    client(srv).verify(AUDIO, [render_verifier(LABELS, "sad")])
    assert time.perf_counter() - started >= 0.4
    assert srv.chat_requests == 2


def test_gives_up_after_max_retries(serve: Callable[..., ModelServer]) -> None:
    srv = serve(fail_first=100)
    with pytest.raises(BackendError, match=r"HTTP 503.*after 3 attempts") as info:
        client(srv, max_retries=2).sample(AUDIO, PROMPT, PARAMS)
    assert "\n" not in str(info.value)
    assert srv.chat_requests == 3


def test_400_is_not_retried(serve: Callable[..., ModelServer]) -> None:
    srv = serve(fail_first=5, fail_status=400)
    with pytest.raises(BackendError, match="HTTP 400: simulated failure"):
        client(srv).sample(AUDIO, PROMPT, PARAMS)
    assert srv.chat_requests == 1


def test_unknown_model_is_a_404_without_retry(server: ModelServer) -> None:
    before = server.chat_requests
    wrong = OpenAIBackend("no-such-model", base_url=server.url, retry_base=0.01)
    with pytest.raises(BackendError, match="HTTP 404: model 'no-such-model' not found"):
        wrong.sample(AUDIO, PROMPT, PARAMS)
    assert server.chat_requests == before + 1


def test_timeout_is_a_backend_error(serve: Callable[..., ModelServer]) -> None:
    srv = serve(delay=1.5)
    started = time.perf_counter()
    with pytest.raises(BackendError, match=r"timed out after 0\.3 s"):
        client(srv, timeout=0.3).sample(AUDIO, PROMPT, PARAMS)
    assert time.perf_counter() - started < 1.2  # read timeouts are not retried
    assert srv.chat_requests == 1


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [("json", "malformed response \\(not JSON"), ("shape", "missing or empty 'choices'")],
)
def test_malformed_responses_are_backend_errors(
    serve: Callable[..., ModelServer], corrupt: str, message: str
) -> None:
    srv = serve(corrupt=corrupt)
    with pytest.raises(BackendError, match=message):
        client(srv).sample(AUDIO, PROMPT, PARAMS)
    assert srv.chat_requests == 1


def test_connection_failures_are_retried_then_reported() -> None:
    backend = OpenAIBackend(
        "m", base_url=f"http://127.0.0.1:{_free_port()}/v1", max_retries=1, retry_base=0.01
    )
    with pytest.raises(BackendError, match=r"connection failed.*after 2 attempts"):
        backend.sample(AUDIO, PROMPT, PARAMS)


# ------------------------------------------------------------------ API key


def test_api_key_is_sent_and_never_exposed(
    serve: Callable[..., ModelServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    srv = serve(api_key=SECRET)
    backend = client(srv, api_key_env=KEY_ENV)
    backend.verify(AUDIO, [render_verifier(LABELS, "happy")])
    assert srv.records[-1].headers["Authorization"] == f"Bearer {SECRET}"
    info = backend.describe()
    assert info["server_model"] is not None and info["api_key_env"] == KEY_ENV
    assert SECRET not in json.dumps(info, default=str)
    assert SECRET not in repr(vars(backend))
    anonymous = client(srv)
    with pytest.raises(BackendError, match="HTTP 401"):
        anonymous.sample(AUDIO, PROMPT, PARAMS)
    assert "Authorization" not in srv.records[-1].headers


def test_missing_key_variable_is_a_model_load_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ModelLoadError, match=f"{KEY_ENV} .*is not set"):
        OpenAIBackend("m", api_key_env=KEY_ENV)


# ------------------------------------------------------------------ the server's validation


def _good_body(server: ModelServer) -> dict[str, Any]:
    wav = encode_wav_base64(AUDIO.samples, 16000)
    return {
        "model": server.model_name,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}},
                    {"type": "text", "text": "Which emotion?"},
                ],
            }
        ],
        "max_tokens": 2,
    }


def _post(server: ModelServer, path: str, body: bytes) -> tuple[int, Any]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _mutate(body: dict[str, Any], how: str) -> dict[str, Any]:
    parts = body["messages"][0]["content"]
    if how == "no-audio":
        del parts[0]
    elif how == "bad-base64":
        parts[0]["input_audio"]["data"] = "not base64!!"
    elif how == "not-audio":
        parts[0]["input_audio"]["data"] = "aGVsbG8gd29ybGQ="
    elif how == "stream":
        body["stream"] = True
    elif how == "bad-n":
        body["n"] = "four"
    elif how == "top-without-logprobs":
        body["top_logprobs"] = 5
    elif how == "multi-turn":
        body["messages"] += [{"role": "assistant", "content": "x"}, body["messages"][0]]
    return body


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("no-audio", "exactly one audio part"),
        ("bad-base64", "not valid base64"),
        ("not-audio", "cannot decode the audio"),
        ("stream", "streaming is not supported"),
        ("bad-n", "'n' must be an integer"),
        ("top-without-logprobs", "requires 'logprobs'"),
        ("multi-turn", "multi-turn"),
    ],
)
def test_server_rejects_malformed_requests(server: ModelServer, how: str, message: str) -> None:
    status, body = _post(
        server, "/v1/chat/completions", json.dumps(_mutate(_good_body(server), how)).encode()
    )
    assert status == 400
    assert message in body["error"]["message"]
    assert body["error"]["type"] == "invalid_request_error"


def test_server_rejects_invalid_json_and_unknown_paths(server: ModelServer) -> None:
    status, body = _post(server, "/v1/chat/completions", b"{not json")
    assert status == 400 and "invalid JSON" in body["error"]["message"]
    status, body = _post(server, "/v1/completions", b"{}")
    assert status == 404 and "unknown path" in body["error"]["message"]


def test_server_answers_a_plain_request_with_real_text(server: ModelServer) -> None:
    status, body = _post(server, "/v1/chat/completions", json.dumps(_good_body(server)).encode())
    assert status == 200
    (choice,) = body["choices"]
    assert isinstance(choice["message"]["content"], str) and choice["logprobs"] is None
    assert body["model"] == server.model_name and body["object"] == "chat.completion"


# ------------------------------------------------------------------ response parsing (pure)


def test_yes_probability_sums_spellings_and_is_nan_without_either() -> None:
    top = {" Yes": math.log(0.3), "yes": math.log(0.1), "▁No": math.log(0.2), "x": -0.5}
    assert yes_probability(top) == pytest.approx(0.4 / 0.6)
    assert math.isnan(yes_probability({"maybe": -0.1}))


def test_verify_is_nan_with_a_warning_when_neither_answer_is_listed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    backend = OpenAIBackend("m")
    monkeypatch.setattr(backend, "_first_token", lambda wav, prompt: {"Maybe": -0.1})
    with caplog.at_level(logging.WARNING, logger="ambiscope.core.alm.backends.openai"):
        scores = backend.verify(AUDIO, [render_verifier(LABELS, "sad")])
    assert math.isnan(scores[0])
    assert "neither Yes nor No" in caplog.text


def test_label_scores_use_first_tokens_and_a_floor() -> None:
    top = {
        " sad": math.log(0.5),
        "Sad": math.log(0.1),
        "happy": math.log(0.2),
        "ne": math.log(0.05),
        "s": math.log(0.1),
    }
    labels = ["sad", "happy", "neutral", "angry", "sadness"]
    got = label_scores_from_top_logprobs(top, labels)
    floor = math.log(0.05) - math.log(2)
    expected = [math.log(0.6), math.log(0.2), floor, floor, math.log(0.6)]
    np.testing.assert_allclose(got, expected)
    with pytest.raises(BackendError, match="no top_logprobs"):
        label_scores_from_top_logprobs({}, labels)


def test_choice_parsing_edge_cases() -> None:
    def choice(logprobs: Any) -> dict[str, Any]:
        return {"index": 0, "message": {"content": "sad"}, "logprobs": logprobs}

    assert _candidate(choice(None)).logprob is None
    sentinel = {"content": [{"token": "s", "logprob": -0.5}, {"token": "ad", "logprob": -9999.0}]}
    unreported = _candidate(choice(sentinel))
    assert unreported.logprob is None and unreported.n_tokens == 2
    ok = _candidate(choice({"content": [{"token": "sad", "logprob": -0.25}]}))
    assert (ok.logprob, ok.n_tokens, ok.logprob_norm) == (-0.25, 1, -0.25)
    with pytest.raises(BackendError, match="2 choices for n=3"):
        _choices({"choices": [choice(None), choice(None)]}, 3)
    with pytest.raises(BackendError, match="malformed response"):
        _candidate({"message": "sad"})


# ------------------------------------------------------------------ end to end


def test_execute_run_end_to_end_over_http(server: ModelServer, tmp_path: Path) -> None:
    from ambiscope.core.demo import DemoSpec, build_demo
    from ambiscope.core.scaling.run import RunSpec, execute_run
    from ambiscope.db import Workspace

    db_path = tmp_path / "ws.db"
    build_demo(db_path, DemoSpec(n_clips=3))
    spec = RunSpec(
        dataset="demo",
        model=server.model_name,
        backend="openai",
        base_url=server.url,
        n=3,
        max_new_tokens=6,
        verifier="self",
        timeout=60.0,
    )
    with Workspace.open(db_path) as ws:
        result = execute_run(ws, spec)
        assert (result.processed, result.failed) == (3, 0), result.failures
        preds = ws.conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT clip_id) FROM predictions WHERE run_id = ?",
            (result.run.id,),
        ).fetchone()
        samples = ws.samples(result.run.id)
    assert preds[0] > 0 and preds[1] == 3
    assert len(samples) == 9
    assert all(s.logprob is not None and math.isfinite(s.logprob) for s in samples)
    assert result.run.config["model"]["server_model"]["id"] == server.model_name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
