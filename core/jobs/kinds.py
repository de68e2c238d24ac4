"""Job kinds: what a worker can run, registered where each kind is defined.

`JOB_KINDS` maps a kind's name to its handler, with a `describe` function (params -> one
line for `ambiscope jobs` and the TUI) and optionally a `needs` function (params -> what
the job would run, read or reach; default `policy.execution_needs`) as metadata; the
worker checks `needs` against its allow list before the handler runs (core/jobs/policy.py).
Built-in kinds register themselves with the `job_kind` decorator in their own module
(core/scaling/job.py: `resample`, core/synthetic/job.py: `annotate-synthetic`), which the
registry imports on first read.
Outside modules (a lab's own kinds, tests) are imported by the worker from `--import
MODULE` or $AMBISCOPE_JOB_MODULES and register the same way.

A worker only claims kinds registered in its own process, so a job of a kind no running
worker knows stays queued (visible in `ambiscope jobs`) instead of failing. Everything
here is import-light (no numpy/torch until a handler runs).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ambiscope.core.alm import BackendSpec, open_backend
from ambiscope.core.jobs.events import log_event
from ambiscope.core.jobs.liveness import now
from ambiscope.core.jobs.policy import Needs, NeedsOf, execution_needs
from ambiscope.core.registry import Registry, RegistryError
from ambiscope.db import jobs as rows

if TYPE_CHECKING:
    from ambiscope.core.alm.base import Backend
    from ambiscope.db import Job, Workspace

JOB_MODULES_ENV = "AMBISCOPE_JOB_MODULES"


@dataclass
class JobContext:
    """What a handler gets: the worker's workspace, the job, and the worker's services.

    Handlers run in the worker's main thread and write through `ws` (its only
    connection). They call `should_stop()` between units of work (a clip) and return
    promptly when it is true; the worker then decides from `stop_reason` whether the job
    was cancelled, lost its lease, or is being handed back because the worker is stopping.
    """

    ws: Workspace
    job: Job
    worker_id: str
    device: str | None = None
    ray: str | None = None  # the worker's Ray cluster: every job's model work runs there
    backend_for: Callable[[BackendSpec, str | None], Backend] | None = None
    check_stop: Callable[[], str | None] = lambda: None
    stop_reason: str | None = None
    _last_progress: tuple[int, int] = (-1, -1)

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    def should_stop(self) -> bool:
        """True when the handler must stop now (reads the job row: cancel, lost lease)."""
        if self.stop_reason is None:
            self.stop_reason = self.check_stop()
        return self.stop_reason is not None

    def progress(self, done: int, total: int) -> None:
        """Record progress in the job row (only while this worker still owns the job)."""
        if (done, total) == self._last_progress:
            return
        self._last_progress = (done, total)
        rows.set_progress(self.ws, self.job.id, self.worker_id, done, total, now())

    def log(self, message: str, level: str = "info") -> None:
        """A log line other processes can read (`ambiscope jobs show`, the TUI)."""
        log_event(self.ws, self.job.id, message, level=level, worker=self.worker_id)

    def backend(self, spec: BackendSpec, model: str | None = None) -> Backend:
        """The worker's cached backend for the spec (a model stays loaded between jobs)."""
        if self.backend_for is None:
            return open_backend(spec, model)
        return self.backend_for(spec, model)


JobHandler = Callable[[JobContext], "dict[str, Any] | None"]
Describe = Callable[[dict[str, Any]], str]

JOB_KINDS: Registry[JobHandler] = Registry(
    "job kind", discover=("ambiscope.core.scaling.job", "ambiscope.core.synthetic.job")
)


def job_kind(
    name: str, *, describe: Describe | None = None, needs: NeedsOf | None = None
) -> Callable[[JobHandler], JobHandler]:
    """Decorator registering a handler as job kind `name` (a word: letters, digits, - or _).

    `needs` reads what a job's parameters ask for (code, secrets, endpoints); give it when
    the kind keeps such settings under other names than the execution options.
    """
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise RegistryError(f"job kind must be a word (letters, digits, - or _), got {name!r}")
    return JOB_KINDS.register(name, describe=describe, needs=needs)


def job_needs(kind: str, params: dict[str, Any]) -> Needs:
    """What a job of `kind` with these parameters asks for (see core/jobs/policy.py)."""
    needs = JOB_KINDS.meta(kind).get("needs") if kind in JOB_KINDS else None
    return (needs or execution_needs)(params)


def import_job_modules(modules: Sequence[str] = ()) -> list[str]:
    """Import modules that register job kinds (args plus $AMBISCOPE_JOB_MODULES)."""
    names = [*modules, *os.environ.get(JOB_MODULES_ENV, "").split(",")]
    done: list[str] = []
    for name in dict.fromkeys(n.strip() for n in names if n.strip()):
        importlib.import_module(name)
        done.append(name)
    return done


def describe_job(job: Job) -> str:
    """One line saying what a job does (its kind's `describe`, else its params as JSON)."""
    describe = JOB_KINDS.meta(job.kind).get("describe") if job.kind in JOB_KINDS else None
    if describe is not None:
        try:
            return describe(job.params)
        except Exception:  # a malformed row must not break a listing
            return "(unreadable parameters)"
    return json.dumps(job.params, sort_keys=True)[:80]
