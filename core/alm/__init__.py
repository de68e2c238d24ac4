"""Audio-language model backends, prompts, output parsing and the tiny offline checkpoint.

`BACKENDS` names every backend; its entries live in `ambiscope.core.alm.backends`, one
module (or subpackage) per backend that registers itself when the package is discovered.
An entry is the backend class, registered directly (`@BACKENDS.register("openai")`) when
its module is light, or lazily as ``"module:Class"`` when it needs torch, so listing the
names (CLI choices, TUI dropdowns) never imports torch or transformers. `create_backend`
passes a run's execution options to the class's constructor, which takes the ones it uses.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ambiscope.core.registry import Registry

if TYPE_CHECKING:
    from ambiscope.core.alm.base import Backend

BackendClass = Callable[..., "Backend"]

BACKENDS: Registry[BackendClass] = Registry("backend", discover=("ambiscope.core.alm.backends",))
"""Backend name -> class taking (model_id, **execution options it uses); see the docstring."""


def create_backend(name: str, model_id: str, options: Mapping[str, Any]) -> Backend:
    """Instantiate backend `name` for `model_id` with the `options` its constructor takes.

    `options` are a run's execution options (device, dtype, base_url, ...); each backend
    declares which it uses by naming them as keyword parameters, so a new backend needs no
    change here or in the run code.
    """
    cls = BACKENDS.get(name)
    takes = inspect.signature(cls).parameters
    return cls(model_id, **{k: v for k, v in options.items() if k in takes})


class BackendSpec(Protocol):
    """What opening a backend needs from a run's spec (sampling runs, synthetic raters)."""

    @property
    def backend(self) -> str: ...

    @property
    def model(self) -> str: ...

    def execution_options(self) -> dict[str, Any]: ...


def open_backend(spec: BackendSpec, model: str | None = None) -> Backend:
    """A new backend for the spec's model (or `model`, e.g. a separate verifier)."""
    return create_backend(spec.backend, model or spec.model, spec.execution_options())


def preflight(backend: Backend, verifier: Backend | None) -> None:
    """Check the backends can serve the run before its row is created (an endpoint that is
    down, refuses the key or does not serve the model stops here with one line)."""
    for used in dict.fromkeys(b for b in (backend, verifier) if b is not None):
        check = getattr(used, "preflight", None)
        if check is not None:
            check()


def clips_in_flight(backend: Backend, verifier: Backend | None) -> int:
    """Clips computed at once: what every backend of the run allows (an endpoint serves
    many requests at once; a local model runs one clip at a time)."""
    limits = [getattr(b, "clips_in_flight", 1) for b in (backend, verifier) if b is not None]
    return max(1, min(int(x) for x in limits))
