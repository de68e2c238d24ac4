"""Paged, sorted, filtered clip rows for the TUI's browser.

A 150k-clip workspace must open and scroll without stalls, so the browser never loads
all rows: it reads the matching clip ids in the current sort order once per query
(`ordered_ids`, which also gives the count) and then the rows of the pages on screen by
id (`fetch_rows`). Filters are SQL (ambiscope.core.browse.filters); a sort is one narrow read of the
column's table in (value, clip id) order, merged with the filter's clips in numpy (see
below); the audit `priority` (ambiscope.core.browse.priority) is computed in numpy
and merged the same way. The model columns come from the selected run and strategy
through a LEFT JOIN, so clips without predictions still show. `fetch_page` and
`count_rows` give the same rows and count in plain SQL.
"""

from __future__ import annotations

import sqlite3
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np

from ambiscope.core.browse import priority
from ambiscope.core.browse.filters import (
    CHECKED_FIELDS,
    Filter,
    clip_query,
    filter_errors,
    parse_filter,
)
from ambiscope.db import codec

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

# column id -> header of sorts computed in numpy, with no SQL expression (no `_order`):
# their order comes only from the scored read (`_scored_ids`)
COMPUTED_SORTS: dict[str, str] = {"priority": "priority"}  # core/browse/priority.py
SORTS = (*SORTABLE, *COMPUTED_SORTS)
"""Every sort a BrowseQuery takes."""

# columns a workspace may leave empty everywhere -> a query finding one value (LIMIT 1)
_PRESENCE: dict[str, str] = {
    "split": "SELECT 1 FROM clips WHERE split IS NOT NULL AND split != '' LIMIT 1",
    "flags": "SELECT 1 FROM flags LIMIT 1",
    "tags": "SELECT 1 FROM tags LIMIT 1",
    "vote": "SELECT 1 FROM votes v JOIN annotators a ON a.id = v.annotator_id "
    "WHERE a.kind = 'self' LIMIT 1",
}


def empty_columns(conn: sqlite3.Connection) -> set[str]:
    """Sortable columns no clip of the workspace has a value in: cycling the sort with `s`
    skips them (sorting by an empty column reorders nothing). Each check reads one row."""
    return {col for col, sql in _PRESENCE.items() if conn.execute(sql).fetchone() is None}


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
        if self.sort not in SORTS:
            raise ValueError(f"cannot sort by {self.sort!r} (choose from {', '.join(SORTS)})")

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


def check_filter(
    conn: sqlite3.Connection, query: BrowseQuery, matched: int | None = None
) -> Filter:
    """The query's filter with its `split:`, `gender:`, `label:`... values checked against
    those present (in the query's dataset): a typo is a FilterError listing the valid
    values instead of an empty table. Only the fields the filter names are read.

    `matched`, the number of clips the filter selects, spares the reads when it is not
    0 and no checked term is negated: each selected clip has every value named.
    """
    flt = parse_filter(query.filter_text)
    if matched and not flt.negates_checked:
        return flt
    return checked_filter(conn, query.filter_text, query.dataset_id)


def checked_filter(
    conn: sqlite3.Connection, text: str | None, dataset_id: int | None = None
) -> Filter:
    """`text` parsed with its `split:`, `gender:`, `label:`, `dataset:`... values checked
    against those present in one dataset (or the whole workspace): what `sample --where`,
    `enqueue`, `metrics` and `export subset` run first, so a typo gets the TUI's one line
    listing the valid values instead of an empty selection or a silently empty table."""
    return parse_filter(text, known=lambda field: known_values(conn, field, dataset_id))


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
    if query.sort in COMPUTED_SORTS:  # no SQL order: the ordered ids say which rows
        return fetch_rows(conn, query, ordered_id_array(conn, query)[offset : offset + limit])
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
# order (`ordered_ids`) and then fetches any page by id (`fetch_rows`, ~1 ms). The id list
# also gives the row count, so a new sort or filter costs one ordered read, not three.
#
# The ids leave SQLite as one comma-separated string (`group_concat` over the ordered
# subquery) parsed by numpy: materialising 150k one-column rows in Python costs more
# (~30 ms) than most of the queries. SQLite keeps a FROM-subquery's ORDER BY when the
# outer query is a plain aggregate (no join, no ORDER BY of its own): that is what makes
# ordered group_concat() work, and tests/core/browse/test_query.py checks it against the plain
# ORDER BY. The sort itself reads one narrow table in order instead of sorting all
# matching clips through the joins (`_SCORED_SQL`; at 150k clips JS takes ~45 ms instead
# of ~210 ms, own votes ~20 ms instead of ~460 ms).


def _id_list(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> np.ndarray:
    """The `id` column of a query, in its order, as int64 (one string out of SQLite)."""
    text = conn.execute(f"SELECT group_concat(id) FROM ({sql})", list(params)).fetchone()[0]
    if not text:
        return np.empty(0, dtype=np.int64)
    return np.fromstring(text, dtype=np.int64, sep=",")


def matching_ids(conn: sqlite3.Connection, query: BrowseQuery) -> np.ndarray:
    """Every clip id of the query's filter (and dataset), ascending, as int64."""
    sql, params = clip_query(
        _compiled(query),
        columns="c.id AS id",
        dataset_id=query.dataset_id,
        run_id=query.run_id,
        strategy=query.strategy,
        order_by="c.id",  # keeps SQLite from flattening the subquery: the unused LEFT
    )  # JOINs are then left out (~15 ms instead of ~100 ms for every clip)
    key = ("match", query.filter_text, query.dataset_id, query.run_id, query.strategy)
    return _cached(conn, key, lambda: _frozen(np.sort(_id_list(conn, sql, params))))


def _sql_ordered_ids(conn: sqlite3.Connection, query: BrowseQuery) -> np.ndarray:
    sql, params = clip_query(
        _compiled(query),
        columns="c.id AS id",
        dataset_id=query.dataset_id,
        run_id=query.run_id,
        strategy=query.strategy,
        order_by=_order(query),
    )
    return _id_list(conn, sql, params)


# Every sort column has at most one value per clip. The clip ids that have a value, in
# ascending (value, clip_id) order, come from one narrow read of the table holding it
# (in index order where there is an index: JS, the key within one dataset) instead of a
# sort of every matching clip through the joins; descending is the exact reverse.
# The filter's clips and those without a value are merged in numpy (`merge_scored`).
# `{ds}` narrows to the query's dataset, `?`s take the run and strategy.
_SCORED_SQL: dict[str, str] = {
    "key": "SELECT id FROM clips WHERE 1{ds} ORDER BY key, id",
    "dataset": "SELECT c.id AS id FROM clips c JOIN datasets d ON d.id = c.dataset_id "
    "WHERE 1{ds} ORDER BY d.name, c.id",
    "split": "SELECT id FROM clips WHERE split IS NOT NULL{ds} ORDER BY split, id",
    "majority": "SELECT clip_id AS id FROM human_dist WHERE majority IS NOT NULL{ds} "
    "ORDER BY majority, clip_id",
    "entropy": "SELECT clip_id AS id FROM human_dist WHERE norm_entropy IS NOT NULL{ds} "
    "ORDER BY norm_entropy, clip_id",
    "ambiguity": "SELECT clip_id AS id FROM (SELECT clip_id, dataset_id, "
    f"{SORTABLE['ambiguity'][1].replace('h.', '')} AS level FROM human_dist) "
    "WHERE level IS NOT NULL{ds} ORDER BY level, clip_id",
    "model": "SELECT clip_id AS id FROM predictions WHERE run_id = ? AND strategy = ? "
    "AND label IS NOT NULL ORDER BY label, clip_id",
    "model_entropy": "SELECT clip_id AS id FROM predictions WHERE run_id = ? "
    "AND strategy = ? AND entropy IS NOT NULL ORDER BY entropy, clip_id",
    "js": "SELECT clip_id AS id FROM predictions WHERE run_id = ? AND strategy = ? "
    "AND js IS NOT NULL ORDER BY js, clip_id",
    # SORTABLE's per-clip subqueries, computed at once for the few clips with a value
    "flags": "SELECT clip_id AS id FROM (SELECT clip_id, count(*) AS n FROM flags "
    "GROUP BY clip_id) ORDER BY n, clip_id",
    "tags": "SELECT clip_id AS id FROM (SELECT clip_id, group_concat(name, ',') AS t "
    "FROM tags GROUP BY clip_id) ORDER BY t, clip_id",
    "vote": "SELECT clip_id AS id FROM (SELECT clip_id, min(label) AS m FROM votes "
    "WHERE annotator_id IN (SELECT id FROM annotators WHERE kind = 'self') AND rank = 0 "
    "GROUP BY clip_id) ORDER BY m, clip_id",  # (the votes_annotator index, not all votes)
}
_MODEL_SORTS = ("model", "model_entropy", "js")
# sorts whose read can be narrowed to the query's dataset (column prefix of dataset_id)
_DATASET_COLUMN = {s: "" for s in ("key", "split", "majority", "entropy", "ambiguity")}
_DATASET_COLUMN["dataset"] = "c."

# Scored and matching ids (and the values filters are checked against) per connection
# and query, so a new filter under the same sort (or a new sort of the same filter) reads
# only what changed. `PRAGMA data_version` changes when another connection (the app's
# writer, a worker process) commits, `total_changes` when this one writes.
_Cached = tuple[sqlite3.Connection, tuple[int, int], Any]  # (conn, version, value)
_CACHE: OrderedDict[tuple[Any, ...], _Cached] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 20
_T = TypeVar("_T")


def _cached(conn: sqlite3.Connection, key: tuple[Any, ...], compute: Callable[[], _T]) -> _T:
    version = (conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes)
    key = (id(conn), *key)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None and hit[0] is conn and hit[1] == version:
        return hit[2]
    return _remember(_CACHE, _CACHE_SIZE, key, (conn, version, compute()))[2]


_V = TypeVar("_V")


def _remember(cache: OrderedDict[Any, _V], size: int, key: Any, value: _V) -> _V:
    """Store `value` as the newest entry of an LRU cache of `size` entries."""
    with _CACHE_LOCK:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > size:
            cache.popitem(last=False)
    return value


def _frozen(ids: np.ndarray) -> np.ndarray:
    """Read-only, as a cached array is shared by later queries."""
    ids.flags.writeable = False
    return ids


def _scored_ids(conn: sqlite3.Connection, query: BrowseQuery, sort: str) -> np.ndarray:
    """Clip ids with a value of the sort column, in ascending (value, clip_id) order."""
    if sort == "priority":
        return clip_priorities(conn, query).ranked
    sql = _SCORED_SQL[sort]
    params: list[Any] = []
    key: tuple[Any, ...] = ("scored", sort)
    if sort in _MODEL_SORTS:
        params = [query.run_id, query.strategy]
        key += (query.run_id, query.strategy)
    elif sort in _DATASET_COLUMN:
        narrow = query.dataset_id is not None
        sql = sql.format(ds=f" AND {_DATASET_COLUMN[sort]}dataset_id = ?" if narrow else "")
        params = [query.dataset_id] if narrow else []
        key += (query.dataset_id,)
    return _cached(conn, key, lambda: _frozen(_id_list(conn, sql, params)))


def clip_priorities(conn: sqlite3.Connection, query: BrowseQuery) -> priority.Priorities:
    """The audit priority of every scored clip for the query's run x strategy (only the
    raters' part without one), computed in numpy once until the workspace changes; the
    strategies' spread (most of the work) is kept per run, for a switch of strategy."""
    run, strategy = (query.run_id, query.strategy) if query.has_model else (None, None)

    def compute() -> priority.Priorities:
        return priority.compute_priorities(conn, run, strategy, spread=_run_spread(conn, run))

    return _cached(conn, ("priority", run, strategy), compute)


_Spread = tuple[np.ndarray, np.ndarray]
_SPREADS: OrderedDict[tuple[Any, ...], _Spread] = OrderedDict()
_SPREADS_SIZE = 4


def _run_spread(conn: sqlite3.Connection, run_id: int | None) -> _Spread:
    """The run's strategy spread (priority.strategy_spread), kept across writes that leave
    its predictions alone: a flag, tag or vote while walking the audit queue must not
    re-read every strategy's distributions (~0.5 s at 150k clips and 4 strategies).

    Predictions are written in one transaction with their `run_clips` row (core/scaling/
    run.py, core/synthetic/raters.py), so that table's row count and last update say
    when they changed; a run without such rows (written by other means) is re-read
    whenever the workspace changes, like every other cached read.
    """

    def read() -> _Spread:
        return priority.strategy_spread(conn, run_id)

    mark = conn.execute(
        "SELECT count(*), max(updated_at) FROM run_clips WHERE run_id = ?", (run_id,)
    ).fetchone()
    if run_id is None or not mark[0]:
        return _cached(conn, ("spread", run_id), read)
    database = conn.execute("PRAGMA database_list").fetchone()[2] or id(conn)
    key = (database, run_id, *mark)
    with _CACHE_LOCK:
        hit = _SPREADS.get(key)
    if hit is not None:
        return hit
    return _remember(_SPREADS, _SPREADS_SIZE, key, read())


def _scored_ordered_ids(conn: sqlite3.Connection, query: BrowseQuery) -> np.ndarray:
    sort = query.sort
    if sort in _MODEL_SORTS and not query.has_model:
        sort = "key"  # as _order does
    scored = _scored_ids(conn, query, sort)
    if query.descending:  # (v DESC, clip_id DESC) is exactly the reverse
        scored = scored[::-1]
    # a clip without flags counts 0 (not NULL): before every flagged clip when ascending
    first = sort == "flags" and not query.descending
    return merge_scored(scored, matching_ids(conn, query), query.descending, first)


def merge_scored(
    scored: np.ndarray, matching: np.ndarray, descending: bool, unscored_first: bool = False
) -> np.ndarray:
    """`scored` ids (already in sort order) that match, then the unscored matches by id
    (or those first, `unscored_first`).

    This is `ORDER BY (v) IS NULL, v, id` when `scored` holds every clip with a value in
    the order of (v, id), and `matching` (ascending) is the filter's clips.
    """
    if not len(matching):
        return matching
    top = int(max(matching[-1], scored.max() if len(scored) else 0))
    low = int(min(matching[0], scored.min() if len(scored) else 0))
    if low >= 0 and top <= 4 * (len(matching) + len(scored)) + 1_000_000:
        member = np.zeros(top + 1, dtype=bool)  # dense ids: a lookup table beats isin
        member[matching] = True
        kept = scored[member[scored]]
        member[kept] = False
        rest = matching[member[matching]]
    else:
        kept = scored[np.isin(scored, matching)]
        rest = matching[~np.isin(matching, kept)]
    if descending:
        rest = rest[::-1]
    parts = [rest, kept] if unscored_first else [kept, rest]
    return np.concatenate(parts).astype(np.int64, copy=False)


def ordered_id_array(conn: sqlite3.Connection, query: BrowseQuery) -> np.ndarray:
    """Every matching clip id in the query's order, as an int64 numpy array."""
    if query.sort in _SCORED_SQL or query.sort in COMPUTED_SORTS:
        return _scored_ordered_ids(conn, query)
    return _sql_ordered_ids(conn, query)  # (every SORTABLE column has a scored read)


def ordered_ids(conn: sqlite3.Connection, query: BrowseQuery) -> array:
    """Every matching clip id in the query's order, as a compact int64 array."""
    return array("q", ordered_id_array(conn, query).tobytes())


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
    """One clip's cached human reference (see core/reference/human.py)."""

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


# The primary key is (run_id, strategy, clip_id): `WHERE run_id = ? AND clip_id = ?` would
# scan the whole run (~6 ms at 150k clips, on every cursor stop). The few strategy names
# are found by skipping through the index (one seek each), then each row by its key.
_CLIP_PREDICTIONS = (
    priority.RUN_STRATEGIES_CTE
    + """
SELECT p.strategy, p.distribution, p.label, p.entropy, p.js, p.bc, p.agree
FROM s JOIN predictions p ON p.run_id = :run AND p.strategy = s.name AND p.clip_id = :clip
ORDER BY p.strategy
"""
)


def clip_predictions(conn: sqlite3.Connection, run_id: int, clip_id: int) -> list[ClipPrediction]:
    """Every strategy's prediction of one run for one clip, by strategy name."""
    rows = conn.execute(_CLIP_PREDICTIONS, {"run": run_id, "clip": clip_id}).fetchall()
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


_DISTINCT_SQL = {
    "split": "SELECT DISTINCT split FROM clips WHERE split IS NOT NULL{ds} ORDER BY 1",
    "majority": "SELECT DISTINCT majority FROM human_dist WHERE majority IS NOT NULL{ds} "
    "ORDER BY 1",
    # the filter compares genders case-blind
    "gender": "SELECT DISTINCT upper(gender) FROM clips WHERE gender IS NOT NULL{ds} ORDER BY 1",
    "intended": "SELECT DISTINCT intended_label FROM clips WHERE intended_label IS NOT NULL{ds} "
    "ORDER BY 1",
    "rater": "SELECT DISTINCT external_id FROM annotators WHERE external_id IS NOT NULL{ds} "
    "ORDER BY 1",
}


def distinct_values(
    conn: sqlite3.Connection, column: str, dataset_id: int | None = None
) -> list[str]:
    """Distinct splits, human-majority labels, genders or intended labels (the browser's
    quick filter keys, and what filter values are checked against)."""
    sql = _DISTINCT_SQL.get(column)
    if sql is None:
        raise ValueError(f"no distinct values for {column!r}")
    if dataset_id is None:
        return [r[0] for r in conn.execute(sql.format(ds=""))]
    return [r[0] for r in conn.execute(sql.format(ds=" AND dataset_id = ?"), (dataset_id,))]


def known_values(
    conn: sqlite3.Connection, field: str, dataset_id: int | None = None
) -> tuple[str, ...]:
    """The values of a checked filter field (filters.CHECKED_FIELDS) present in the
    workspace, or in one dataset (dataset names: always all of them); cached until the
    data changes, as every query of the browser checks its filter."""
    if field not in CHECKED_FIELDS:
        raise ValueError(f"filter field {field!r} is not checked against the workspace")
    if field == "dataset":
        sql = "SELECT name FROM datasets ORDER BY name"
        return _cached(conn, ("known", field), lambda: tuple(r[0] for r in conn.execute(sql)))
    column = "majority" if field == "label" else field
    return _cached(
        conn,
        ("known", field, dataset_id),
        lambda: tuple(distinct_values(conn, column, dataset_id)),
    )


def select_clip_ids(
    conn: sqlite3.Connection,
    where: str | Filter | None,
    *,
    dataset_id: int | None = None,
    run_id: int | None = None,
    strategy: str | None = None,
    limit: int | None = None,
) -> list[int]:
    """Clip ids matching a filter, in id order.

    Filter text is checked against the dataset's values first (`checked_filter`); a
    selection spanning several datasets passes the `Filter` it checked once against all of
    them (a split one dataset lacks is no error when another has it).
    """
    flt = where if isinstance(where, Filter) else checked_filter(conn, where, dataset_id)
    sql, params = clip_query(flt, dataset_id=dataset_id, run_id=run_id, strategy=strategy)
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    with filter_errors(flt):
        return [row[0] for row in conn.execute(sql, params)]
