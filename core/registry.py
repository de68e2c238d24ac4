"""One small registry type for every plug-in point (DESIGN.md, Layout).

Corpus formats, backends, strategies, metrics, table and subset formats and job kinds are
each a `Registry`: a name maps to an object, or to a lazy ``"module:attr"`` reference
that is imported the first time the entry is used, so registering a heavy backend costs
nothing until a run asks for it. Duplicate names are refused, which turns two plug-ins
fighting over one name into an error at import time instead of a silent override.

The command line, the TUI's dropdowns and help text read their choices from `names()`,
so a new entry appears everywhere by being registered once:

    BACKENDS = Registry[BackendFactory]("backend")
    BACKENDS.add("openai", "ambiscope.core.alm.backends.openai:OpenAIBackend")

    @STRATEGIES.register("vote", needs=())
    def vote(cs): ...

A registry may name modules or packages to `discover`: they are imported the first time
the registry is read, so entries defined with the decorator in their own file register
themselves (every module of a discovered package is imported; modules whose names start
with `_` are skipped). That is what makes "a new strategy is one decorated function" and
"a new corpus format is one new file" true without a central list to edit.

Entries may carry metadata (keyword arguments of `add`/`register`), read back with
`meta(name)`: what a strategy needs, whether a metric is higher-is-better, a format's
file suffix. Metadata is plain data so it can be listed without importing the entry.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(ValueError):
    """An unknown or duplicate name (a ValueError, so the CLI shows it as one line)."""


class Registry(Generic[T]):
    """Name -> object (or lazy ``"module:attr"``), in registration order."""

    def __init__(self, kind: str, *, discover: Sequence[str] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._meta: dict[str, Mapping[str, Any]] = {}
        self._lock = threading.RLock()
        self._discover = tuple(discover)
        self._discovered = not self._discover

    def _load(self) -> None:
        """Import the discovery modules once (their decorators fill the registry)."""
        if self._discovered:
            return
        with self._lock:
            if self._discovered:
                return
            self._discovered = True
            for name in self._discover:
                module = importlib.import_module(name)
                for info in pkgutil.iter_modules(getattr(module, "__path__", ())):
                    if not info.name.startswith("_"):
                        importlib.import_module(f"{name}.{info.name}")

    def add(self, name: str, obj: T | str, **meta: Any) -> None:
        """Register `obj` (or a ``"module:attr"`` string, imported on first use)."""
        if not name or not isinstance(name, str):
            raise RegistryError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if isinstance(obj, str) and ":" not in obj:
            raise RegistryError(f"lazy {self.kind} {name!r} must be 'module:attr', got {obj!r}")
        with self._lock:
            if name in self._entries:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            self._meta[name] = MappingProxyType(dict(meta))

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator form of `add`: ``@REGISTRY.register("name", key=value)``."""

        def decorate(obj: T) -> T:
            self.add(name, obj, **meta)
            return obj

        return decorate

    def get(self, name: str) -> T:
        """The entry, importing it if it was registered lazily."""
        self._load()
        try:
            entry = self._entries[name]
        except KeyError:
            known = ", ".join(self._entries) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r} (known: {known})") from None
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            loaded: T = getattr(importlib.import_module(module), attr)
            with self._lock:
                self._entries[name] = loaded
            return loaded
        return entry

    def meta(self, name: str) -> Mapping[str, Any]:
        """The metadata given at registration (read-only; no import happens)."""
        self._load()
        if name not in self._meta:
            self.get(name)  # raises the one-line unknown-name error
        return self._meta[name]

    def names(self) -> tuple[str, ...]:
        """Registered names in registration order (what CLI choices and dropdowns list)."""
        self._load()
        return tuple(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, entry) pairs, importing lazy entries."""
        for name in self.names():
            yield name, self.get(name)

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"
