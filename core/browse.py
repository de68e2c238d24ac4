"""Paged, sorted, filtered clip rows for the TUI's browser, computed in SQL.

A 150k-clip workspace must open and scroll without stalls, so the browser never loads
all rows: it asks for a count and then for pages (`offset`, `limit`) in the current sort
order. Sorting and filtering happen in SQLite (indexes on human entropy, ambiguity,
majority and on predictions' JS), and the model columns come from the selected run and
strategy through a LEFT JOIN, so clips without predictions still show.
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from core.filters import Filter, clip_query, parse_filter
from db import codec

# column id -> (header, SQL expression used for sorting)
SORTABLE: dict[str, tuple[str, str]] = {
    "key": ("key", "c.key"),
    "dataset": ("dataset", "d.name"),
    "split": ("split", "c.split"),
    "majority": ("human", "h.majority"),
    "entropy": ("H", "h.norm_entropy"),
    "ambiguity": (
        "amb",
        "CASE h.ambiguity WHEN 'low' THEN 0 WHEN 'medium' THEN 1 WHEN 'high' THEN 2 END",
    ),
    "model": ("model", "p.label"),
    "model_entropy": ("H(m)", "p.entropy"),
    "js": ("JS", "p.js"),
    "flags": ("flags", "(SELECT count(*) FROM flags x WHERE x.clip_id = c.id)"),
    "tags": ("tags", "(SELECT group_concat(name, ',') FROM tags x WHERE x.clip_id = c.id)"),
    "vote": (
        "own",
        "(SELECT min(v.label) FROM votes v JOIN annotators a ON a.id = "
        "v.annotator_id WHERE v.clip_id = c.id AND a.kind = 'self' AND v.rank = 0)",
    ),
}

_ROW_COLUMNS = (
    "c.id, c.key, d.name, c.split, h.majority, h.norm_entropy, h.ambiguity, "
    "{model_label}, {model_entropy}, {js}, {agree}, "
    "(SELECT group_concat(name, ',') FROM flags x WHERE x.clip_id = c.id), "
    "(SELECT group_concat(name, ',') FROM tags x WHERE x.clip_id = c.id), "
    "(SELECT min(v.label) FROM votes v JOIN annotators a ON a.id = v.annotator_id "
    "WHERE v.clip_id = c.id AND a.kind = 'self' AND v.rank = 0)"
)


@dataclass(frozen=True)
class BrowseQuery:
    """What the browser shows: a filter, a sort and which model distribution."""

    dataset_id: int | None = None
    filter_text: str = ""
    run_id: int | None = None
    strategy: str | None = None
    sort: str = "key"
    descending: bool = False

    def __post_init__(self) -> None:
        if self.sort not in SORTABLE:
            raise ValueError(f"cannot sort by {self.sort!r} (choose from {', '.join(SORTABLE)})")

    def with_(self, **changes: Any) -> BrowseQuery:
        return replace(self, **changes)

    @property
    def has_model(self) -> bool:
        return self.run_id is not None and self.strategy is not None


@dataclass(frozen=True, slots=True)
class BrowseRow:
    clip_id: int
    key: str
    dataset: str
    split: str | None
    majority: str | None
    norm_entropy: float | None
    ambiguity: str | None
    model_label: str | None
    model_entropy: float | None
    js: float | None
    agree: bool | None
    flags: str | None
    tags: str | None
    own_vote: str | None


def _compiled(query: BrowseQuery) -> Filter:
    return parse_filter(query.filter_text)


def _order(query: BrowseQuery) -> str:
    expr = SORTABLE[query.sort][1]
    if query.sort in ("model", "model_entropy", "js") and not query.has_model:
        expr = "c.key"
    direction = "DESC" if query.descending else "ASC"
    # NULLs last in both directions, then a stable tie-break on the clip id
    return f"({expr}) IS NULL, {expr} {direction}, c.id {direction}"


def count_rows(conn: sqlite3.Connection, query: BrowseQuery) -> int:
    sql, params = clip_query(
        _compiled(query),
        columns="count(*)",
        dataset_id=query.dataset_id,
        run_id=query.run_id,
        strategy=query.strategy,
        order_by="1",
    )
    return int(conn.execute(sql, params).fetchone()[0])


def fetch_page(
    conn: sqlite3.Connection, query: BrowseQuery, offset: int, limit: int
) -> list[BrowseRow]:
    """Rows [offset, offset + limit) in the query's order."""
    model = query.has_model
    columns = _ROW_COLUMNS.format(
        model_label="p.label" if model else "NULL",
        model_entropy="p.entropy" if model else "NULL",
        js="p.js" if model else "NULL",
        agree="p.agree" if model else "NULL",
    )
    sql, params = clip_query(
        _compiled(query),
        columns=columns,
        dataset_id=query.dataset_id,
        run_id=query.run_id,
        strategy=query.strategy,
        order_by=_order(query),
    )
    sql += " LIMIT ? OFFSET ?"
    rows = conn.execute(sql, [*params, int(limit), int(offset)]).fetchall()
    return [BrowseRow(*r[:10], None if r[10] is None else bool(r[10]), *r[11:]) for r in rows]


def clip_ids_matching(conn: sqlite3.Connection, query: BrowseQuery) -> list[int]:
    """Every clip id of the current filter (for bulk flag/tag and exports)."""
    sql, params = clip_query(
        _compiled(query),
        dataset_id=query.dataset_id,
        run_id=query.run_id,
        strategy=query.strategy,
        order_by="c.id",
    )
    return [r[0] for r in conn.execute(sql, params)]


# ---------------------------------------------------------------------------------------
# Random access for the virtual table, and per-clip reads for the detail pane.
#
# `fetch_page` with a deep OFFSET re-sorts and skips every earlier row (0.3-0.7 s at
# offset 100k of 150k clips), so the browser asks once per query for the clip ids in
# order (`ordered_ids`, one sort in SQLite, ~0.2 s at 150k) and then fetches any page by
# id (`fetch_rows`, a few ms). The first page still comes from `fetch_page` (a top-N
# sort, ~0.09 s) so a new sort or filter paints before the id list is ready.


def ordered_ids(conn: sqlite3.Connection, query: BrowseQuery) -> array:
    """Every matching clip id in the query's order, as a compact int64 array."""
    sql, params = clip_query(
        _compiled(query),
        columns="c.id",
        dataset_id=query.dataset_id,
        run_id=query.run_id,
        strategy=query.strategy,
        order_by=_order(query),
    )
    out = array("q")
    cur = conn.execute(sql, params)
    while chunk := cur.fetchmany(8192):
        out.extend(r[0] for r in chunk)
    return out


def fetch_rows(
    conn: sqlite3.Connection, query: BrowseQuery, clip_ids: Sequence[int]
) -> list[BrowseRow]:
    """Browser rows for these clip ids, in the given order (ids that vanished are skipped)."""
    ids = [int(c) for c in clip_ids]
    if not ids:
        return []
    model = query.has_model
    columns = _ROW_COLUMNS.format(
        model_label="p.label" if model else "NULL",
        model_entropy="p.entropy" if model else "NULL",
        js="p.js" if model else "NULL",
        agree="p.agree" if model else "NULL",
    )
    joins = "JOIN datasets d ON d.id = c.dataset_id LEFT JOIN human_dist h ON h.clip_id = c.id"
    params: list[Any] = []
    if model:
        joins += " LEFT JOIN predictions p ON p.clip_id = c.id AND p.run_id = ? AND p.strategy = ?"
        params += [query.run_id, query.strategy]
    marks = ",".join("?" * len(ids))
    sql = f"SELECT {columns} FROM clips c {joins} WHERE c.id IN ({marks})"
    rows = conn.execute(sql, [*params, *ids]).fetchall()
    by_id = {
        r[0]: BrowseRow(*r[:10], None if r[10] is None else bool(r[10]), *r[11:]) for r in rows
    }
    return [by_id[c] for c in ids if c in by_id]


@dataclass(frozen=True, eq=False)
class ClipHuman:
    """One clip's cached human reference (see core/human.py)."""

    distribution: np.ndarray | None
    n_votes: float
    n_raters: int
    majority: str | None
    is_tie: bool
    entropy: float | None
    norm_entropy: float | None
    ambiguity: str | None


def clip_human(conn: sqlite3.Connection, clip_id: int) -> ClipHuman | None:
    """The cached human distribution of one clip (None before the cache is built)."""
    row = conn.execute(
        "SELECT distribution, n_votes, n_raters, majority, is_tie, entropy, norm_entropy, "
        "ambiguity FROM human_dist WHERE clip_id = ?",
        (clip_id,),
    ).fetchone()
    if row is None:
        return None
    dist = codec.decode_dist(row[0])
    if dist is not None and dist.sum() > 0:
        dist = dist / dist.sum()
    return ClipHuman(dist, row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7])


@dataclass(frozen=True, eq=False)
class ClipPrediction:
    """One strategy's aggregated distribution for a clip, with its scores to the human one."""

    strategy: str
    distribution: np.ndarray
    label: str | None
    entropy: float | None
    js: float | None
    bc: float | None
    agree: bool | None


def clip_predictions(conn: sqlite3.Connection, run_id: int, clip_id: int) -> list[ClipPrediction]:
    """Every strategy's prediction of one run for one clip, by strategy name."""
    rows = conn.execute(
        "SELECT strategy, distribution, label, entropy, js, bc, agree FROM predictions "
        "WHERE run_id = ? AND clip_id = ? ORDER BY strategy",
        (run_id, clip_id),
    ).fetchall()
    out = []
    for r in rows:
        dist = codec.decode_dist(r[1])
        if dist is None:
            continue
        out.append(
            ClipPrediction(r[0], dist, r[2], r[3], r[4], r[5], None if r[6] is None else bool(r[6]))
        )
    return out


def clip_run_status(
    conn: sqlite3.Connection, run_id: int, clip_id: int
) -> tuple[str, str | None] | None:
    """(status, error) of a clip in a run, None when the run has not reached it."""
    row = conn.execute(
        "SELECT status, error FROM run_clips WHERE run_id = ? AND clip_id = ?", (run_id, clip_id)
    ).fetchone()
    return None if row is None else (row[0], row[1])


def distinct_values(
    conn: sqlite3.Connection, column: str, dataset_id: int | None = None
) -> list[str]:
    """Distinct splits or human-majority labels, for the browser's quick filter keys."""
    sql = {
        "split": "SELECT DISTINCT split FROM clips WHERE split IS NOT NULL{ds} ORDER BY split",
        "majority": "SELECT DISTINCT majority FROM human_dist WHERE majority IS NOT NULL{ds} "
        "ORDER BY majority",
    }.get(column)
    if sql is None:
        raise ValueError(f"no distinct values for {column!r}")
    if dataset_id is None:
        return [r[0] for r in conn.execute(sql.format(ds=""))]
    return [r[0] for r in conn.execute(sql.format(ds=" AND dataset_id = ?"), (dataset_id,))]
