"""A small OpenAI-compatible HTTP server over any ambiscope Backend.

Two uses: researchers serve a local model (e.g. the transformers backend on a GPU box) to
an ambiscope elsewhere that runs ``--backend openai``; and the test-suite exercises the
OpenAI backend (retries, timeouts, malformed replies) against a real HTTP server that
answers with a real model's outputs. Standard library only (``ThreadingHTTPServer``);
it binds 127.0.0.1 by default — put a TLS reverse proxy in front before exposing it.

Endpoints:

* ``GET /v1/models`` — one model card per served name (``--served-model-name``, repeatable;
  default the model as given), as vLLM writes them: ``{"id", "object": "model",
  "owned_by": "ambiscope", "root": <checkpoint>, "parent": null, "max_model_len",
  "permission": [], "ambiscope": {"backend": <backend.describe()>, "prompt_logprobs":
  <supported>, "in_flight": <statistics below>, ...}}``. A request naming another model
  is answered 404 with the served names.
* ``POST /v1/chat/completions`` — a system message (optional), exactly one user message
  whose content holds exactly one audio part (``input_audio`` with base64 data, or an
  ``audio_url`` with a ``data:`` URL) and text parts (joined with newlines), and
  optionally a final assistant message, handled like vLLM's ``add_generation_prompt``
  (default true) and ``continue_final_message`` (default false): with
  ``continue_final_message: true, add_generation_prompt: false`` its content is the
  answer prefix (the prompt ends right after it, no end of turn); with both false the
  turn is FINISHED (the prompt is the content followed by the template's end of turn,
  e.g. ``<|im_end|>\n``, and is served for scoring: ``max_tokens`` must be 1); both true
  is refused as vLLM refuses it. Audio is decoded with soundfile (any format it reads;
  channels are averaged to mono) and passed to the backend at its own rate. ``stream``
  and multi-turn conversations are rejected with 400.
* ``GET /v1/ambiscope/in-flight`` — chat requests in flight (`InFlight`): ``{"now",
  "max", "mean" (time-weighted), "seconds", "requests"}`` over the window since the first
  request (after start or the last reset) to the last answer;
  ``POST /v1/ambiscope/in-flight/reset`` returns that window and opens a new one (a
  bench resets, runs, reads). A request counts from its arrival to its answer, waiting
  for the backend lock included.

What the server computes (precisely):

* **Verifier-style requests** — ``max_tokens == 1`` with ``logprobs: true`` and
  ``top_logprobs > 0`` (not a finished turn): the server calls ``backend.verify(audio,
  [prompt])`` and answers with a first-token distribution over just two tokens, ``"Yes": log
  p`` and ``"No": log(1 - p)`` (the backend's two-way renormalised P(yes); a
  zero-probability entry is omitted), and the more likely of the two as the message text. It
  is NOT the model's full next-token distribution: ``p(Yes) / (p(Yes) + p(No))`` computed by
  a client equals the backend's verifier score exactly, but other first tokens are never
  listed. Consequently the first-token label-scoring approximation sees no label tokens here
  and floors every label to the same value; exact label scoring uses ``prompt_logprobs``
  (`ambiscope.core.alm.backends.openai.likelihood`). ``temperature``/``seed`` are ignored
  for these requests and all ``n`` choices are equal.
* **Prompt log-probs** (vLLM's ``prompt_logprobs: k``, 0 <= k <= 20) — one full forward
  over the rendered prompt: the backend's own ``build_inputs`` (the exact inputs its
  sampling and scoring use), plus the end-of-turn tokens for a finished turn, through
  ``backend.lm`` without a cache. The response carries a top-level ``prompt_logprobs``
  list, one entry per prompt token (audio placeholders included): ``null`` for the
  first, else ``{token_id: {"logprob", "rank", "decoded_token"}}`` with the actual token
  first and the top-k after it; log-probs are untempered (``log_softmax`` of the raw
  logits) and ranks are vLLM's (the number of tokens at least as likely). Needs a backend with
  ``build_inputs``, ``lm`` and ``tokenizer`` (the transformers backend); others answer 400.
  The answer itself is computed as for any request; a finished turn's one token comes
  from the same forward's last position (greedy at temperature 0, else drawn with the
  request's seed, temperature and top_p).
* **Every other request** — ``backend.sample`` with ``n``, ``temperature``, ``top_p``,
  ``max_tokens`` (default 64) and ``seed`` (vLLM's ``top_k``, ``min_p``,
  ``repetition_penalty``, ``presence_penalty`` and ``frequency_penalty`` are accepted
  at their neutral values only, 400 otherwise): the choices are the backend's candidates, in
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

Backend calls (forwards included) are serialised with a lock (backends are single-threaded);
HTTP handling is concurrent. Errors are OpenAI-style ``{"error": {"message", "type",
"code"}}`` bodies: 400 for malformed requests, 401 for a missing/wrong key when ``api_key``
is set, 404 for unknown paths or models, 413 for oversized bodies, 500 when the backend
fails.

For tests, constructor options simulate failures: ``fail_first=k`` answers the first k
chat requests with ``fail_status`` (default 503, with ``Retry-After`` when ``retry_after``
is set), ``delay`` sleeps before answering chat requests, ``corrupt="json"`` answers 200
with a truncated JSON body and ``corrupt="shape"`` with a JSON object without
``choices``; ``refuse_logprobs=True`` answers 400 to any request for log-probs (as
hosted APIs without them do); ``record=True`` keeps every request's headers and JSON
body in ``records``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import io
import ipaddress
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
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
    "InFlight",
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
MAX_LOGPROBS = 20  # top_logprobs / prompt_logprobs cap, as vLLM's default --max-logprobs
IN_FLIGHT_PATH = "/v1/ambiscope/in-flight"
# Per-text-token inputs (extended when the closing of an assistant turn is appended).
_TOKEN_KEYS = frozenset(
    {"input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids", "moe_mm_token_type_ids"}
)
_LOGSOFTMAX_ROWS = 256  # prompt positions log-softmaxed at once (bounds fp32 memory)
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
    closed: bool = False
    prompt_logprobs: int | None = None

    @property
    def is_verifier(self) -> bool:
        """One token with alternatives: what P(yes) verifiers and label scoring send."""
        return self.max_tokens == 1 and self.logprobs and self.top_logprobs > 0 and not self.closed

    @property
    def needs_forward(self) -> bool:
        """Served from one full forward over the prompt, not by the backend's sample/verify."""
        return self.closed or self.prompt_logprobs is not None


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


def _flag(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"'{key}' must be a boolean")
    return value


def _prompt_and_audio(body: Mapping[str, Any]) -> tuple[ChatPrompt, AudioInput, bool]:
    """(prompt, audio, closed): vLLM's add_generation_prompt / continue_final_message.

    ``closed`` is a final assistant message rendered as a finished turn (its content, then
    the template's end of turn); otherwise the prompt ends where the answer starts, after
    the final assistant message's content when one is continued.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    if not all(isinstance(m, Mapping) for m in messages):
        raise BadRequest("every message must be an object")
    add_generation = _flag(body, "add_generation_prompt", True)
    continue_final = _flag(body, "continue_final_message", False)
    if add_generation and continue_final:
        raise BadRequest(
            "Cannot set both `continue_final_message` and `add_generation_prompt` to True."
        )
    prefix, closed = "", False
    if messages[-1].get("role") == "assistant":
        if add_generation:
            raise BadRequest(
                "a final assistant message needs continue_final_message: true (continue it) "
                "or add_generation_prompt: false (score the finished turn); multi-turn "
                "conversations are not supported"
            )
        prefix = _text_of(messages[-1].get("content"), "assistant")
        closed = not continue_final
        messages = messages[:-1]
    elif continue_final:
        raise BadRequest("continue_final_message: true needs a final assistant message")
    elif not add_generation:
        raise BadRequest(
            "add_generation_prompt: false needs a final assistant message "
            "(the prompt would end after the user turn)"
        )
    systems = [m for m in messages if m.get("role") in ("system", "developer")]
    users = [m for m in messages if m.get("role") == "user"]
    if len(systems) + len(users) != len(messages):
        raise BadRequest("multi-turn conversations are not supported (system + one user turn)")
    if len(users) != 1:
        raise BadRequest(f"exactly one user message is supported, got {len(users)}")
    system = "\n\n".join(_text_of(m.get("content"), "system") for m in systems) or None
    user, audio = _user_content(users[0].get("content"))
    return ChatPrompt(user=user, system=system, assistant_prefix=prefix), audio, closed


# vLLM's sampling knobs beyond temperature/top_p, at the values that switch them off. The
# backend samples with temperature and top_p alone, so another value would be ignored
# silently: it is refused instead (clients send these to keep vLLM from applying a
# checkpoint's generation_config.json).
_NEUTRAL = {
    "top_k": (-1, 0),
    "min_p": (0,),
    "repetition_penalty": (1,),
    "presence_penalty": (0,),
    "frequency_penalty": (0,),
}


def _neutral_only(body: Mapping[str, Any]) -> None:
    for key, neutral in _NEUTRAL.items():
        value = _number(body, key, None)
        if value is not None and value not in neutral:
            raise BadRequest(
                f"'{key}' = {value:g} is not supported (this server samples with temperature "
                f"and top_p only; send {neutral[0]} or leave it out)"
            )


def _prompt_logprobs(body: Mapping[str, Any]) -> int | None:
    k = _integer(body, "prompt_logprobs", None)
    if k is not None and k < 0:
        raise BadRequest(
            "'prompt_logprobs' must be >= 0 (-1, all of the vocabulary, is not served)"
        )
    if k is not None and k > MAX_LOGPROBS:
        raise BadRequest(
            f"Requested prompt logprobs of {k}, which is greater than max allowed: {MAX_LOGPROBS}"
        )
    return k


def parse_chat_request(body: Any, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> ChatRequest:
    """Validate a chat-completions body; raises BadRequest with a one-line reason."""
    if not isinstance(body, Mapping):
        raise BadRequest("the request body must be a JSON object")
    if body.get("stream"):
        raise BadRequest("streaming is not supported")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string")
    prompt, audio, closed = _prompt_and_audio(body)
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
    if not 0 <= top <= MAX_LOGPROBS:
        raise BadRequest(f"'top_logprobs' must be between 0 and {MAX_LOGPROBS}")
    if top and not logprobs:
        raise BadRequest("'top_logprobs' requires 'logprobs': true")
    _neutral_only(body)
    if closed and max_tokens != 1:
        raise BadRequest(
            "a finished assistant turn (add_generation_prompt: false without "
            "continue_final_message) is served for scoring only: max_tokens must be 1"
        )
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
        closed=closed,
        prompt_logprobs=_prompt_logprobs(body),
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


# ---------------------------------------------------------------------------- full forwards


def forward_supported(backend: Backend) -> bool:
    """Whether `backend` exposes what a full forward needs (the transformers backend does)."""
    return all(hasattr(backend, attr) for attr in ("build_inputs", "lm", "tokenizer"))


def closing_ids(backend: Any) -> list[int]:
    """The tokens the chat template writes after an assistant message's content.

    Rendered like vLLM renders ``add_generation_prompt: false``: a text-only chat whose
    assistant content is a marker; what follows the marker (``<|im_end|>\n`` for Qwen) is
    tokenized alone. The marker's text ends the content and the tail starts with the
    template's end-of-turn marker (a special token in every supported family), so the
    tokens equal those of the whole rendered conversation. Falls back to the family
    table's end-of-turn marker when no template renders.
    """
    marker = "\u00a7ambiscope\u00a7"
    tokenizer = backend.tokenizer
    holders = [h for h in (getattr(backend, "processor", None), tokenizer) if h is not None]
    for shape in (str, list):
        chat = [
            {"role": "user", "content": "x" if shape is str else [{"type": "text", "text": "x"}]},
            {
                "role": "assistant",
                "content": marker if shape is str else [{"type": "text", "text": marker}],
            },
        ]
        for holder in holders:
            with contextlib.suppress(Exception):
                text = holder.apply_chat_template(chat, tokenize=False, add_generation_prompt=False)
                if isinstance(text, str) and marker in text:
                    ids = tokenizer.encode(text.split(marker, 1)[1], add_special_tokens=False)
                    if ids:
                        return [int(i) for i in ids]
    end = getattr(getattr(backend, "family", None), "end_of_turn", None)
    if end:
        return [int(i) for i in tokenizer.encode(end, add_special_tokens=False)]
    raise BackendError("cannot tell how the chat template closes an assistant turn")


def prompt_inputs(backend: Any, req: ChatRequest, closing: list[int]) -> dict[str, Any]:
    """The model inputs of the rendered prompt: the backend's own (``build_inputs``, the
    prompt ending after the assistant prefix), plus ``closing`` for a finished turn."""
    import torch

    inputs = dict(backend.build_inputs(req.audio, req.prompt))
    if not req.closed:
        return inputs
    ids = inputs["input_ids"]
    tail = torch.tensor([closing], dtype=ids.dtype, device=ids.device)
    for key in _TOKEN_KEYS & inputs.keys():
        value = inputs[key]
        if not isinstance(value, torch.Tensor) or value.shape != ids.shape:
            continue
        if key == "input_ids":
            fill = tail
        elif key == "attention_mask":
            fill = torch.ones_like(tail, dtype=value.dtype)
        else:  # appended tokens are text tokens (type id 0)
            fill = torch.zeros_like(tail, dtype=value.dtype)
        inputs[key] = torch.cat([value, fill], dim=1)
    return inputs


def forward_logits(backend: Any, inputs: dict[str, Any]) -> Any:
    """Logits [L, V] of one forward over the whole prompt (audio included), no cache."""
    import torch

    with torch.no_grad():
        out = backend.lm(**inputs, use_cache=False, return_dict=True)
    return out.logits[0]


def _decoded(tokenizer: Any, ids: Sequence[int]) -> dict[int, str]:
    unique = sorted(set(ids))
    texts = tokenizer.batch_decode([[i] for i in unique], skip_special_tokens=False)
    return dict(zip(unique, texts, strict=True))


def prompt_logprob_entries(
    tokenizer: Any, ids: list[int], logits: Any, k: int
) -> list[dict[str, dict[str, Any]] | None]:
    """vLLM's ``prompt_logprobs``: None for the first token, then for each prompt token a
    dict {token id: {"logprob", "rank", "decoded_token"}} holding the actual token first
    and the top-k after it (the actual token once when it is among them).

    Log-probabilities are ``log_softmax`` of the raw logits at the previous position
    (untempered); the rank is vLLM's: the number of tokens at least as likely (1 = top).
    """
    import torch

    rows: list[tuple[int, float, int, list[tuple[int, float]]]] = []
    for start in range(0, len(ids) - 1, _LOGSOFTMAX_ROWS):
        stop = min(start + _LOGSOFTMAX_ROWS, len(ids) - 1)
        logp = torch.log_softmax(logits[start:stop].float(), dim=-1)
        targets = torch.tensor(ids[start + 1 : stop + 1], device=logp.device)
        values = logp.gather(1, targets[:, None])
        ranks = (logp >= values).sum(dim=1).tolist()
        top_v, top_i = logp.topk(k, dim=-1) if k else (None, None)
        for row, (token, value) in enumerate(
            zip(targets.tolist(), values[:, 0].tolist(), strict=True)
        ):
            top = (
                list(zip(top_i[row].tolist(), top_v[row].tolist(), strict=True))
                if top_i is not None and top_v is not None
                else []
            )
            rows.append((int(token), float(value), int(ranks[row]), top))
    text = _decoded(tokenizer, [r[0] for r in rows] + [t for r in rows for t, _ in r[3]])
    out: list[dict[str, dict[str, Any]] | None] = [None]
    for token, value, rank, top in rows:
        entry = {str(token): {"logprob": value, "rank": rank, "decoded_token": text[token]}}
        for place, (other, other_value) in enumerate(top, start=1):
            entry.setdefault(
                str(other),
                {"logprob": float(other_value), "rank": place, "decoded_token": text[other]},
            )
        out.append(entry)
    return out


def next_token_choices(backend: Any, last: Any, req: ChatRequest) -> list[dict[str, Any]]:
    """``n`` one-token answers drawn from the prompt's last logits (finished-turn requests).

    Greedy at temperature 0, else sampled from the tempered, top-p-cut distribution with
    the request's seed; reported log-probs are untempered, like the backend's.
    """
    import torch

    last = last.float().cpu()
    logp = torch.log_softmax(last, dim=-1)
    if req.temperature == 0:
        tokens = [int(last.argmax())] * req.n
    else:
        probs = torch.softmax(last / req.temperature, dim=-1)
        if req.top_p is not None and req.top_p < 1:
            ordered, order = probs.sort(descending=True)
            drop = ordered.cumsum(0) - ordered >= req.top_p
            probs = probs.clone()
            probs[order[drop]] = 0
        gen = torch.Generator()
        if req.seed is not None:
            gen.manual_seed(req.seed)
        else:
            gen.seed()
        tokens = torch.multinomial(probs, req.n, replacement=True, generator=gen).tolist()
    top_v, top_i = logp.topk(req.top_logprobs) if req.top_logprobs else (None, None)
    top_ids = top_i.tolist() if top_i is not None else []
    text = _decoded(backend.tokenizer, [*tokens, *top_ids])
    listed = [
        {"token": text[t], "logprob": float(v), "bytes": None}
        for t, v in zip(top_ids, top_v.tolist() if top_v is not None else [], strict=True)
    ]
    eos = getattr(backend.lm.generation_config, "eos_token_id", None)
    stops = set(eos if isinstance(eos, list | tuple) else [] if eos is None else [eos])
    choices = []
    for i, token in enumerate(tokens):
        content = backend.tokenizer.decode([token], skip_special_tokens=True)
        logprobs = {"content": [_entry(text[token], float(logp[token]), listed)]}
        choices.append(
            {
                "index": i,
                "message": {"role": "assistant", "content": content},
                "logprobs": logprobs if req.logprobs else None,
                "finish_reason": "stop" if token in stops else "length",
            }
        )
    return choices


# ---------------------------------------------------------------------------- in flight


class InFlight:
    """Chat requests being processed at each moment, integrated over time.

    A request counts from the moment its POST arrives until its answer is written
    (waiting for the backend lock included: that is the queue a batching server would
    fill). The statistics cover a window that opens at the first request after start or
    `reset` and closes at the last answer (or now, while requests are in flight), so idle
    time before and after a bench does not dilute the mean; idle gaps inside count as 0.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._now = 0
        self._open(clock())

    def _open(self, t: float) -> None:
        self._start: float | None = t if self._now else None
        self._last = t  # time of the latest change of the count
        self._end = t  # time of the latest answer
        self._area = 0.0  # integral of the count over [start, last]
        self._max = self._now
        self._requests = 0

    def _advance(self, t: float) -> None:
        if self._start is not None:
            self._area += self._now * (t - self._last)
        self._last = t

    def enter(self) -> None:
        with self._lock:
            t = self._clock()
            self._advance(t)
            if self._start is None:
                self._start = t
            self._now += 1
            self._requests += 1
            self._max = max(self._max, self._now)

    def leave(self) -> None:
        with self._lock:
            t = self._clock()
            self._advance(t)
            self._now -= 1
            self._end = t

    def _snapshot(self, t: float) -> dict[str, Any]:
        end = t if self._now else self._end
        area = self._area + self._now * (t - self._last) if self._start is not None else 0.0
        seconds = max(0.0, end - self._start) if self._start is not None else 0.0
        return {
            "now": self._now,
            "max": self._max,
            "mean": area / seconds if seconds > 0 else float(self._now),
            "seconds": seconds,
            "requests": self._requests,
        }

    def snapshot(self) -> dict[str, Any]:
        """{"now", "max", "mean" (time-weighted), "seconds" (window), "requests" (started)}."""
        with self._lock:
            return self._snapshot(self._clock())

    def reset(self) -> dict[str, Any]:
        """Close the window (its statistics are returned) and open a new one now."""
        with self._lock:
            t = self._clock()
            closed = self._snapshot(t)
            self._open(t)
            return closed


class ModelServer(ThreadingHTTPServer):
    """ThreadingHTTPServer answering OpenAI chat requests with a wrapped Backend."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        backend: Backend,
        *,
        model_name: str | Sequence[str] | None = None,
        api_key: str | None = None,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        fail_first: int = 0,
        fail_status: int = 503,
        retry_after: str | None = None,
        delay: float = 0.0,
        corrupt: Corruption | None = None,
        refuse_logprobs: bool = False,
        record: bool = False,
    ) -> None:
        self.backend = backend
        names = [model_name] if isinstance(model_name, str) else list(model_name or [])
        if any(not isinstance(n, str) or not n.strip() for n in names):
            raise ValueError("served model names must be non-empty strings")
        # vLLM's --served-model-name: requests must name one of these; the first is the
        # name responses carry. Without one the model is served under its own id.
        self.served_names: tuple[str, ...] = tuple(dict.fromkeys(names)) or (backend.model_id,)
        self.model_name = self.served_names[0]
        self.api_key = api_key
        self.default_max_tokens = default_max_tokens
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.delay = delay
        self.corrupt = corrupt
        self.refuse_logprobs = refuse_logprobs
        self.record = record
        self.records: list[RequestRecord] = []
        self.chat_requests = 0  # POST /v1/chat/completions received (failed ones included)
        self.created = int(time.time())
        self.in_flight = InFlight()
        self._closing: list[int] | None = None
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
        """vLLM's model card per served name (``root``: the checkpoint, ``max_model_len``)
        plus an ``ambiscope`` object: the backend, what is exact, requests in flight."""
        try:
            described: Any = json.loads(json.dumps(self.backend.describe(), default=str))
        except Exception as exc:  # a closed backend may not describe itself
            described = {"error": " ".join(str(exc).split())}
        extra = {
            "backend": described,
            "verifier_requests": "two-way Yes/No from backend.verify",
            "token_logprobs": "exact if the backend reports them, else uniform split",
            "prompt_logprobs": forward_supported(self.backend),
            "in_flight": self.in_flight.snapshot(),
        }
        entries = [
            {
                "id": name,
                "object": "model",
                "created": self.created,
                "owned_by": "ambiscope",
                "root": self.backend.model_id,
                "parent": None,
                "max_model_len": self._max_model_len(),
                "permission": [],
                "ambiscope": extra,
            }
            for name in self.served_names
        ]
        return {"object": "list", "data": entries}

    def _max_model_len(self) -> int | None:
        with contextlib.suppress(Exception):
            text = self.backend.lm.config.get_text_config()  # type: ignore[attr-defined]
            value = getattr(text, "max_position_embeddings", None)
            return int(value) if value else None
        return None

    def complete(self, req: ChatRequest) -> dict[str, Any]:
        """The chat-completion body for a validated request (BackendError propagates;
        BadRequest when the backend cannot run a full forward the request needs)."""
        note: dict[str, Any] = {"backend": self.backend.name}
        if req.needs_forward and not forward_supported(self.backend):
            what = "prompt_logprobs" if req.prompt_logprobs is not None else "a finished turn"
            raise BadRequest(
                f"{what} needs a model forward; the {self.backend.name} backend has none"
            )
        backend: Any = self.backend
        prompt_logprobs = None
        with self._backend_lock:
            if req.needs_forward:
                if req.closed and self._closing is None:
                    self._closing = closing_ids(backend)
                inputs = prompt_inputs(backend, req, self._closing or [])
                ids = [int(i) for i in inputs["input_ids"][0].tolist()]
                logits = forward_logits(backend, inputs)
                if req.prompt_logprobs is not None:
                    prompt_logprobs = prompt_logprob_entries(
                        backend.tokenizer, ids, logits, req.prompt_logprobs
                    )
                note["prompt_tokens"] = len(ids)
            if req.closed:
                choices = next_token_choices(backend, logits[-1], req)
                note["finished_turn"] = True
            elif req.is_verifier:
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
        body: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model or self.model_name,
            "choices": choices,
        }
        if req.prompt_logprobs is not None:
            body["prompt_logprobs"] = prompt_logprobs
        body["ambiscope"] = note
        return body

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
        elif path == IN_FLIGHT_PATH:
            self._send(200, self.server.in_flight.snapshot())
        elif path in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"})
        else:
            self._error(404, f"unknown path {path}")

    def do_POST(self) -> None:
        chat = self._path() == "/v1/chat/completions"
        if chat:
            self.server.in_flight.enter()
        try:
            self._post()
        finally:
            if chat:
                self.server.in_flight.leave()

    def _post(self) -> None:
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
        if path == f"{IN_FLIGHT_PATH}/reset":
            self._send(200, self.server.in_flight.reset())
            return
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
        if req.model is not None and req.model not in server.served_names:
            served = ", ".join(repr(n) for n in server.served_names)
            self._error(404, f"model {req.model!r} not found (served models: {served})")
            return
        if server.refuse_logprobs and (req.logprobs or req.prompt_logprobs is not None):
            self._error(400, "logprobs are not supported by this server (refuse_logprobs)")
            return
        try:
            response = server.complete(req)
        except BadRequest as exc:
            self._error(400, str(exc))
            return
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
