"""Model-vs-human metric tables over stored predictions (`compare`, later `metrics`, TUI).

Rows align each strategy's predicted distributions with the dataset's human reference on
the clips that have both, and break the metrics down by a clip attribute (ambiguity level
by default, as the papers do). The invalid-output rate comes from the run's stored
candidates, per clip, so it is broken down and bootstrapped like the other metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ambiscope.core.metrics.functions import HIGHER_IS_BETTER, metric_table
from ambiscope.core.reference.human import HumanData, load_human
from ambiscope.db import Dataset, Run, Workspace

GROUPINGS = ("ambiguity", "split", "gender", "speaker", "none")
LEVEL_ORDER = ["low", "medium", "high"]
SUMMARY_METRICS = ("js", "bc", "r2_pearson", "accuracy", "macro_f1", "ece", "invalid_rate")


@dataclass(frozen=True, eq=False)
class Aligned:
    """Human and model distributions on the clips both cover, plus grouping columns."""

    clip_ids: np.ndarray
    human: np.ndarray
    model: np.ndarray
    n_invalid: np.ndarray
    n_candidates: np.ndarray
    groups: dict[str, np.ndarray]


def _clip_column(ws: Workspace, ds: Dataset, column: str, clip_ids: np.ndarray) -> np.ndarray:
    values = dict(
        ws.conn.execute(
            f"SELECT id, coalesce({column}, '') FROM clips WHERE dataset_id = ?", (ds.id,)
        ).fetchall()
    )
    return np.array([values.get(int(c), "") for c in clip_ids], dtype=object)


def _candidate_counts(ws: Workspace, run_id: int) -> dict[int, tuple[int, int]]:
    rows = ws.conn.execute(
        "SELECT clip_id, sum(1 - valid), count(*) FROM samples WHERE run_id = ? GROUP BY clip_id",
        (run_id,),
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def align(ws: Workspace, human: HumanData, run: Run, strategy: str) -> Aligned:
    """Clips with both a human distribution and this strategy's prediction."""
    ds = human.dataset
    clip_ids, dists = ws.prediction_arrays(run.id, strategy, ds.k)
    index = {int(c): i for i, c in enumerate(human.clip_ids)}
    rows = np.array([index.get(int(c), -1) for c in clip_ids], dtype=np.int64)
    keep = rows >= 0
    keep[keep] &= human.valid[rows[keep]]
    rows, clip_ids, dists = rows[keep], clip_ids[keep], dists[keep]
    counts = _candidate_counts(ws, run.id)
    n_invalid = np.array([counts.get(int(c), (0, 0))[0] for c in clip_ids], dtype=float)
    n_cands = np.array([counts.get(int(c), (0, 0))[1] for c in clip_ids], dtype=float)
    groups = {
        "ambiguity": human.ambiguity[rows],
        "split": _clip_column(ws, ds, "split", clip_ids),
        "gender": _clip_column(ws, ds, "gender", clip_ids),
        "speaker": _clip_column(ws, ds, "speaker", clip_ids),
    }
    return Aligned(clip_ids, human.dist[rows], dists, n_invalid, n_cands, groups)


def evaluate(
    ws: Workspace,
    dataset: str | int,
    *,
    runs: Sequence[int] | None = None,
    strategies: Sequence[str] | None = None,
    by: str = "ambiguity",
    bootstrap: int = 0,
    seed: int = 0,
    reference: str = "human",
) -> list[dict[str, Any]]:
    """One row per (run, strategy, group) with every metric (and CIs when bootstrapping).

    `reference` picks what the model is compared with: the human votes, the synthetic
    raters' votes, or both pooled (core/synthetic.py); ambiguity levels stay the human ones.
    """
    if by not in GROUPINGS:
        raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    ds = ws.get_dataset(dataset)
    human = load_human(ws, ds)
    if reference != "human":
        from ambiscope.core.synthetic.raters import reference_human_data

        human = reference_human_data(ws, ds, reference, human=human)
    selected = [ws.get_run(r) for r in runs] if runs else ws.runs(ds.id)
    return evaluate_human(
        ws, human, selected, strategies=strategies, by=by, bootstrap=bootstrap, seed=seed
    )


def evaluate_human(
    ws: Workspace,
    human: HumanData,
    runs: Sequence[Run],
    *,
    strategies: Sequence[str] | None = None,
    by: str = "ambiguity",
    bootstrap: int = 0,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> list[dict[str, Any]]:
    """`evaluate` against an already loaded reference (the TUI passes its own, read-only).

    Stops early, returning the rows so far, when `should_stop()` turns true.
    """
    ds = human.dataset
    out: list[dict[str, Any]] = []
    for run in runs:
        if run.dataset_id != ds.id:
            raise ValueError(f"run {run.id} belongs to another dataset than {ds.name!r}")
        for strategy in strategies or ws.strategies(run.id):
            if should_stop is not None and should_stop():
                return out
            data = align(ws, human, run, strategy)
            if not len(data.clip_ids):
                continue
            groups = None if by == "none" else data.groups[by].astype(str)
            order = LEVEL_ORDER if by == "ambiguity" else None
            has_cands = bool(data.n_candidates.sum())
            table = metric_table(
                data.human,
                data.model,
                groups,
                bootstrap=bootstrap,
                seed=seed,
                n_invalid=data.n_invalid if has_cands else None,
                n_candidates=data.n_candidates if has_cands else None,
                order=order,
            )
            for row in table:
                out.append(
                    {
                        "dataset": ds.name,
                        "run": run.id,
                        "run_label": run.label,
                        "model": run.model,
                        "strategy": strategy,
                        **row,
                    }
                )
    return out


def format_table(rows: list[dict[str, Any]], metrics: Sequence[str] = SUMMARY_METRICS) -> str:
    """A fixed-width text table; best value per metric within each group is starred."""
    if not rows:
        return "no predictions to compare yet: run `ambiscope sample` first"
    best: dict[tuple[Any, str], float] = {}
    for row in rows:
        for m in metrics:
            value = row.get(m)
            if value is None or np.isnan(value):
                continue
            key = (row["group"], m)
            better = max if HIGHER_IS_BETTER.get(m, True) else min
            best[key] = value if key not in best else better(best[key], value)
    head = f"{'run':<18} {'strategy':<10} {'group':<8} {'n':>6} " + " ".join(
        f"{m:>12}" for m in metrics
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = []
        for m in metrics:
            value = row.get(m)
            if value is None or np.isnan(value):
                cells.append(f"{'n/a':>12}")
                continue
            star = "*" if best.get((row["group"], m)) == value else " "
            cells.append(f"{value:>11.3f}{star}")
        lines.append(
            f"{str(row['run_label'])[:18]:<18} {row['strategy']:<10} "
            f"{str(row['group'])[:8]:<8} {row['n']:>6} " + " ".join(cells)
        )
    return "\n".join(lines)
