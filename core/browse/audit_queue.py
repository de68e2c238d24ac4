"""The audit queue: the clips most worth an audit under a filter, with why.

`ambiscope queue` prints it and the TUI walks it; both read the browser's `priority`
sort (ambiscope.core.browse.priority) through the same query layer, so the queue the
command prints is the order the browser shows for the same filter, run and strategy.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ambiscope.core.browse.filters import filter_errors
from ambiscope.core.browse.priority import formula
from ambiscope.core.browse.query import (
    BrowseQuery,
    checked_filter,
    clip_priorities,
    fetch_rows,
    ordered_id_array,
)

DEFAULT_TOP = 50
"""Clips in the queue: `ambiscope queue --top`'s default, and what the TUI's header counts."""


@dataclass(frozen=True)
class QueueEntry:
    """One clip of the queue: its priority, the parts of it, and what the browser shows.

    The priority and its parts are None for a clip with neither a human distribution nor
    a prediction of the run (it ranks after every scored clip)."""

    rank: int
    clip_id: int
    key: str
    dataset: str
    priority: float | None
    divergence: float | None
    strategies: float | None
    raters: float | None
    majority: str | None
    norm_entropy: float | None
    model_label: str | None
    js: float | None


@dataclass(frozen=True)
class AuditQueue:
    """The top of the queue, how many clips the filter selects, and the formula used."""

    entries: list[QueueEntry]
    matched: int
    weights: Mapping[str, float]
    formula: str


def audit_queue(
    conn: sqlite3.Connection,
    *,
    top: int,
    where: str | None = None,
    dataset_id: int | None = None,
    run_id: int | None = None,
    strategy: str | None = None,
) -> AuditQueue:
    """The `top` clips of the filter by descending priority for a run x strategy (none:
    the raters' part alone). Filter values are checked against the workspace first, so a
    typo is one line listing the valid values, not an empty queue."""
    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}")
    query = BrowseQuery(
        dataset_id=dataset_id,
        filter_text=where or "",
        run_id=run_id,
        strategy=strategy,
        sort="priority",
        descending=True,
    )
    flt = checked_filter(conn, where, dataset_id)
    with filter_errors(flt):
        ids = ordered_id_array(conn, query)
    scores = clip_priorities(conn, query)
    entries = []
    for rank, row in enumerate(fetch_rows(conn, query, ids[:top]), 1):
        i = _position(scores.clip_ids, row.clip_id)
        entries.append(
            QueueEntry(
                rank,
                row.clip_id,
                row.key,
                row.dataset,
                _value(scores.priority, i),
                _value(scores.divergence, i),
                _value(scores.strategies, i),
                _value(scores.raters, i),
                row.majority,
                row.norm_entropy,
                row.model_label,
                row.js,
            )
        )
    return AuditQueue(entries, len(ids), scores.weights, formula(scores.weights))


def _position(ids: np.ndarray, clip_id: int) -> int | None:
    """Where `clip_id` is in the ascending `ids` (None: not there)."""
    i = int(np.searchsorted(ids, clip_id))
    return i if i < len(ids) and int(ids[i]) == clip_id else None


def _value(values: np.ndarray, i: int | None) -> float | None:
    return None if i is None else float(values[i])
