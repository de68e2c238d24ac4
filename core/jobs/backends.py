"""The models a worker keeps loaded between jobs, and how a job's spec opens one.

A job spec only has to say which backend, which model and how to run it (`BackendSpec`:
RunSpec and the synthetic raters' run spec both do); the backend itself comes from the
backend registry (ambiscope.core.alm), so the job system knows no particular kind of run.
A small LRU keeps a model (plus its verifier) loaded while jobs that use it follow each
other, keyed by everything that changes the loaded weights or the client settings.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ambiscope.core.alm import BackendSpec, open_backend

if TYPE_CHECKING:
    from ambiscope.core.alm.base import Backend

log = logging.getLogger("ambiscope.worker")


def backend_key(spec: BackendSpec, model: str | None = None) -> tuple[Any, ...]:
    """What decides the loaded weights (and client settings): equal key = reuse."""
    return (spec.backend, model or spec.model, *sorted(spec.execution_options().items()))


class BackendCache:
    """A few open backends, least recently used closed first (GPU memory is the limit)."""

    def __init__(self, max_models: int = 2) -> None:
        self.max_models = max(1, max_models)
        self._open: OrderedDict[tuple[Any, ...], Backend] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def get(
        self,
        spec: BackendSpec,
        model: str | None = None,
        on_load: Callable[[str], None] | None = None,
    ) -> Backend:
        key = backend_key(spec, model)
        if key in self._open:
            self._open.move_to_end(key)
            return self._open[key]
        while len(self._open) >= self.max_models:
            self._close(next(iter(self._open)))
        started = time.perf_counter()
        backend = open_backend(spec, model)
        self._open[key] = backend
        if on_load is not None:
            device = spec.execution_options().get("device")
            on_load(
                f"loaded {key[1]} ({spec.backend}, device {device}) "
                f"in {time.perf_counter() - started:.1f} s"
            )
        return backend

    def _close(self, key: tuple[Any, ...]) -> None:
        backend = self._open.pop(key)
        try:
            backend.close()
        except Exception as exc:  # closing must not take the worker down
            log.warning("closing %s failed: %s", key[1], exc)

    def close_all(self) -> None:
        while self._open:
            self._close(next(iter(self._open)))
