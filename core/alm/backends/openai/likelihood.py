"""Exact label log-likelihoods over an OpenAI-compatible API, where the server allows it.

The chat API cannot score an arbitrary continuation, but vLLM's ``prompt_logprobs``
extension (and ``ambiscope serve-model``, which implements it) returns the log-probability
of every PROMPT token under the model. So a label is scored by sending it as the
assistant's finished answer (``add_generation_prompt: false``, no
``continue_final_message``): the template renders ``...assistant\\n{prefix}{label}`` and
closes the turn (``<|im_end|>\\n`` for Qwen), and the prompt log-probs of the label's
tokens plus the first closing token are exactly the tokens the transformers backend
scores (``TransformersBackend.label_token_ids``: the label continuing the assistant
prefix, then the end-of-turn token). The first closing token is the template's
end-of-turn marker in every family ambiscope supports; the rest (a newline, an
end-of-text) is not part of an answer and is not scored.

Which prompt tokens are the label's is read from the token ids, not guessed from text:
with ``prompt_logprobs: 0`` each entry holds the actual prompt token (vLLM lists it
first), and one more request sends the bare prefix as the finished answer. Where a label's
tokens depart from the bare request's is where the answer starts; the tokens both end
with are the template's closing. Every label must depart at the same position and end
with the same closing (a label that re-tokenizes the prompt before it, or merges into
the closing, cannot be scored exactly and raises :class:`BackendError`). Cost: one
request per label plus one, each ``max_tokens: 1``; on vLLM they are independent (note
that some vLLM versions skip the prefix cache for requests with ``prompt_logprobs``).

`probe_label_scoring` tells which kind of label scoring a server supports: ``"exact"``
(prompt log-probs), ``"approximate"`` (only the first answer token's top-k log-probs:
`label_scores_from_top_logprobs`, stored as ``likelihood~``) or ``"none"`` (the server
refuses log-probs; the strategy is not computed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from ambiscope.core.alm.backends.openai.responses import TOP_LOGPROBS, UNLISTED_LOGPROB
from ambiscope.core.alm.base import BackendError, ChatPrompt

__all__ = [
    "LabelScoring",
    "LabelTokens",
    "Requester",
    "chat_payload",
    "exact_label_scores",
    "exact_label_tokens",
    "finished_turn_payload",
    "probe_label_scoring",
]

LabelScoring = Literal["exact", "approximate", "none"]
# Answers that mean "the server does not take this request shape", not a broken setup
# (401/403/404 are the setup's problem and propagate).
_REFUSED = frozenset({400, 422, 501})
_STATUS = re.compile(r"\bHTTP (\d{3}):")


class Requester(Protocol):
    """What the scoring needs of the transport (`transport.Transport` is one)."""

    def request(self, method: str, path: str, payload: Mapping[str, Any] | None) -> Any: ...


@dataclass(frozen=True)
class LabelTokens:
    """One label's scored tokens: its own, then the end-of-turn marker, with log-probs."""

    label: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]

    @property
    def score(self) -> float:
        return float(sum(self.logprobs))


# ---------------------------------------------------------------------------- payloads


def chat_payload(model: str, wav: str, prompt: ChatPrompt) -> dict[str, Any]:
    """The request skeleton (as `OpenAIBackend._payload_wav`): system, user with the audio
    and the text, and an assistant prefix continued with vLLM's continue_final_message."""
    messages: list[dict[str, Any]] = []
    if prompt.system:
        messages.append({"role": "system", "content": prompt.system})
    user = [
        {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}},
        {"type": "text", "text": prompt.user},
    ]
    messages.append({"role": "user", "content": user})
    payload: dict[str, Any] = {"model": model, "messages": messages}
    if prompt.assistant_prefix:
        messages.append({"role": "assistant", "content": prompt.assistant_prefix})
        payload["continue_final_message"] = True
        payload["add_generation_prompt"] = False
    return payload


def finished_turn_payload(model: str, wav: str, prompt: ChatPrompt, answer: str) -> dict[str, Any]:
    """``answer`` (the prefix + a label) as the assistant's finished turn, with the prompt
    log-probs of every token (``prompt_logprobs: 0``: the actual token only)."""
    base = chat_payload(model, wav, ChatPrompt(user=prompt.user, system=prompt.system))
    base["messages"].append({"role": "assistant", "content": answer})
    base.update(
        add_generation_prompt=False,
        continue_final_message=False,
        prompt_logprobs=0,
        max_tokens=1,
        temperature=0.0,
        n=1,
    )
    return base


# ---------------------------------------------------------------------------- responses


def _prompt_tokens(body: Any) -> list[tuple[int, float]]:
    """(token id, log-prob) per prompt token after the first (which has none)."""
    entries = body.get("prompt_logprobs") if isinstance(body, Mapping) else None
    if not isinstance(entries, list) or len(entries) < 2:
        raise BackendError("the server returned no prompt_logprobs (is it vLLM?)")
    out = []
    for entry in entries[1:]:
        if not isinstance(entry, Mapping) or not entry:
            raise BackendError("malformed response: a prompt_logprobs entry is not an object")
        key, value = next(iter(entry.items()))  # vLLM lists the actual prompt token first
        lp = value.get("logprob") if isinstance(value, Mapping) else None
        if isinstance(lp, bool) or not isinstance(lp, int | float):
            raise BackendError("malformed response: a prompt_logprobs entry has no logprob")
        try:
            token = int(key)
        except ValueError:
            raise BackendError(f"malformed response: prompt token id {key!r}") from None
        # vLLM clamps -inf (an impossible token) to the -9999 sentinel
        out.append((token, -math.inf if lp <= UNLISTED_LOGPROB else float(lp)))
    return out


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def _spans(
    bare: list[tuple[int, float]], scored: list[list[tuple[int, float]]], labels: list[str]
) -> list[LabelTokens]:
    """Each label's tokens plus the first closing token, located against the bare answer."""
    bare_ids = [t for t, _ in bare]
    starts = set()
    ends: list[int] = []
    for label, tokens in zip(labels, scored, strict=True):
        ids = [t for t, _ in tokens]
        start = _common_prefix(bare_ids, ids)
        closing = len(bare_ids) - start  # the template's tokens after the (bare) answer
        end = len(ids) - closing
        if closing < 1 or end <= start or ids[end:] != bare_ids[start:]:
            raise BackendError(
                f"label {label!r} does not tokenize as a continuation of the prompt (it merges "
                "with the assistant prefix, e.g. one ending in a space, or with the end of "
                "turn); it cannot be scored exactly over the API"
            )
        starts.add(start)
        ends.append(end + 1)  # the label's tokens and the end-of-turn marker
    if len(starts) > 1:
        raise BackendError(
            "the labels change how the prompt before them is tokenized; "
            "they cannot be scored exactly over the API"
        )
    start = starts.pop()
    return [
        LabelTokens(
            label,
            tuple(t for t, _ in tokens[start:end]),
            tuple(lp for _, lp in tokens[start:end]),
        )
        for label, tokens, end in zip(labels, scored, ends, strict=True)
    ]


# ---------------------------------------------------------------------------- scoring


def exact_label_tokens(
    transport: Requester,
    model: str,
    wav: str,
    prompt: ChatPrompt,
    labels: Sequence[str],
    *,
    concurrency: int = 1,
) -> list[LabelTokens]:
    """The scored tokens of each label (module docstring); `BackendError` on any failure."""
    labels = list(labels)
    if not labels:
        return []
    prefix = prompt.assistant_prefix
    answers = [prefix, *(prefix + label for label in labels)]

    def run(answer: str) -> list[tuple[int, float]]:
        payload = finished_turn_payload(model, wav, prompt, answer)
        return _prompt_tokens(transport.request("POST", "/chat/completions", payload))

    if concurrency > 1 and len(answers) > 1:
        with ThreadPoolExecutor(min(concurrency, len(answers))) as pool:
            results = list(pool.map(run, answers))
    else:
        results = [run(answer) for answer in answers]
    return _spans(results[0], results[1:], labels)


def exact_label_scores(
    transport: Requester,
    model: str,
    wav: str,
    prompt: ChatPrompt,
    labels: Sequence[str],
    *,
    concurrency: int = 1,
) -> np.ndarray:
    """Exact log-likelihood of each label as the answer (the transformers backend's
    `score_labels`), from the server's prompt log-probs."""
    spans = exact_label_tokens(transport, model, wav, prompt, labels, concurrency=concurrency)
    return np.array([s.score for s in spans], dtype=np.float64)


def _refused(exc: BackendError) -> bool:
    match = _STATUS.search(str(exc))
    return match is not None and int(match.group(1)) in _REFUSED


def probe_label_scoring(
    transport: Requester, model: str, wav: str, prompt: ChatPrompt
) -> LabelScoring:
    """Which label scoring the server supports, with one or two real requests.

    ``"exact"`` when a finished-turn request comes back with ``prompt_logprobs``;
    else ``"approximate"`` when a one-token request returns a top-k list; else
    ``"none"`` (the server refuses log-probs, or returns none). A refusal is a 400, 422 or
    501 answer; any other failure (unreachable, 401, unknown model) raises BackendError.
    """
    bare = finished_turn_payload(model, wav, prompt, prompt.assistant_prefix)
    try:
        body = transport.request("POST", "/chat/completions", bare)
    except BackendError as exc:
        if not _refused(exc):
            raise
    else:
        try:
            _prompt_tokens(body)
            return "exact"
        except BackendError:  # answered, but without prompt log-probs (an unknown field)
            pass
    payload = chat_payload(model, wav, prompt)
    payload.update(n=1, temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=TOP_LOGPROBS)
    try:
        body = transport.request("POST", "/chat/completions", payload)
    except BackendError as exc:
        if _refused(exc):
            return "none"
        raise
    choices = body.get("choices") if isinstance(body, Mapping) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    logprobs = first.get("logprobs") if isinstance(first, Mapping) else None
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    head = content[0] if isinstance(content, list) and content else None
    listed = head.get("top_logprobs") if isinstance(head, Mapping) else None
    return "approximate" if isinstance(listed, list) and listed else "none"
