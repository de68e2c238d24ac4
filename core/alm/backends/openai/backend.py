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
* ``score_labels`` — EXACT where the server returns vLLM's ``prompt_logprobs`` (vLLM,
  ``ambiscope serve-model``): each label is sent as the assistant's finished answer and
  the prompt log-probs of its tokens plus the end-of-turn token are summed, the tokens the
  transformers backend scores (`likelihood`; K + 1 one-token requests per clip). Which
  kind a server offers is probed once, in `preflight` (`label_scoring`). Where only
  first-token top-k log-probs exist it is an APPROXIMATION (the run stores the strategy
  as ``likelihood~``); where the server refuses log-probs it is not computed. The
  approximation: one request (``max_tokens: 1``, ``top_logprobs: 20``) gives the first
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

Transport (HTTP, retries, the API key) lives in `transport`; every failure surfaces as a
one-line :class:`BackendError`, so the run marks the clip failed and continues. The API key
is never stored on the object, logged, or returned by :meth:`OpenAIBackend.describe`.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ambiscope.core.alm import BACKENDS
from ambiscope.core.alm.backends.openai.likelihood import (
    LabelScoring,
    chat_payload,
    exact_label_scores,
    probe_label_scoring,
)
from ambiscope.core.alm.backends.openai.responses import (
    TOP_LOGPROBS,
    _candidate,
    _choices,
    _first_token_logprobs,
    label_scores_from_top_logprobs,
    yes_probability,
)
from ambiscope.core.alm.backends.openai.transport import Transport
from ambiscope.core.alm.base import (
    AudioInput,
    BackendError,
    Candidate,
    ChatPrompt,
    GenerationParams,
    ModelLoadError,
)
from ambiscope.core.text import one_line

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
# `owned_by` of /models entries from servers that take vLLM's extra sampling parameters
_EXTENDED_SERVERS = frozenset({"vllm", "sglang", "ambiscope"})


def _served_models(body: Any) -> list[Mapping[str, Any]]:
    data = body.get("data") if isinstance(body, Mapping) else None
    return [m for m in data if isinstance(m, Mapping)] if isinstance(data, list) else []


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


@BACKENDS.register("openai")
class OpenAIBackend:
    """Backend protocol over an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model_id: the model name the server knows (``model`` field of each request).
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` (default) or
            ``https://api.example.com/v1``; several roots = replicas of one model, which
            share the requests (`transport.Transport`).
        api_key_env: NAME of the environment variable holding the API key (e.g.
            ``OPENAI_API_KEY``); ``None`` sends no key. A named but unset variable is a
            ModelLoadError at construction.
        concurrency: most requests in flight at once from this backend, across clips (a
            run computes this many clips at once, `clips_in_flight`) and replicas.
        logprobs: ask for log-probabilities (``--no-logprobs`` for APIs that refuse them:
            sampling still works; BoN, the verifier and the likelihood cannot).
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
        base_url: str | Sequence[str] | None = None,
        api_key_env: str | None = None,
        concurrency: int = 4,
        timeout: float = 120.0,
        max_retries: int = 4,
        retry_base: float = 0.5,
        sample_rate: int = 16000,
        max_audio_seconds: float | None = 30.0,
        logprobs: bool = True,
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
        self.logprobs = bool(logprobs)
        self._server: Mapping[str, Any] | None = None  # the /models entry (preflight)
        # exact / approximate / none: probed in preflight (a run names the strategy
        # `likelihood` or `likelihood~` from it, or skips it)
        self.label_scoring: LabelScoring | None = None if logprobs else "none"
        self._http = Transport(
            base_url or DEFAULT_BASE_URL,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout=timeout,
            max_retries=max_retries,
            retry_base=retry_base,
        )
        self.base_url = self._http.base_url
        self.api_key_env = self._http.api_key_env
        self.concurrency = int(concurrency)
        self.timeout = self._http.timeout
        self.max_retries = self._http.max_retries
        self._sample_rate = int(sample_rate)
        self._max_audio_seconds = max_audio_seconds
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # ------------------------------------------------------------------ protocol basics

    @property
    def clips_in_flight(self) -> int:
        """Clips a run may compute at once: the endpoint serves requests concurrently."""
        return self.concurrency

    def preflight(self) -> None:
        """Before a run is created: every replica answers ``/models`` and serves the model.

        One line for each way this goes wrong (unreachable, key refused, model not served:
        naming the models it serves), so a bad ``--base-url`` / ``-m`` / key never leaves a
        run whose every clip failed.
        """
        for root in self._http.base_urls:
            try:
                body = self._http.request(
                    "GET", "/models", None, retries=0, timeout=min(self.timeout, 10), root=root
                )
            except BackendError as exc:
                text = str(exc)
                if "HTTP 401" in text or "HTTP 403" in text:
                    hint = f"the server refused the API key (--api-key-env {self.api_key_env})"
                elif "HTTP " in text:
                    hint = "it answered, but not like an OpenAI-compatible API"
                else:
                    hint = "is the server running and the URL right?"
                raise ModelLoadError(f"cannot use {root}: {one_line(text, 200)} ({hint})") from None
            served = _served_models(body)
            match = next((m for m in served if m.get("id") == self.model_id), None)
            if match is None:
                names = ", ".join(str(m.get("id")) for m in served[:10]) or "none"
                raise ModelLoadError(
                    f"{root} does not serve model {self.model_id!r} (it serves: {names}); "
                    "pass one of them with -m"
                )
            self._server = match
        if self.label_scoring is None:
            self.label_scoring = self._probe_label_scoring()

    def _probe_label_scoring(self) -> LabelScoring:
        """One or two one-token requests on 1 s of silence (any clip would do)."""
        silence = encode_wav_base64(np.zeros(self.sample_rate, dtype=np.float32), self.sample_rate)
        probe = ChatPrompt(user="Which emotion does the speaker express?")
        try:
            return probe_label_scoring(self._http, self.model_id, silence, probe)
        except BackendError as exc:
            raise ModelLoadError(f"cannot probe label scoring: {one_line(exc, 200)}") from None

    def report(self) -> list[str]:
        """Lines for the end of a run: replicas that failed requests (retried elsewhere)."""
        return self._http.replica_report()

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
            "score_labels": {
                "exact": "exact: prompt_logprobs of the label and the end-of-turn token",
                "approximate": "approximate: first answer token's top-20 logprobs",
                "none": "not computed: the server returns no logprobs",
                None: "not probed (no preflight)",
            }[self.label_scoring],
            "base_urls": self._http.base_urls,
            "logprobs": self.logprobs,
            "sampling_extensions": self._extensions(),
            "server_model": None,
        }
        match = self._server  # what the preflight read, else ask once
        if match is None:
            try:
                body = self._http.request(
                    "GET", "/models", None, retries=0, timeout=min(self.timeout, 10)
                )
            except BackendError as exc:
                info["server_models_error"] = one_line(exc, 200)
                return info
            models = _served_models(body)
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
            top_p=1.0 if params.top_p is None else params.top_p,
        )
        if self.logprobs:
            payload["logprobs"] = True
        payload.update(self._extensions())
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
        """Label log-likelihoods: exact over prompt_logprobs, else the first-token
        approximation (module docstring), as `label_scoring` says."""
        if not labels:
            return np.zeros(0, dtype=np.float64)
        if self.label_scoring == "none":
            raise BackendError("the server returns no logprobs: labels cannot be scored")
        wav = self._wav(audio)
        if self.label_scoring == "exact":
            # requests of other clips keep the endpoint busy (`clips_in_flight`); a clip's
            # own K + 1 requests run one after another
            return exact_label_scores(self._http, self.model_id, wav, prompt, labels)
        top = self._first_token(wav, prompt)
        return label_scores_from_top_logprobs(top, list(labels))

    # ------------------------------------------------------------------ helpers

    def _extensions(self) -> dict[str, Any]:
        """Neutral values of the sampling knobs outside OpenAI's API, for servers that take
        them (vLLM, SGLang, ambiscope): otherwise vLLM applies the checkpoint's
        generation_config.json (e.g. top_k=20, repetition_penalty=1.1) on top of the
        request, and the endpoint samples another distribution than the transformers
        backend (which ignores those defaults). Unknown servers get OpenAI's parameters
        only (and may apply their own defaults; `describe` records which case it was)."""
        owner = str((self._server or {}).get("owned_by", "")).lower()
        if owner not in _EXTENDED_SERVERS:
            return {}
        return {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}

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
        """The request skeleton; an assistant prefix uses vLLM's continue_final_message
        (not in OpenAI's API: hosted APIs reject it with a 400)."""
        return chat_payload(self.model_id, wav, prompt)

    def _chat(self, payload: dict[str, Any]) -> Any:
        return self._http.request("POST", "/chat/completions", payload)
