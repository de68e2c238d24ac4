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
| `rater:ID` | rater ID (an annotator's external id, any kind) voted on the clip |
| `unreliable` | the reliability fit moves the clip's distribution most (see below) |
| `audio` | clip has an audio file |
| `js>0.3` `bc<0.5` | divergence to the human distribution (needs a run + strategy) |
| `disagree` / `agree` | model argmax differs from / equals the human majority (run + strategy) |
| `failed` | the run failed on this clip (needs a run) |
| `key:TEXT` or bare words | substring of the clip key or transcript |

`unreliable` reads the dataset's current Dawid-Skene fit (`ambiscope reliability fit`):
a clip matches when the JS divergence between its raw primary-vote distribution and its
Dawid-Skene posterior is at least the fit's cut, max(90th percentile of the dataset's
shifts, 0.05 bits): the top decile of clips whose distribution changes when raters are
weighed by reliability. Without a fit, or with a stale one (votes changed since), no clip
of that dataset matches: refit. `rater:` values are checked against the annotators of
the workspace (or dataset) like `split:`, so a misspelt rater id is an error, not nothing.

A filter holds at most `MAX_FILTER_CHARS` characters and `MAX_FILTER_TERMS` terms (far
above real use, far below SQLite's own limits); longer ones are refused with one line.

A typo must not quietly become a text search or an empty result: `js>abc` and `entropy>`
are refused (the field takes a number), an unknown field gets a "did you mean", and given
the values present in the workspace (`known`), `split:tset` or `gender:X` are refused with
the valid values listed. Bare words stay text search.

Filters compile to SQL over `clips c LEFT JOIN human_dist h` (and `predictions p` for the
selected run/strategy), so sorting and filtering stay in SQLite, on indexes, at 150k clips.
"""

from __future__ import annotations

import difflib
import re
import shlex
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ambiscope.core.labels import LabelError, to_canonical

_NUMBER = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[-+]?[0-9]+)?")
_COMPARISON = re.compile(r"^([a-z_][a-z0-9_]*)(>=|<=|>|<|=)(.*)$")
_FIELDS = {
    "dataset": "d.name = ?",
    "split": "c.split = ?",
    "speaker": "c.speaker = ?",
    "gender": "upper(c.gender) = upper(?)",
}
_NUMERIC = {"js": "p.js", "bc": "p.bc", "entropy": "h.norm_entropy", "votes": "h.n_votes"}
_EXAMPLE = {"js": "0.3", "bc": "0.5", "entropy": "0.5", "votes": "5"}
FIELD_NAMES = (
    *_FIELDS,
    "label",
    "intended",
    "ambiguity",
    "flag",
    "tag",
    "rater",
    "key",
    *_NUMERIC,
)
"""Every `field:` (or `field>`) name, for "did you mean" and the list of fields."""

KnownValues = Callable[[str], Sequence[str]]
"""The values of a field present in the workspace, for `CHECKED_FIELDS`."""
CHECKED_FIELDS = {
    "dataset": ("dataset", "datasets"),
    "split": ("split", "splits"),
    "gender": ("gender", "genders"),
    "label": ("majority label", "majority labels"),
    "intended": ("intended label", "intended labels"),
    "rater": ("rater", "raters"),
}
"""Fields whose value is checked against `KnownValues`: (singular, plural) for messages."""
_LISTED = 12  # values listed in a message before "..."

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
    negates_checked: bool = False
    """A `CHECKED_FIELDS` term is negated (`-split:tset`): clips selected do not show
    that its value exists."""

    def is_empty(self) -> bool:
        return not self.text.strip()


@dataclass
class _Builder:
    known: KnownValues | None = None
    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    needs_prediction: bool = False
    needs_run: bool = False
    negates_checked: bool = False

    def add(self, sql: str, *params: Any, negate: bool = False) -> None:
        self.conditions.append(f"NOT ({sql})" if negate else f"({sql})")
        self.params.extend(params)


def _listing(values: Sequence[str]) -> str:
    shown = ", ".join(values[:_LISTED])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _LISTED else "")


def _closest(value: str, choices: Sequence[str]) -> str | None:
    """The choice `value` most likely misspells (case aside), for "did you mean"."""
    by_lower = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=1)
    return by_lower[close[0]] if close else None


def _absent(
    raw: str, name: str, value: str, present: Sequence[str], problem: str = ""
) -> FilterError:
    """`value` is not among the field's values in the workspace: say which are."""
    singular, plural = CHECKED_FIELDS[name]
    if not present:
        return FilterError(f"{raw}: {problem or f'no clip has any {singular}'}")
    problem = problem or f"no clip has {singular} {value!r}"
    close = _closest(value, present)
    hint = f"; did you mean {close}?" if close else ""
    return FilterError(f"{raw}: {problem}{hint} ({plural}: {_listing(present)})")


def _check_present(raw: str, name: str, value: str, b: _Builder) -> None:
    if b.known is None:
        return
    present = b.known(name)
    same = str.upper if name == "gender" else str  # gender compares case-blind in SQL
    if same(value) not in {same(v) for v in present}:
        raise _absent(raw, name, value, present)


def _label(raw: str, name: str, value: str, b: _Builder) -> str:
    """The canonical label of a `label:`/`intended:` value, checked against the workspace."""
    try:
        label = to_canonical(value)
    except LabelError:
        problem = f"unknown emotion label {value!r}"
        if b.known is not None:
            raise _absent(raw, name, value, b.known(name), problem) from None
        raise FilterError(f"{raw}: {problem}") from None
    if label is None:
        raise FilterError(f"{raw}: {value!r} is not an emotion label")
    _check_present(raw, name, label, b)
    return label


def _unknown_field(raw: str, name: str) -> FilterError:
    close = _closest(name, FIELD_NAMES)
    hint = f"did you mean {close}?" if close else f"fields: {', '.join(FIELD_NAMES)}"
    return FilterError(f"{raw}: unknown filter field {name!r}; {hint}")


def _exists(table: str) -> str:
    return f"EXISTS (SELECT 1 FROM {table} x WHERE x.clip_id = c.id AND x.name = ?)"


def _compile_comparison(raw: str, term: str, b: _Builder, negate: bool) -> bool:
    """Compile `field>number` (also `<`, `>=`, `<=`, `=`); False when `term` is not one.

    A numeric field with anything but a number after the operator is an error, not text
    (`js>abc`, `entropy>`); so is `<`/`>` after an unknown name. `word=x` stays text.
    """
    match = _COMPARISON.match(term.lower())
    if match is None:
        return False
    name, op, value = match.groups()
    if name in _NUMERIC:
        if not _NUMBER.fullmatch(value):
            got = f", not {value!r}" if value else ""
            raise FilterError(
                f"{raw}: {name} takes a number after {op!r}{got} (e.g. {name}{op}{_EXAMPLE[name]})"
            )
        if name in ("js", "bc"):
            b.needs_prediction = True
        b.add(f"{_NUMERIC[name]} {op} ?", float(value), negate=negate)
        return True
    if name in FIELD_NAMES:
        raise FilterError(f"{raw}: {name} is not a number; write {name}:VALUE")
    if op == "=":
        return False
    raise _unknown_field(raw, name)


def _compile_field(raw: str, name: str, value: str, b: _Builder, negate: bool) -> None:
    """Compile `field:value`."""
    if not value and name in FIELD_NAMES and name not in _NUMERIC:
        raise FilterError(f"{raw}: {name} needs a value ({name}:VALUE)")
    if negate and name in CHECKED_FIELDS:
        b.negates_checked = True
    if name in _FIELDS:
        if name in CHECKED_FIELDS:
            _check_present(raw, name, value, b)
        b.add(_FIELDS[name], value, negate=negate)
    elif name == "label":
        b.add("h.majority = ?", _label(raw, name, value, b), negate=negate)
    elif name == "intended":
        b.add("c.intended_label = ?", _label(raw, name, value, b), negate=negate)
    elif name == "ambiguity":
        level = value.lower()
        if level not in ("low", "medium", "high"):
            raise FilterError(f"{raw}: ambiguity is low, medium or high")
        b.add("h.ambiguity = ?", level, negate=negate)
    elif name in ("flag", "tag"):
        b.add(_exists(f"{name}s"), value, negate=negate)
    elif name == "rater":
        _check_present(raw, name, value, b)
        b.add(_RATER_SQL, value, negate=negate)
    elif name == "key":
        b.add("c.key LIKE ? ESCAPE '\\'", f"%{_escape(value)}%", negate=negate)
    elif name in _NUMERIC:
        raise FilterError(
            f"{raw}: {name} takes a comparison with a number (e.g. {name}>{_EXAMPLE[name]})"
        )
    else:
        raise _unknown_field(raw, name)


def _compile_term(raw: str, b: _Builder) -> None:
    negate = raw.startswith("-") and len(raw) > 1
    term = raw[1:] if negate else raw
    lowered = term.lower()
    name, sep, value = term.partition(":")
    if sep:
        _compile_field(raw, name.lower(), value, b, negate)
    elif _compile_comparison(raw, term, b, negate):
        return
    elif lowered in _FLAGS_SQL:
        sql, needs = _FLAGS_SQL[lowered]
        if needs == "prediction":
            b.needs_prediction = True
        elif needs == "run":
            b.needs_run = True
        b.add(sql, negate=negate)
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
    # the dataset's Dawid-Skene fit, only while current (core/reference/reliability.py)
    "unreliable": (
        "EXISTS (SELECT 1 FROM reliability_posteriors x JOIN reliability_fits rf "
        "ON rf.id = x.fit_id WHERE x.clip_id = c.id AND rf.model = 'ds' "
        "AND rf.votes_version = d.votes_version AND x.shift >= rf.shift_cut)",
        None,
    ),
    "disagree": ("p.agree = 0", "prediction"),
    "agree": ("p.agree = 1", "prediction"),
    "failed": (
        "EXISTS (SELECT 1 FROM run_clips rc WHERE rc.clip_id = c.id AND rc.run_id = :run "
        "AND rc.status = 'failed')",
        "run",
    ),
}


_RATER_SQL = (
    "EXISTS (SELECT 1 FROM votes v JOIN annotators a ON a.id = v.annotator_id "
    "WHERE v.clip_id = c.id AND a.external_id = ?)"
)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def parse_filter(text: str | None, known: KnownValues | None = None) -> Filter:
    """Compile filter text (see module docstring); FilterError names the bad term.

    With `known`, the values of `CHECKED_FIELDS` terms must be present in the workspace.
    """
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
    builder = _Builder(known)
    for term in terms:
        _compile_term(term, builder)
    where = " AND ".join(builder.conditions) or "1"
    return Filter(
        text=text,
        where=where,
        params=tuple(builder.params),
        needs_prediction=builder.needs_prediction,
        needs_run=builder.needs_run,
        negates_checked=builder.negates_checked,
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
