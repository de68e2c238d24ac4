"""N-scaling curves: how a metric changes with the number of candidates a strategy sees.

The papers' central plot: is it worth sampling N = 16 answers instead of 1? Strategies are
pure functions of stored candidates (core/scaling/strategies.py), so the curve needs no model:
for n = 1, 2, 4, ... N the first n stored candidates of each clip (`subsample`, nested and
deterministic) are re-aggregated and compared with the human distributions. It runs per
clip in Python, so it uses a seeded random sample of at most `max_clips` clips per run;
the sample size is reported with the curve. Which strategies can be scaled (`scalable`)
and which are plotted by default (`default_curve`) is declared with each strategy.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ambiscope.core.export.data import MemberData
from ambiscope.core.metrics.functions import bhattacharyya, js_divergence
from ambiscope.core.scaling.strategies import (
    CandidateSet,
    aggregate,
    scalable_strategies,
    subsample,
)
from ambiscope.db import Run, Workspace, codec

DEFAULT_MAX_CLIPS = 200


@dataclass
class ScalingCurve:
    """One run x strategy: metric means (over clips the strategy could answer) per n."""

    dataset: str
    run: int
    run_label: str
    strategy: str
    sizes: list[int] = field(default_factory=list)
    js: list[float] = field(default_factory=list)
    bc: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    n_clips: list[int] = field(default_factory=list)


@dataclass
class ScalingInput:
    """What one run's curves need, read inside the export's snapshot."""

    run: Run
    dataset: str
    labels: tuple[str, ...]
    P: np.ndarray  # (n_clips, K) human distributions of the sampled clips
    sets: list[CandidateSet]


def scaling_sizes(n_max: int) -> list[int]:
    """1, 2, 4, ... below n_max, then n_max itself."""
    sizes, n = [], 1
    while n < n_max:
        sizes.append(n)
        n *= 2
    return [*sizes, n_max] if n_max >= 1 else []


def read_scaling_input(
    ws: Workspace, member: MemberData, *, max_clips: int, seed: int
) -> ScalingInput | None:
    """Sample clips of the member's run and read their candidates (inside a snapshot)."""
    rows = member.rows
    if len(rows) > max_clips:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_clips, replace=False))
    clip_ids = member.data.human.clip_ids[rows]
    by_clip: dict[int, list[tuple]] = defaultdict(list)
    for row in ws.conn.execute(
        "SELECT clip_id, distribution, logprob_norm, verifier_score, valid FROM samples "
        "WHERE run_id = ? AND clip_id IN (SELECT value FROM json_each(?)) ORDER BY clip_id, idx",
        (member.run.id, json.dumps([int(c) for c in clip_ids])),
    ):
        by_clip[row[0]].append(row[1:])
    k = member.data.dataset.k
    keep, sets = [], []
    for i, clip_id in enumerate(clip_ids):
        cands = by_clip.get(int(clip_id))
        if cands:
            keep.append(i)
            sets.append(_candidate_set(cands, k))
    if not sets:
        return None
    ds = member.data.dataset
    return ScalingInput(member.run, ds.name, ds.label_set, member.data.human.dist[rows[keep]], sets)


def _candidate_set(rows: Sequence[tuple], k: int) -> CandidateSet:
    dists = np.zeros((len(rows), k))
    valid = np.zeros(len(rows), dtype=bool)
    for i, (blob, _, _, ok) in enumerate(rows):
        dist = codec.decode_dist(blob)
        if ok and dist is not None and dist.shape == (k,) and dist.sum() > 0:
            dists[i], valid[i] = dist / dist.sum(), True
    logprob = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=float)
    verifier = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=float)
    return CandidateSet(dists, valid, logprob, verifier)


def scaling_curves(data: ScalingInput, strategies: Sequence[str]) -> list[ScalingCurve]:
    """Curves for the strategies that this run's candidates support (others are skipped)."""
    scalable = scalable_strategies()
    unknown = [s for s in strategies if s not in scalable]
    if unknown:
        raise ValueError(
            f"cannot scale {', '.join(unknown)} (N-dependent strategies: {', '.join(scalable)})"
        )
    n_max = max(cs.n for cs in data.sets)
    curves = {s: ScalingCurve(data.dataset, data.run.id, data.run.label, s) for s in strategies}
    k = len(data.labels)
    for n in scaling_sizes(n_max):
        Q = {s: np.full((len(data.sets), k), np.nan) for s in strategies}
        for i, cs in enumerate(data.sets):
            for name, dist in aggregate(subsample(cs, n), strategies).items():
                Q[name][i] = dist
        for name, q in Q.items():
            ok = ~np.isnan(q).any(axis=1)
            if not ok.any():
                continue
            curve = curves[name]
            P = data.P[ok]
            curve.sizes.append(n)
            curve.js.append(float(js_divergence(P, q[ok]).mean()))
            curve.bc.append(float(bhattacharyya(P, q[ok]).mean()))
            curve.accuracy.append(float(np.mean(P.argmax(axis=1) == q[ok].argmax(axis=1))))
            curve.n_clips.append(int(ok.sum()))
    return [c for c in curves.values() if c.sizes]
