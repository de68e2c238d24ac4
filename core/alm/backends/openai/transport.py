"""HTTP for the OpenAI-compatible backend: JSON requests, replicas, retries, the API key.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


@dataclass
class Replica:
    """One API root of a (possibly replicated) deployment, with its live counters."""

    base_url: str
    url: urllib.parse.SplitResult
    in_flight: int = 0
    requests: int = 0
    failures: int = 0
    last_error: str | None = None


class Transport:
    """JSON over HTTP(S) to one or several API roots (replicas of one model).

    At most ``concurrency`` exchanges are in flight in all. Each request goes to the
    replica with the fewest requests in flight (ties: the least used so far), so data-
    parallel servers share the load; a retryable failure (connection error, 429, 5xx) is
    retried on another replica when there is one, and counted against the one that failed
    (`replica_report`).
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        api_key_env: str | None,
        concurrency: int,
        timeout: float,
        max_retries: int,
        retry_base: float,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ModelLoadError("openai backend: no base URL")
        roots = list(dict.fromkeys(u.rstrip("/") for u in urls))
        self.replicas = [Replica(root, self._parse_url(root)) for root in roots]
        self.base_url = roots[0]
        self.api_key_env = api_key_env or None
        if self.api_key_env is not None:
            self._api_key()  # fail at construction, not on the first clip
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.retry_base = float(retry_base)
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()

    @property
    def base_urls(self) -> list[str]:
        return [r.base_url for r in self.replicas]

    def replica_report(self) -> list[str]:
        """One line per replica that failed requests (they were retried elsewhere)."""
        if len(self.replicas) < 2:
            return []
        return [
            f"replica {r.base_url}: {r.failures} of {r.requests} requests failed "
            f"(last: {r.last_error})"
            for r in self.replicas
            if r.failures
        ]

    def _pick(self, avoid: Replica | None, root: str | None = None) -> Replica:
        with self._lock:
            pool = [r for r in self.replicas if r is not avoid] or self.replicas
            if root is not None:
                pool = [r for r in self.replicas if r.base_url == root.rstrip("/")]
            replica = min(pool, key=lambda r: (r.in_flight, r.failures, r.requests))
            replica.in_flight += 1
            replica.requests += 1
            return replica

    def _release(self, replica: Replica, error: str | None) -> None:
        with self._lock:
            replica.in_flight -= 1
            if error is not None:
                replica.failures += 1
                replica.last_error = error

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
        root: str | None = None,
    ) -> Any:
        """JSON request with retries; returns the decoded body or raises BackendError.

        ``root`` pins the request to one replica (health checks); else the least busy.
        """
        data = json.dumps(payload).encode() if payload is not None else None
        retries = self.max_retries if retries is None else retries
        failed: Replica | None = None
        for attempt in range(retries + 1):
            replica = self._pick(avoid=failed, root=root)
            what = f"{method} {replica.base_url}{path}"
            try:
                with self._slots:
                    raw = self._attempt(replica, method, path, data, timeout or self.timeout)
                self._release(replica, None)
                break
            except _HTTPFailure as exc:
                self._release(replica, str(exc) if exc.retry else None)
                if not exc.retry or attempt == retries:
                    suffix = f" (after {attempt + 1} attempts)" if attempt else ""
                    raise BackendError(f"{what}: {exc}{suffix}") from None
                failed = replica
                delay = self._backoff(attempt, exc.retry_after)
                elsewhere = len(self.replicas) > 1
                log.warning(
                    "%s: %s; retrying %sin %.2f s",
                    what,
                    exc,
                    "on another replica " if elsewhere else "",
                    delay,
                )
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

    def _attempt(
        self, replica: Replica, method: str, path: str, data: bytes | None, timeout: float
    ) -> bytes:
        """One HTTP exchange on a fresh connection (thread-safe, no shared state)."""
        url = replica.url
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
