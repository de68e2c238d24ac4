"""Annotator reliability (Dawid-Skene, MACE via crowd-kit) on simulated raters whose
confusion matrices are known, stored in a real workspace and read back as references.

The simulation: 300 clips with a known true label (prior 0.4/0.2/0.2/0.2 over four
labels), six raters: three good (90% correct, errors uniform), two noisy (60% correct)
and one spammer who answers `neutral` 70% of the time whatever was said. The spammer
skips every tenth clip, so `rater:` selects a strict subset. Everything is fitted once
per module (crowd-kit's MACE costs ~0.1 s per EM iteration).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ambiscope.core.browse.filters import FilterError
from ambiscope.core.browse.query import select_clip_ids
from ambiscope.core.evaluation import evaluate
from ambiscope.core.reference import REFERENCES
from ambiscope.core.reference.pooled import load_reference
from ambiscope.core.reference.reliability import (
    HUMAN_DS,
    HUMAN_MACE,
    UNRELIABLE_FLOOR,
    Fit,
    FitSettings,
    NoRaters,
    fit_dataset,
    rater_agreement,
    rater_report,
    rater_votes,
    reliability_record,
)
from ambiscope.db import ClipIn, Prediction, RunIn, Workspace
from ambiscope.tui.cli.main import main

LABELS = ("neutral", "happy", "sad", "angry")
K = len(LABELS)
PRIOR = np.array([0.4, 0.2, 0.2, 0.2])
N_CLIPS = 300
MACE_ITER = 10  # converged here (20 changes nothing above 0.02); ~0.1 s per iteration

# recovery tolerances: every confusion entry within ENTRY_TOL, each rater's mean absolute
# entry error within MEAN_TOL, each reliability within RELIABILITY_TOL. Entries come from
# ~60-120 clips per true label, so sampling noise alone is ~0.05 (a label mix-up is ~0.6)
ENTRY_TOL = 0.2
MEAN_TOL = 0.08
RELIABILITY_TOL = 0.1


def _confusion(correct: float) -> np.ndarray:
    matrix = np.full((K, K), (1 - correct) / (K - 1))
    np.fill_diagonal(matrix, correct)
    return matrix


SPAMMER = np.tile([0.7, 0.1, 0.1, 0.1], (K, 1))
TRUE_CONFUSION = [_confusion(0.9)] * 3 + [_confusion(0.6)] * 2 + [SPAMMER]
TRUE_DS_RELIABILITY = [0.9] * 3 + [0.6] * 2 + [float(PRIOR @ np.diag(SPAMMER))]  # 0.34
# MACE: P(correct) = theta + (1 - theta) xi_true with xi uniform -> theta = (acc - 1/K)/(1 - 1/K)
TRUE_COMPETENCE = [(0.9 - 0.25) / 0.75] * 3 + [(0.6 - 0.25) / 0.75] * 2 + [0.0]


@dataclass
class Sim:
    path: Path
    truth: np.ndarray  # true label per clip, clip order
    clip_ids: np.ndarray
    raters: list[int]  # annotator ids r0..r5
    fits: dict[str, Fit]
    run_id: int


def _votes(ws: Workspace, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[int]]:
    ds = ws.add_dataset("sim", "manifest", LABELS)
    ws.add_clips(ds.id, [ClipIn(f"c{i:03d}", split="test") for i in range(N_CLIPS)])
    ids = ws.clip_ids(ds.id)
    clip_ids = np.array([ids[f"c{i:03d}"] for i in range(N_CLIPS)])
    named = ws.ensure_annotators(ds.id, [(f"r{j}", "human") for j in range(6)])
    raters = [named[f"r{j}"] for j in range(6)]
    truth = rng.choice(K, size=N_CLIPS, p=PRIOR)
    rows = []
    for i in range(N_CLIPS):
        for j, matrix in enumerate(TRUE_CONFUSION):
            if j == 5 and i % 10 == 0:
                continue  # the spammer skips every tenth clip
            label = LABELS[int(rng.choice(K, p=matrix[truth[i]]))]
            rows.append((int(clip_ids[i]), raters[j], label, 0, 1.0, None))
    ws.add_vote_rows(ds.id, rows)
    return truth, clip_ids, raters


def _run(ws: Workspace, clip_ids: np.ndarray, truth: np.ndarray) -> int:
    """A stored run whose `vote` strategy puts 0.97 on the true label: a model that hears
    the truth sits closer to the reliability posteriors than to the raw votes."""
    ds = ws.get_dataset("sim")
    run = ws.add_run(RunIn(ds.id, "oracle", "transformers", "label", 1, name="oracle"))
    preds = []
    for clip, label in zip(clip_ids, truth, strict=True):
        dist = np.full(K, 0.01)
        dist[label] = 0.97
        preds.append(Prediction(run.id, "vote", int(clip), dist, LABELS[label]))
    ws.add_predictions(preds)
    return run.id


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    path = tmp_path_factory.mktemp("reliability") / "sim.db"
    rng = np.random.default_rng(7)
    with Workspace.open(path, create=True) as ws:
        truth, clip_ids, raters = _votes(ws, rng)
        run_id = _run(ws, clip_ids, truth)
        fits = fit_dataset(ws, "sim", ("ds", "mace"), FitSettings(max_iter=MACE_ITER))
    yield Sim(path, truth, clip_ids, raters, {f.model: f for f in fits}, run_id)


def _by_rater(fit: Fit, raters: list[int]) -> list[int]:
    return [list(fit.raters).index(r) for r in raters]


def _assert_recovered(estimated: np.ndarray, true: list[np.ndarray]) -> None:
    errors = np.abs(estimated - np.array(true))
    assert errors.max() < ENTRY_TOL, errors.max(axis=(1, 2))
    assert errors.mean(axis=(1, 2)).max() < MEAN_TOL, errors.mean(axis=(1, 2))


# ------------------------------------------------------------------- recovery
def test_dawid_skene_recovers_the_known_confusions(sim: Sim) -> None:
    fit = sim.fits["ds"]
    rows = _by_rater(fit, sim.raters)
    _assert_recovered(fit.confusion[rows], TRUE_CONFUSION)
    reliability = fit.reliability[rows]
    assert np.abs(reliability - TRUE_DS_RELIABILITY).max() < RELIABILITY_TOL, reliability
    assert min(reliability[:3]) > max(reliability[3:5]) > reliability[5]  # good > noisy > spam
    assert fit.summary["converged"]
    assert (fit.posterior.argmax(axis=1) == sim.truth).mean() > 0.95


def test_mace_recovers_competence_and_the_spammers_habit(sim: Sim) -> None:
    fit = sim.fits["mace"]
    rows = _by_rater(fit, sim.raters)
    competence = fit.reliability[rows]
    assert np.abs(competence - TRUE_COMPETENCE).max() < RELIABILITY_TOL, competence
    # MACE's confusion is theta I + (1 - theta) 1 xi^T: the spammer's is its habit on
    # every row (0.7 neutral), the others' the uniform-error matrices they were drawn from
    _assert_recovered(fit.confusion[rows], TRUE_CONFUSION)
    assert min(competence[:3]) > max(competence[3:5]) > competence[5]
    assert np.allclose(fit.confusion.sum(axis=2), 1.0)


def test_unanimous_clips_get_their_votes_as_posterior(sim: Sim) -> None:
    with Workspace.open(sim.path) as ws:
        rv = rater_votes(ws, ws.get_dataset("sim"))
    given: dict[int, set[int]] = {}
    for clip, label in zip(rv.clip_id.tolist(), rv.label.tolist(), strict=True):
        given.setdefault(clip, set()).add(label)
    agreed = {clip: labels.pop() for clip, labels in given.items() if len(labels) == 1}
    assert len(agreed) > 20
    for fit in sim.fits.values():
        rows = [i for i, c in enumerate(fit.clip_ids.tolist()) if c in agreed]
        votes = np.eye(K)[[agreed[int(fit.clip_ids[i])] for i in rows]]  # one-hot vote dist
        assert np.allclose(fit.posterior[rows], votes, atol=1e-3), fit.model
        assert np.allclose(fit.shift[rows], 0.0, atol=1e-3)


def test_leave_one_out_agreement_by_hand() -> None:
    from ambiscope.core.reference.reliability import RaterVotes

    # clip 1: a=0 b=0 c=1; clip 2: a=2 b=3 (tie among others counts); clip 3: c alone
    rv = RaterVotes(
        clip_id=np.array([1, 1, 1, 2, 2, 3]),
        rater=np.array([10, 11, 12, 10, 11, 12]),
        label=np.array([0, 0, 1, 2, 3, 1]),
        pooled=(),
        kinds=("human",),
    )
    assert rater_agreement(rv, K) == {10: (2, 0.5), 11: (2, 0.5), 12: (2, 0.0)}


# ------------------------------------------------------------------ storage
def test_stored_fit_round_trips_with_its_settings(sim: Sim) -> None:
    with Workspace.open(sim.path) as ws:
        ds = ws.get_dataset("sim")
        report = rater_report(ws, ds)
        record = reliability_record(ws, ds)
        _, dist, valid = HUMAN_DS.distributions(ws, ds)
    assert valid.all()
    assert np.allclose(dist, sim.fits["ds"].posterior, atol=1e-6)  # float32 blobs
    assert report.rows[-1].external_id == "r5" and report.rows[-1].n_votes == 270
    first = report.rows[0]
    assert first.reliability["ds"] == pytest.approx(
        sim.fits["ds"].reliability[list(sim.fits["ds"].raters).index(first.annotator_id)]
    )
    assert first.confusion["mace"].shape == (K, K)
    assert record["ds"]["settings"]["max_iter"] == record["mace"]["settings"]["max_iter"]
    assert record["mace"]["settings"]["max_iter"] == MACE_ITER
    assert record["ds"]["settings"]["tol"] == 1e-5
    assert record["mace"]["settings"]["seed"] == 0 and not record["mace"]["stale"]
    assert record["ds"]["settings"]["library"].startswith("crowd-kit ")


# --------------------------------------------------------------- references
def test_references_are_registered_and_used_by_compare_and_metrics(sim: Sim) -> None:
    assert REFERENCES.get("human-ds") is HUMAN_DS
    assert REFERENCES.get("human-mace") is HUMAN_MACE
    with Workspace.open(sim.path) as ws:
        human = evaluate(ws, "sim", by="none", reference="human")
        ds_rows = evaluate(ws, "sim", by="none", reference="human-ds")
        mace = load_reference(ws, "sim", "human-mace")
    # the oracle model is much closer to the reliability posterior than to raw votes
    assert ds_rows[0]["js"] < human[0]["js"]
    assert ds_rows[0]["accuracy"] > human[0]["accuracy"]
    assert mace.valid.all() and (mace.majority >= 0).all()
    runner = CliRunner()
    db = ["--db", str(sim.path)]
    out = runner.invoke(main, [*db, "compare", "--reference", "human-ds", "--by", "none"])
    assert out.exit_code == 0, out.output
    assert "vote" in out.output
    out = runner.invoke(
        main,
        [*db, "metrics", "--reference", "human-mace", "--bootstrap", "0", "--format", "json"],
    )
    assert out.exit_code == 0, out.output
    assert '"reference": "human-mace"' in out.output
    text = runner.invoke(main, [*db, "metrics", "--reference", "human-ds", "--bootstrap", "0"])
    assert "reference: human-ds, Dawid-Skene posterior" in text.output  # the table says so
    (dataset,) = json.loads(out.output)["provenance"]["datasets"]
    shown = runner.invoke(main, [*db, "reliability", "show", "-d", "sim"])
    listed = runner.invoke(main, [*db, "stats", "-d", "sim", "--raters"])
    assert shown.exit_code == listed.exit_code == 0, listed.output
    assert listed.output.endswith(shown.output) and "r5" in shown.output  # stats lists raters too
    as_json = json.loads(runner.invoke(main, [*db, "stats", "--raters", "--json"]).output)
    assert len(as_json["raters"]) == 1
    fits = dataset["reliability"]  # the settings behind human-ds / human-mace numbers
    assert fits["mace"]["settings"]["max_iter"] > 0 and fits["mace"]["stale"] is False
    assert set(fits) == {"ds", "mace"}


def test_a_stale_fit_is_reported_not_used(sim: Sim, tmp_path: Path) -> None:
    path = tmp_path / "stale.db"
    with Workspace.open(sim.path) as ws:
        ws.conn.execute("VACUUM INTO ?", (str(path),))
    with Workspace.open(path) as ws:
        ds = ws.get_dataset("sim")
        before = select_clip_ids(ws.conn, "unreliable", dataset_id=ds.id)
        assert before
        ws.add_vote_rows(ds.id, [(int(sim.clip_ids[0]), sim.raters[0], "sad", 0, 1.0, None)])
        with pytest.raises(ValueError, match=r"fit on dataset 'sim' is stale .*reliability fit"):
            load_reference(ws, ds, "human-ds")
        assert reliability_record(ws, ds)["ds"]["stale"]
        assert all(f["stale"] for f in rater_report(ws, ds).fits.values())
        assert select_clip_ids(ws.conn, "unreliable", dataset_id=ds.id) == []
    out = CliRunner().invoke(main, ["--db", str(path), "reliability", "show"])
    assert out.exit_code == 0 and "STALE" in out.output
    out = CliRunner().invoke(main, ["--db", str(path), "compare", "--reference", "human-ds"])
    assert out.exit_code == 1 and "is stale" in out.output


# ------------------------------------------------------------------ filters
def test_rater_and_unreliable_filter_terms(sim: Sim) -> None:
    fit = sim.fits["ds"]
    with Workspace.open(sim.path) as ws:
        conn = ws.conn
        spammer = select_clip_ids(conn, "rater:r5")
        skipped = select_clip_ids(conn, "-rater:r5")
        assert len(spammer) == 270 and len(skipped) == 30
        assert set(skipped) == {int(c) for i, c in enumerate(sim.clip_ids) if i % 10 == 0}
        with pytest.raises(FilterError, match=r"rater:r55: no clip has rater 'r55'; did you mean"):
            select_clip_ids(conn, "rater:r55")  # a typo is named, not an empty selection
        unreliable = select_clip_ids(conn, "unreliable")
    cut = max(float(np.quantile(fit.shift, 0.9)), UNRELIABLE_FLOOR)
    expected = {int(c) for c, s in zip(fit.clip_ids, fit.shift, strict=True) if s >= cut - 1e-9}
    assert set(unreliable) == expected
    assert 0 < len(unreliable) <= 0.15 * N_CLIPS  # the top decile (ties aside)


# --------------------------------------------------------------- rater-less
def test_pooled_counts_are_skipped_with_one_line(tmp_path: Path) -> None:
    """CREMA-D's shape: one anonymous crowd annotator per modality, weighted counts."""
    path = tmp_path / "crowd.db"
    with Workspace.open(path, create=True) as ws:
        ds = ws.add_dataset("crema", "crema-d", LABELS)
        ws.add_clips(ds.id, [ClipIn("1001_DFA_ANG_XX"), ClipIn("1001_DFA_HAP_XX")])
        ids = ws.clip_ids(ds.id)
        crowd = ws.ensure_annotators(ds.id, [("crowd-A", "human")])["crowd-A"]
        ws.add_vote_rows(
            ds.id,
            [
                (ids["1001_DFA_ANG_XX"], crowd, "angry", 0, 7.0, None),
                (ids["1001_DFA_ANG_XX"], crowd, "neutral", 0, 2.0, None),
                (ids["1001_DFA_HAP_XX"], crowd, "happy", 0, 1.0, None),
            ],
        )
        with pytest.raises(NoRaters, match="anonymous pooled counts \\(crowd-A\\), no rater ids"):
            fit_dataset(ws, ds)
    out = CliRunner().invoke(main, ["--db", str(path), "reliability", "fit"])
    assert out.exit_code == 0, out.output
    assert out.output.strip().splitlines() == [
        "dataset 'crema': reliability skipped: its votes are anonymous pooled counts "
        "(crowd-A), no rater ids"
    ]
    out = CliRunner().invoke(main, ["--db", str(path), "reliability", "show"])
    assert "reliability skipped" in out.output
