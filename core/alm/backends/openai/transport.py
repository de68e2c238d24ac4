"""HTTP for the OpenAI-compatible backend: JSON requests, retries with backoff, the API key.

Only the standard library (``http.client``): a fresh connection per exchange, so the
transport is thread-safe without shared state; at most ``concurrency`` exchanges run at
once (a semaphore), whatever the number of calling threads.

Requests are retried (at most ``max_retries`` times) on HTTP 429, 5xx and connection
failures, with exponential backoff and jitter (a uniform draw in [b/2, b] for
b = retry_base * 2**attempt, capped at 30 s) and ``Retry-After`` honoured as a floor.
Other 4xx answers and read timeouts are not retried (a timed-out request may still be
running on the server, and resending it would pile more work on an overloaded model).

The API key is read from the environment variable *named* by ``api_key_env`` at each
request and sent as ``Authorization: Bearer ...``; it is never stored on the object.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import math
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from ambiscope.core.alm.base import BackendError, ModelLoadError
from ambiscope.core.text import one_line

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({429}) | frozenset(range(500, 600))
_MAX_RETRY_AFTER = 60.0
_MAX_BACKOFF = 30.0


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


class Transport:
    """JSON over HTTP(S) to one API root, retried, at most ``concurrency`` at a time."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key_env: str | None,
        concurrency: int,
        timeout: float,
        max_retries: int,
        retry_base: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._url = self._parse_url(self.base_url)
        self.api_key_env = api_key_env or None
        if self.api_key_env is not None:
            self._api_key()  # fail at construction, not on the first clip
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.retry_base = float(retry_base)
        self._slots = threading.BoundedSemaphore(concurrency)

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

    def request(
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
