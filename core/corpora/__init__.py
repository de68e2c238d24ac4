"""Corpus importers, one module per format; all write the same workspace rows.

A format is ONE module in this package that decorates its reader with
`@corpus_format(NAME, default_name=..., summary=...)`: `read(path, options) ->
ParsedCorpus` only reads files; `ambiscope.core.corpora.base.write_corpus` maps labels and
writes. `FORMATS` discovers the package, so the new module is all a new format needs: the
CLI's choices and help read `FORMATS.names()` and each format's `summary` and `extra`
(the `ImportOptions.extra` keys it reads, e.g. CREMA-D's rating modality).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ambiscope.core.corpora.base import (
    ImportOptions,
    ImportResult,
    ParsedCorpus,
    gc_paused,
    write_corpus,
)
from ambiscope.core.registry import Registry
from ambiscope.db import Workspace

Reader = Callable[[Path, ImportOptions], ParsedCorpus]


@dataclass(frozen=True)
class CorpusFormat:
    """How one format reads a corpus and names the dataset by default."""

    read: Reader
    default_name: Callable[[Path], str]


FORMATS: Registry[CorpusFormat] = Registry("format", discover=("ambiscope.core.corpora",))
"""CLI format name -> CorpusFormat; metadata `summary` (one line) and `extra` (option keys)."""


def corpus_format(
    name: str, *, default_name: Callable[[Path], str], summary: str, extra: Sequence[str] = ()
) -> Callable[[Reader], Reader]:
    """Register the decorated `read` function as corpus format `name`."""

    def decorate(read: Reader) -> Reader:
        FORMATS.add(name, CorpusFormat(read, default_name), summary=summary, extra=tuple(extra))
        return read

    return decorate


def import_corpus(
    ws: Workspace, format: str, path: str | Path, options: ImportOptions
) -> ImportResult:
    """Read a corpus from disk and write it into the workspace in one transaction."""
    fmt = FORMATS.get(format)
    source = Path(path)
    if not source.exists():
        raise ValueError(f"{source}: no such file or directory")
    with gc_paused():
        parsed = fmt.read(source, options)
        return write_corpus(ws, parsed, options, default_name=fmt.default_name(source))
