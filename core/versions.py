"""Installed package versions, recorded with every run and every export (provenance)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence

RUN_PACKAGES = ("ambiscope", "torch", "transformers", "numpy", "scipy")


def package_versions(names: Sequence[str] = RUN_PACKAGES) -> dict[str, str]:
    """name -> installed version, for the named packages that are installed."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def ambiscope_version() -> str:
    """This package's version ("unknown" when run from a tree that is not installed)."""
    return package_versions(("ambiscope",)).get("ambiscope", "unknown")
