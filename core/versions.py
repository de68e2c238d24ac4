"""Installed package versions, recorded with every run and every export (provenance).

ambiscope's own version must name the code that produced a result, also when it runs
from a source tree that was never installed (PYTHONPATH, `serve` from a checkout): then
the version comes from the tree's pyproject.toml. A git checkout adds its commit
(`0.1.0+git.4718e4f`, `.dirty` with uncommitted changes), since the package version alone
does not change between commits.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import tomllib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

RUN_PACKAGES = ("ambiscope", "torch", "transformers", "numpy", "scipy")
SOURCE_ROOT = Path(__file__).resolve().parents[1]  # core/ lies at the top of the tree


def package_versions(names: Sequence[str] = RUN_PACKAGES) -> dict[str, str]:
    """name -> installed version, for the named packages that are installed."""
    out = {}
    for name in names:
        if name == "ambiscope":
            out[name] = ambiscope_version()
            continue
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


@lru_cache(maxsize=1)
def ambiscope_version(root: Path = SOURCE_ROOT) -> str:
    """This package's version, plus the git commit when it runs from a checkout."""
    base = _installed_version() or _pyproject_version(root) or "unknown"
    commit = _git_describe(root)
    return f"{base}+git.{commit}" if commit else base


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version("ambiscope")
    except importlib.metadata.PackageNotFoundError:
        return None


def _pyproject_version(root: Path) -> str | None:
    """`project.version` of the source tree's pyproject.toml (None outside a tree)."""
    try:
        with (root / "pyproject.toml").open("rb") as f:
            project = tomllib.load(f).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    version = project.get("version")
    return str(version) if version else None


def _git_describe(root: Path) -> str | None:
    """Short commit (`4718e4f`, `4718e4f.dirty`) of a git checkout; None elsewhere or
    when git is not installed."""
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty=.dirty", "--abbrev=7"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().replace("-", ".") or None
