"""Corpus importers, one module per format; all write the same workspace rows.

A format is ONE module in this package that decorates its reader with
`@corpus_format(NAME, default_name=..., summary=...)`: `read(path, options) ->
ParsedCorpus` only reads files; `ambiscope.core.corpora.base.write_corpus` maps labels and
writes. `FORMATS` discovers the package, so the new module is all a new format needs: the
CLI's choices and help read `FORMATS.names()` and each format's `summary` and `extra`
(the `ImportOptions.extra` keys it reads, e.g. CREMA-D's rating modality).

A format may also pass `merge=`: a function that gets the parsed input before
`write_corpus` and may write its votes onto clips that already exist instead (Label
Studio re-annotation of clips exported from this workspace, `ambiscope.core.corpora.ls_merge`);
it returns None to let the input become a dataset as usual.

Two more metadata keys describe the corpus to the conventions (ambiscope.core.conventions):
`label_lists` (its raters write label LISTS, like IEMOCAP's `Frustration; Anger;`, so the
`multi_label` convention decides how a list counts; stored as the dataset option
"label_lists") and `projections` (the `label_projection` values that apply to it: the
`scaling-ambiguity` preset's 4-class set is defined for IEMOCAP and MSP-Podcast only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ambiscope.core.corpora.base import (
    ImportOptions,
    ImportResult,
    ParsedCorpus,
    gc_paused,
    write_corpus,
)
from ambiscope.core.labels import PROJECTIONS
from ambiscope.core.registry import Registry
from ambiscope.db import Workspace

if TYPE_CHECKING:
    from ambiscope.core.corpora.ls_merge import MergeResult

Reader = Callable[[Path, ImportOptions], ParsedCorpus]
Merger = Callable[[Workspace, ParsedCorpus, ImportOptions], "MergeResult | None"]


@dataclass(frozen=True)
class CorpusFormat:
    """How one format reads a corpus and names the dataset by default."""

    read: Reader
    default_name: Callable[[Path], str]
    merge: Merger | None = None  # votes onto existing clips (see the module docstring)


FORMATS: Registry[CorpusFormat] = Registry("format", discover=("ambiscope.core.corpora",))
"""CLI format name -> CorpusFormat; metadata `summary` (one line), `extra` (option keys),
`label_lists` and `projections` (see the module docstring)."""


def corpus_format(
    name: str,
    *,
    default_name: Callable[[Path], str],
    summary: str,
    extra: Sequence[str] = (),
    label_lists: bool = False,
    projections: Sequence[str] = (),
    merge: Merger | None = None,
) -> Callable[[Reader], Reader]:
    """Register the decorated `read` function as corpus format `name`."""
    unknown = sorted(set(projections) - set(PROJECTIONS))
    if unknown:
        raise ValueError(f"format {name}: unknown projections {unknown}")

    def decorate(read: Reader) -> Reader:
        FORMATS.add(
            name,
            CorpusFormat(read, default_name, merge),
            summary=summary,
            extra=tuple(extra),
            label_lists=label_lists,
            projections=tuple(projections),
        )
        return read

    return decorate


def projected_options(format: str, options: ImportOptions) -> ImportOptions:
    """`options` with the conventions' label projection as the label set, when the format
    has that projection and no explicit label set (`--labels`) was given: an explicit
    choice always wins, and corpora the projection is not defined for stay whole."""
    projection = options.conventions.label_projection
    if options.labels or projection not in FORMATS.meta(format).get("projections", ()):
        return options
    return replace(options, labels=PROJECTIONS[projection])


def import_corpus(
    ws: Workspace, format: str, path: str | Path, options: ImportOptions
) -> ImportResult | MergeResult:
    """Read a corpus from disk and write it into the workspace in one transaction: as a
    dataset, or onto existing clips when the format's `merge` takes it."""
    fmt = FORMATS.get(format)
    source = Path(path)
    if not source.exists():
        raise ValueError(f"{source}: no such file or directory")
    options = projected_options(format, options)
    with gc_paused():
        parsed = fmt.read(source, options)
        if FORMATS.meta(format).get("label_lists"):
            parsed.options["label_lists"] = True
        merged = fmt.merge(ws, parsed, options) if fmt.merge else None
        if merged is not None:
            return merged
        return write_corpus(ws, parsed, options, default_name=fmt.default_name(source))
