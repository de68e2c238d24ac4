"""Persistence layer: SQLite schema migrations and the Workspace class (no UI, no torch).

Names are imported lazily (PEP 562) so that `from db.errors import WorkspaceError` in the
CLI does not pull numpy and sqlite-utils onto the `ambiscope --help` path.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ANNOTATOR_KINDS": "db.models",
    "Annotator": "db.models",
    "Clip": "db.models",
    "ClipIn": "db.models",
    "Dataset": "db.models",
    "Job": "db.models",
    "Prediction": "db.models",
    "Run": "db.models",
    "RunIn": "db.models",
    "Sample": "db.models",
    "VoteArrays": "db.models",
    "VoteIn": "db.models",
    "VoteRow": "db.models",
    "Workspace": "db.workspace",
    "WorkspaceError": "db.errors",
    "codec": "db.codec",
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
    "codec",
]

if TYPE_CHECKING:
    from db import codec
    from db.errors import WorkspaceError
    from db.models import (
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
    from db.workspace import Workspace


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'db' has no attribute {name!r}")
    value = importlib.import_module(module)
    return value if name == "codec" else getattr(value, name)
