"""Export test support (workspaces with stored runs) and tests of the snapshot reads.

Exports only read stored rows, so the workspaces here get their runs by writing samples
and predictions directly (the same rows ambiscope.core.scaling.run writes): candidates are
drawn from a noisy copy of each clip's human distribution, some unreadable, with
log-probabilities and verifier scores, and aggregated with the real strategies.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ambiscope.core.demo import DemoSpec, build_demo
from ambiscope.core.export.data import load_dataset, load_members
from ambiscope.core.reference import REFERENCES, reference_name
from ambiscope.core.reference.human import compute_human, load_human, snapshot_human
from ambiscope.core.reference.prediction_scores import clip_scores
from ambiscope.core.scaling.strategies import CandidateSet, aggregate
from ambiscope.db import Prediction, Run, RunIn, Sample, Workspace

FAKE_STRATEGIES = ("single", "vote", "bon", "wbon", "verifier", "wverifier")


def add_fake_run(
    ws: Workspace,
    dataset: str,
    *,
    model: str = "fake/alm-7b",
    n: int = 8,
    quality: float = 0.7,
    invalid: float = 0.1,
    seed: int = 0,
    name: str | None = None,
    strategies: tuple[str, ...] = FAKE_STRATEGIES,
) -> Run:
    """A run whose candidates track the human distributions with the given quality."""
    ds = ws.get_dataset(dataset)
    human = load_human(ws, ds)
    rng = np.random.default_rng(seed)
    run = ws.add_run(
        RunIn(
            dataset_id=ds.id,
            model=model,
            backend="fake",
            mode="label",
            n=n,
            name=name,
            temperature=0.8,
            seed=seed,
            config={"fake": True, "quality": quality, "versions": {"ambiscope": "test"}},
        )
    )
    k = ds.k
    samples, predictions = [], []
    for i, clip_id in enumerate(human.clip_ids):
        p = human.dist[i] if human.valid[i] else np.full(k, 1 / k)
        mix = quality * p + (1 - quality) / k
        answers = rng.choice(k, size=n, p=mix)
        valid = rng.random(n) >= invalid
        valid[0] = True
        dists = np.eye(k)[answers] * valid[:, None]
        logprob = np.log(mix[answers]) + rng.normal(0, 0.1, n)
        verifier = np.clip(mix[answers] + rng.normal(0, 0.05, n), 0.01, 1.0)
        cs = CandidateSet(dists, valid, logprob, verifier)
        for j in range(n):
            samples.append(
                Sample(
                    run.id,
                    int(clip_id),
                    j,
                    raw_text=ds.label_set[answers[j]] if valid[j] else "hmm?",
                    label=ds.label_set[answers[j]] if valid[j] else None,
                    distribution=dists[j] if valid[j] else None,
                    logprob=float(2 * logprob[j]),
                    logprob_norm=float(logprob[j]),
                    n_tokens=2,
                    verifier_score=float(verifier[j]),
                    valid=bool(valid[j]),
                    error=None if valid[j] else "unparseable",
                )
            )
        for strategy, dist in aggregate(cs, strategies).items():
            js, bc, agree = clip_scores(
                human.dist[i] if human.valid[i] else None, int(human.majority[i]), dist
            )
            predictions.append(
                Prediction(
                    run.id,
                    strategy,
                    int(clip_id),
                    dist,
                    ds.label_set[int(np.argmax(dist))],
                    None,
                    js,
                    bc,
                    agree,
                )
            )
    with ws.transaction():
        ws.add_samples(samples)
        ws.add_predictions(predictions)
        for clip_id in human.clip_ids:
            ws.set_run_clip(run.id, int(clip_id), "done")
    return run


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo workspace (60 real WAV clips) with two fake runs, built once per session."""
    path = tmp_path_factory.mktemp("export-template") / "ws.db"
    build_demo(path, DemoSpec(n_clips=60, seed=3))
    with Workspace.open(path) as ws:
        add_fake_run(ws, "demo", model="fake/good", quality=0.8, seed=1, name="good")
        add_fake_run(ws, "demo", model="fake/poor", quality=0.3, seed=2, name="poor")
    return path


@pytest.fixture
def demo_db(demo_template: Path, tmp_path: Path) -> Path:
    """A private copy of the template workspace (audio shared, read-only)."""
    target = tmp_path / "ws.db"
    shutil.copyfile(demo_template, target)
    return target


# ----------------------------------------------------------------------------- tests
def test_reference_names_come_from_the_registry() -> None:
    assert REFERENCES.names() == ("human", "synthetic", "combined", "human-ds", "human-mace")
    assert reference_name(None) == "human"
    assert reference_name("Combined") == "combined"
    with pytest.raises(ValueError, match="human, synthetic, combined"):
        reference_name("robots")


def test_in_memory_reference_matches_the_cache(demo_db: Path) -> None:
    with Workspace.open(demo_db) as ws:
        ds = ws.get_dataset("demo")
        cached = load_human(ws, ds)
        fresh = compute_human(ws, ds)
        assert np.array_equal(cached.clip_ids, fresh.clip_ids)
        assert np.allclose(cached.dist, fresh.dist, equal_nan=True, atol=1e-6)
        assert list(cached.ambiguity) == list(fresh.ambiguity)
        assert np.array_equal(cached.majority, fresh.majority)


def test_stale_cache_inside_snapshot_is_recomputed_not_written(demo_db: Path) -> None:
    with Workspace.open(demo_db) as ws:
        ds = ws.get_dataset("demo")
        load_human(ws, ds)
        ann = ws.ensure_annotators(ds.id, [("late-rater", "human")])["late-rater"]
        clip = ws.clips(ds.id)[0]
        from ambiscope.db import VoteIn

        ws.add_votes(ds.id, [VoteIn(clip.id, ann, "angry")])  # cache now stale
        before = ws.human_state(ds.id)
        with ws.snapshot():
            human, source = snapshot_human(ws, ds)
        assert source.startswith("votes")
        assert ws.human_state(ds.id) == before  # nothing written
        row = int(np.flatnonzero(human.clip_ids == clip.id)[0])
        assert human.dist[row][ds.label_set.index("angry")] > 0


def test_members_align_runs_with_the_reference(demo_db: Path) -> None:
    with Workspace.open(demo_db) as ws:
        ds = ws.get_dataset("demo")
        runs = ws.runs(ds.id)
        with ws.snapshot():
            data = load_dataset(ws, ds)
            members = load_members(ws, data, runs, ["vote", "single"])
        assert {(m.run.name, m.strategy) for m in members} == {
            ("good", "vote"),
            ("good", "single"),
            ("poor", "vote"),
            ("poor", "single"),
        }
        for m in members:
            assert np.allclose(m.Q.sum(axis=1), 1.0)
            assert np.all(np.diff(m.clip_ids) > 0)
            assert (m.n_candidates == 8).all()
            assert (m.n_invalid <= m.n_candidates).all()
            assert data.human.valid[m.rows].all()


def test_fast_prediction_read_matches_the_workspace_read(demo_db: Path) -> None:
    from ambiscope.core.export.data import _strategy_predictions

    with Workspace.open(demo_db) as ws:
        ids, dists = _strategy_predictions(ws, 1, "vote", 6)
        ref_ids, ref = ws.prediction_arrays(1, "vote", 6)
        assert np.array_equal(ids, ref_ids) and np.array_equal(dists, ref)
        # a malformed blob: the fast path notices the length and reads row by row
        ws.conn.execute(
            "UPDATE predictions SET distribution = x'00' WHERE run_id = 1 AND strategy = 'vote' "
            "AND clip_id = ?",
            (int(ids[3]),),
        )
        with pytest.raises(ValueError):
            _strategy_predictions(ws, 1, "vote", 6)
        empty_ids, empty = _strategy_predictions(ws, 1, "no-such-strategy", 6)
        assert empty_ids.size == 0 and empty.shape == (0, 6)
