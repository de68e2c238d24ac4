"""Human distribution cache: correctness, staleness tracking and option handling."""

from __future__ import annotations

import numpy as np
import pytest

from ambiscope.core.reference.distributions import DistributionOptions
from ambiscope.core.reference.human import (
    HumanOptions,
    ensure_human,
    is_fresh,
    load_human,
    refresh_human,
)
from ambiscope.db import ClipIn, VoteIn, Workspace


@pytest.fixture
def ws(tmp_path):
    with Workspace.open(tmp_path / "w.db", create=True) as workspace:
        ds = workspace.add_dataset("toy", "manifest", ["neutral", "happy", "sad"])
        workspace.add_clips(
            ds.id, [ClipIn(k, split="train" if k < "d" else "test") for k in "abcdef"]
        )
        ids = workspace.clip_ids(ds.id)
        ann = workspace.ensure_annotators(
            ds.id, [("r1", "human"), ("r2", "human"), ("r3", "human"), ("me", "self")]
        )
        votes = [
            ("a", "r1", "happy"),
            ("a", "r2", "happy"),
            ("a", "r3", "happy"),
            ("b", "r1", "sad"),
            ("b", "r2", "happy"),
            ("b", "r3", "sad"),
            ("c", "r1", "sad"),
            ("c", "r2", "happy"),
            ("c", "r3", "neutral"),
            ("d", "r1", "neutral"),
            ("d", "r2", "neutral"),
            ("e", "r1", "sad"),
            ("e", "me", "happy"),
        ]
        workspace.add_votes(ds.id, [VoteIn(ids[c], ann[r], lbl) for c, r, lbl in votes])
        workspace.add_votes(ds.id, [VoteIn(ids["b"], ann["r2"], "sad", rank=1)])
        yield workspace


def by_key(ws, human):
    keys = {v: k for k, v in ws.clip_ids(human.dataset.id).items()}
    return {keys[int(cid)]: i for i, cid in enumerate(human.clip_ids)}


def test_distributions_entropy_and_levels(ws):
    human = load_human(ws, "toy")
    idx = by_key(ws, human)
    np.testing.assert_allclose(human.dist[idx["a"]], [0, 1, 0])
    np.testing.assert_allclose(human.dist[idx["b"]], [0, 1 / 3, 2 / 3], atol=1e-6)
    np.testing.assert_allclose(human.entropy[idx["c"]], np.log2(3), atol=1e-6)
    assert not human.valid[idx["f"]] and human.ambiguity[idx["f"]] == ""
    # the researcher's own vote is excluded by default: e is unanimous "sad"
    np.testing.assert_allclose(human.dist[idx["e"]], [0, 0, 1])
    assert human.ambiguity[idx["c"]] == "high"
    assert human.ambiguity[idx["a"]] == "low"
    assert human.majority[idx["b"]] == 2


def test_cache_is_refreshed_when_votes_change(ws):
    ds = ws.get_dataset("toy")
    assert ensure_human(ws, ds) is True
    assert ensure_human(ws, ds) is False
    ids = ws.clip_ids(ds.id)
    r1 = ws.ensure_annotators(ds.id, [("r1", "human")])["r1"]
    ws.add_votes(ds.id, [VoteIn(ids["f"], r1, "neutral")])
    assert not is_fresh(ws, ds)
    human = load_human(ws, ds)
    assert human.valid[by_key(ws, human)["f"]]


def test_options_change_the_reference(ws):
    self_too = HumanOptions(kinds=("human", "self"))
    human = load_human(ws, "toy", self_too)
    np.testing.assert_allclose(human.dist[by_key(ws, human)["e"]], [0, 0.5, 0.5])
    secondary = HumanOptions(distribution=DistributionOptions(secondary_weight=1.0))
    human = load_human(ws, "toy", secondary)
    np.testing.assert_allclose(human.dist[by_key(ws, human)["b"]], [0, 0.25, 0.75])
    assert ensure_human(ws, "toy", secondary) is False
    assert ensure_human(ws, "toy") is True  # back to defaults: recomputed


def test_refresh_summary_reports_agreement(ws):
    summary = refresh_human(ws, "toy")
    assert summary.n_clips == 6 and summary.n_with_votes == 5
    assert sum(summary.level_counts.values()) == 5
    assert summary.agreement["n_items_used"] == 4
    assert -1 <= summary.agreement["fleiss_kappa"] <= 1


def test_prediction_scores_follow_the_human_reference(ws):
    from ambiscope.db import Prediction, RunIn

    ds = ws.get_dataset("toy")
    ids = ws.clip_ids(ds.id)
    run = ws.add_run(RunIn(ds.id, "m", "transformers", "label", 1))
    ws.add_predictions(
        [
            Prediction(run.id, "vote", ids["a"], np.array([0.0, 1.0, 0.0])),
            Prediction(run.id, "vote", ids["f"], np.array([1.0, 0.0, 0.0])),
        ]
    )
    refresh_human(ws, ds)
    rows = dict(ws.conn.execute("SELECT clip_id, js FROM predictions WHERE run_id = ?", (run.id,)))
    assert rows[ids["a"]] == pytest.approx(0.0, abs=1e-6)
    assert rows[ids["f"]] is None  # no votes yet
    r1 = ws.ensure_annotators(ds.id, [("r1", "human")])["r1"]
    ws.add_votes(ds.id, [VoteIn(ids["f"], r1, "sad")])
    ensure_human(ws, ds)
    js, agree = ws.conn.execute(
        "SELECT js, agree FROM predictions WHERE clip_id = ?", (ids["f"],)
    ).fetchone()
    assert js == pytest.approx(1.0) and agree == 0
