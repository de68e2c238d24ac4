"""Exact label scoring over HTTP (issue 14, item 2) against a real `serve-model`.

The server wraps the transformers backend on the tiny checkpoint and answers vLLM's
``prompt_logprobs``; the label log-likelihoods computed over HTTP must equal the backend's
own `score_labels` to 1e-4, token for token. The capability probe is checked against a
server with prompt log-probs, one with only first-token log-probs (serve-model over the
openai backend) and one that refuses log-probs.
"""

from __future__ import annotations

import dataclasses
import math
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from ambiscope.core.alm.backends.openai import OpenAIBackend, encode_wav_base64
from ambiscope.core.alm.backends.openai.likelihood import (
    exact_label_scores,
    exact_label_tokens,
    finished_turn_payload,
    probe_label_scoring,
)
from ambiscope.core.alm.backends.openai.transport import Transport
from ambiscope.core.alm.base import AudioInput, BackendError, ChatPrompt
from ambiscope.core.alm.prompts import label_scoring_prompt
from ambiscope.core.alm.serve_openai import ModelServer, make_server, start_in_thread

LABELS = ["neutral", "happy", "sad", "sadness", "angry", "pleasantly surprised"]
PROMPT = label_scoring_prompt(LABELS)


def _audio() -> AudioInput:
    """1.5 s on the 16-bit grid, so the WAV round trip through the server is bit-exact."""
    rng = np.random.default_rng(0)
    t = np.arange(24000) / 16000
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    return AudioInput((np.round(x * 32768) / 32768).astype(np.float32), 16000)


AUDIO = _audio()
WAV = encode_wav_base64(AUDIO.samples, 16000)


def _start(backend: Any, **options: Any) -> ModelServer:
    srv = make_server(backend, **options)
    start_in_thread(srv)
    return srv


@pytest.fixture(scope="module")
def server(tb: Any) -> Iterator[ModelServer]:
    srv = _start(tb, model_name="tiny", record=True)
    yield srv
    srv.shutdown()
    srv.server_close()


def transport(url: str) -> Transport:
    return Transport(
        url, api_key_env=None, concurrency=4, timeout=60.0, max_retries=0, retry_base=0.01
    )


@pytest.mark.parametrize("prefix", ["", "The emotion is:"])
def test_http_label_scores_equal_the_transformers_backend(
    server: ModelServer, tb: Any, prefix: str
) -> None:
    prompt = dataclasses.replace(PROMPT, assistant_prefix=prefix)
    spans = exact_label_tokens(transport(server.url), "tiny", WAV, prompt, LABELS)
    for span, label in zip(spans, LABELS, strict=True):
        assert list(span.token_ids) == tb.label_token_ids(prompt, label)  # same tokens
    assert len(spans[-1].token_ids) > 2  # a multi-token label is scored whole
    got = np.array([s.score for s in spans])
    want = tb.score_labels(AUDIO, prompt, LABELS)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert got[LABELS.index("sad")] != got[LABELS.index("sadness")]  # not the first token only
    # one finished-turn request per label plus the bare prefix, each one token long
    bodies = [r.body for r in server.records[-len(LABELS) - 1 :]]
    assert [b["messages"][-1]["content"] for b in bodies] == [prefix] + [prefix + x for x in LABELS]
    for body in bodies:
        assert body["add_generation_prompt"] is False and body["continue_final_message"] is False
        assert body["prompt_logprobs"] == 0 and body["max_tokens"] == 1


def test_concurrent_requests_give_the_same_scores(server: ModelServer) -> None:
    one = exact_label_scores(transport(server.url), "tiny", WAV, PROMPT, LABELS)
    four = exact_label_scores(transport(server.url), "tiny", WAV, PROMPT, LABELS, concurrency=4)
    np.testing.assert_array_equal(one, four)
    assert exact_label_scores(transport(server.url), "tiny", WAV, PROMPT, []).shape == (0,)


def test_a_label_that_retokenizes_the_prefix_is_refused(server: ModelServer) -> None:
    prompt = dataclasses.replace(PROMPT, assistant_prefix="Answer: ")  # the space joins the label
    with pytest.raises(BackendError, match="does not tokenize as a continuation") as info:
        exact_label_scores(transport(server.url), "tiny", WAV, prompt, LABELS)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ capability probe


def test_probe_tells_exact_approximate_and_none(server: ModelServer) -> None:
    assert probe_label_scoring(transport(server.url), "tiny", WAV, PROMPT) == "exact"
    # serve-model over the openai backend: no forward, so no prompt_logprobs (400), but
    # first-token top log-probs (its verifier-style answers)
    proxy = _start(OpenAIBackend("tiny", base_url=server.url), model_name="proxy")
    refusing = _start(server.backend, model_name="tiny", refuse_logprobs=True)
    try:
        assert probe_label_scoring(transport(proxy.url), "proxy", WAV, PROMPT) == "approximate"
        assert probe_label_scoring(transport(refusing.url), "tiny", WAV, PROMPT) == "none"
    finally:
        for srv in (proxy, refusing):
            srv.shutdown()
            srv.server_close()


def test_probe_raises_on_a_broken_setup(server: ModelServer) -> None:
    with pytest.raises(BackendError, match="HTTP 404: model 'other' not found"):
        probe_label_scoring(transport(server.url), "other", WAV, PROMPT)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BackendError, match="connection failed"):
        probe_label_scoring(transport(f"http://127.0.0.1:{port}/v1"), "tiny", WAV, PROMPT)


# ------------------------------------------------------------------ vLLM's format (pure)


class Replay:
    """Answers finished-turn requests as vLLM does with ``prompt_logprobs`` > 0 (the
    actual token first, then top-k; -inf clamped to -9999), from fixed token ids."""

    def __init__(self, prompt: list[int], closing: list[int], labels: Mapping[str, list[int]]):
        self.prompt, self.closing, self.labels = prompt, closing, labels

    def request(self, method: str, path: str, payload: Mapping[str, Any] | None) -> Any:
        assert payload is not None
        answer = payload["messages"][-1]["content"]
        ids = self.prompt + self.labels.get(answer, []) + self.closing
        entries: list[Any] = [None]
        for pos, token in enumerate(ids[1:], start=1):
            lp = -9999.0 if token == 66 else -0.5 * pos
            entries.append(
                {str(token): {"logprob": lp, "rank": 7, "decoded_token": "t"}}
                | {"1": {"logprob": -0.01, "rank": 1, "decoded_token": "a"}}
            )
        return {"choices": [], "prompt_logprobs": entries}


def test_vllm_shaped_answers_are_read_by_token_ids() -> None:
    replay = Replay([5, 6, 7], [2, 9], {"a": [11], "bb": [12, 13], "never": [66]})
    spans = exact_label_tokens(replay, "m", "wav", ChatPrompt(user="u"), ["a", "bb", "never"])
    assert [s.token_ids for s in spans] == [(11, 2), (12, 13, 2), (66, 2)]
    assert spans[0].logprobs == (-1.5, -2.0)
    assert spans[1].score == -1.5 - 2.0 - 2.5
    assert spans[2].score == -math.inf  # vLLM's clamp of an impossible token
    payload = finished_turn_payload("m", "wav", ChatPrompt(user="u", system="s"), "a")
    assert [m["role"] for m in payload["messages"]] == ["system", "user", "assistant"]
