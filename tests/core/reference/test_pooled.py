"""The registered references: human (the cache), synthetic and combined (pooled votes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ambiscope.core.reference import REFERENCES, reference_name
from ambiscope.core.reference.human import compute_human, load_human, snapshot_human
from ambiscope.core.reference.pooled import (
    COMBINED,
    HUMAN,
    SYNTHETIC,
    load_reference,
    reference_distributions,
    rows_of,
)
from ambiscope.core.reference.prediction_scores import ReferenceScorer, clip_scores
from ambiscope.core.synthetic.raters import execute_synthetic
from ambiscope.db import ClipIn, Workspace
from tests.core.synthetic.conftest import demo_db
from tests.core.synthetic.test_raters import FakeBackend, spec

__all__ = ["demo_db"]  # the fixture, imported for pytest


def test_registry_lists_the_references_without_loading_them() -> None:
    code = (
        "import sys; from ambiscope.core.reference import REFERENCES; "
        "print(','.join(REFERENCES.names())); print('numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["human,synthetic,combined,human-ds,human-mace", "False"]
    pooled = ("human", "synthetic", "combined")  # human-ds/-mace: test_reliability.py
    assert [REFERENCES.get(n) for n in pooled] == [HUMAN, SYNTHETIC, COMBINED]
    assert reference_name(" Synthetic ") == "synthetic"
    with pytest.raises(ValueError, match="--reference must be one of human, synthetic"):
        reference_name("robots")


def test_pooled_kinds(demo_db: Path) -> None:
    with Workspace.open(demo_db) as ws:
        ds = ws.get_dataset("demo")
    assert HUMAN.kinds(ds) == ("human",)
    assert SYNTHETIC.kinds(ds) == ("synthetic",)
    assert COMBINED.kinds(ds) == ("human", "synthetic")
    assert COMBINED.kinds(ds, ("human", "self")) == ("human", "self", "synthetic")


def test_rows_of() -> None:
    ids = np.array([3, 5, 9])
    assert rows_of(ids, np.array([9, 4, 3])).tolist() == [2, -1, 0]
    assert rows_of(np.zeros(0, dtype=np.int64), np.array([1])).tolist() == [-1]


def test_snapshot_read_covers_clips_added_after_the_refresh(demo_db: Path) -> None:
    with Workspace.open(demo_db) as ws:
        ds = ws.get_dataset("demo")
        cached, source = snapshot_human(ws, ds)
        assert source == "human-vote cache"
        ws.add_clips(ds.id, [ClipIn(key="late-clip")])
        with ws.snapshot():
            human, source = snapshot_human(ws, ds)
        assert source.startswith("votes of kind")
        assert len(human.clip_ids) == len(cached.clip_ids) + 1
        assert not human.valid[-1]
        fresh = compute_human(ws, ds)
        np.testing.assert_array_equal(fresh.clip_ids, human.clip_ids)


def test_scorer_matches_clip_scores(demo_db: Path) -> None:
    with Workspace.open(demo_db) as ws:
        human = load_human(ws, "demo")
    scorer = ReferenceScorer(human)
    dist = np.full(human.dist.shape[1], 1 / human.dist.shape[1])
    row = int(np.flatnonzero(human.valid)[0])
    expected = clip_scores(human.dist[row], int(human.majority[row]), dist)
    assert scorer.score(int(human.clip_ids[row]), dist) == expected
    assert scorer.score(-1, dist) == (None, None, None)


def test_reference_distributions(demo_db: Path) -> None:
    with Workspace.open(demo_db) as ws:
        ds = ws.get_dataset("demo")
        run = execute_synthetic(ws, spec(), backend=FakeBackend(), limit=3).run
        human = load_human(ws, ds)
        ids, dist, valid = reference_distributions(ws, ds, "human")
        np.testing.assert_array_equal(ids, human.clip_ids)
        np.testing.assert_allclose(dist[valid], human.dist[human.valid])
        ids, syn, valid = reference_distributions(ws, ds, "synthetic")
        assert valid.tolist() == [True, True, True, False]
        happy, sad = ds.label_set.index("happy"), ds.label_set.index("sad")
        np.testing.assert_allclose(syn[valid][:, [happy, sad]], 0.5)
        # combined = human primary votes plus two synthetic votes, pooled
        _, comb, cvalid = reference_distributions(ws, ds, "combined")
        assert cvalid.all()
        human_counts = np.array(
            [
                [
                    sum(1 for v in ws.clip_votes(int(c)) if v.kind == "human" and v.rank == 0
                        and v.label == lab)
                    for lab in ds.label_set
                ]
                for c in ids
            ],
            dtype=float,
        )  # fmt: skip
        syn_counts = np.zeros_like(human_counts)
        syn_counts[:3, [happy, sad]] = 1.0
        pooled = human_counts + syn_counts
        np.testing.assert_allclose(comb, pooled / pooled.sum(axis=1, keepdims=True))
        # restricting to another run's raters leaves no synthetic votes
        _, only_other, v2 = reference_distributions(ws, ds, "synthetic", run=run.id + 1)
        assert not v2.any() and np.isnan(only_other).all()
        with pytest.raises(ValueError, match="--reference"):
            reference_distributions(ws, ds, "robots")


def test_load_reference_keeps_human_ambiguity(demo_db: Path) -> None:
    with Workspace.open(demo_db) as ws:
        execute_synthetic(ws, spec(), backend=FakeBackend())
        human = load_human(ws, "demo")
        syn = load_reference(ws, "demo", "synthetic")
        np.testing.assert_array_equal(syn.ambiguity, human.ambiguity)
        assert syn.valid.all()
        labels = ws.get_dataset("demo").label_set
        # happy and sad tie; the majority goes to the first in the label set
        assert set(syn.majority.tolist()) == {labels.index("happy")}
        np.testing.assert_allclose(syn.entropy, 1.0)
        assert load_reference(ws, "demo", "human") is not None


def test_references_leave_the_human_cache_alone(demo_db: Path) -> None:
    with Workspace.open(demo_db) as ws:
        execute_synthetic(ws, spec(), backend=FakeBackend())
        ds = ws.get_dataset("demo")
        human = load_human(ws, ds)
        state = ws.human_state(ds.id)
        for reference in ("synthetic", "combined"):
            reference_distributions(ws, ds, reference)
            load_reference(ws, ds, reference)
        # the TUI passes its own human reference and kinds (own votes pooled in)
        pooled = load_reference(ws, ds, "combined", human=human, human_kinds=("human", "self"))
        assert ws.human_state(ds.id) == state
        assert (pooled.n_votes == human.n_votes + 2).all()  # two synthetic votes per clip
        with pytest.raises(ValueError, match="--reference"):
            load_reference(ws, ds, "nobody", human=human)
