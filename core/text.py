"""One-line messages: errors shown in a status bar, a CLI line or a stored failure reason.

Library messages (libsndfile, JSON decoders, HTTP bodies, torch) can span many lines or
run long; every place that turns one into a user-facing line uses `one_line`, so they
all collapse and shorten the same way.
"""

from __future__ import annotations


def one_line(value: object, limit: int | None = 300) -> str:
    """`value` (an exception or any text) on one line, at most `limit` characters.

    Whitespace runs, newlines included, become one space. An exception without a message
    is named by its type, so a failure never shows as an empty line; empty text stays
    empty, so callers can substitute their own placeholder.
    """
    text = " ".join(str(value).split())
    if not text and isinstance(value, BaseException):
        text = type(value).__name__
    if limit is not None and len(text) > limit:
        return text[: limit - 3] + "..."
    return text
