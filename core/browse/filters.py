"""The clip filter language shared by `sample --where`, exports and the TUI.

Terms are separated by spaces and combined with AND; a leading `-` negates a term;
values with spaces are quoted (`tag:"needs review"`).

| term | meaning |
|---|---|
| `dataset:NAME` `split:NAME` `speaker:ID` `gender:F` | clip fields |
| `label:LABEL` | human majority label (synonyms accepted: `label:anger`) |
| `intended:LABEL` | the corpus's intended/consensus label |
| `ambiguity:low\\|medium\\|high` | ambiguity level of the human distribution |
| `entropy>0.5` (also `<`, `>=`, `<=`) | normalised human entropy |
| `votes>=5` | number of (weighted) primary human votes |
| `flag:NAME` / `flagged` | has that flag / any flag |
| `tag:NAME` / `tagged` | has that tag / any tag |
| `note` | has a note |
| `voted` | you cast your own vote |
| `audio` | clip has an audio file |
| `js>0.3` `bc<0.5` | divergence to the human distribution (needs a run + strategy) |
| `disagree` / `agree` | model argmax differs from / equals the human majority (run + strategy) |
| `failed` | the run failed on this clip (needs a run) |
| `key:TEXT` or bare words | substring of the clip key or transcript |

A filter holds at most `MAX_FILTER_CHARS` characters and `MAX_FILTER_TERMS` terms (far
above real use, far below SQLite's own limits); longer ones are refused with one line.

Filters compile to SQL over `clips c LEFT JOIN human_dist h` (and `predictions p` for the
selected run/strategy), so sorting and filtering stay in SQLite, on indexes, at 150k clips.
"""

from __future__ import annotations

import re
import shlex
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ambiscope.core.labels import LabelError, to_canonical

_COMPARE = re.compile(r"^(js|bc|entropy|votes)(>=|<=|>|<|=)(-?[0-9]*\.?[0-9]+)$")
_FIELDS = {
    "dataset": "d.name = ?",
    "split": "c.split = ?",
    "speaker": "c.speaker = ?",
    "gender": "upper(c.gender) = upper(?)",
}
_NUMERIC = {"js": "p.js", "bc": "p.bc", "entropy": "h.norm_entropy", "votes": "h.n_votes"}

MAX_FILTER_CHARS = 4000
"""Longest filter accepted; real filters are under 200 characters. Keeps every LIKE pattern
below SQLite's 50,000-byte limit ("LIKE or GLOB pattern too complex")."""
MAX_FILTER_TERMS = 100
"""Most terms accepted; keeps the AND chain far below SQLite's expression depth of 1000
("Expression tree is too large") and its parameter limit."""


class FilterError(ValueError):
    """A filter term that cannot be understood; the message names the term."""


@dataclass(frozen=True)
class Filter:
    """A compiled filter: an SQL condition with parameters and what it needs joined."""

    text: str
    where: str
    params: tuple[Any, ...]
    needs_prediction: bool
    needs_run: bool

    def is_empty(self) -> bool:
        return not self.text.strip()


@dataclass
class _Builder:
    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    needs_prediction: bool = False
    needs_run: bool = False

    def add(self, sql: str, *params: Any, negate: bool = False) -> None:
        self.conditions.append(f"NOT ({sql})" if negate else f"({sql})")
        self.params.extend(params)


def _label(term: str, value: str) -> str:
    try:
        label = to_canonical(value)
    except LabelError:
        raise FilterError(f"{term}: unknown emotion label {value!r}") from None
    if label is None:
        raise FilterError(f"{term}: {value!r} is not an emotion label")
    return label


def _exists(table: str) -> str:
    return f"EXISTS (SELECT 1 FROM {table} x WHERE x.clip_id = c.id AND x.name = ?)"


def _compile_term(raw: str, b: _Builder) -> None:
    negate = raw.startswith("-") and len(raw) > 1
    term = raw[1:] if negate else raw
    lowered = term.lower()
    name, sep, value = term.partition(":")
    name = name.lower()
    if match := _COMPARE.match(lowered):
        metric, op, number = match.groups()
        if metric in ("js", "bc"):
            b.needs_prediction = True
        b.add(f"{_NUMERIC[metric]} {op} ?", float(number), negate=negate)
    elif sep and name in _FIELDS:
        b.add(_FIELDS[name], value, negate=negate)
    elif sep and name == "label":
        b.add("h.majority = ?", _label(raw, value), negate=negate)
    elif sep and name == "intended":
        b.add("c.intended_label = ?", _label(raw, value), negate=negate)
    elif sep and name == "ambiguity":
        level = value.lower()
        if level not in ("low", "medium", "high"):
            raise FilterError(f"{raw}: ambiguity is low, medium or high")
        b.add("h.ambiguity = ?", level, negate=negate)
    elif sep and name in ("flag", "tag"):
        b.add(_exists(f"{name}s"), value, negate=negate)
    elif sep and name == "key":
        b.add("c.key LIKE ? ESCAPE '\\'", f"%{_escape(value)}%", negate=negate)
    elif not sep and lowered in _FLAGS_SQL:
        sql, needs = _FLAGS_SQL[lowered]
        if needs == "prediction":
            b.needs_prediction = True
        elif needs == "run":
            b.needs_run = True
        b.add(sql, negate=negate)
    elif sep:
        raise FilterError(f"{raw}: unknown filter field {name!r}")
    else:
        pattern = f"%{_escape(term)}%"
        b.add(
            "(c.key LIKE ? ESCAPE '\\' OR c.transcript LIKE ? ESCAPE '\\')",
            pattern,
            pattern,
            negate=negate,
        )


_FLAGS_SQL: dict[str, tuple[str, str | None]] = {
    "flagged": ("EXISTS (SELECT 1 FROM flags x WHERE x.clip_id = c.id)", None),
    "tagged": ("EXISTS (SELECT 1 FROM tags x WHERE x.clip_id = c.id)", None),
    "note": ("EXISTS (SELECT 1 FROM notes x WHERE x.clip_id = c.id)", None),
    "voted": (
        "EXISTS (SELECT 1 FROM votes v JOIN annotators a ON a.id = v.annotator_id "
        "WHERE v.clip_id = c.id AND a.kind = 'self')",
        None,
    ),
    "audio": ("c.path IS NOT NULL", None),
    "disagree": ("p.agree = 0", "prediction"),
    "agree": ("p.agree = 1", "prediction"),
    "failed": (
        "EXISTS (SELECT 1 FROM run_clips rc WHERE rc.clip_id = c.id AND rc.run_id = :run "
        "AND rc.status = 'failed')",
        "run",
    ),
}


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def parse_filter(text: str | None) -> Filter:
    """Compile filter text (see module docstring); FilterError names the bad term."""
    text = text or ""
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError(
            f"filter {_shown(text)}: {len(text):,} characters, the limit is {MAX_FILTER_CHARS:,}"
        )
    try:
        terms = shlex.split(text)
    except ValueError as exc:
        raise FilterError(f"filter {_shown(text)}: {exc}") from None
    if len(terms) > MAX_FILTER_TERMS:
        raise FilterError(
            f"filter {_shown(text)}: {len(terms)} terms, the limit is {MAX_FILTER_TERMS}"
        )
    builder = _Builder()
    for term in terms:
        _compile_term(term, builder)
    where = " AND ".join(builder.conditions) or "1"
    return Filter(
        text=text,
        where=where,
        params=tuple(builder.params),
        needs_prediction=builder.needs_prediction,
        needs_run=builder.needs_run,
    )


def _shown(text: str, width: int = 60) -> str:
    """The filter quoted for an error message, cut to `width` characters."""
    return repr(text if len(text) <= width else text[:width] + "...")


@contextmanager
def filter_errors(flt: Filter) -> Iterator[None]:
    """Turn an SQLite error while running a filter's query into a FilterError naming it.

    The caps in `parse_filter` keep SQLite's own limits out of reach; this is the backstop
    so that whatever remains is one line, not a traceback. Lock, I/O and disk errors
    (not SQLITE_ERROR) are not the filter's fault and pass.
    """
    try:
        yield
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorname != "SQLITE_ERROR":
            raise
        raise FilterError(f"filter {_shown(flt.text)}: {exc}") from None


def clip_query(
    flt: Filter,
    *,
    columns: str = "c.id",
    dataset_id: int | None = None,
    run_id: int | None = None,
    strategy: str | None = None,
    order_by: str = "c.id",
) -> tuple[str, list[Any]]:
    """SQL selecting `columns` for clips matching the filter (optionally in one dataset)."""
    if flt.needs_prediction and (run_id is None or strategy is None):
        raise FilterError(
            f"filter {_shown(flt.text)} needs a run and a strategy (--run/--strategy)"
        )
    if flt.needs_run and run_id is None:
        raise FilterError(f"filter {_shown(flt.text)} needs a run (--run)")
    joins = "JOIN datasets d ON d.id = c.dataset_id LEFT JOIN human_dist h ON h.clip_id = c.id"
    params: list[Any] = []
    if run_id is not None and strategy is not None:
        joins += " LEFT JOIN predictions p ON p.clip_id = c.id AND p.run_id = ? AND p.strategy = ?"
        params += [run_id, strategy]
    where = flt.where.replace(":run", str(int(run_id))) if run_id is not None else flt.where
    sql = f"SELECT {columns} FROM clips c {joins} WHERE {where}"
    params += list(flt.params)
    if dataset_id is not None:
        sql += " AND c.dataset_id = ?"
        params.append(dataset_id)
    sql += f" ORDER BY {order_by}"
    return sql, params


def select_clip_ids(
    conn: Any,
    text: str | None,
    *,
    dataset_id: int | None = None,
    run_id: int | None = None,
    strategy: str | None = None,
    limit: int | None = None,
) -> list[int]:
    """Clip ids matching a filter, in id order."""
    flt = parse_filter(text)
    sql, params = clip_query(flt, dataset_id=dataset_id, run_id=run_id, strategy=strategy)
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    with filter_errors(flt):
        return [row[0] for row in conn.execute(sql, params)]
