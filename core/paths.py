"""Clip audio paths stay inside their dataset's root.

A workspace file can come from someone else (DESIGN.md, "What a workspace may ask for"):
a stored clip path such as `/etc/passwd`, `../../home/me/.ssh/id_rsa`, or a symlink in the
corpus that points out, must not make an export copy that file. Importers refuse such a
path unless the person importing passes `--allow-outside-root` (stored in the dataset's
options, so provenance shows it), and everything that reads a clip's audio checks it here
again before reading. The check resolves symlinks: a link inside the corpus pointing to
another place inside it is fine, one pointing out is not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ALLOW_OUTSIDE_ROOT = "allow_outside_root"
"""Key in a dataset's stored `options["import"]` set by `ambiscope import --allow-outside-root`."""


def allows_outside_root(options: Mapping[str, Any] | None) -> bool:
    """Whether a dataset's stored options allow audio outside its root."""
    imported = (options or {}).get("import")
    return isinstance(imported, Mapping) and imported.get(ALLOW_OUTSIDE_ROOT) is True


class RootGuard:
    """Resolves clip paths against one dataset root and tells whether they stay inside.

    Resolved folders are cached, so checking every clip of a large corpus costs one
    `lstat` per file rather than one per path component.
    """

    def __init__(self, root: str | os.PathLike[str] | None, *, allow_outside: bool = False):
        self.root = Path(root).resolve() if root else None
        self.allow_outside = allow_outside
        self._folders: dict[Path, Path] = {}

    def full(self, stored: str | os.PathLike[str]) -> Path:
        """The stored path as a file path: absolute ones kept, relative ones under the root."""
        path = Path(stored)
        if path.is_absolute() or self.root is None:
            return path
        return self.root / path

    def real(self, path: Path) -> Path:
        """`path` with every symlink and `..` resolved (the file itself may be missing)."""
        if path.name in ("", ".", ".."):
            return path.resolve()
        folder = self._folders.get(path.parent)
        if folder is None:
            folder = self._folders[path.parent] = path.parent.resolve()
        candidate = folder / path.name
        return candidate.resolve() if candidate.is_symlink() else candidate

    def inside(self, path: Path) -> bool:
        """True when `path` resolves to somewhere inside the root (never without a root)."""
        if self.root is None:
            return False
        try:
            return self.real(path).is_relative_to(self.root)
        except (OSError, RuntimeError):  # a symlink loop, an unreadable folder
            return False

    def allowed(self, path: Path) -> bool:
        """Inside the root, or the dataset was imported with --allow-outside-root."""
        return self.allow_outside or self.inside(path)

    def refusal(self, shown: str) -> str:
        """The one-line reason a path is refused (`shown` as the input spelled it)."""
        where = f"the dataset root {self.root}" if self.root else "any dataset root"
        return f"{shown} is outside {where} (use --allow-outside-root)"


def dataset_file(root: str | None, options: Mapping[str, Any] | None, stored: str) -> Path | None:
    """The file to read for a clip's stored path, or None when it is outside the dataset's
    root (and the dataset was not imported with --allow-outside-root)."""
    guard = RootGuard(root, allow_outside=allows_outside_root(options))
    path = guard.full(stored)
    return path if guard.allowed(path) else None
