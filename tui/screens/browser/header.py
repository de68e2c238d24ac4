"""The browser's one-line header, fitted to the terminal's width by shortening parts.

At 80 columns the full header (workspace file, clip count, run, strategy, sort, own
votes, jobs) does not fit, and cutting its tail lost the sort and the jobs. Each part
instead lists its forms from full to shortest ("" drops it) and a `give` rank: parts
that give more are shortened first, and the run, strategy, sort and jobs, which say
what the table shows and what runs in the background, keep a form to the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text

from ambiscope.db import Run

SEPARATOR = " · "
RUN_NAME_CHARS = 18  # of a long run name (a model path) in the shortened run part


@dataclass(frozen=True)
class Part:
    """One header part: its forms from full to shortest, and how early it shortens."""

    forms: tuple[str, ...]
    style: str = ""
    give: int = 9  # lower shortens first; 9 only when nothing else is left to shorten


def run_title(run: Run) -> str:
    """`#id name`, or `#id model` for an unnamed run: never `None`, always the id.

    The id tells apart runs of one model (a re-sample with other settings creates one).
    """
    name = run.name or run.model
    return f"#{run.id} {name}" if name else f"#{run.id}"


def run_part(run: Run) -> Part:
    """The run shown: its title, then a shortened name, then the id alone."""
    title = run_title(run)
    short = title if len(title) <= RUN_NAME_CHARS else title[: RUN_NAME_CHARS - 1] + "…"
    return Part((f"run {title}", f"run {short}", f"run #{run.id}"), "bold", give=8)


def queue_part(row: int, count: int, size: int) -> Part:
    """Where the cursor is in the audit queue, the top `size` of `count` clips by priority:
    `queue 3/50`, or `past queue (50)` below its end (j/k keep going past it)."""
    length = min(size, count)
    form = f"queue {row + 1}/{length}" if row < length else f"past queue ({length})"
    return Part((form,), "bold magenta")


def fit(parts: Sequence[Part], width: int) -> Text:
    """The parts joined by ` · `, each in the longest form that lets the line fit `width`.

    Parts are shortened one step at a time in `give` order (then right to left), until the
    line fits or every part is at its shortest; a line that still does not fit ends in `…`.
    """
    chosen = [p.forms[0] for p in parts]
    order = sorted(range(len(parts)), key=lambda i: (parts[i].give, -i))
    for i in order:
        for form in parts[i].forms[1:]:
            if width <= 0 or _length(chosen) <= width:
                break
            chosen[i] = form
    text = Text(no_wrap=True, overflow="ellipsis")
    for part, form in zip(parts, chosen, strict=True):
        if form:
            if text:
                text.append(SEPARATOR)
            text.append(form, style=part.style)
    return text


def _length(forms: Sequence[str]) -> int:
    shown = [f for f in forms if f]
    return sum(len(f) for f in shown) + len(SEPARATOR) * max(len(shown) - 1, 0)
