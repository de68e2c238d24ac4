"""Model-vs-human metric tables over stored predictions (`compare`, later `metrics`, TUI).

Rows align each strategy's predicted distributions with a reference on the clips that have
both (`export.data.load_members`, the same alignment the metric exports use) and break the
metrics down by a clip attribute (ambiguity level by default, as the papers do). The
invalid-output rate comes from the run's stored candidates, per clip, so it is broken down
and bootstrapped like the other metrics.

Every table is computed under one `Conventions` (the workspace default unless a command
names a preset or overrides): they decide the human reference (vote weighting, ambiguity
levels; `human_options`) and the metrics' edge rules (R², ECE bins), and
`conventions_line` names them under the table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ambiscope.core.conventions import Conventions, resolve
from ambiscope.core.export.data import dataset_data, load_members
from ambiscope.core.metrics import METRICS
from ambiscope.core.metrics.table import metric_table
from ambiscope.core.reference.human import HumanData, human_options, load_human
from ambiscope.core.reference.pooled import load_reference
from ambiscope.db import Run, Workspace

GROUPINGS = ("ambiguity", "split", "gender", "speaker", "none")
LEVEL_ORDER = ["low", "medium", "high"]
SUMMARY_METRICS = ("js", "bc", "r2_pearson", "accuracy", "macro_f1", "ece", "invalid_rate")


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
    conventions: Conventions | None = None,
) -> list[dict[str, Any]]:
    """One row per (run, strategy, group) with every metric (and CIs when bootstrapping).

    `reference` picks what the model is compared with: the human votes, the synthetic
    raters' votes, or both pooled (`ambiscope.core.reference.REFERENCES`); ambiguity levels
    stay the human ones, computed under `conventions` (default: the workspace's).
    """
    if by not in GROUPINGS:
        raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    conv = conventions or resolve(ws.get_meta)
    ds = ws.get_dataset(dataset)
    human = load_human(ws, ds, human_options(conv, ds))
    compared = load_reference(ws, ds, reference, human=human)
    selected = [ws.get_run(r) for r in runs] if runs else ws.runs(ds.id)
    return evaluate_human(
        ws,
        compared,
        selected,
        strategies=strategies,
        by=by,
        bootstrap=bootstrap,
        seed=seed,
        conventions=conv,
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
    conventions: Conventions | None = None,
) -> list[dict[str, Any]]:
    """`evaluate` against an already loaded reference (the TUI passes its own, read-only).

    The metrics follow `conventions`' edge rules (default: the workspace's, so the TUI's
    table agrees with `ambiscope compare`). Stops early, returning the rows so far, when
    `should_stop()` turns true.
    """
    conv = conventions or resolve(ws.get_meta)
    ds = human.dataset
    data = dataset_data(ws, human, "")
    out: list[dict[str, Any]] = []
    for run in runs:
        if run.dataset_id != ds.id:
            raise ValueError(f"run {run.id} belongs to another dataset than {ds.name!r}")
        for strategy in strategies or ws.strategies(run.id):
            if should_stop is not None and should_stop():
                return out
            members = load_members(ws, data, [run], [strategy])
            if not members:
                continue
            member = members[0]
            has_cands = bool(member.n_candidates.sum())
            table = metric_table(
                member.P,
                member.Q,
                data.groups(by, member.rows),
                bootstrap=bootstrap,
                seed=seed,
                n_invalid=member.n_invalid if has_cands else None,
                n_candidates=member.n_candidates if has_cands else None,
                order=LEVEL_ORDER if by == "ambiguity" else None,
                conventions=conv,
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


def conventions_line(conventions: Conventions) -> str:
    """The line naming the conventions a table was computed under."""
    return f"conventions: {conventions.label()}"


def format_table(rows: list[dict[str, Any]], metrics: Sequence[str] = SUMMARY_METRICS) -> str:
    """A fixed-width text table; best value per metric within each group is starred.

    Strategies computed from approximations (``likelihood~``) are never starred, and a
    line under the table says what the ``~`` means when one is shown.
    """
    if not rows:
        return "no predictions to compare yet: run `ambiscope sample` first"
    from ambiscope.core.scaling.strategies import approximate_strategies

    approximate = approximate_strategies()
    best: dict[tuple[Any, str], float] = {}
    for row in rows:
        if row["strategy"] in approximate:
            continue
        for m in metrics:
            value = row.get(m)
            if value is None or np.isnan(value):
                continue
            key = (row["group"], m)
            better = max if METRICS.get(m).higher_is_better else min
            best[key] = value if key not in best else better(best[key], value)
    head = f"{'run':<18} {'strategy':<11} {'group':<8} {'n':>6} " + " ".join(
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
            starred = row["strategy"] not in approximate
            star = "*" if starred and best.get((row["group"], m)) == value else " "
            cells.append(f"{value:>11.3f}{star}")
        lines.append(
            f"{str(row['run_label'])[:18]:<18} {row['strategy']:<11} "
            f"{str(row['group'])[:8]:<8} {row['n']:>6} " + " ".join(cells)
        )
    if any(row["strategy"] in approximate for row in rows):
        lines.append("~ = computed from approximate scores (not exact; never starred)")
    return "\n".join(lines)
