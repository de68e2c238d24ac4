"""Keep each stored prediction's JS / BC / agreement with the human reference current.

The TUI sorts and filters 150k clips by "JS to human" and "model disagrees" in SQL, so
those numbers live in the predictions table. They depend on the human distribution, so
they are recomputed, vectorised per (run, strategy), whenever the human cache is
refreshed, and computed directly when a run writes a new prediction.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ambiscope.core.metrics.functions import bhattacharyya, js_divergence
from ambiscope.db import Dataset, Workspace


class ScoredReference(Protocol):
    """What rescoring reads of a reference (`reference.human.HumanData` is one).

    A protocol rather than an import of HumanData: the human cache calls this module
    after every refresh, so this module must not depend on it.
    """

    @property
    def dataset(self) -> Dataset: ...
    @property
    def clip_ids(self) -> np.ndarray: ...
    @property
    def dist(self) -> np.ndarray: ...
    @property
    def valid(self) -> np.ndarray: ...
    @property
    def majority(self) -> np.ndarray: ...


def clip_scores(
    human_dist: np.ndarray | None, human_majority: int, model_dist: np.ndarray
) -> tuple[float | None, float | None, bool | None]:
    """(js, bc, agree) of one prediction; all None when the clip has no human votes."""
    if human_dist is None or np.isnan(human_dist).any():
        return None, None, None
    p, q = human_dist[None, :], model_dist[None, :]
    js = float(js_divergence(p, q)[0])
    bc = float(bhattacharyya(p, q)[0])
    return js, bc, bool(int(np.argmax(model_dist)) == human_majority)


class ReferenceScorer:
    """Scores new predictions of one dataset against a reference loaded once per run."""

    def __init__(self, reference: ScoredReference) -> None:
        self.reference = reference
        self._row = {int(c): i for i, c in enumerate(reference.clip_ids)}

    def score(
        self, clip_id: int, model_dist: np.ndarray
    ) -> tuple[float | None, float | None, bool | None]:
        """(js, bc, agree) of a prediction for `clip_id` (None for a clip without votes)."""
        row = self._row.get(int(clip_id))
        if row is None:
            return None, None, None
        majority = int(self.reference.majority[row])
        return clip_scores(self.reference.dist[row], majority, model_dist)


def rescore_dataset(ws: Workspace, human: ScoredReference) -> int:
    """Recompute js/bc/agree for every prediction of every run on the dataset."""
    k = human.dataset.k
    index = {int(c): i for i, c in enumerate(human.clip_ids)}
    updated = 0
    for run in ws.runs(human.dataset.id):
        for strategy in ws.strategies(run.id):
            clip_ids, dists = ws.prediction_arrays(run.id, strategy, k)
            if not len(clip_ids):
                continue
            rows = np.array([index[int(c)] for c in clip_ids])
            p = human.dist[rows]
            ok = human.valid[rows]
            js = np.full(len(rows), np.nan)
            bc = np.full(len(rows), np.nan)
            if ok.any():
                q = dists[ok] / dists[ok].sum(axis=1, keepdims=True)
                js[ok] = js_divergence(p[ok], q)
                bc[ok] = bhattacharyya(p[ok], q)
            agree = np.argmax(dists, axis=1) == human.majority[rows]
            ws.update_prediction_scores(
                (
                    None if not ok[i] else float(js[i]),
                    None if not ok[i] else float(bc[i]),
                    None if not ok[i] else int(agree[i]),
                    run.id,
                    strategy,
                    int(clip_ids[i]),
                )
                for i in range(len(rows))
            )
            updated += len(rows)
    return updated
