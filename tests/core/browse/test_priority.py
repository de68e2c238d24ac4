"""The audit priority: its parts on hand-built clips, its order, and the browser's sort.

Each clip of the workspace is built for one case: humans agree and the model does not,
humans split, strategies disagree or agree, votes or predictions missing. The JS values
are the real stored ones (`refresh_human` scores the predictions against the votes).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from ambiscope.core.browse import query as browse
from ambiscope.core.browse.priority import (
    VOTE_PRIOR,
    WEIGHTS,
    check_weights,
    compute_priorities,
    formula,
)
from ambiscope.core.browse.query import BrowseQuery
from ambiscope.core.reference.human import refresh_human
from ambiscope.db import ClipIn, Prediction, RunIn, VoteIn, Workspace

LABELS = ["neutral", "happy", "sad", "angry"]
RATERS = [f"r{i}" for i in range(6)]
ANGRY = [0.02, 0.02, 0.02, 0.94]
HAPPY = [0.04, 0.88, 0.04, 0.04]
# clip key -> (human votes, {strategy: model distribution})
CLIPS: dict[str, tuple[list[str], dict[str, list[float]]]] = {
    "agree_wrong": (["angry"] * 6, {"wbon": HAPPY, "vote": HAPPY}),
    "split": (["angry"] * 3 + ["sad"] * 3, {"wbon": HAPPY, "vote": HAPPY}),
    "agree_right": (["angry"] * 6, {"wbon": ANGRY, "vote": ANGRY}),
    "strategies_split": (["angry"] * 6, {"wbon": ANGRY, "vote": HAPPY}),
    "few_votes": (["angry"], {"wbon": HAPPY, "vote": HAPPY}),
    "no_prediction": (["angry"] * 4 + ["sad"] * 2, {}),
    "no_votes": ([], {"wbon": ANGRY, "vote": HAPPY}),
    "nothing": ([], {}),
    "other_strategy_only": (["angry"] * 6, {"vote": HAPPY}),
}


def build(path: Path) -> int:
    """The workspace of `CLIPS` (plus a second dataset without runs); returns the run id."""
    with Workspace.open(path, create=True) as ws:
        ds = ws.add_dataset("hand", "manifest", LABELS)
        ws.add_clips(
            ds.id,
            [ClipIn(key, split="test" if i % 2 else "train") for i, key in enumerate(CLIPS)],
        )
        ids = ws.clip_ids(ds.id)
        ann = ws.ensure_annotators(ds.id, [(r, "human") for r in RATERS])
        votes = [
            VoteIn(ids[key], ann[RATERS[i]], label)
            for key, (labels, _) in CLIPS.items()
            for i, label in enumerate(labels)
        ]
        ws.add_votes(ds.id, votes)
        run = ws.add_run(RunIn(ds.id, "tiny", "transformers", "label", 4))
        ws.add_predictions(
            Prediction(run.id, strategy, ids[key], np.array(dist), LABELS[int(np.argmax(dist))])
            for key, (_, models) in CLIPS.items()
            for strategy, dist in models.items()
        )
        refresh_human(ws, ds)  # stores the human distributions and each prediction's JS
        other = ws.add_dataset("other", "manifest", LABELS)
        ws.add_clips(other.id, [ClipIn("elsewhere")])
        extra = ws.ensure_annotators(other.id, [("r0", "human"), ("r1", "human")])
        clip = ws.clip_ids(other.id)["elsewhere"]
        ws.add_votes(
            other.id, [VoteIn(clip, extra["r0"], "sad"), VoteIn(clip, extra["r1"], "happy")]
        )
        refresh_human(ws, other)
        return run.id


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("priority") / "w.db"
    return path, build(path)


@pytest.fixture
def conn(hand: tuple[Path, int]):
    with Workspace.open(hand[0], readonly=True) as ws:
        yield ws.conn


def _by_key(conn, run_id: int | None, strategy: str | None = "wbon") -> dict[str, dict]:
    scores = compute_priorities(conn, run_id, strategy if run_id else None)
    keys = dict(conn.execute("SELECT id, key FROM clips"))
    parts = ("priority", "divergence", "strategies", "raters", "js", "certainty")
    return {
        keys[int(c)]: {p: float(getattr(scores, p)[i]) for p in parts}
        for i, c in enumerate(scores.clip_ids)
    }


def test_components_follow_the_formula(conn, hand) -> None:
    s = _by_key(conn, hand[1])
    for key, c in s.items():
        for part in ("priority", "divergence", "strategies", "raters", "certainty"):
            assert 0.0 <= c[part] <= 1.0, (key, part)
        expected = sum(WEIGHTS[p] * c[p] for p in ("divergence", "strategies", "raters"))
        assert c["priority"] == pytest.approx(expected)
    wrong = s["agree_wrong"]  # unanimous 6 votes: certainty is the vote factor alone
    assert wrong["raters"] == pytest.approx(0.0, abs=1e-9)
    assert wrong["certainty"] == pytest.approx(6 / (6 + VOTE_PRIOR))
    assert wrong["js"] > 0.5
    assert wrong["divergence"] == pytest.approx(wrong["js"] * wrong["certainty"])
    assert s["split"]["raters"] == pytest.approx(0.5)  # 1 bit of 2
    assert s["few_votes"]["certainty"] == pytest.approx(1 / (1 + VOTE_PRIOR))
    assert "0.6*divergence + 0.25*strategies + 0.15*raters" in formula()


def test_agreeing_humans_the_model_contradicts_rank_above_split_humans(conn, hand) -> None:
    s = _by_key(conn, hand[1])
    assert s["agree_wrong"]["priority"] > s["split"]["priority"]
    assert s["agree_wrong"]["priority"] > s["few_votes"]["priority"]  # one vote: less sure
    assert s["agree_wrong"]["js"] == pytest.approx(s["few_votes"]["js"])
    assert s["agree_right"]["priority"] < 0.05


def test_disagreeing_strategies_raise_the_priority(conn, hand) -> None:
    s = _by_key(conn, hand[1])
    assert s["agree_right"]["strategies"] == pytest.approx(0.0, abs=1e-9)
    assert s["strategies_split"]["strategies"] > 0.5
    assert s["strategies_split"]["priority"] > s["agree_right"]["priority"] + 0.1


def test_missing_votes_and_predictions(conn, hand) -> None:
    s = _by_key(conn, hand[1])
    assert "nothing" not in s  # neither votes nor predictions: unscored
    missing = s["no_prediction"]
    assert missing["divergence"] == 0.0 and missing["strategies"] == 0.0
    assert np.isnan(missing["js"])
    assert missing["priority"] == pytest.approx(WEIGHTS["raters"] * missing["raters"])
    unvoted = s["no_votes"]  # no human: only the strategies speak
    assert np.isnan(unvoted["js"]) and unvoted["certainty"] == 0.0
    assert unvoted["priority"] == pytest.approx(WEIGHTS["strategies"] * unvoted["strategies"])
    assert s["other_strategy_only"]["divergence"] == 0.0  # no `wbon` prediction
    assert s["other_strategy_only"]["strategies"] == 0.0  # one strategy: no spread
    assert s["elsewhere"]["raters"] == pytest.approx(0.5)  # another dataset: raters only
    no_run = _by_key(conn, None)
    for key, c in no_run.items():
        assert c["priority"] == pytest.approx(WEIGHTS["raters"] * c["raters"]), key


@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("flt", ["", "split:test", "-disagree"])
def test_sort_by_priority_is_the_order_of_the_score(conn, hand, descending, flt) -> None:
    """Scored clips by (priority, id) in the sort's direction, then the unscored ones."""
    _, run_id = hand
    for dataset_id in (None, 1):
        q = BrowseQuery(
            dataset_id=dataset_id,
            filter_text=flt,
            run_id=run_id,
            strategy="wbon",
            sort="priority",
            descending=descending,
        )
        scores = compute_priorities(conn, run_id, "wbon")
        value = dict(zip(scores.clip_ids.tolist(), scores.priority.tolist(), strict=True))
        matching = browse.matching_ids(conn, q).tolist()
        scored = sorted((c for c in matching if c in value), key=lambda c: (value[c], c))
        unscored = sorted(c for c in matching if c not in value)
        if descending:
            scored, unscored = scored[::-1], unscored[::-1]
        assert list(browse.ordered_ids(conn, q)) == scored + unscored
        page = browse.fetch_page(conn, q, 1, 3)
        assert [r.clip_id for r in page] == (scored + unscored)[1:4]


def test_top_of_the_queue_on_the_hand_built_clips(conn, hand) -> None:
    q = BrowseQuery(run_id=hand[1], strategy="wbon", sort="priority", descending=True)
    keys = dict(conn.execute("SELECT id, key FROM clips"))
    ranked = [keys[int(c)] for c in browse.ordered_ids(conn, q)]
    assert ranked[0] == "agree_wrong"
    assert ranked[-1] == "nothing"
    assert ranked.index("strategies_split") < ranked.index("agree_right")


def test_priorities_are_cached_until_the_workspace_changes(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    run_id = build(path)
    q = BrowseQuery(run_id=run_id, strategy="wbon", sort="priority")
    with Workspace.open(path) as ws:
        first = browse.clip_priorities(ws.conn, q)
        assert browse.clip_priorities(ws.conn, q) is first
        ds = ws.get_dataset("hand")
        clip = ws.clip_ids(ds.id)["nothing"]
        ann = ws.ensure_annotators(ds.id, [("r0", "human")])
        ws.add_votes(ds.id, [VoteIn(clip, ann["r0"], "sad")])
        refresh_human(ws, ds)
        again = browse.clip_priorities(ws.conn, q)
        assert again is not first
        assert clip in again.clip_ids and clip not in first.clip_ids


def test_weights_are_checked() -> None:
    assert check_weights(WEIGHTS) is WEIGHTS
    with pytest.raises(ValueError, match="sum to 1"):
        check_weights({"divergence": 0.5, "strategies": 0.5, "raters": 0.5})
    with pytest.raises(ValueError, match="must name"):
        check_weights({"divergence": 1.0})


def test_strategy_spread_survives_writes_that_leave_predictions_alone(tmp_path: Path) -> None:
    """A flag while walking the queue keeps the run's spread (the costly read); a clip the
    run writes again (its run_clips row changes with its predictions) re-reads it."""
    path = tmp_path / "w.db"
    run_id = build(path)
    q = BrowseQuery(run_id=run_id, strategy="wbon", sort="priority")
    with Workspace.open(path) as ws:
        clips = sorted(ws.clip_ids(ws.get_dataset("hand").id).values())
        for clip in clips:
            ws.set_run_clip(run_id, clip, "done")
        first = browse._run_spread(ws.conn, run_id)
        ws.set_flag(clips[0], "check", True)
        assert browse._run_spread(ws.conn, run_id) is first
        assert browse.clip_priorities(ws.conn, q).strategies is not None
        time.sleep(0.002)  # run_clips.updated_at has millisecond resolution
        with ws.transaction():
            ws.add_predictions([Prediction(run_id, "vote", clips[2], np.array(HAPPY), "happy")])
            ws.set_run_clip(run_id, clips[2], "done")
        again = browse._run_spread(ws.conn, run_id)
        assert again is not first
        at = int(np.searchsorted(again[0], clips[2]))
        assert again[1][at] > first[1][at]  # agree_right: its vote strategy now says happy
