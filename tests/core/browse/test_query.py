"""The browser's paging service: ordered ids, fast paths and per-clip reads.

`ordered_ids` moves ids out of SQLite as one group_concat string (relying on SQLite
keeping a FROM-subquery's ORDER BY for a plain aggregate) and sorts by reading the sort
column's own table in order, merged with the filter's clips in numpy; it must give
exactly the plain `ORDER BY` of `_order`: NULLs last in both directions, ties broken by
the clip id in the sort direction, no flags counting as 0.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ambiscope.core.browse import query as browse
from ambiscope.core.browse.filters import clip_query
from ambiscope.core.browse.query import SORTABLE, BrowseQuery
from ambiscope.core.reference.human import refresh_human
from ambiscope.db import ClipIn, Prediction, RunIn, VoteIn, Workspace

LABELS = ["neutral", "happy", "sad", "angry"]
N_CLIPS = 90


def _build(path: Path, seed: int = 5) -> tuple[int, int]:
    """Two datasets (keys repeat across them), missing votes, JS ties, NULL and missing
    predictions, flags, tags and own votes; returns (run id, second dataset id)."""
    rng = np.random.default_rng(seed)
    with Workspace.open(path, create=True) as ws:
        first = ws.add_dataset("one", "manifest", LABELS)
        second = ws.add_dataset("two", "manifest", LABELS)
        splits = ["train", "test", None]
        for ds, n in ((first, N_CLIPS), (second, N_CLIPS // 3)):
            ws.add_clips(
                ds.id,
                [
                    ClipIn(
                        f"clip_{i % 40:03d}_{i}" if ds is first else f"clip_{i:03d}_0",
                        split=splits[i % 3],
                        transcript=f"words {i}",
                    )
                    for i in range(n)
                ],
            )
        run_ids = {}
        for ds in (first, second):
            ids = sorted(ws.clip_ids(ds.id).values())
            ann = ws.ensure_annotators(
                ds.id, [("r1", "human"), ("r2", "human"), ("r3", "human"), ("me", "self")]
            )
            votes = []
            for n, clip in enumerate(ids):
                if n % 7 == 3:  # no votes: NULL human columns
                    continue
                for rater in ("r1", "r2", "r3"):
                    votes.append(VoteIn(clip, ann[rater], LABELS[int(rng.integers(4))]))
                if n % 5 == 0:
                    votes.append(VoteIn(clip, ann["me"], LABELS[int(rng.integers(4))]))
            ws.add_votes(ds.id, votes)
            refresh_human(ws, ds)
            run = ws.add_run(RunIn(ds.id, "tiny", "transformers", "label", 2))
            run_ids[ds.id] = run.id
            preds = []
            for n, clip in enumerate(ids):
                if n % 11 == 4:  # no prediction at all
                    continue
                dist = rng.dirichlet(np.ones(4))
                js = None if n % 9 == 2 else float(rng.choice([0.1, 0.25, 0.5]))  # ties
                for strategy in ("vote", "wbon"):
                    preds.append(
                        Prediction(
                            run.id,
                            strategy,
                            clip,
                            dist,
                            LABELS[int(dist.argmax())] if n % 6 else None,
                            float(rng.choice([0.5, 1.0])),
                            js if strategy == "wbon" else float(rng.random()),
                            None,
                            None if js is None else bool(n % 2),
                        )
                    )
            ws.add_predictions(preds)
            ws.bulk_set("flags", ids[::4], "ambiguous", True)
            ws.bulk_set("flags", ids[::6], "bad_audio", True)
            ws.bulk_set("tags", ids[::5], "review", True)
            ws.bulk_set("tags", ids[::10], "accent", True)
        return run_ids[first.id], second.id


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    path = tmp_path_factory.mktemp("browse") / "w.db"
    run_id, second = _build(path)
    return path, run_id, second


@pytest.fixture
def conn(workspace: tuple[Path, int, int]):
    with Workspace.open(workspace[0], readonly=True) as ws:
        yield ws.conn


def _reference(conn: sqlite3.Connection, q: BrowseQuery) -> list[int]:
    """The plain ORDER BY, one Python row per clip."""
    sql, params = clip_query(
        browse._compiled(q),
        columns="c.id",
        dataset_id=q.dataset_id,
        run_id=q.run_id,
        strategy=q.strategy,
        order_by=browse._order(q),
    )
    return [r[0] for r in conn.execute(sql, params)]


FILTERS = ["", "disagree", "split:train", "-flagged", "ambiguity:high", "js>0.2 tag:review"]


@pytest.mark.parametrize("sort", list(SORTABLE))
@pytest.mark.parametrize("descending", [False, True])
def test_ordered_ids_equal_the_sql_order(conn, workspace, sort: str, descending: bool) -> None:
    _, run_id, second = workspace
    for flt in FILTERS:
        for dataset_id in (None, second):
            q = BrowseQuery(
                dataset_id=dataset_id,
                filter_text=flt,
                run_id=run_id,
                strategy="wbon",
                sort=sort,
                descending=descending,
            )
            expected = _reference(conn, q)
            assert list(browse.ordered_ids(conn, q)) == expected, (flt, dataset_id)
            assert browse.ordered_id_array(conn, q).dtype == np.int64


@pytest.mark.parametrize("sort", list(SORTABLE))
def test_sql_fallback_order_equals_the_plain_order(conn, workspace, sort: str) -> None:
    _, run_id, _ = workspace
    for descending in (False, True):
        q = BrowseQuery(
            filter_text="-split:test", run_id=run_id, strategy="wbon", sort=sort,
            descending=descending,
        )  # fmt: skip
        assert list(browse._sql_ordered_ids(conn, q)) == _reference(conn, q)


def test_reference_order_has_nulls_and_ties(conn, workspace) -> None:
    """The workspace really exercises the NULL and tie rules of the JS order."""
    _, run_id, _ = workspace
    rows = conn.execute(
        "SELECT c.id, p.js FROM clips c LEFT JOIN predictions p ON p.clip_id = c.id "
        "AND p.run_id = ? AND p.strategy = 'wbon'",
        (run_id,),
    ).fetchall()
    values = [js for _, js in rows]
    assert values.count(None) > 5
    assert max(values.count(v) for v in (0.1, 0.25, 0.5)) > 5


def test_without_a_model_the_model_sorts_fall_back_to_the_key(conn) -> None:
    for sort in ("js", "model", "model_entropy"):
        q = BrowseQuery(sort=sort, descending=True)
        assert list(browse.ordered_ids(conn, q)) == _reference(conn, q)


def test_page_rows_follow_the_ordered_ids(conn, workspace) -> None:
    _, run_id, _ = workspace
    q = BrowseQuery(run_id=run_id, strategy="wbon", sort="js", descending=True)
    ids = browse.ordered_ids(conn, q)
    page = browse.fetch_page(conn, q, 10, 25)
    assert [r.clip_id for r in page] == list(ids[10:35])
    assert browse.fetch_rows(conn, q, ids[10:35]) == page
    assert len(ids) == browse.count_rows(conn, q)


def test_matching_ids_are_the_filter_in_id_order(conn, workspace) -> None:
    _, run_id, second = workspace
    for flt in FILTERS:
        q = BrowseQuery(dataset_id=second, filter_text=flt, run_id=run_id, strategy="wbon")
        got = browse.matching_ids(conn, q)
        assert list(got) == sorted(browse.clip_ids_matching(conn, q))


@pytest.mark.parametrize("offset", [0, 10**9])  # dense ids (lookup table) and sparse ones
def test_merge_scored(offset: int) -> None:
    scored = np.array([7, 3, 9, 1, 12], dtype=np.int64) + offset  # already in value order
    matching = np.array([1, 2, 3, 5, 9, 11, 12], dtype=np.int64) + offset
    got = browse.merge_scored(scored, matching, descending=False)
    assert list(got - offset) == [3, 9, 1, 12, 2, 5, 11]
    got = browse.merge_scored(scored, matching, descending=True)
    assert list(got - offset) == [3, 9, 1, 12, 11, 5, 2]
    empty = np.empty(0, dtype=np.int64)
    assert list(browse.merge_scored(scored, empty, descending=False)) == []
    assert list(browse.merge_scored(empty, matching, descending=False) - offset) == [
        1, 2, 3, 5, 9, 11, 12
    ]  # fmt: skip


def test_cached_reads_see_writes_from_other_and_own_connections(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    run_id, _ = _build(path, seed=9)
    q = BrowseQuery(run_id=run_id, strategy="wbon", sort="js", descending=True)
    with Workspace.open(path, readonly=True) as reader, Workspace.open(path) as writer:
        before = list(browse.ordered_ids(reader.conn, q))
        last = before[-1]
        writer.conn.execute(
            "UPDATE predictions SET js = 9.0 WHERE run_id = ? AND strategy = 'wbon' "
            "AND clip_id = ?",
            (run_id, last),
        )
        after = list(browse.ordered_ids(reader.conn, q))  # another connection committed
        assert after[0] == last and after == _reference(reader.conn, q)
        writer.conn.execute(
            "UPDATE predictions SET js = -1.0 WHERE run_id = ? AND strategy = 'wbon' "
            "AND clip_id = ?",
            (run_id, last),
        )
        assert list(browse.ordered_ids(writer.conn, q)) == _reference(writer.conn, q)
        writer.conn.execute(
            "UPDATE predictions SET js = 8.0 WHERE run_id = ? AND strategy = 'wbon' "
            "AND clip_id = ?",
            (run_id, last),
        )  # the same connection wrote: its data_version stays, total_changes moves
        assert browse.ordered_ids(writer.conn, q)[0] == last
        # the filter's clips are cached the same way
        flagged = q.with_(filter_text="flag:checked")
        assert list(browse.ordered_ids(reader.conn, flagged)) == []
        writer.set_flag(last, "checked", True)
        assert list(browse.ordered_ids(reader.conn, flagged)) == [last]
        cached = browse.matching_ids(reader.conn, flagged)
        with pytest.raises(ValueError):
            cached[0] = 0  # shared between queries: read-only


def test_clip_predictions_every_strategy_in_name_order(conn, workspace) -> None:
    _, run_id, _ = workspace
    clips = [r[0] for r in conn.execute("SELECT id FROM clips ORDER BY id LIMIT 12")]
    for clip in clips:
        expected = conn.execute(
            "SELECT strategy, label, js FROM predictions WHERE run_id = ? AND clip_id = ? "
            "ORDER BY strategy",
            (run_id, clip),
        ).fetchall()
        got = browse.clip_predictions(conn, run_id, clip)
        assert [(p.strategy, p.label, p.js) for p in got] == expected
    assert browse.clip_predictions(conn, run_id + 99, clips[0]) == []
