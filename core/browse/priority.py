"""The audit queue's `priority`: how much looking at a clip is worth, in [0, 1].

An auditor has time for a few dozen clips out of thousands. The clips worth that time are
those where the model contradicts humans who agree with each other (a model error, or a
label error), where the run's own aggregation strategies cannot agree (the answer hangs
on how candidates are counted), and where the raters themselves split (the reference is
shaky). Each is one component in [0, 1], read from what the workspace already stores:

    divergence = JS(model, human) x certainty
    certainty  = (1 - H_human) x n_votes / (n_votes + VOTE_PRIOR)
    strategies = mean over pairs of the run's strategies of JS(strategy a, strategy b)
    raters     = H_human

    priority   = w_divergence x divergence + w_strategies x strategies + w_raters x raters

JS is the stored Jensen-Shannon divergence in bits of the selected run x strategy to the
human distribution; H_human is the human distribution's normalised entropy; n_votes its
(weighted) primary votes. Certainty discounts a divergence from humans who split (the
model cannot be "wrong" about a coin flip) or who are few (one vote is no consensus):
with VOTE_PRIOR = 3, three unanimous votes count half, twelve count 0.8. The weights
(`WEIGHTS`) sum to 1, so the priority stays in [0, 1]; they are a convention, and every
output of the queue names them (`formula`).

Missing parts count 0: a clip without a prediction of the selected strategy has no
divergence, one with fewer than two strategies no strategy spread, and without a run
selected only the raters rank. A clip with neither a human distribution nor a prediction
of the run has no priority at all (it sorts last, as NULLs do in every browser sort).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from types import MappingProxyType

import numpy as np
from scipy import special

from ambiscope.db import codec

WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"divergence": 0.6, "strategies": 0.25, "raters": 0.15}
)
"""Weight of each component in the priority (a convention: they sum to 1)."""
VOTE_PRIOR = 3.0
"""Votes at which the vote-count factor of human certainty is 1/2."""
COMPONENTS = ("divergence", "strategies", "raters")


@dataclass(frozen=True, eq=False)
class Priorities:
    """Every scored clip's priority and its parts, ascending by clip id (NaN: no value)."""

    clip_ids: np.ndarray
    priority: np.ndarray
    divergence: np.ndarray
    strategies: np.ndarray
    raters: np.ndarray
    js: np.ndarray  # of the selected run x strategy to the human distribution
    certainty: np.ndarray
    weights: Mapping[str, float]
    ranked: np.ndarray  # clip ids in ascending (priority, clip id) order (read-only)


def formula(weights: Mapping[str, float] = WEIGHTS) -> str:
    """The priority as one line naming its weights (what the queue prints and exports)."""
    terms = " + ".join(f"{weights[c]:g}*{c}" for c in COMPONENTS)
    return (
        f"priority = {terms}; divergence = JS * certainty, "
        f"certainty = (1 - H) * n_votes / (n_votes + {VOTE_PRIOR:g}), "
        "strategies = mean pairwise JS of the run's strategies, raters = H"
    )


def check_weights(weights: Mapping[str, float]) -> Mapping[str, float]:
    """`weights` if they name every component, are >= 0 and sum to 1 (else ValueError)."""
    if set(weights) != set(COMPONENTS):
        raise ValueError(f"priority weights must name {', '.join(COMPONENTS)}, got {dict(weights)}")
    if any(w < 0 for w in weights.values()) or abs(sum(weights.values()) - 1.0) > 1e-9:
        raise ValueError(f"priority weights must be >= 0 and sum to 1, got {dict(weights)}")
    return weights


def compute_priorities(
    conn: sqlite3.Connection,
    run_id: int | None = None,
    strategy: str | None = None,
    weights: Mapping[str, float] = WEIGHTS,
    spread: tuple[np.ndarray, np.ndarray] | None = None,
) -> Priorities:
    """The priority of every clip with a human distribution or a prediction of the run.

    Three narrow reads (human entropy and votes; the selected strategy's stored JS; the
    run's distributions, one blob string per strategy) and numpy. The distributions
    dominate: at 150k clips x 4 strategies the first priority sort costs ~15x a JS sort,
    so `spread`, the run's `strategy_spread` when already read, spares that read (the
    browser keeps it across edits: ambiscope.core.browse.query._run_spread; a re-sort
    after a flag then costs ~2x a JS sort).
    """
    check_weights(weights)
    human_ids, n_votes, entropy = _human(conn)
    js_ids, js = _stored_js(conn, run_id, strategy)
    spread_ids, spread_values = spread if spread is not None else strategy_spread(conn, run_id)
    ids = np.union1d(np.union1d(human_ids, js_ids), spread_ids).astype(np.int64)
    h = _aligned(ids, human_ids, entropy)
    n = _aligned(ids, human_ids, n_votes)
    certainty = np.where(np.isnan(h), 0.0, (1.0 - h) * n / (n + VOTE_PRIOR))
    js_all = _aligned(ids, js_ids, js)
    divergence = np.nan_to_num(js_all) * certainty
    strategies = np.nan_to_num(_aligned(ids, spread_ids, spread_values))
    raters = np.nan_to_num(h)
    priority = (
        weights["divergence"] * divergence
        + weights["strategies"] * strategies
        + weights["raters"] * raters
    )
    ranked = ids[np.lexsort((ids, priority))]
    ranked.flags.writeable = False  # the browser's cached sort order, shared by queries
    return Priorities(
        ids,
        priority,
        divergence,
        strategies,
        raters,
        js_all,
        certainty,
        MappingProxyType(dict(weights)),
        ranked,
    )


def _aligned(ids: np.ndarray, have: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` (of the ascending ids `have`) placed at their ids in `ids`; NaN elsewhere."""
    out = np.full(len(ids), np.nan)
    out[np.searchsorted(ids, have)] = values
    return out


_UNIT = 10**12
"""REAL columns leave SQLite as integers in units of 1/_UNIT: SQLite formats a REAL as text
~3x slower than an integer, which made the read of 150k values cost more than the query."""


def _columns(
    conn: sqlite3.Connection, source: str, values: Sequence[str], *params: object
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(clip ids, each of `values`) of the rows of `source` (a query with `clip_id` and the
    value columns, none NULL) in clip id order, out of SQLite as one string a column: a
    Python row per clip costs more than the read itself."""
    scaled = "".join(f", group_concat(CAST({v} * {_UNIT} AS INTEGER))" for v in values)
    texts = conn.execute(f"SELECT group_concat(clip_id){scaled} FROM ({source})", params).fetchone()
    if not texts[0]:
        return np.empty(0, np.int64), [np.empty(0) for _ in values]
    ids = np.fromstring(texts[0], dtype=np.int64, sep=",")
    order = np.argsort(ids, kind="stable")
    columns = [np.fromstring(t, dtype=np.int64, sep=",")[order] / _UNIT for t in texts[1:]]
    return ids[order], columns


def _human(conn: sqlite3.Connection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clip ids, n_votes, normalised entropy) of clips with a human distribution."""
    ids, (n_votes, entropy) = _columns(
        conn,
        "SELECT clip_id, n_votes, norm_entropy FROM human_dist "
        "WHERE distribution IS NOT NULL AND norm_entropy IS NOT NULL",
        ("n_votes", "norm_entropy"),
    )
    return ids, n_votes, np.clip(entropy, 0.0, 1.0)


def _stored_js(
    conn: sqlite3.Connection, run_id: int | None, strategy: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """(clip ids, JS to the human distribution) of the selected run x strategy, read from
    the (run_id, strategy, js) index alone."""
    if run_id is None or strategy is None:
        return np.empty(0, np.int64), np.empty(0)
    ids, (js,) = _columns(
        conn,
        "SELECT clip_id, js FROM predictions WHERE run_id = ? AND strategy = ? AND js IS NOT NULL",
        ("js",),
        run_id,
        strategy,
    )
    return ids, np.clip(js, 0.0, 1.0)


# The strategy names of run :run as table s(name), each found by one seek through the
# predictions key (run_id, strategy, clip_id): `SELECT DISTINCT strategy ... WHERE run_id`
# would read every row of the run (~6 ms at 150k clips). Shared with query.clip_predictions.
RUN_STRATEGIES_CTE = """
WITH RECURSIVE s(name) AS (
  SELECT (SELECT min(strategy) FROM predictions WHERE run_id = :run)
  UNION ALL
  SELECT (SELECT min(strategy) FROM predictions WHERE run_id = :run AND strategy > s.name)
  FROM s WHERE s.name IS NOT NULL
)
"""
_RUN_STRATEGIES = RUN_STRATEGIES_CTE + "SELECT name FROM s WHERE name IS NOT NULL"


def _distributions(
    conn: sqlite3.Connection, run_id: int, strategy: str
) -> tuple[np.ndarray, np.ndarray]:
    """(clip ids, distributions) of one strategy, rows with mass only, from two strings:
    SQLite hands over one hex string instead of a Python row per clip."""
    ids_text, hex_text = conn.execute(
        "SELECT group_concat(clip_id), group_concat(hex(distribution), '') FROM "
        "(SELECT clip_id, distribution FROM predictions WHERE run_id = ? AND strategy = ? "
        "ORDER BY clip_id)",
        (run_id, strategy),
    ).fetchone()
    if not ids_text:
        return np.empty(0, np.int64), np.empty((0, 0))
    ids = np.fromstring(ids_text, dtype=np.int64, sep=",")
    flat = np.asarray(codec.decode_dist(bytes.fromhex(hex_text)), dtype=np.float64)
    dists = flat.reshape(len(ids), -1)
    mass = dists.sum(axis=1) > 0
    return ids[mass], dists[mass]


def strategy_spread(conn: sqlite3.Connection, run_id: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(clip ids, mean pairwise JS) over the strategies of the run that predicted each clip
    (clips predicted by fewer than two strategies have no spread: 0 in the priority).

    Independent of the strategy shown, so the browser keeps it per run. Each pair's JS
    is H((a + b) / 2) - (H(a) + H(b)) / 2 in bits, with each strategy's entropies
    computed once: one entropy per pair instead of two KL terms.
    """
    if run_id is None:
        return np.empty(0, np.int64), np.empty(0)
    per = [
        _distributions(conn, run_id, r[0]) for r in conn.execute(_RUN_STRATEGIES, {"run": run_id})
    ]
    per = [(ids, d) for ids, d in per if len(ids)]
    ids = np.unique(np.concatenate([i for i, _ in per])) if per else np.empty(0, np.int64)
    if len(per) < 2:
        return ids, np.zeros(len(ids))
    k = per[0][1].shape[1]
    dists = np.zeros((len(per), len(ids), k), dtype=np.float32)
    present = np.zeros((len(per), len(ids)), dtype=bool)
    for s, (have, d) in enumerate(per):
        at = np.searchsorted(ids, have)
        dists[s, at] = d / d.sum(axis=1, keepdims=True)
        present[s, at] = True
    own = _bits(dists)  # (strategies, clips)
    total = np.zeros(len(ids))
    pairs = np.zeros(len(ids))
    for a, b in combinations(range(len(per)), 2):
        both = present[a] & present[b]
        js = _bits(0.5 * (dists[a] + dists[b])) - 0.5 * (own[a] + own[b])
        total += np.where(both, np.clip(js, 0.0, 1.0), 0.0)
        pairs += both
    return ids, np.divide(total, pairs, out=np.zeros(len(ids)), where=pairs > 0)


def _bits(p: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits over the last axis (0 log 0 = 0)."""
    return special.entr(p).sum(axis=-1) / np.log(2.0)
