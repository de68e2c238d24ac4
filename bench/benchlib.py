"""What several bench scripts share: simulated crowd votes, the peak-RSS reading, a tiny
model beside a demo workspace, and the target lines every bench prints.

Imported as `from benchlib import ...`: a script run as `python bench/NAME.py` has bench/
first on sys.path. The package itself comes from the installed project (`make install`).
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ambiscope.db import VoteIn, Workspace

RATER_POOL = 5000


def simulated_votes(
    n_clips: int, votes_per_clip: float, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clip index, label index, rater index) per vote, shaped like a crowd-sourced corpus.

    Raters per clip ~ 1 + Poisson(votes_per_clip - 1); each clip's labels come from its
    own Dirichlet-like draw with concentration 0.1, 0.5 or 2 (unanimous, mixed and split
    clips all occur); raters are distinct within a clip, drawn from a pool of 5000.
    """
    n_raters = 1 + rng.poisson(votes_per_clip - 1, size=n_clips)
    clip_idx = np.repeat(np.arange(n_clips), n_raters)
    concentration = rng.choice([0.1, 0.5, 2.0], size=n_clips)
    probs = rng.gamma(concentration[:, None], size=(n_clips, k))
    probs /= probs.sum(axis=1, keepdims=True)
    cum = probs.cumsum(axis=1)[clip_idx]
    labels = (rng.random(len(clip_idx))[:, None] > cum).sum(axis=1).clip(0, k - 1)
    start = rng.integers(0, RATER_POOL, size=n_clips)[clip_idx]
    within = np.arange(len(clip_idx)) - np.repeat(np.cumsum(n_raters) - n_raters, n_raters)
    return clip_idx, labels, (start + within) % RATER_POOL


def add_simulated_votes(
    ws: Workspace,
    dataset_id: int,
    clip_ids: np.ndarray,
    labels: tuple[str, ...],
    votes: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Write `simulated_votes` output: raters W00000..W04999 as human annotators."""
    clip_idx, label_idx, rater_idx = votes
    raters = ws.ensure_annotators(dataset_id, [(f"W{r:05d}", "human") for r in range(RATER_POOL)])
    rater_ids = np.array([raters[f"W{r:05d}"] for r in range(RATER_POOL)])
    names = np.array(labels, dtype=object)
    ws.add_votes(
        dataset_id,
        map(
            VoteIn,
            clip_ids[clip_idx].tolist(),
            rater_ids[rater_idx].tolist(),
            names[label_idx].tolist(),
        ),
    )


def peak_rss_mb() -> float:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def tiny_workbench(work: Path, clips: int) -> tuple[Path, Path]:
    """(a tiny random-weight checkpoint, a demo workspace of `clips` clips) under `work`;
    each timed round copies the workspace so every round starts from the same state."""
    from ambiscope.core.alm.tiny import build_tiny_model
    from ambiscope.core.demo import DemoSpec, build_demo

    model = build_tiny_model(work / "tiny")
    base = work / "base.db"
    build_demo(base, DemoSpec(n_clips=clips, seed=3))
    return model, base


def print_targets(summary: Mapping[str, float], targets: Mapping[str, tuple[str, float]]) -> None:
    """One line per target: the measured median, the target and `ok` or `MISSES`."""
    width = max(map(len, targets))
    for key, (op, target) in targets.items():
        ok = summary[key] >= target if op == ">=" else summary[key] <= target
        verdict = "ok" if ok else "MISSES"
        print(f"{key:>{width}}: {summary[key]:.2f} (target {op} {target:g}) {verdict}")
