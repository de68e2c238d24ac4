"""Reading OpenAI-compatible chat responses: candidates, top log-probs, P(yes), label scores.

Pure functions over decoded JSON bodies (no I/O), shared by the backend and its tests; the
module docstring of `ambiscope.core.alm.backends.openai.backend` says what is exact and
what is approximate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ambiscope.core.alm.base import BackendError, Candidate

TOP_LOGPROBS = 20  # the OpenAI API's maximum; vLLM's default --max-logprobs is also 20
UNLISTED_LOGPROB = -9999.0  # OpenAI's sentinel for "not among the top 20"
_MARKERS = str.maketrans({"Ġ": " ", "▁": " ", "Ċ": " "})


def _normalise_token(token: str) -> str:
    """A token's word for matching: markers/whitespace/trailing punctuation off, lowercase."""
    return token.translate(_MARKERS).strip().rstrip(".!,:;").strip().lower()


def _first_token_logprobs(choice: Mapping[str, Any]) -> dict[str, float]:
    """{token: logprob} of the first answer position: the chosen token plus its top list."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, Mapping):
        raise BackendError("the server returned no logprobs (does it support logprobs?)")
    content = logprobs.get("content")
    if not isinstance(content, list) or not content:
        raise BackendError("the server returned no logprobs content for the first token")
    first = content[0]
    if not isinstance(first, Mapping):
        raise BackendError("malformed response: logprobs.content[0] is not an object")
    entries = [first, *_as_list(first.get("top_logprobs"), "logprobs.content[0].top_logprobs")]
    out: dict[str, float] = {}
    for entry in entries:
        token, lp = _token_entry(entry, "logprobs.content[0]")
        if token not in out or lp > out[token]:
            out[token] = lp
    return out


def _as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BackendError(f"malformed response: {where} is not a list")
    return value


def _token_entry(entry: Any, where: str) -> tuple[str, float]:
    if not isinstance(entry, Mapping):
        raise BackendError(f"malformed response: {where} entry is not an object")
    token, lp = entry.get("token"), entry.get("logprob")
    if not isinstance(token, str) or isinstance(lp, bool) or not isinstance(lp, int | float):
        raise BackendError(f"malformed response: {where} entry needs a string token and a logprob")
    return token, float(lp)


def yes_probability(top: Mapping[str, float]) -> float:
    """p(Yes) / (p(Yes) + p(No)) over first-token {token: logprob}; NaN when neither appears.

    Every spelling that normalises to "yes" (resp. "no") is summed, mirroring the
    transformers backend's sum over single-token spellings.
    """
    p_yes = sum(math.exp(lp) for tok, lp in top.items() if _normalise_token(tok) == "yes")
    p_no = sum(math.exp(lp) for tok, lp in top.items() if _normalise_token(tok) == "no")
    if p_yes + p_no <= 0.0:
        return math.nan
    return p_yes / (p_yes + p_no)


def _logsumexp(values: Iterable[float]) -> float:
    vals = list(values)
    top = max(vals)
    return top + math.log(sum(math.exp(v - top) for v in vals))


def label_scores_from_top_logprobs(top: Mapping[str, float], labels: list[str]) -> np.ndarray:
    """Approximate label log-likelihoods from the first answer token's top log-probs.

    See the module docstring: the longest listed token (>= min(3, len(label)) characters)
    that is a case-insensitive prefix of the label, summed over its spelling variants;
    otherwise the floor ``min(listed) - log 2``.
    """
    listed = {tok: lp for tok, lp in top.items() if lp > UNLISTED_LOGPROB}
    if not listed:
        raise BackendError("the server returned no top_logprobs; cannot score labels")
    floor = min(listed.values()) - math.log(2.0)
    words: dict[str, list[float]] = {}
    for tok, lp in listed.items():
        word = _normalise_token(tok)
        if word:
            words.setdefault(word, []).append(lp)
    scores = np.empty(len(labels), dtype=np.float64)
    for i, label in enumerate(labels):
        target = label.strip().lower()
        need = min(3, len(target))
        matches = [w for w in words if len(w) >= need and target.startswith(w)]
        if matches:
            scores[i] = _logsumexp(words[max(matches, key=len)])
        else:
            scores[i] = floor
    return scores


def _choices(body: Any, expected: int | None = None) -> list[Mapping[str, Any]]:
    """The response's choices in index order, with shape checks (one-line errors)."""
    if not isinstance(body, Mapping):
        raise BackendError("malformed response: expected a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise BackendError("malformed response: missing or empty 'choices'")
    if not all(isinstance(c, Mapping) for c in choices):
        raise BackendError("malformed response: a choice is not an object")
    ordered = sorted(choices, key=lambda c: c["index"] if isinstance(c.get("index"), int) else 0)
    if expected is not None and len(ordered) != expected:
        raise BackendError(
            f"the server returned {len(ordered)} choices for n={expected} (does it support n?)"
        )
    return ordered


def _message_text(choice: Mapping[str, Any]) -> str:
    message = choice.get("message")
    if not isinstance(message, Mapping):
        raise BackendError("malformed response: a choice has no 'message' object")
    content = message.get("content")
    if content is None:  # refusals / tool calls: no text, the parser stores it invalid
        return ""
    if not isinstance(content, str):
        raise BackendError("malformed response: message content is not a string")
    return content


def _candidate(choice: Mapping[str, Any]) -> Candidate:
    """One choice as a Candidate: summed token logprobs, their count, finish reason."""
    text = _message_text(choice)
    extra: dict[str, Any] = {"finish_reason": choice.get("finish_reason")}
    logprobs = choice.get("logprobs")
    if logprobs is None:
        extra["logprobs"] = "not returned by the server"
        return Candidate(text=text, extra=extra)
    if not isinstance(logprobs, Mapping):
        raise BackendError("malformed response: choice logprobs is not an object")
    content = _as_list(logprobs.get("content"), "logprobs.content")
    values = [_token_entry(entry, "logprobs.content")[1] for entry in content]
    n_tok = len(values)
    if n_tok == 0:
        extra["logprobs"] = "empty"
        return Candidate(text=text, n_tokens=0, extra=extra)
    if any(v <= UNLISTED_LOGPROB or not math.isfinite(v) for v in values):
        extra["logprobs"] = "a token's logprob was not reported (-9999 sentinel)"
        return Candidate(text=text, n_tokens=n_tok, extra=extra)
    total = float(sum(values))
    return Candidate(
        text=text, logprob=total, logprob_norm=total / n_tok, n_tokens=n_tok, extra=extra
    )
