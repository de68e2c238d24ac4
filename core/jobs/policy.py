"""What a worker lets a stored job do: the allow list given on the worker's own command line.

A workspace can come from someone else, and a job row is just data in it. So nothing a job
asks for may run code (`trust_remote_code`), read a secret (`api_key_env` names an
environment variable whose value is sent as a bearer token) or reach a network endpoint
(`base_url`), read a file outside the workspace's folder (`prompt_file`: its text would
be stored in the run and sent to the model) or send its clips to a Ray cluster (`ray`: an
address; a Ray instance started on this machine is allowed) unless the person who started
the worker allowed it there: `ambiscope worker --allow-remote-code --allow-endpoint URL
--allow-key-env NAME --allow-dir DIR --ray ADDRESS` (the same flags on
`python -m ambiscope.core.jobs`;
the TUI passes what its user allowed in their settings). Loading local weights or a Hub id
with the transformers backend runs no code and stays allowed; prompt files in the
workspace's own folder (or below it) are allowed, as that is where a study keeps them.

What a job asks for is read from its stored parameters before its handler runs (the
worker applies `WorkerPolicy.check` to every job), by the kind's `needs` function when it
registered one, else by `execution_needs`, which finds the execution options in any
nested object of the parameters, so a new job kind is covered without doing anything.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

LOCAL_BACKENDS = frozenset({"transformers"})  # backends that never use `base_url`
LOCAL_RAY = "local"  # `--ray` alone: a Ray instance on this machine (scaling.ray_pool)


class PolicyError(RuntimeError):
    """A job asked for something this worker was not allowed to do (the message says how)."""


@dataclass(frozen=True)
class Needs:
    """What a job would do that only the worker's own command line can allow."""

    remote_code: bool = False
    endpoints: tuple[str, ...] = ()  # normalised URLs (or the raw text when unparseable)
    key_envs: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # files the job reads (prompt files), as stored
    clusters: tuple[str, ...] = ()  # Ray cluster addresses the job's clips would go to


NeedsOf = Callable[[dict[str, Any]], Needs]


def normalise_endpoint(url: str) -> str:
    """`scheme://host:port/path` with the default port written out and no trailing slash.

    Raises ValueError for anything but an http(s) URL with a host, so an allow-list entry
    is checked when the worker starts and a stored URL is compared by what it reaches
    (`http://Host/v1/` and `http://host:80/v1` are the same endpoint; `http://ok@evil/`
    is evil's).
    """
    parts = urllib.parse.urlsplit(str(url).strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
        scheme = ""
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) endpoint URL: {url!r}")
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    port = port or (443 if scheme == "https" else 80)
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}{query}"


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every dict in a JSON-like value, the value itself included."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _objects(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _objects(item)


def execution_needs(params: dict[str, Any]) -> Needs:
    """The default `needs`: execution options anywhere in a job's parameters.

    Any object with a truthy `trust_remote_code`, a non-empty `api_key_env`, or a
    non-empty `base_url` for a backend that uses one (every backend but transformers)
    counts, whatever the kind calls the object (a run spec, a verifier's spec, ...).
    """
    remote_code = False
    endpoints: list[str] = []
    key_envs: list[str] = []
    files: list[str] = []
    clusters: list[str] = []
    for obj in _objects(params):
        if obj.get("ray") and obj["ray"] != LOCAL_RAY:
            clusters.append(str(obj["ray"]))
        if obj.get("prompt_file"):
            files.append(str(obj["prompt_file"]))
        remote_code = remote_code or bool(obj.get("trust_remote_code"))
        if obj.get("api_key_env"):
            key_envs.append(str(obj["api_key_env"]))
        if obj.get("base_url") and obj.get("backend") not in LOCAL_BACKENDS:
            given = obj["base_url"]
            for url in given if isinstance(given, list | tuple) else [given]:
                try:  # every replica must be allowed, not just the first
                    endpoints.append(normalise_endpoint(url))
                except ValueError:
                    endpoints.append(str(url))
    return Needs(
        remote_code,
        tuple(dict.fromkeys(endpoints)),
        tuple(dict.fromkeys(key_envs)),
        tuple(dict.fromkeys(files)),
        tuple(dict.fromkeys(clusters)),
    )


@dataclass(frozen=True)
class WorkerPolicy:
    """The worker's allow list; the default allows nothing a workspace could abuse."""

    allow_remote_code: bool = False
    allow_endpoints: Sequence[str] = ()
    allow_key_envs: Sequence[str] = ()
    allow_dirs: Sequence[str] = ()  # folders whose files jobs may read (the workspace's)
    allow_clusters: Sequence[str] = ()  # Ray addresses (the worker's own `--ray`)
    _endpoints: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        endpoints = frozenset(normalise_endpoint(u) for u in self.allow_endpoints)
        object.__setattr__(self, "_endpoints", endpoints)

    def _readable(self, stored: str) -> bool:
        """Whether a job may read this file: it resolves (symlinks too) inside an allowed
        folder. A relative path is taken from the worker's working directory, as the
        spec's loader would."""
        real = os.path.realpath(stored)
        return any(
            os.path.commonpath([real, os.path.realpath(d)]) == os.path.realpath(d)
            for d in self.allow_dirs
        )

    def _missing(self, needs: Needs) -> list[tuple[str, str]]:
        """(what the job asks for, the worker flag that allows it) for each refused need."""
        out: list[tuple[str, str]] = []
        if needs.remote_code and not self.allow_remote_code:
            code = "run the model folder's own Python code (trust_remote_code)"
            out.append((code, "--allow-remote-code"))
        out += [
            (f"send requests to {url}", f"--allow-endpoint {url}")
            for url in needs.endpoints
            if url not in self._endpoints
        ]
        out += [
            (f"send the value of ${name} to a server (api_key_env)", f"--allow-key-env {name}")
            for name in needs.key_envs
            if name not in self.allow_key_envs
        ]
        out += [
            (f"read {path}", f"--allow-dir {os.path.dirname(os.path.realpath(path))}")
            for path in needs.files
            if not self._readable(path)
        ]
        out += [
            (f"send its clips to the Ray cluster at {address}", f"--ray {address}")
            for address in needs.clusters
            if address not in self.allow_clusters
        ]
        return out

    def missing_flags(self, needs: Needs) -> list[str]:
        """The worker flags a job with these needs would have to be allowed with."""
        return [flag for _, flag in self._missing(needs)]

    def refusal(self, needs: Needs) -> str | None:
        """Why a job with these needs may not run here, in one line, or None."""
        missing = self._missing(needs)
        if not missing:
            return None
        return (
            f"refused: the job asks to {' and to '.join(a for a, _ in missing)}, which a "
            f"workspace cannot allow; start the worker with {' '.join(f for _, f in missing)} "
            "to allow it (TUI: allow_remote_code / allow_endpoints / allow_key_envs / "
            "allow_dirs / ray in your settings file), then `ambiscope jobs retry`"
        )

    def check(self, needs: Needs) -> None:
        """Raise PolicyError (one line saying how to allow it) unless the job may run."""
        reason = self.refusal(needs)
        if reason is not None:
            raise PolicyError(reason)

    def argv(self) -> list[str]:
        """The worker command-line flags that give a worker this allow list."""
        out = ["--allow-remote-code"] if self.allow_remote_code else []
        for url in self.allow_endpoints:
            out += ["--allow-endpoint", url]
        for name in self.allow_key_envs:
            out += ["--allow-key-env", name]
        for folder in self.allow_dirs:
            out += ["--allow-dir", folder]
        for address in self.allow_clusters:
            out += ["--ray", address]
        return out
