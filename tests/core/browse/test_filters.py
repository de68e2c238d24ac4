"""The shared filter language compiles to SQL that selects the right clips."""

from __future__ import annotations

import numpy as np
import pytest

from ambiscope.core.browse import filters
from ambiscope.core.browse.filters import (
    MAX_FILTER_CHARS,
    MAX_FILTER_TERMS,
    FilterError,
    parse_filter,
)
from ambiscope.core.browse.query import select_clip_ids
from ambiscope.core.reference.human import refresh_human
from ambiscope.db import ClipIn, Prediction, RunIn, VoteIn, Workspace


@pytest.fixture
def ws(tmp_path):
    with Workspace.open(tmp_path / "w.db", create=True) as workspace:
        ds = workspace.add_dataset("toy", "manifest", ["neutral", "happy", "sad"])
        workspace.add_clips(
            ds.id,
            [
                ClipIn(
                    "a_1",
                    path="a.wav",
                    split="train",
                    speaker="s1",
                    gender="F",
                    transcript="It's eleven o'clock",
                    intended_label="happy",
                ),
                ClipIn("b_2", split="test", speaker="s2", gender="M", transcript="100% sure"),
                ClipIn("c_3", path="c.wav", split="test", speaker="s1", gender="f"),
            ],
        )
        ids = workspace.clip_ids(ds.id)
        ann = workspace.ensure_annotators(ds.id, [("r1", "human"), ("r2", "human"), ("me", "self")])
        workspace.add_votes(
            ds.id,
            [
                VoteIn(ids["a_1"], ann["r1"], "happy"),
                VoteIn(ids["a_1"], ann["r2"], "happy"),
                VoteIn(ids["b_2"], ann["r1"], "sad"),
                VoteIn(ids["b_2"], ann["r2"], "happy"),
                VoteIn(ids["c_3"], ann["r1"], "neutral"),
                VoteIn(ids["c_3"], ann["me"], "sad"),
            ],
        )
        refresh_human(workspace, ds)
        workspace.set_flag(ids["b_2"], "ambiguous", True)
        workspace.set_tag(ids["c_3"], "needs review", True)
        run = workspace.add_run(RunIn(ds.id, "tiny", "transformers", "label", 1))
        workspace.add_predictions(
            [
                Prediction(run.id, "vote", ids[k], np.array(d))
                for k, d in [("a_1", [0, 1, 0]), ("b_2", [1, 0, 0]), ("c_3", [1, 0, 0])]
            ]
        )
        workspace.conn.execute(
            "UPDATE predictions SET js = CASE clip_id WHEN ? THEN 0.0 WHEN ? THEN 0.9 ELSE 0.1 "
            "END, agree = CASE clip_id WHEN ? THEN 0 ELSE 1 END",
            (ids["a_1"], ids["b_2"], ids["b_2"]),
        )
        workspace.run_id = run.id  # type: ignore[attr-defined]
        yield workspace


def keys(ws, text, **kw):
    ids = select_clip_ids(ws.conn, text, **kw)
    names = {v: k for k, v in ws.clip_ids(ws.get_dataset("toy").id).items()}
    return sorted(names[i] for i in ids)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["a_1", "b_2", "c_3"]),
        ("split:test", ["b_2", "c_3"]),
        ("split:test speaker:s1", ["c_3"]),
        ("-split:test", ["a_1"]),
        ("gender:F", ["a_1", "c_3"]),
        ("label:happiness", ["a_1", "b_2"]),
        ("intended:happy", ["a_1"]),
        ("flag:ambiguous", ["b_2"]),
        ("flagged", ["b_2"]),
        ('tag:"needs review"', ["c_3"]),
        ("-tagged", ["a_1", "b_2"]),
        ("ambiguity:high", ["b_2"]),
        ("entropy>0.5", ["b_2"]),
        ("votes>=2", ["a_1", "b_2"]),
        ("voted", ["c_3"]),
        ("audio", ["a_1", "c_3"]),
        ("eleven", ["a_1"]),
        ("100%", ["b_2"]),
        ("key:_2", ["b_2"]),
        ("dataset:toy split:train", ["a_1"]),
    ],
)
def test_terms(ws, text, expected):
    assert keys(ws, text) == expected


def test_prediction_terms_need_a_run(ws):
    assert keys(ws, "js>0.5", run_id=ws.run_id, strategy="vote") == ["b_2"]
    assert keys(ws, "disagree", run_id=ws.run_id, strategy="vote") == ["b_2"]
    assert keys(ws, "agree js<0.05", run_id=ws.run_id, strategy="vote") == ["a_1"]
    with pytest.raises(FilterError, match="needs a run and a strategy"):
        keys(ws, "disagree")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label:grumpy", "unknown emotion label"),
        ("ambiguity:extreme", "low, medium or high"),
        ("colour:red", "unknown filter field"),
        ('tag:"open', "No closing quotation"),
    ],
)
def test_bad_terms_name_the_problem(text, message):
    with pytest.raises(FilterError, match=message):
        parse_filter(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x" * 60_000, "60,000 characters, the limit is 4,000"),  # LIKE pattern too complex
        (" ".join(["a"] * 1500), "1500 terms, the limit is 100"),  # expression tree too large
    ],
    ids=["long", "many-terms"],
)
def test_absurd_filters_are_refused_up_front(ws, text, message):
    """Issue 12 (5): SQLite's own limits gave tracebacks; the caps give one line."""
    with pytest.raises(FilterError) as info:
        select_clip_ids(ws.conn, text)
    assert str(info.value) == f"filter {text[:60] + '...'!r}: {message}"


def test_values_not_in_the_dataset_are_an_error_not_an_empty_selection(ws):
    """Issue 16: the CLI's selections check values as the TUI does."""
    with pytest.raises(FilterError, match=r"dataset:other: .*\(datasets: toy\)"):
        select_clip_ids(ws.conn, "dataset:other")
    with pytest.raises(FilterError, match=r"no clip has split 'tset'; did you mean test"):
        select_clip_ids(ws.conn, "-split:tset", dataset_id=ws.get_dataset("toy").id)


def test_filters_at_the_caps_still_run(ws):
    assert keys(ws, " ".join(["-flagged"] * MAX_FILTER_TERMS)) == keys(ws, "-flagged")
    assert keys(ws, "%_" * (MAX_FILTER_CHARS // 2)) == []
    assert keys(ws, "\U0001d11e" * MAX_FILTER_CHARS) == []


def test_an_sqlite_limit_past_the_caps_is_still_one_line(ws, monkeypatch):
    """The backstop behind the caps: SQLite's own refusal, worded with the filter."""
    monkeypatch.setattr(filters, "MAX_FILTER_CHARS", 100_000)
    with pytest.raises(FilterError) as info:
        select_clip_ids(ws.conn, "x" * 60_000)
    assert str(info.value) == f"filter {'x' * 60 + '...'!r}: LIKE or GLOB pattern too complex"
