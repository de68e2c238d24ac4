"""`serve-model` speaks vLLM's request shape where ambiscope uses it (issue 14, item 2).

A real server over the transformers backend on the tiny checkpoint: ``prompt_logprobs``
in vLLM's format with the model's real prompt log-probabilities, ``add_generation_prompt``
/ ``continue_final_message``, ``--served-model-name`` and ``/v1/models``, and the count of
requests in flight that the scale-out bench quotes.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from click.testing import CliRunner

from ambiscope.core.alm.backends.openai import encode_wav_base64
from ambiscope.core.alm.base import AudioInput, ChatPrompt
from ambiscope.core.alm.serve_openai import (
    IN_FLIGHT_PATH,
    InFlight,
    ModelServer,
    make_server,
    start_in_thread,
)
from ambiscope.tui.cli.main import main

SYSTEM = "You are an expert listener."
USER = "Which emotion does the speaker express? Answer with one word."


def _audio() -> AudioInput:
    """1.5 s on the 16-bit grid, so the WAV round trip through the server is bit-exact."""
    rng = np.random.default_rng(1)
    t = np.arange(24000) / 16000
    x = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)
    return AudioInput((np.round(x * 32768) / 32768).astype(np.float32), 16000)


AUDIO = _audio()
WAV = encode_wav_base64(AUDIO.samples, 16000)


@pytest.fixture(scope="module")
def server(tb: Any) -> Iterator[ModelServer]:
    srv = make_server(tb, model_name=["tiny-a", "tiny-b"])
    start_in_thread(srv)
    yield srv
    srv.shutdown()
    srv.server_close()


def request(
    srv: ModelServer, method: str, path: str, body: Any = None, timeout: float = 60
) -> tuple[int, Any]:
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def chat(assistant: str | None = None, model: str = "tiny-a", **fields: Any) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": [
                {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}},
                {"type": "text", "text": USER},
            ],
        },
    ]
    if assistant is not None:
        messages.append({"role": "assistant", "content": assistant})
    return {"model": model, "messages": messages, "max_tokens": 1, "temperature": 0, **fields}


def reference_logprobs(tb: Any, prompt: ChatPrompt, closing: list[int]) -> tuple[list[int], Any]:
    """Token ids and per-position log-softmax of one plain forward (the test's own)."""
    import torch

    inputs = tb.build_inputs(AUDIO, prompt)
    ids = inputs["input_ids"]
    if closing:
        tail = torch.tensor([closing], dtype=ids.dtype)
        inputs["input_ids"] = torch.cat([ids, tail], dim=1)
        inputs["attention_mask"] = torch.cat(
            [inputs["attention_mask"], torch.ones_like(tail)], dim=1
        )
    with torch.no_grad():
        logits = tb.lm(**inputs, use_cache=False).logits[0].float()
    return inputs["input_ids"][0].tolist(), torch.log_softmax(logits, dim=-1)


# ------------------------------------------------------------------ prompt_logprobs


def test_prompt_logprobs_have_vllms_shape_and_the_models_values(
    server: ModelServer, tb: Any
) -> None:
    status, body = request(server, "POST", "/v1/chat/completions", chat(prompt_logprobs=3))
    assert status == 200, body
    entries = body["prompt_logprobs"]
    ids, logp = reference_logprobs(tb, ChatPrompt(user=USER, system=SYSTEM), [])
    assert len(entries) == len(ids) and entries[0] is None
    assert body["ambiscope"]["prompt_tokens"] == len(ids)
    for pos in (1, len(ids) // 2, len(ids) - 1):
        entry = entries[pos]
        keys = list(entry)
        assert keys[0] == str(ids[pos])  # the actual prompt token first
        assert 3 <= len(keys) <= 4  # plus the top 3 (once, when it is among them)
        actual = entry[keys[0]]
        assert set(actual) == {"logprob", "rank", "decoded_token"}
        assert actual["logprob"] == pytest.approx(float(logp[pos - 1, ids[pos]]), abs=1e-5)
        assert actual["rank"] == int((logp[pos - 1] >= logp[pos - 1, ids[pos]]).sum())
        assert actual["decoded_token"] == tb.tokenizer.decode([ids[pos]])
        top = sorted(logp[pos - 1].tolist(), reverse=True)[:3]
        listed = sorted((v for k, v in entry.items() if v["rank"] <= 3), key=lambda v: v["rank"])
        assert [v["rank"] for v in listed] == [1, 2, 3]
        np.testing.assert_allclose([v["logprob"] for v in listed], top, atol=1e-5)
    # the answer is computed as without prompt_logprobs (greedy: the backend's own token);
    # vLLM's other sampling knobs are taken at their neutral values
    neutral = {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0, "top_p": 1.0}
    status, plain = request(server, "POST", "/v1/chat/completions", chat(**neutral))
    assert status == 200, plain
    assert plain["choices"][0]["message"] == body["choices"][0]["message"]
    assert "prompt_logprobs" not in plain


def test_prompt_logprobs_zero_lists_only_the_prompt_token(server: ModelServer) -> None:
    status, body = request(server, "POST", "/v1/chat/completions", chat(prompt_logprobs=0))
    assert status == 200
    assert all(len(e) == 1 for e in body["prompt_logprobs"][1:])
    assert all(
        math.isfinite(next(iter(e.values()))["logprob"]) for e in body["prompt_logprobs"][1:]
    )


def test_a_continued_prefix_ends_the_prompt_after_its_content(server: ModelServer, tb: Any) -> None:
    body = chat(
        "The emotion is",
        continue_final_message=True,
        add_generation_prompt=False,
        prompt_logprobs=0,
    )
    status, got = request(server, "POST", "/v1/chat/completions", body)
    assert status == 200, got
    prompt = ChatPrompt(user=USER, system=SYSTEM, assistant_prefix="The emotion is")
    ids, _ = reference_logprobs(tb, prompt, [])
    assert [int(next(iter(e))) for e in got["prompt_logprobs"][1:]] == ids[1:]
    assert tb.tokenizer.decode(ids[-3:]).endswith("emotion is")  # no end of turn after it


def test_a_finished_turn_ends_with_the_templates_end_of_turn(server: ModelServer, tb: Any) -> None:
    body = chat(
        "happy", add_generation_prompt=False, prompt_logprobs=0, logprobs=True, top_logprobs=2
    )
    status, got = request(server, "POST", "/v1/chat/completions", body)
    assert status == 200, got
    closing = tb.tokenizer.encode("<|im_end|>\n", add_special_tokens=False)
    prompt = ChatPrompt(user=USER, system=SYSTEM, assistant_prefix="happy")
    ids, logp = reference_logprobs(tb, prompt, closing)
    entries = got["prompt_logprobs"]
    assert [int(next(iter(e))) for e in entries[1:]] == ids[1:]
    assert [next(iter(e.values()))["decoded_token"] for e in entries[-2:]] == ["<|im_end|>", "\n"]
    lp = [next(iter(e.values()))["logprob"] for e in entries[1:]]
    want = [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))]
    np.testing.assert_allclose(lp, want, atol=1e-5)
    # the one answer token is the greedy continuation of that finished prompt
    (choice,) = got["choices"]
    best = int(logp[-1].argmax())
    assert choice["logprobs"]["content"][0]["logprob"] == pytest.approx(
        float(logp[-1, best]), abs=1e-5
    )
    assert len(choice["logprobs"]["content"][0]["top_logprobs"]) == 2
    assert got["ambiscope"]["finished_turn"] is True


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prompt_logprobs": 21}, "greater than max allowed: 20"),
        ({"prompt_logprobs": -1}, "must be >= 0"),
        ({"prompt_logprobs": "3"}, "'prompt_logprobs' must be an integer"),
        ({"add_generation_prompt": False}, "needs a final assistant message"),
        ({"continue_final_message": True, "add_generation_prompt": False}, "needs a final"),
        (
            {"assistant": "x", "continue_final_message": True},
            "Cannot set both `continue_final_message` and `add_generation_prompt`",
        ),
        ({"assistant": "x"}, "a final assistant message needs continue_final_message"),
        (
            {"assistant": "x", "add_generation_prompt": False, "max_tokens": 4},
            "max_tokens must be 1",
        ),
        ({"add_generation_prompt": "no"}, "'add_generation_prompt' must be a boolean"),
        ({"top_k": 20}, "'top_k' = 20 is not supported"),
        ({"repetition_penalty": 1.1}, "'repetition_penalty' = 1.1 is not supported"),
    ],
)
def test_request_shapes_vllm_refuses_are_refused(
    server: ModelServer, fields: dict[str, Any], message: str
) -> None:
    assistant = fields.pop("assistant", None)
    status, body = request(server, "POST", "/v1/chat/completions", chat(assistant, **fields))
    assert status == 400
    assert message in body["error"]["message"]


def test_a_backend_without_a_forward_answers_400(server: ModelServer) -> None:
    # serve-model over the openai backend (a proxy to the first server): it can sample
    # and verify, but has no model to run a forward with
    from ambiscope.core.alm.backends.openai import OpenAIBackend

    proxy = make_server(OpenAIBackend("tiny-a", base_url=server.url), model_name="proxy")
    start_in_thread(proxy)
    try:
        status, body = request(
            proxy, "POST", "/v1/chat/completions", chat(model="proxy", prompt_logprobs=0)
        )
        assert status == 400 and "needs a model forward" in body["error"]["message"]
        status, models = request(proxy, "GET", "/v1/models")
        assert models["data"][0]["ambiscope"]["prompt_logprobs"] is False
        status, body = request(proxy, "POST", "/v1/chat/completions", chat(model="proxy"))
        assert status == 200 and body["choices"][0]["message"]["role"] == "assistant"
    finally:
        proxy.shutdown()
        proxy.server_close()


# ------------------------------------------------------------------ served names and /v1/models


def test_served_names_are_listed_with_the_checkpoint_and_length(
    server: ModelServer, tb: Any
) -> None:
    status, body = request(server, "GET", "/v1/models")
    assert status == 200
    assert [m["id"] for m in body["data"]] == ["tiny-a", "tiny-b"]
    for card in body["data"]:
        assert card["object"] == "model" and card["root"] == tb.model_id
        assert card["max_model_len"] == tb.lm.config.get_text_config().max_position_embeddings
        assert card["parent"] is None and card["ambiscope"]["prompt_logprobs"] is True
    status, answer = request(server, "POST", "/v1/chat/completions", chat(model="tiny-b"))
    assert status == 200 and answer["model"] == "tiny-b"


def test_a_wrong_model_name_is_404_naming_the_served_ones(server: ModelServer, tb: Any) -> None:
    for wrong in ("tiny", tb.model_id):
        status, body = request(server, "POST", "/v1/chat/completions", chat(model=wrong))
        assert status == 404
        message = body["error"]["message"]
        assert f"model {wrong!r} not found" in message
        assert "served models: 'tiny-a', 'tiny-b'" in message


def test_without_a_served_name_the_model_is_served_as_given(tb: Any) -> None:
    srv = make_server(tb)
    start_in_thread(srv)
    try:
        status, body = request(srv, "GET", "/v1/models")
        assert status == 200 and [m["id"] for m in body["data"]] == [tb.model_id]
    finally:
        srv.shutdown()
        srv.server_close()


def test_serve_model_cli_serves_under_the_given_names(tiny_model_dir: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "ambiscope.tui.cli.main", "serve-model", str(tiny_model_dir)]
    command += ["--port", "0", "--device", "cpu", "--served-model-name", "emo"]
    command += ["--served-model-name", "emo-2"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        seen: list[str] = []
        match = None
        while match is None and (line := proc.stderr.readline()):
            seen.append(line)
            match = re.search(r"serving .* as emo, emo-2 at http://127\.0\.0\.1:(\d+)/v1", line)
        assert match, seen
        conn = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=30)
        conn.request("GET", "/v1/models")
        body = json.loads(conn.getresponse().read())
        conn.close()
        assert [m["id"] for m in body["data"]] == ["emo", "emo-2"]
        assert body["data"][0]["root"] == str(tiny_model_dir)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_an_empty_served_name_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve-model", str(tmp_path), "--served-model-name", " "])
    assert result.exit_code == 2 and "--served-model-name" in result.stderr


# ------------------------------------------------------------------ requests in flight


def test_in_flight_statistics_are_time_weighted() -> None:
    now = [10.0]
    stats = InFlight(clock=lambda: now[0])
    assert stats.snapshot() == {"now": 0, "max": 0, "mean": 0.0, "seconds": 0.0, "requests": 0}
    now[0] = 20.0  # idle time before the first request is not in the window
    stats.enter()
    now[0] = 21.0
    stats.enter()
    now[0] = 22.0
    stats.leave()
    now[0] = 24.0
    stats.leave()
    now[0] = 30.0  # nor is idle time after the last answer
    snap = stats.snapshot()
    assert snap == {"now": 0, "max": 2, "mean": 5 / 4, "seconds": 4.0, "requests": 2}
    assert stats.reset() == snap
    stats.enter()
    now[0] = 31.0
    assert stats.snapshot() == {"now": 1, "max": 1, "mean": 1.0, "seconds": 1.0, "requests": 1}


def test_concurrent_requests_are_counted_in_flight(tb: Any) -> None:
    srv = make_server(tb, model_name="tiny", delay=0.5)
    start_in_thread(srv)
    try:
        status, _ = request(srv, "POST", f"{IN_FLIGHT_PATH}/reset")
        assert status == 200
        results: list[int] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(
                    request(srv, "POST", "/v1/chat/completions", chat(model="tiny"))[0]
                )
            )
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [200] * 6
        # a handler leaves the count just after its response is sent, which a loaded
        # machine can let the client read first: wait for the last one to leave
        deadline = time.monotonic() + 10
        while (stats := request(srv, "GET", IN_FLIGHT_PATH)[1])["now"] and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert stats["now"] == 0 and stats["requests"] == 6 and stats["max"] == 6
        # all six wait 0.5 s together, then the model answers them one at a time
        assert 1.0 < stats["mean"] <= 6 and stats["seconds"] >= 0.5
        _, models = request(srv, "GET", "/v1/models")
        assert models["data"][0]["ambiscope"]["in_flight"] == stats
        status, closed = request(srv, "POST", f"{IN_FLIGHT_PATH}/reset")
        assert closed == stats
        _, fresh = request(srv, "GET", IN_FLIGHT_PATH)
        assert fresh["requests"] == 0 and fresh["max"] == 0
    finally:
        srv.shutdown()
        srv.server_close()
