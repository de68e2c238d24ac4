"""A small OpenAI-compatible HTTP server over any ambiscope Backend.

Two uses: researchers serve a local model (e.g. the transformers backend on a GPU box) to
an ambiscope elsewhere that runs ``--backend openai``; and the test-suite exercises the
OpenAI backend (retries, timeouts, malformed replies) against a real HTTP server that
answers with a real model's outputs. Standard library only (``ThreadingHTTPServer``);
it binds 127.0.0.1 by default — put a TLS reverse proxy in front before exposing it.

Endpoints:

* ``GET /v1/models`` — one model: ``{"id", "object": "model", "owned_by": "ambiscope",
  "root": <backend model id>, "ambiscope": {"backend": <backend.describe()>, ...}}``.
* ``POST /v1/chat/completions`` — a system message (optional), exactly one user message
  whose content holds exactly one audio part (``input_audio`` with base64 data, or an
  ``audio_url`` with a ``data:`` URL) and text parts (joined with newlines), and
  optionally a final assistant message with ``continue_final_message: true`` (the vLLM
  extension) that becomes the answer prefix. Audio is decoded with soundfile (any format
  it reads; channels are averaged to mono) and passed to the backend at its own rate.
  ``stream`` and multi-turn conversations are rejected with 400.

What the server computes (precisely):

* **Verifier-style requests** — ``max_tokens == 1`` with ``logprobs: true`` and
  ``top_logprobs > 0``: the server calls ``backend.verify(audio, [prompt])`` and answers
  with a first-token distribution over just two tokens, ``"Yes": log p`` and
  ``"No": log(1 - p)`` (the backend's two-way renormalised P(yes); a zero-probability
  entry is omitted), and the more likely of the two as the message text. It is NOT the
  model's full next-token distribution: ``p(Yes) / (p(Yes) + p(No))`` computed by a client
  equals the backend's verifier score exactly, but other first tokens are never listed.
  Consequently label scoring through this server (the OpenAI backend's first-token
  approximation) sees no label tokens and floors every label to the same value.
  ``temperature``/``seed`` are ignored for these requests and all ``n`` choices are equal.
* **Every other request** — ``backend.sample`` with ``n``, ``temperature``, ``top_p``,
  ``max_tokens`` (default 64) and ``seed``: the choices are the backend's candidates, in
  order. With ``logprobs: true`` each choice carries ``logprobs.content``: one entry per
  generated token (``Candidate.n_tokens`` entries, the stop token included when the
  backend counts it). Token strings come from ``extra["tokens"]``, else from decoding
  ``extra["token_ids"]`` with the backend's ``tokenizer`` when it has one, else ``""``.
  Per-token values are exact when the backend fills ``extra["token_logprobs"]``;
  otherwise (the transformers backend today) each entry carries the candidate's mean
  ``logprob / n_tokens`` — the sum and the count, which is all ambiscope uses (logprob,
  n_tokens, logprob_norm), are exact, but the split across tokens is uniform. The
  response's non-standard ``ambiscope.token_logprobs`` field says ``"exact"`` or
  ``"uniform"``. ``top_logprobs`` lists are empty for generation requests. No ``usage``
  is returned (prompt token counts are unknown to a generic backend).

Backend calls are serialised with a lock (backends are single-threaded); HTTP handling is
concurrent. Errors are OpenAI-style ``{"error": {"message", "type", "code"}}`` bodies: 400
for malformed requests, 401 for a missing/wrong key when ``api_key`` is set, 404 for unknown
paths or models, 413 for oversized bodies, 500 when the backend fails.

For tests, constructor options simulate failures: ``fail_first=k`` answers the first k
chat requests with ``fail_status`` (default 503, with ``Retry-After`` when ``retry_after``
is set), ``delay`` sleeps before answering chat requests, ``corrupt="json"`` answers 200
with a truncated JSON body and ``corrupt="shape"`` with a JSON object without
``choices``; ``record=True`` keeps every request's headers and JSON body in ``records``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import ipaddress
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import numpy as np

from ambiscope.core.alm.base import (
    AudioInput,
    Backend,
    BackendError,
    Candidate,
    ChatPrompt,
    GenerationParams,
)

__all__ = [
    "ChatRequest",
    "ModelServer",
    "RequestRecord",
    "make_server",
    "parse_chat_request",
    "serve_forever",
    "start_in_thread",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024  # ~30 min of 16 kHz 16-bit audio, base64-encoded
MAX_N = 256
DEFAULT_MAX_TOKENS = 64
Corruption = Literal["json", "shape"]


class BadRequest(ValueError):
    """A request the server cannot serve as sent (answered with 400 and this message)."""


# ---------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat-completions request, in backend terms."""

    model: str | None
    audio: AudioInput
    prompt: ChatPrompt
    n: int
    temperature: float
    top_p: float | None
    max_tokens: int
    seed: int | None
    logprobs: bool
    top_logprobs: int

    @property
    def is_verifier(self) -> bool:
        """One token with alternatives: what P(yes) verifiers and label scoring send."""
        return self.max_tokens == 1 and self.logprobs and self.top_logprobs > 0


def _number(body: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"'{key}' must be a number")
    return float(value)


def _integer(body: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"'{key}' must be an integer")
    return value


def _decode_audio(data: Any) -> AudioInput:
    """Base64 audio (or a data: URL) to mono float32 samples at the file's own rate."""
    import soundfile as sf

    if not isinstance(data, str) or not data:
        raise BadRequest("audio data must be a non-empty base64 string")
    if data.startswith("data:"):
        head, _, data = data.partition(",")
        if ";base64" not in head:
            raise BadRequest("audio data: URLs must be base64-encoded")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("audio data is not valid base64") from None
    try:
        samples, rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError
        raise BadRequest(f"cannot decode the audio: {' '.join(str(exc).split())}") from None
    if samples.size == 0:
        raise BadRequest("the audio has no samples")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    return AudioInput(np.ascontiguousarray(mono, dtype=np.float32), int(rate))


def _text_of(content: Any, role: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise BadRequest(f"{role} message content may only hold text parts")
            parts.append(_part_text(part))
        return "\n".join(parts)
    raise BadRequest(f"{role} message content must be a string or a list of parts")


def _part_text(part: Mapping[str, Any]) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise BadRequest("a text part needs a string 'text'")
    return text


def _audio_part_data(part: Mapping[str, Any]) -> Any:
    kind = part.get("type")
    holder = part.get(kind) if isinstance(kind, str) else None
    if not isinstance(holder, Mapping):
        raise BadRequest(f"a {kind} part needs a '{kind}' object")
    return holder.get("data") if kind == "input_audio" else holder.get("url")


def _user_content(content: Any) -> tuple[str, AudioInput]:
    if not isinstance(content, list):
        raise BadRequest("the user message needs a list of parts with one audio part")
    texts: list[str] = []
    audio_data: list[Any] = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            texts.append(_part_text(part))
        elif kind in ("input_audio", "audio_url"):
            audio_data.append(_audio_part_data(part))
        else:
            raise BadRequest(f"unsupported content part type {kind!r}")
    if len(audio_data) != 1:
        raise BadRequest(f"the user message needs exactly one audio part, got {len(audio_data)}")
    return "\n".join(texts), _decode_audio(audio_data[0])


def _prompt_and_audio(body: Mapping[str, Any]) -> tuple[ChatPrompt, AudioInput]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    if not all(isinstance(m, Mapping) for m in messages):
        raise BadRequest("every message must be an object")
    prefix = ""
    if messages[-1].get("role") == "assistant":
        if not body.get("continue_final_message"):
            raise BadRequest("a final assistant message needs continue_final_message: true")
        prefix = _text_of(messages[-1].get("content"), "assistant")
        messages = messages[:-1]
    systems = [m for m in messages if m.get("role") in ("system", "developer")]
    users = [m for m in messages if m.get("role") == "user"]
    if len(systems) + len(users) != len(messages):
        raise BadRequest("multi-turn conversations are not supported (system + one user turn)")
    if len(users) != 1:
        raise BadRequest(f"exactly one user message is supported, got {len(users)}")
    system = "\n\n".join(_text_of(m.get("content"), "system") for m in systems) or None
    user, audio = _user_content(users[0].get("content"))
    return ChatPrompt(user=user, system=system, assistant_prefix=prefix), audio


def parse_chat_request(body: Any, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> ChatRequest:
    """Validate a chat-completions body; raises BadRequest with a one-line reason."""
    if not isinstance(body, Mapping):
        raise BadRequest("the request body must be a JSON object")
    if body.get("stream"):
        raise BadRequest("streaming is not supported")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string")
    prompt, audio = _prompt_and_audio(body)
    n = _integer(body, "n", 1) or 1
    if not 1 <= n <= MAX_N:
        raise BadRequest(f"'n' must be between 1 and {MAX_N}")
    max_tokens = _integer(body, "max_completion_tokens", None)
    max_tokens = max_tokens if max_tokens is not None else _integer(body, "max_tokens", None)
    max_tokens = default_max_tokens if max_tokens is None else max_tokens
    if max_tokens < 1:
        raise BadRequest("'max_tokens' must be >= 1")
    temperature = _number(body, "temperature", 1.0)
    top_p = _number(body, "top_p", None)
    if temperature is None or temperature < 0:
        raise BadRequest("'temperature' must be >= 0")
    if top_p is not None and not 0 < top_p <= 1:
        raise BadRequest("'top_p' must be in (0, 1]")
    logprobs = body.get("logprobs", False)
    if not isinstance(logprobs, bool):
        raise BadRequest("'logprobs' must be a boolean")
    top = _integer(body, "top_logprobs", 0) or 0
    if not 0 <= top <= 20:
        raise BadRequest("'top_logprobs' must be between 0 and 20")
    if top and not logprobs:
        raise BadRequest("'top_logprobs' requires 'logprobs': true")
    return ChatRequest(
        model=model,
        audio=audio,
        prompt=prompt,
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        seed=_integer(body, "seed", None),
        logprobs=logprobs,
        top_logprobs=top,
    )


# ---------------------------------------------------------------------------- responses


def _entry(token: str, logprob: float, top: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": None, "top_logprobs": top or []}


def _verifier_choices(p_yes: float, n: int, top_k: int) -> list[dict[str, Any]]:
    """n equal choices whose first-token distribution is the two-way Yes/No split."""
    options = []
    if math.isfinite(p_yes):
        if p_yes > 0:
            options.append(("Yes", math.log(p_yes)))
        if p_yes < 1:
            options.append(("No", math.log1p(-p_yes)))
    options.sort(key=lambda o: o[1], reverse=True)
    listed = [{"token": t, "logprob": lp, "bytes": None} for t, lp in options[:top_k]]
    text = options[0][0] if options else ""
    content = [_entry(text, options[0][1], listed)] if options else []
    return [
        {
            "index": i,
            "message": {"role": "assistant", "content": text},
            "logprobs": {"content": content},
            "finish_reason": "length",
        }
        for i in range(n)
    ]


class ModelServer(ThreadingHTTPServer):
    """ThreadingHTTPServer answering OpenAI chat requests with a wrapped Backend."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        backend: Backend,
        *,
        model_name: str | None = None,
        api_key: str | None = None,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        fail_first: int = 0,
        fail_status: int = 503,
        retry_after: str | None = None,
        delay: float = 0.0,
        corrupt: Corruption | None = None,
        record: bool = False,
    ) -> None:
        self.backend = backend
        self.model_name = model_name or backend.model_id
        self.api_key = api_key
        self.default_max_tokens = default_max_tokens
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.delay = delay
        self.corrupt = corrupt
        self.record = record
        self.records: list[RequestRecord] = []
        self.chat_requests = 0  # POST /v1/chat/completions received (failed ones included)
        self.created = int(time.time())
        self._backend_lock = threading.Lock()
        self._count_lock = threading.Lock()
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """The base URL a client passes as ``base_url`` (``http://host:port/v1``)."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("error while serving %s", client_address, exc_info=True)

    def next_chat_number(self) -> int:
        with self._count_lock:
            self.chat_requests += 1
            return self.chat_requests

    def add_record(self, record: RequestRecord) -> None:
        if self.record:
            with self._count_lock:
                self.records.append(record)

    # ------------------------------------------------------------------ model calls

    def models_body(self) -> dict[str, Any]:
        try:
            described: Any = json.loads(json.dumps(self.backend.describe(), default=str))
        except Exception as exc:  # a closed backend may not describe itself
            described = {"error": " ".join(str(exc).split())}
        entry = {
            "id": self.model_name,
            "object": "model",
            "created": self.created,
            "owned_by": "ambiscope",
            "root": self.backend.model_id,
            "ambiscope": {
                "backend": described,
                "verifier_requests": "two-way Yes/No from backend.verify",
                "token_logprobs": "exact if the backend reports them, else uniform split",
            },
        }
        return {"object": "list", "data": [entry]}

    def complete(self, req: ChatRequest) -> dict[str, Any]:
        """The chat-completion body for a validated request (BackendError propagates)."""
        note: dict[str, Any] = {"backend": self.backend.name}
        with self._backend_lock:
            if req.is_verifier:
                p_yes = float(self.backend.verify(req.audio, [req.prompt])[0])
                choices = _verifier_choices(p_yes, req.n, req.top_logprobs)
                note["verifier"] = True
            else:
                params = GenerationParams(
                    n=req.n,
                    temperature=req.temperature,
                    top_p=req.top_p,
                    max_new_tokens=req.max_tokens,
                    seed=req.seed,
                )
                cands = self.backend.sample(req.audio, req.prompt, params)
                choices, exact = self._sample_choices(cands, req.logprobs)
                if req.logprobs:
                    note["token_logprobs"] = "exact" if exact else "uniform"
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "ambiscope": note,
        }

    def _sample_choices(
        self, cands: list[Candidate], logprobs: bool
    ) -> tuple[list[dict[str, Any]], bool]:
        choices, exact = [], True
        for i, cand in enumerate(cands):
            content, cand_exact = self._token_entries(cand) if logprobs else (None, True)
            exact = exact and cand_exact
            choices.append(
                {
                    "index": i,
                    "message": {"role": "assistant", "content": cand.text},
                    "logprobs": None if content is None else {"content": content},
                    "finish_reason": cand.extra.get("finish_reason", "stop"),
                }
            )
        return choices, exact

    def _token_entries(self, cand: Candidate) -> tuple[list[dict[str, Any]] | None, bool]:
        """Per-token entries: exact from extra["token_logprobs"], else the uniform split."""
        n_tok = cand.n_tokens
        if cand.logprob is None or not n_tok:
            return None, False
        values = cand.extra.get("token_logprobs")
        exact = isinstance(values, list | tuple) and len(values) == n_tok
        if not exact:
            values = [cand.logprob / n_tok] * n_tok
        tokens = self._token_strings(cand, n_tok)
        return [_entry(t, float(v)) for t, v in zip(tokens, values, strict=True)], exact

    def _token_strings(self, cand: Candidate, n_tok: int) -> list[str]:
        tokens = cand.extra.get("tokens")
        if isinstance(tokens, list | tuple) and len(tokens) == n_tok:
            return [str(t) for t in tokens]
        ids = cand.extra.get("token_ids")
        tokenizer = getattr(self.backend, "tokenizer", None)
        if isinstance(ids, list | tuple) and len(ids) == n_tok and tokenizer is not None:
            try:
                return [tokenizer.decode([int(i)], skip_special_tokens=False) for i in ids]
            except Exception:
                log.debug("cannot decode token ids", exc_info=True)
        return [""] * n_tok


@dataclass(frozen=True)
class RequestRecord:
    """One received request (kept only with ``record=True``)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer
    server_version = "ambiscope-openai"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - " + format, self.address_string(), *args)

    # ------------------------------------------------------------------ plumbing

    def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("client went away before the response was written")

    def _error(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        kind = {
            400: "invalid_request_error",
            401: "authentication_error",
            404: "not_found_error",
            413: "invalid_request_error",
            429: "rate_limit_error",
        }.get(status, "server_error")
        body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
        self._send(status, body, headers)

    def _authorised(self) -> bool:
        key = self.server.api_key
        given = self.headers.get("Authorization", "")
        # bytes, compared in constant time: a wrong key's timing says nothing about the right one
        if key is None or hmac.compare_digest(
            given.encode("utf-8", "surrogateescape"), f"Bearer {key}".encode()
        ):
            return True
        self._error(401, "missing or invalid API key (Authorization: Bearer ...)")
        return False

    def _read_json(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise BadRequest("a Content-Length header is required")
        if int(length) > MAX_BODY_BYTES:
            raise OverflowError(f"request body over {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(int(length))
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"invalid JSON: {' '.join(str(exc).split())}") from None

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/")

    # ------------------------------------------------------------------ routes

    def do_GET(self) -> None:
        self.server.add_record(RequestRecord("GET", self.path, dict(self.headers), None))
        if not self._authorised():
            return
        path = self._path()
        if path == "/v1/models":
            self._send(200, self.server.models_body())
        elif path in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"})
        else:
            self._error(404, f"unknown path {path}")

    def do_POST(self) -> None:
        try:
            body = self._read_json()
        except BadRequest as exc:
            body, problem = None, (400, str(exc))
        except OverflowError as exc:
            body, problem = None, (413, str(exc))
        else:
            problem = None
        self.server.add_record(RequestRecord("POST", self.path, dict(self.headers), body))
        if not self._authorised():
            return
        path = self._path()
        if path != "/v1/chat/completions":
            self._error(404, f"unknown path {path}")
            return
        if self._simulated_failure():
            return
        if problem is not None:
            self._error(*problem)
            return
        self._chat(body)

    def _simulated_failure(self) -> bool:
        server = self.server
        number = server.next_chat_number()
        if server.delay > 0:
            time.sleep(server.delay)
        if number <= server.fail_first:
            headers = {"Retry-After": server.retry_after} if server.retry_after else None
            self._error(
                server.fail_status, f"simulated failure {number}/{server.fail_first}", headers
            )
            return True
        if server.corrupt == "json":
            self._send(200, b'{"id": "chatcmpl-corrupt", "choices": [{"index": 0, "mess')
            return True
        if server.corrupt == "shape":
            self._send(200, {"id": "chatcmpl-corrupt", "object": "chat.completion"})
            return True
        return False

    def _chat(self, body: Any) -> None:
        server = self.server
        try:
            req = parse_chat_request(body, server.default_max_tokens)
        except BadRequest as exc:
            self._error(400, str(exc))
            return
        if req.model is not None and req.model != server.model_name:
            self._error(404, f"model {req.model!r} not found (serving {server.model_name!r})")
            return
        try:
            response = server.complete(req)
        except (BackendError, ValueError) as exc:
            self._error(500, f"backend error: {' '.join(str(exc).split())}")
            return
        self._send(200, response)


# ---------------------------------------------------------------------------- helpers


def is_loopback(host: str) -> bool:
    """True when binding `host` only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """The warning `serve-model` prints when anyone on the network could use the model."""
    if api_key or is_loopback(host):
        return None
    return (
        f"warning: serving on {host} without an API key: anyone who reaches it can use the "
        "model (set --api-key-env, or bind 127.0.0.1 and use an SSH tunnel)"
    )


def make_server(
    backend: Backend, host: str = "127.0.0.1", port: int = 0, **options: Any
) -> ModelServer:
    """A bound (not yet serving) server; port 0 picks a free port (see ``server.url``)."""
    return ModelServer((host, port), backend, **options)


def start_in_thread(server: ModelServer) -> threading.Thread:
    """Serve in a daemon thread; stop with ``server.shutdown(); server.server_close()``."""
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},  # shutdown() returns within one poll interval
        name="ambiscope-serve-openai",
        daemon=True,
    )
    thread.start()
    return thread


def serve_forever(
    backend: Backend,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    on_ready: Callable[[str], None] | None = None,
    **options: Any,
) -> None:
    """Serve until interrupted (Ctrl-C), then close the socket (the backend stays open)."""
    server = make_server(backend, host, port, **options)
    if on_ready is not None:
        on_ready(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
