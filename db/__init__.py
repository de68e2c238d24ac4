"""Persistence layer: SQLite schema migrations and the Workspace class (no UI, no torch).

Names are imported lazily (PEP 562) so that `from ambiscope.db.errors import WorkspaceError` in the
CLI does not pull numpy onto the `ambiscope --help` path.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ANNOTATOR_KINDS": "ambiscope.db.models",
    "Annotator": "ambiscope.db.models",
    "Clip": "ambiscope.db.models",
    "ClipIn": "ambiscope.db.models",
    "Dataset": "ambiscope.db.models",
    "Job": "ambiscope.db.models",
    "Prediction": "ambiscope.db.models",
    "Run": "ambiscope.db.models",
    "RunIn": "ambiscope.db.models",
    "Sample": "ambiscope.db.models",
    "VoteArrays": "ambiscope.db.models",
    "VoteIn": "ambiscope.db.models",
    "VoteRow": "ambiscope.db.models",
    "Workspace": "ambiscope.db.workspace",
    "WorkspaceError": "ambiscope.db.errors",
    "allow_network_fs": "ambiscope.db.mounts",
    "codec": "ambiscope.db.codec",
    "network_filesystem": "ambiscope.db.mounts",
}

__all__ = [
    "ANNOTATOR_KINDS",
    "Annotator",
    "Clip",
    "ClipIn",
    "Dataset",
    "Job",
    "Prediction",
    "Run",
    "RunIn",
    "Sample",
    "VoteArrays",
    "VoteIn",
    "VoteRow",
    "Workspace",
    "WorkspaceError",
    "allow_network_fs",
    "codec",
    "network_filesystem",
]

if TYPE_CHECKING:
    from ambiscope.db import codec
    from ambiscope.db.errors import WorkspaceError
    from ambiscope.db.models import (
        ANNOTATOR_KINDS,
        Annotator,
        Clip,
        ClipIn,
        Dataset,
        Job,
        Prediction,
        Run,
        RunIn,
        Sample,
        VoteArrays,
        VoteIn,
        VoteRow,
    )
    from ambiscope.db.mounts import allow_network_fs, network_filesystem
    from ambiscope.db.workspace import Workspace


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ambiscope.db' has no attribute {name!r}")
    value = importlib.import_module(module)
    return value if name == "codec" else getattr(value, name)
