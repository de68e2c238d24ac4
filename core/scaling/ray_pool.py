"""Ray: a run's model work spread over actors on many machines; this process stays the writer.

SQLite wants one writer on one host (WAL needs shared memory; network file systems break
its locks), so a run that outgrows one machine does not share the workspace. The process
that opened it (the driver) reads each clip's audio (where the corpus roots are checked),
sends the picklable model phase of a batch of clips to an actor and commits every clip that
comes back in its own transaction (`scaling.loop.SplitWork`). Each actor holds the run's
backends: a model on its own GPU (``num_gpus``), or a share of an endpoint's replicas.

An actor that dies (its node lost, killed, out of memory) has its batches re-dispatched to
the actors still alive; a clip is written only when its result reaches the driver, so no
clip is lost or written twice. Candidates equal a local run's: each candidate's seed derives
from (run seed, clip key, index), not from the process that drew it.

Every actor needs ambiscope (and the model's extras) installed on its node, the model
reachable there (Hub id or a path the node sees), and for the openai backend the API key's
environment variable set there: nothing secret is shipped to the cluster.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import socket
import sys
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any

from ambiscope.core.alm import clips_in_flight, open_backend, preflight
from ambiscope.core.alm.base import Backend, BackendError, GenerationParams
from ambiscope.core.audio import AudioError
from ambiscope.core.scaling.loop import Account, SplitWork
from ambiscope.db import Clip, Workspace

LOCAL = "local"
"""``--ray`` without an address: RAY_ADDRESS if set, else a Ray instance started here."""

DEPTH = 2  # batches queued per actor: one computing, one waiting (no idle gap between them)
LOCAL_BACKENDS = frozenset({"transformers"})  # backends that load a model in the actor

_names = itertools.count()


def parse_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a ``host:port`` or ``ray://host:port`` address; None for
    ``local``/``auto`` (found by Ray itself). Raises BackendError on anything else."""
    if address in (LOCAL, "auto"):
        return None
    text = address.removeprefix("ray://")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or "/" in text:
        raise BackendError(f"--ray: expected HOST:PORT or ray://HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, with one line, when nothing answers at the address (Ray itself
    retries a dead address for minutes, then aborts the process)."""
    target = parse_address(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BackendError(
            f"Ray cluster at {address} does not answer ({reason}); start one with "
            "`ray start --head` or check the address (no run was created)"
        ) from None


@dataclass(frozen=True)
class RayOptions:
    """Where and how many actors: the spec's ``ray*`` execution options."""

    address: str
    actors: int | None = None  # default: one per GPU (local models) or per endpoint
    gpus: float | None = None  # per actor; default 1 for a local model when the cluster has GPUs
    cpus: float = 1.0  # per actor; also the actor's torch threads

    @classmethod
    def of(cls, spec: Any) -> RayOptions:
        return cls(spec.ray, spec.ray_actors, spec.ray_gpus, spec.ray_cpus)


class ModelHost:
    """One actor: the run's backends, loaded once, running the model phase on batches."""

    def __init__(self, spec: Any, verifier: str | None, threads: int) -> None:
        self.spec, self.verifier_model, self.threads = spec, verifier, threads
        self.backend: Backend | None = None
        self.verifier: Backend | None = None

    def load(self) -> str | None:
        """Open (and preflight) the backends; the first line of the error, or None."""
        try:
            self.backend = open_backend(self.spec)
            if self.verifier_model == "self":
                self.verifier = self.backend
            elif self.verifier_model:
                self.verifier = open_backend(self.spec, self.verifier_model)
            preflight(self.backend, self.verifier)
        except BackendError as exc:
            return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        torch = sys.modules.get("torch")
        if torch is not None:  # one intra-op thread per CPU Ray gave this actor
            torch.set_num_threads(max(1, self.threads))
        return None

    def info(self, params: GenerationParams, requested: int | None) -> dict[str, Any]:
        """What the driver asks a backend: its description, audio format and abilities."""
        backend = self.backend
        assert backend is not None
        per_batch = getattr(backend, "clips_per_batch", None)
        return {
            "describe": backend.describe(),
            "sample_rate": backend.sample_rate,
            "max_audio_seconds": backend.max_audio_seconds,
            "label_scoring": getattr(backend, "label_scoring", None),
            "logprobs": getattr(backend, "logprobs", True),
            "verifier_logprobs": getattr(self.verifier, "logprobs", True),
            "clips_per_batch": 1 if per_batch is None else int(per_batch(params, requested)),
            "clips_in_flight": clips_in_flight(backend, self.verifier),
            "node": socket.gethostname(),
        }

    def run(self, phase: Any, tasks: Sequence[Any]) -> list[Any]:
        assert self.backend is not None
        return phase.run(self.backend, self.verifier, tasks)

    def report(self) -> list[str]:
        used = dict.fromkeys(b for b in (self.backend, self.verifier) if b is not None)
        return [note for b in used for note in getattr(b, "report", list)()]

    def close(self) -> None:
        for used in dict.fromkeys(b for b in (self.backend, self.verifier) if b is not None):
            used.close()


class RemoteModel:
    """The driver's stand-in for the actors' backend: what the run asks before creating
    its row (description, label scoring, log-probs) and what reading audio needs."""

    def __init__(self, info: dict[str, Any], ray_info: dict[str, Any], logprobs_key: str):
        self._info = info
        self._ray = ray_info
        self.sample_rate: int = info["sample_rate"]
        self.max_audio_seconds: float | None = info["max_audio_seconds"]
        self.label_scoring: str | None = info["label_scoring"]
        self.logprobs: bool = info[logprobs_key]
        self.clips_in_flight = 1  # the pool pipelines; the driver's own threads do not

    def describe(self) -> dict[str, Any]:
        return {**self._info["describe"], "ray": self._ray}

    def clips_per_batch(self, params: GenerationParams, requested: int | None = None) -> int:
        return int(self._info["clips_per_batch"])

    def close(self) -> None:  # the pool closes the actors
        return None


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BackendError(
            "--ray needs Ray: pip install 'ambiscope[ray]' (on every node of the cluster)"
        ) from None
    return ray


def _endpoint_share(spec: Any, index: int, actors: int) -> Any:
    """Actor `index`'s replicas of the spec's endpoints (each actor a share, each replica
    used by some actor)."""
    urls = spec.base_url
    if not isinstance(urls, tuple) or len(urls) <= 1:
        return spec
    share = urls[index::actors] if actors <= len(urls) else (urls[index % len(urls)],)
    return replace(spec, base_url=share if len(share) > 1 else share[0])


class RayPool:
    """Actors holding the run's backends (`with RayPool(spec) as pool:`), and the engine
    that drives a run's clips through them (`drive`)."""

    def __init__(self, spec: Any, verifier: str | None = None) -> None:
        self.spec = spec
        self.options = RayOptions.of(spec)
        self.verifier_model = verifier
        self.actors: list[Any] = []
        self.infos: list[dict[str, Any]] = []
        self.alive: list[bool] = []
        self.notes: list[str] = []
        self.redispatched: dict[int, int] = {}  # lost actor -> clips sent to the others
        self._started = False
        self.model: RemoteModel
        self.verifier: RemoteModel | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> RayPool:
        ray = _ray()
        address = self.options.address
        check_reachable(address)
        if not ray.is_initialized():
            ray.init(
                address=None if address == LOCAL else address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=True,
            )
            self._started = True
        try:
            self._start_actors(ray)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        ray = _ray()
        for actor, alive in zip(self.actors, self.alive, strict=True):
            if alive:
                with suppress(Exception):  # closing must not hide the run's own outcome
                    ray.get(actor.close.remote(), timeout=30)
            ray.kill(actor)
        self.actors.clear()
        if self._started:
            ray.shutdown()
            self._started = False

    def _resources(self, ray: Any) -> tuple[int, float, float]:
        """(actors, gpus, cpus) per actor, checked against what the cluster has (a request
        it can never place would wait forever)."""
        total = ray.cluster_resources()
        have_gpus, have_cpus = float(total.get("GPU", 0)), float(total.get("CPU", 0))
        local = self.spec.backend in LOCAL_BACKENDS
        gpus = self.options.gpus
        if gpus is None:
            gpus = 1.0 if local and have_gpus >= 1 else 0.0
        actors = self.options.actors
        if actors is None:
            if local:
                actors = int(have_gpus // gpus) if gpus else 1
            else:
                urls = self.spec.base_url
                actors = len(urls) if isinstance(urls, tuple) else 1
        cpus = self.options.cpus
        if actors < 1:
            raise BackendError("--ray-actors must be at least 1")
        if actors * cpus > have_cpus or actors * gpus > have_gpus:
            raise BackendError(
                f"the Ray cluster has {have_cpus:g} CPUs and {have_gpus:g} GPUs; {actors} "
                f"actors x ({cpus:g} CPU, {gpus:g} GPU) do not fit (set --ray-actors, "
                "--ray-cpus or --ray-gpus; no run was created)"
            )
        return max(1, actors), gpus, cpus

    def _start_actors(self, ray: Any) -> None:
        count, gpus, cpus = self._resources(ray)
        remote = ray.remote(max_restarts=0)(ModelHost)
        tag = f"ambiscope-{os.getpid()}-{next(_names)}"
        for i in range(count):
            spec = _endpoint_share(self.spec, i, count)
            actor = remote.options(name=f"{tag}-{i}", num_cpus=cpus, num_gpus=gpus).remote(
                spec, self.verifier_model, int(max(1, cpus))
            )
            self.actors.append(actor)
            self.alive.append(True)
        errors = ray.get([a.load.remote() for a in self.actors])
        failed = next((e for e in errors if e), None)
        if failed:
            raise BackendError(failed)
        params = self.spec.params()
        self.infos = ray.get([a.info.remote(params, self.spec.batch_clips) for a in self.actors])
        nodes = sorted({i["node"] for i in self.infos})
        ray_info = {"address": self.options.address, "actors": count, "nodes": len(nodes)}
        self.model = RemoteModel(self.infos[0], ray_info, "logprobs")
        if self.verifier_model:
            self.verifier = RemoteModel(self.infos[0], ray_info, "verifier_logprobs")
        self.notes.append(
            f"ran on Ray: {count} actors ({cpus:g} CPU, {gpus:g} GPU each) on {len(nodes)} node(s)"
        )

    def report(self) -> list[str]:
        """The actors' own reports (e.g. replica retries) and what happened to actors."""
        ray = _ray()
        notes = list(self.notes)
        notes += [
            f"{n} clips of lost Ray actor {i} were re-dispatched to the others"
            for i, n in self.redispatched.items()
        ]
        for actor, alive in zip(self.actors, self.alive, strict=True):
            if alive:
                with suppress(Exception):  # an actor lost at the very end: its report too
                    notes += ray.get(actor.report.remote(), timeout=30)
        return list(dict.fromkeys(notes))

    # ------------------------------------------------------------------ the engine
    def drive(self, ws: Workspace, work: SplitWork) -> Callable[..., None]:
        """The `Drive` for `run_selected`: batches of clips to actors, commits here."""

        def run(todo: Sequence[int], account: Account, stop: Callable[[], bool]) -> None:
            self._drive(ws, work, todo, account, stop)

        return run

    def _batch_size(self, index: int, pending: int) -> int:
        """The actor's batch (what its model decodes at once, or its endpoints' share of
        requests in flight), shrunk as the queue empties so every actor keeps work to
        the end (guided scheduling)."""
        info = self.infos[index]
        full = max(1, int(info["clips_per_batch"]), int(info["clips_in_flight"]))
        fair = math.ceil(pending / (DEPTH * max(1, sum(self.alive))))
        return max(1, min(full, fair))

    def _drive(
        self,
        ws: Workspace,
        work: SplitWork,
        todo: Sequence[int],
        account: Account,
        stop: Callable[[], bool],
    ) -> None:
        ray = _ray()
        from ray.exceptions import ObjectLostError, RayActorError, WorkerCrashedError

        lost_errors = (RayActorError, WorkerCrashedError, ObjectLostError)
        phase = ray.put(work.phase)
        pending: deque[int] = deque(todo)
        running: dict[Any, tuple[int, list[tuple[Clip, Any]]]] = {}
        stopped = False

        def next_batch(size: int) -> list[tuple[Clip, Any]]:
            batch: list[tuple[Clip, Any]] = []
            while pending and len(batch) < size:
                clip = ws.get_clip(pending.popleft())
                try:
                    batch.append((clip, work.task(clip)))
                except AudioError as exc:  # the driver reads audio: its failure is recorded here
                    account(clip, work.fail(clip, exc))
            return batch

        def fill(index: int) -> None:
            nonlocal stopped
            while (
                self.alive[index]
                and pending
                and sum(1 for i, _ in running.values() if i == index) < DEPTH
            ):
                if stopped or stop():
                    stopped = True
                    return
                batch = next_batch(self._batch_size(index, len(pending)))
                if batch:
                    ref = self.actors[index].run.remote(phase, [t for _, t in batch])
                    running[ref] = (index, batch)

        for index in range(len(self.actors)):
            fill(index)
        while running:
            (ref,), _ = ray.wait(list(running), num_returns=1)
            index, batch = running.pop(ref)
            try:
                outputs = ray.get(ref)
            except lost_errors as exc:
                self._lost(index, exc, batch, pending)
                for other in range(len(self.actors)):
                    fill(other)
                continue
            for (clip, task), output in zip(batch, outputs, strict=True):
                account(clip, work.commit(clip, task, output))
            fill(index)

    def _lost(
        self, index: int, exc: Exception, batch: list[tuple[Clip, Any]], pending: deque[int]
    ) -> None:
        """Put a dead actor's batch back at the front of the queue for the others."""
        if self.alive[index]:
            self.alive[index] = False
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self.notes.append(f"Ray actor {index} was lost ({reason[:120]})")
        pending.extendleft(reversed([clip.id for clip, _ in batch]))
        self.redispatched[index] = self.redispatched.get(index, 0) + len(batch)
        if not any(self.alive):
            raise BackendError(
                "every Ray actor was lost; finished clips are saved, run the same command "
                "again to resume"
            )
