"""ALM backend over an OpenAI-compatible chat endpoint (DESIGN.md "ALM candidates").

Serves any model behind ``POST {base_url}/chat/completions`` — vLLM ``serve``, SGLang,
hosted APIs, or ambiscope's own :mod:`ambiscope.core.alm.serve_openai`. Audio travels as a
base64 16-bit PCM WAV ``input_audio`` part next to a ``text`` part in the user message (the
OpenAI format, which vLLM also accepts); the system prompt, when there is one, is a
system message. Only the standard library is used (``http.client`` + a thread pool), so
this backend adds no dependencies and imports fast.

What is exact and what is approximate, compared with the transformers backend:

* ``sample`` — exact as far as the server's numbers are: one request with ``n``,
  ``temperature``, ``top_p``, ``max_tokens``, ``seed`` and ``logprobs: true``. Each choice's
  ``logprob`` is the sum of the returned per-token log-probabilities and ``n_tokens`` their
  count. Whether those are log-probs under the *untempered* distribution (as the
  transformers backend records) depends on the server and is stated nowhere in the
  response (recent vLLM engines have a ``--logprobs-mode`` option; ambiscope's own server
  passes the wrapped backend's values through; hosted APIs do not say), so check the
  serving setup before comparing BoN scores across backends. The transformers backend
  counts and scores the stop token; a server that does not list it shifts ``logprob`` by
  the stop token's log-probability (and ``n_tokens`` by one). A token reported as
  ``-9999`` (OpenAI's "not in the top 20" sentinel) makes the sum meaningless, so such a
  candidate gets ``logprob=None``.
  Beam search is not part of the OpenAI API (and vLLM's chat endpoint handles it with
  version-dependent extension parameters we cannot verify), so ``search="beam"`` raises
  :class:`BackendError`.
* ``verify`` — exact up to the top-k cut-off: one request per verifier prompt with
  ``max_tokens: 1``, ``logprobs: true``, ``top_logprobs: 20``, ``temperature: 0``;
  ``P(yes) = p(Yes) / (p(Yes) + p(No))`` where p(Yes) sums every returned first-token
  spelling that normalises to "yes" (any case, surrounding whitespace, GPT-2 ``Ġ`` /
  SentencePiece ``▁`` markers and trailing ``.!,:;`` ignored: "Yes", " yes", "YES", "▁Yes"...),
  likewise p(No). The transformers backend sums the same spellings over the whole
  vocabulary; here spellings outside the top 20 are missed (their mass is tiny when a
  model answers Yes/No at all). When neither appears the score is NaN and a warning is
  logged (the verifier strategies skip NaN scores).
* ``score_labels`` — an APPROXIMATION. The chat API cannot score an arbitrary
  continuation, so one request (``max_tokens: 1``, ``top_logprobs: 20``) gives the first
  answer token's top-20 distribution, and each label is scored by the log-probability of
  *its first token*: the longest returned token that (normalised as above, case-insensitive)
  is a prefix of the label and at least ``min(3, len(label))`` characters long, summing the
  case/space variants of that token. A label whose first token is not among the top 20
  gets a floor of ``min(top logprobs) - log 2`` (it is less likely than every listed
  token; halving the least listed probability is a guess, not a measurement). The
  transformers backend instead sums the exact log-likelihood of every token of the label
  plus the end-of-turn token. Consequences: labels sharing a first token ("sad" /
  "sadness", "fear" / "fearful") get equal scores, multi-token labels are scored by their
  first token only, and the floor is arbitrary — treat the ``likelihood`` strategy of an
  OpenAI-backend run as indicative only.

Requests are retried (at most ``max_retries`` times) on HTTP 429, 5xx and connection
failures, with exponential backoff and jitter (a uniform draw in [b/2, b] for
b = retry_base * 2**attempt, capped at 30 s) and ``Retry-After`` honoured as a floor.
Other 4xx answers and read timeouts are not retried (a timed-out request may still be
running on the server, and resending it would pile more work on an overloaded model).
Every failure surfaces as a one-line :class:`BackendError`, so the run marks the clip
failed and continues.

The API key is read from the environment variable *named* by ``api_key_env`` at each
request and sent as ``Authorization: Bearer ...``; it is never stored on the object,
logged, or returned by :meth:`OpenAIBackend.describe`.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import io
import json
import logging
import math
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ambiscope.core.alm import BACKENDS
from ambiscope.core.alm.base import (
    AudioInput,
    BackendError,
    Candidate,
    ChatPrompt,
    GenerationParams,
    ModelLoadError,
)
from ambiscope.core.text import one_line

__all__ = [
    "DEFAULT_BASE_URL",
    "OpenAIBackend",
    "encode_wav_base64",
    "label_scores_from_top_logprobs",
    "yes_probability",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
TOP_LOGPROBS = 20  # the OpenAI API's maximum; vLLM's default --max-logprobs is also 20
UNLISTED_LOGPROB = -9999.0  # OpenAI's sentinel for "not among the top 20"
_RETRY_STATUS = frozenset({429}) | frozenset(range(500, 600))
_MAX_RETRY_AFTER = 60.0
_MAX_BACKOFF = 30.0
_MARKERS = str.maketrans({"Ġ": " ", "▁": " ", "Ċ": " "})


# ---------------------------------------------------------------------------- audio


def encode_wav_base64(samples: np.ndarray, sample_rate: int) -> str:
    """Mono float audio as a base64 16-bit PCM WAV.

    Quantised as ``round(x * 32768)`` clipped to int16, the inverse of how soundfile,
    librosa and torchaudio decode int16 (``/ 32768``), so audio that already lies on the
    16-bit grid (e.g. decoded from a 16-bit WAV) reaches the server bit-exactly.
    """
    import soundfile as sf

    x = np.asarray(samples, dtype=np.float64)
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, pcm, int(sample_rate), format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------- parsing


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


# ---------------------------------------------------------------------------- HTTP


class _HTTPFailure(BackendError):
    """A failed attempt; `retry` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retry: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds, fractional allowed, or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), _MAX_RETRY_AFTER)


def _error_detail(raw: bytes) -> str:
    """The server's error message: OpenAI's {"error": {"message"}} or the body's start."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return one_line(raw[:200].decode("utf-8", "replace")) or "(empty body)"
    if isinstance(body, Mapping):
        err = body.get("error", body.get("detail", body.get("message")))
        if isinstance(err, Mapping):
            err = err.get("message", err)
        if err is not None:
            return one_line(err, 200)
    return one_line(raw[:200].decode("utf-8", "replace"))


@BACKENDS.register("openai")
class OpenAIBackend:
    """Backend protocol over an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model_id: the model name the server knows (``model`` field of each request).
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` (default) or
            ``https://api.example.com/v1``.
        api_key_env: NAME of the environment variable holding the API key (e.g.
            ``OPENAI_API_KEY``); ``None`` sends no key. A named but unset variable is a
            ModelLoadError at construction.
        concurrency: most requests in flight at once from this backend (verify fans out
            one request per candidate).
        timeout: seconds per request (connect and each read).
        max_retries: retries after the first attempt on 429 / 5xx / connection errors.
        retry_base: first backoff in seconds (doubled each retry, jittered, capped 30 s).
        sample_rate / max_audio_seconds: what the run resamples/truncates audio to.
    """

    name = "openai"

    def __init__(
        self,
        model_id: str,
        *,
        base_url: str | None = None,
        api_key_env: str | None = None,
        concurrency: int = 4,
        timeout: float = 120.0,
        max_retries: int = 4,
        retry_base: float = 0.5,
        sample_rate: int = 16000,
        max_audio_seconds: float | None = 30.0,
    ) -> None:
        if not model_id:
            raise ModelLoadError("openai backend: empty model id")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if not timeout or timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.model_id = str(model_id)
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._url = self._parse_url(self.base_url)
        self.api_key_env = api_key_env or None
        if self.api_key_env is not None:
            self._api_key()  # fail at construction, not on the first clip
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.retry_base = float(retry_base)
        self._sample_rate = int(sample_rate)
        self._max_audio_seconds = max_audio_seconds
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # ------------------------------------------------------------------ protocol basics

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def max_audio_seconds(self) -> float | None:
        return self._max_audio_seconds

    def describe(self) -> dict[str, Any]:
        """Model id, endpoint and what the server's ``/models`` says (never the key)."""
        info: dict[str, Any] = {
            "backend": self.name,
            "model_id": self.model_id,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "concurrency": self.concurrency,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "sample_rate": self.sample_rate,
            "max_audio_seconds": self.max_audio_seconds,
            "audio_encoding": "wav/pcm16 base64 input_audio",
            "score_labels": "approximate: first answer token's top-20 logprobs",
            "server_model": None,
        }
        try:
            body = self._request("GET", "/models", None, retries=0, timeout=min(self.timeout, 10))
        except BackendError as exc:
            info["server_models_error"] = one_line(exc, 200)
            return info
        data = body.get("data") if isinstance(body, Mapping) else None
        models = [m for m in data if isinstance(m, Mapping)] if isinstance(data, list) else []
        match = next((m for m in models if m.get("id") == self.model_id), None)
        if match is None:
            info["server_models"] = [str(m.get("id")) for m in models][:20]
            return info
        keep = ("id", "owned_by", "root", "parent", "max_model_len", "created", "ambiscope")
        info["server_model"] = {k: match[k] for k in keep if k in match}
        return info

    def close(self) -> None:
        """Stop the worker threads (idempotent; a later call starts a new pool)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ model calls

    def sample(
        self, audio: AudioInput, prompt: ChatPrompt, params: GenerationParams
    ) -> list[Candidate]:
        """N candidates from one request with ``n`` (beam search is not in the API)."""
        if params.search == "beam":
            raise BackendError(
                "beam search is not part of the OpenAI API; use --search sample with the "
                "openai backend, or the transformers backend for beams"
            )
        payload = self._payload(audio, prompt)
        payload.update(
            n=params.n,
            temperature=params.temperature,
            max_tokens=params.max_new_tokens,
            logprobs=True,
        )
        if params.top_p is not None:
            payload["top_p"] = params.top_p
        if params.seed is not None:
            payload["seed"] = params.seed
        body = self._chat(payload)
        return [_candidate(choice) for choice in _choices(body, params.n)]

    def verify(self, audio: AudioInput, prompts: list[ChatPrompt]) -> np.ndarray:
        """P(yes) per verifier prompt, one request each, ``concurrency`` at a time."""
        if not prompts:
            return np.zeros(0, dtype=np.float64)
        wav = self._wav(audio)
        scores = self._map(lambda p: self._yes_score(wav, p), prompts)
        return np.asarray(scores, dtype=np.float64)

    def score_labels(self, audio: AudioInput, prompt: ChatPrompt, labels: list[str]) -> np.ndarray:
        """APPROXIMATE label log-likelihoods from the first token's top-20 (module docstring)."""
        if not labels:
            return np.zeros(0, dtype=np.float64)
        top = self._first_token(self._wav(audio), prompt)
        return label_scores_from_top_logprobs(top, list(labels))

    # ------------------------------------------------------------------ helpers

    def _yes_score(self, wav: str, prompt: ChatPrompt) -> float:
        p = yes_probability(self._first_token(wav, prompt))
        if math.isnan(p):
            log.warning(
                "%s: neither Yes nor No among the first token's top %d logprobs; "
                "verifier score is NaN",
                self.model_id,
                TOP_LOGPROBS,
            )
        return p

    def _first_token(self, wav: str, prompt: ChatPrompt) -> dict[str, float]:
        payload = self._payload_wav(wav, prompt)
        payload.update(n=1, temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=TOP_LOGPROBS)
        return _first_token_logprobs(_choices(self._chat(payload))[0])

    def _map(self, fn: Callable[[ChatPrompt], float], items: list[ChatPrompt]) -> list[float]:
        if len(items) == 1 or self.concurrency == 1:
            return [fn(item) for item in items]
        futures = [self._executor().submit(fn, item) for item in items]
        try:
            return [f.result() for f in futures]
        finally:
            for f in futures:
                f.cancel()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.concurrency, thread_name_prefix="ambiscope-openai"
                )
            return self._pool

    def _wav(self, audio: AudioInput) -> str:
        samples = np.asarray(audio.samples)
        if samples.ndim != 1:
            raise BackendError(f"expected mono audio, got shape {samples.shape}")
        if samples.size == 0:
            raise BackendError("audio has no samples")
        if audio.sample_rate != self.sample_rate:
            from ambiscope.core.audio import resample

            samples = resample(samples.astype(np.float32), audio.sample_rate, self.sample_rate)
        return encode_wav_base64(samples, self.sample_rate)

    def _payload(self, audio: AudioInput, prompt: ChatPrompt) -> dict[str, Any]:
        return self._payload_wav(self._wav(audio), prompt)

    def _payload_wav(self, wav: str, prompt: ChatPrompt) -> dict[str, Any]:
        """The request skeleton; an assistant prefix uses vLLM's continue_final_message."""
        messages: list[dict[str, Any]] = []
        if prompt.system:
            messages.append({"role": "system", "content": prompt.system})
        user = [
            {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}},
            {"type": "text", "text": prompt.user},
        ]
        messages.append({"role": "user", "content": user})
        payload: dict[str, Any] = {"model": self.model_id, "messages": messages}
        if prompt.assistant_prefix:
            # Not in OpenAI's API: vLLM/SGLang extension; hosted APIs reject it with a 400.
            messages.append({"role": "assistant", "content": prompt.assistant_prefix})
            payload["continue_final_message"] = True
            payload["add_generation_prompt"] = False
        return payload

    def _chat(self, payload: dict[str, Any]) -> Any:
        return self._request("POST", "/chat/completions", payload)

    # ------------------------------------------------------------------ transport

    @staticmethod
    def _parse_url(base_url: str) -> urllib.parse.SplitResult:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModelLoadError(
                f"invalid base URL {base_url!r}: expected http(s)://host[:port]/path"
            )
        return parts

    def _api_key(self) -> str | None:
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise ModelLoadError(
                f"environment variable {self.api_key_env} (named by --api-key-env) is not set"
            )
        return key

    def _headers(self, has_body: bool) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "ambiscope"}
        if has_body:
            headers["Content-Type"] = "application/json"
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _request(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None,
        *,
        retries: int | None = None,
        timeout: float | None = None,
    ) -> Any:
        """JSON request with retries; returns the decoded body or raises BackendError."""
        data = json.dumps(payload).encode() if payload is not None else None
        retries = self.max_retries if retries is None else retries
        what = f"{method} {self.base_url}{path}"
        for attempt in range(retries + 1):
            try:
                with self._slots:
                    raw = self._attempt(method, path, data, timeout or self.timeout)
                break
            except _HTTPFailure as exc:
                if not exc.retry or attempt == retries:
                    suffix = f" (after {attempt + 1} attempts)" if attempt else ""
                    raise BackendError(f"{what}: {exc}{suffix}") from None
                delay = self._backoff(attempt, exc.retry_after)
                log.warning("%s: %s; retrying in %.2f s", what, exc, delay)
                time.sleep(delay)
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BackendError(f"{what}: malformed response (not JSON: {one_line(exc)})") from None

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (desynchronises clients); Retry-After is a floor."""
        ceiling = min(_MAX_BACKOFF, self.retry_base * (2**attempt))
        delay = random.uniform(ceiling / 2, ceiling)
        return max(delay, retry_after) if retry_after is not None else delay

    def _attempt(self, method: str, path: str, data: bytes | None, timeout: float) -> bytes:
        """One HTTP exchange on a fresh connection (thread-safe, no shared state)."""
        url = self._url
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = cls(url.hostname or "", url.port, timeout=timeout)
        try:
            try:
                conn.connect()
            except TimeoutError as exc:
                raise _HTTPFailure(f"connection timed out after {timeout:g} s", retry=True) from exc
            except OSError as exc:
                raise _HTTPFailure(f"connection failed: {one_line(exc)}", retry=True) from exc
            try:
                conn.request(method, url.path + path, body=data, headers=self._headers(bool(data)))
                resp = conn.getresponse()
                raw = resp.read()
            except TimeoutError as exc:
                raise _HTTPFailure(
                    f"request timed out after {timeout:g} s (raise --timeout?)", retry=False
                ) from exc
            except (http.client.HTTPException, OSError) as exc:
                raise _HTTPFailure(f"connection error: {one_line(exc)}", retry=True) from exc
        finally:
            conn.close()
        if resp.status >= 400:
            raise _HTTPFailure(
                f"HTTP {resp.status}: {_error_detail(raw)}",
                retry=resp.status in _RETRY_STATUS,
                retry_after=_retry_after_seconds(resp.getheader("Retry-After")),
            )
        return raw
