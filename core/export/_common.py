"""Plumbing every export shares: one-line errors, atomic outputs, safe names, strict JSON.

Why atomic: an export that fails half-way (a bad run id found late, a full disk, Ctrl-C)
must not leave a directory that looks like a finished export. Everything is written into
a temporary sibling of the target and renamed into place at the end; the rename is atomic
on one filesystem, which is why the temporary directory lives next to the target.

Why `--force` is narrow: it deletes the old output, and a mistyped OUT (`.`, `..`, the
corpus folder) would otherwise take the workspace or the original audio with it. It only
replaces a folder an earlier export wrote (its `provenance.json` at the top), and never
one that holds the workspace (or its -wal/-shm files) or a dataset root, or lies in one.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ambiscope.core.export.provenance import PROVENANCE_FILE
from ambiscope.db import Workspace


class ExportError(ValueError):
    """Bad input to an export (unknown run, empty selection, existing output...): one line."""


# ------------------------------------------------------------------------------- JSON
def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays unwrapped, NaN/inf -> None, paths -> str.

    Strict JSON has no NaN; tools such as `jq`, pandas' JSON reader and Hugging Face
    `datasets` choke on it, so an undefined metric is written as null.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _default(value: Any) -> Any:
    """json.dumps hook for the non-JSON types exports meet (numpy values, paths)."""
    if isinstance(value, np.ndarray | np.generic | Path):
        return jsonable(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text (NaN becomes null, non-ASCII kept readable).

    The common case (plain values, no NaN) is encoded directly; only a value holding a
    NaN is walked by `jsonable` first, which keeps a 10k-clip export fast.
    """
    separators = (",", ":") if indent is None else None
    options: dict[str, Any] = {"indent": indent, "ensure_ascii": False, "separators": separators}
    try:
        return json.dumps(value, allow_nan=False, default=_default, **options)
    except ValueError:  # NaN or inf somewhere
        return json.dumps(jsonable(value), allow_nan=False, **options)


# ---------------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class Protected:
    """What an export must never delete: the workspace file and every dataset root."""

    workspace: Path | None
    roots: tuple[Path, ...] = ()

    @classmethod
    def of(cls, ws: Workspace) -> Protected:
        """The workspace's own file and the roots of all its datasets."""
        roots = (Path(ds.root) for ds in ws.datasets() if ds.root)
        return cls(Path(ws.path), tuple(_real_all(roots)))

    def reason(self, out: Path) -> str | None:
        """Why `out` may not be replaced (None: it may, as far as these paths go)."""
        real = out.resolve()
        if self.workspace is not None:
            for ws in _real_all((self.workspace,)):  # its -wal/-shm files lie beside it
                if ws.is_relative_to(real):
                    return f"holds the workspace {self.workspace}"
        for root in self.roots:
            if root.is_relative_to(real):
                return f"holds the dataset root {root}"
            if real.is_relative_to(root):
                return f"is inside the dataset root {root}"
        return None


def _real_all(paths: Iterable[Path]) -> list[Path]:
    """Each path as given (made absolute) and with symlinks resolved."""
    out: list[Path] = []
    for path in paths:
        out += [Path(os.path.abspath(path)), path.resolve()]
    return list(dict.fromkeys(out))


def check_target_dir(out: Path, *, force: bool, protect: Protected) -> None:
    """Refuse to clobber: OUT may be missing or an empty directory; see `Protected` for force.

    A non-empty OUT needs --force, and --force replaces only an earlier ambiscope export
    (a `provenance.json` at its top) that holds neither the workspace nor a dataset root.
    """
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ExportError(f"{out}: exists and is not a directory")
    if not out.is_dir() or not any(out.iterdir()):
        return
    reason = protect.reason(out)
    if reason is not None:
        raise ExportError(f"{out}: {reason}; --force never replaces it, choose another OUT")
    if not (out / PROVENANCE_FILE).is_file():
        raise ExportError(
            f"{out}: directory is not empty and was not written by ambiscope (no "
            f"{PROVENANCE_FILE}); --force only replaces an earlier export, choose another OUT"
        )
    if not force:
        raise ExportError(f"{out}: directory is not empty; pass --force to replace it")


@contextmanager
def atomic_dir(out: Path, *, force: bool, protect: Protected) -> Iterator[Path]:
    """Yield a temporary directory next to `out`; rename it to `out` if the block succeeds.

    On any error (or Ctrl-C) the temporary directory is removed and `out` is untouched.
    An existing `out` (allowed only when empty, or an earlier export with force) is
    swapped out and deleted only after the new one is in place.
    """
    out = Path(out)
    check_target_dir(out, force=force, protect=protect)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; an export is meant to be shared
        yield tmp
        check_target_dir(out, force=force, protect=protect)  # something may have appeared
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    backup = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(out, backup)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(backup, out)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file via a temporary sibling and os.replace (no half-written file)."""
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path}: is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------- file names
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
)
MAX_STEM = 100


def safe_stem(key: str) -> str:
    """A file-name stem from a clip key: no separators, no leading dots, portable chars.

    Clip keys come from corpus files and may hold anything (`../../etc/passwd`, `a/b`,
    spaces, Windows drive letters), so every character outside [A-Za-z0-9._-] becomes `_`
    and leading/trailing dots, dashes and underscores go: the result can never climb out
    of the export directory or name a hidden file.
    """
    stem = _UNSAFE.sub("_", key).strip("._-")[:MAX_STEM].strip("._-")
    if not stem:
        stem = "clip"
    if stem.lower() in _RESERVED:
        stem = f"{stem}_"
    return stem


def safe_suffix(path: str | None, default: str = ".wav") -> str:
    """The source file's extension, lower-cased and checked (`.wav` when absent or odd)."""
    suffix = Path(path).suffix.lower() if path else ""
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else default


class NameAllocator:
    """Unique, case-insensitively distinct file names (`x.wav`, `x-2.wav`, ...)."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def allocate(self, key: str, suffix: str) -> str:
        stem = safe_stem(key)
        name, n = f"{stem}{suffix}", 1
        while name.lower() in self._used:
            n += 1
            name = f"{stem}-{n}{suffix}"
        self._used.add(name.lower())
        return name
