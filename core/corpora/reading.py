"""Reading corpus files so that every failure is one line naming the file and line.

Importers open their tables through these helpers instead of `open()`/`json.loads`
directly, because the standard library fails in ways that name no file or line, or not at
all: a FIFO or `/dev/zero` given as the path blocks or exhausts memory, a non-UTF-8 byte
reports a position inside the decoder's buffer, a 200,000-character CSV field raises
`_csv.Error`, and JSON nested 100,000 deep raises `RecursionError`. Each of these becomes
an `ImportFormatError` (a ValueError) with `file:line` and what is wrong.
"""

from __future__ import annotations

import codecs
import csv
import json
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from ambiscope.core.corpora.base import ImportFormatError

JSON_DEPTH_REPORTED = 500
"""Nesting depth named in the error when a JSON document is too deep for the parser."""


def refuse_special(path: Path) -> None:
    """Refuse FIFOs, devices and sockets before opening them: they block or never end."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # a missing or unreadable file fails when opened, with the usual message
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ImportFormatError(
            path, None, "not a regular file (a FIFO, device or socket); refusing to read it"
        )


def bad_utf8(path: Path) -> ImportFormatError:
    """The error for a file that is not UTF-8, naming the first bad byte's line and column."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = raw[exc.start]
                return ImportFormatError(
                    path, number, f"not UTF-8 (byte {byte:#04x} at column {exc.start + 1})"
                )
    return ImportFormatError(path, None, "not UTF-8")


def read_text(path: Path) -> str:
    """The whole file as text (BOM dropped); OSError propagates for the caller to word."""
    refuse_special(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise bad_utf8(path) from None


@contextmanager
def text_lines(path: Path, *, newline: str | None = None) -> Iterator[TextIO]:
    """The open text file; a bad byte met inside the block raises `file:line: not UTF-8`.

    The handle itself is yielded (no wrapper per line: MSP-Podcast has 1.5M of them).
    """
    refuse_special(path)
    with path.open(encoding="utf-8-sig", newline=newline) as handle:
        try:
            yield handle
        except UnicodeDecodeError:
            raise bad_utf8(path) from None


@contextmanager
def open_csv(
    path: Path,
    factory: Callable[..., Any] = csv.reader,
    **fmtparams: Any,
) -> Iterator[Any]:
    """A CSV reader (`csv.reader` or `csv.DictReader`) whose errors name file and line.

    `_csv.Error` (a field over the 131,072-character limit, a NUL byte, a stray quote in
    strict mode) raised while the block iterates becomes an ImportFormatError.
    """
    with text_lines(path, newline="") as lines:
        reader = factory(lines, **fmtparams)
        try:
            yield reader
        except csv.Error as exc:
            raise ImportFormatError(path, reader.line_num or None, _csv_message(exc)) from None


def _csv_message(exc: csv.Error) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        return f"a CSV field is longer than {csv.field_size_limit():,} characters"
    return f"unreadable CSV: {text}"


def json_loads(text: str) -> Any:
    """`json.loads`, but nesting too deep for the parser is a JSONDecodeError at its line.

    The C parser raises RecursionError about 1000 levels down; the error points at the
    bracket that goes past `JSON_DEPTH_REPORTED` levels (or the deepest one).
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError(
            f"nested more than {JSON_DEPTH_REPORTED} levels deep", text, _too_deep(text)
        ) from None


def _too_deep(text: str) -> int:
    """Index of the bracket opening level JSON_DEPTH_REPORTED + 1 (else the deepest one)."""
    depth = deepest = deepest_at = 0
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > JSON_DEPTH_REPORTED:
                return index
            if depth > deepest:
                deepest, deepest_at = depth, index
        elif char in "]}":
            depth -= 1
    return deepest_at
