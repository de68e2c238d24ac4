"""Corpus importers, one module per format; all write the same workspace rows.

Each format module exposes `FORMAT` (the CLI name), `default_name(path) -> str` and
`read(path, options) -> ParsedCorpus`; `ambiscope.core.corpora.base.write_corpus` does the rest.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from ambiscope.core.corpora.base import ImportOptions, ImportResult, gc_paused, write_corpus
from ambiscope.db import Workspace

# CLI format name -> module (imported lazily).
FORMATS: dict[str, str] = {
    "crema-d": "ambiscope.core.corpora.crema_d",
    "iemocap": "ambiscope.core.corpora.iemocap",
    "msp-podcast": "ambiscope.core.corpora.msp_podcast",
    "label-studio": "ambiscope.core.corpora.label_studio",
    "manifest": "ambiscope.core.corpora.manifest",
}


def importer(format: str) -> ModuleType:
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r} (known: {', '.join(FORMATS)})")
    return importlib.import_module(FORMATS[format])


def import_corpus(
    ws: Workspace, format: str, path: str | Path, options: ImportOptions
) -> ImportResult:
    """Read a corpus from disk and write it into the workspace in one transaction."""
    module = importer(format)
    source = Path(path)
    if not source.exists():
        raise ValueError(f"{source}: no such file or directory")
    with gc_paused():
        parsed = module.read(source, options)
        return write_corpus(ws, parsed, options, default_name=module.default_name(source))
