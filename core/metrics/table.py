"""Per-group metric tables: one row per group (ambiguity level, split, ...) plus `all`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

from ambiscope.core.conventions import Conventions
from ambiscope.core.metrics.resampling import (
    bootstrap_resamples,
    check_bootstrap_args,
    group_seed,
    make_clips,
    percentile_ci,
    point_values,
    subset_counts,
)
from ambiscope.core.metrics.spec import DEFAULT_EPS, Clips


def _plain(value: object) -> object:
    """numpy scalar -> Python scalar, so rows serialise to JSON/CSV cleanly."""
    return value.item() if isinstance(value, np.generic) else value


def _group_masks(
    groups: npt.ArrayLike, n: int, order: Sequence[object] | None
) -> Iterator[tuple[object, npt.NDArray[np.bool_]]]:
    g = np.asarray(groups)
    if g.dtype == object:
        g = g.astype(str)
    if g.shape != (n,):
        raise ValueError(f"groups must have shape ({n},), got {g.shape}")
    values = np.unique(g) if order is None else order
    for value in values:
        mask = g == value
        if mask.any():
            yield _plain(value), mask


def _table_row(
    label: object, clips: Clips, *, bootstrap: int, rng: np.random.Generator, alpha: float
) -> dict[str, object]:
    row: dict[str, object] = {"group": label}
    row.update(point_values(clips))
    if bootstrap > 0:
        res = bootstrap_resamples(clips, bootstrap, rng)
        for m, values in res.items():
            row[f"{m}_lo"], row[f"{m}_hi"] = percentile_ci(values, alpha)
    return row


def metric_table(
    P: npt.ArrayLike,
    Q: npt.ArrayLike,
    groups: npt.ArrayLike | None = None,
    *,
    bootstrap: int = 0,
    seed: int = 0,
    alpha: float = 0.05,
    n_invalid: npt.ArrayLike | None = None,
    n_candidates: npt.ArrayLike | None = None,
    eps: float = DEFAULT_EPS,
    order: Sequence[object] | None = None,
    all_label: str = "all",
    conventions: Conventions | None = None,
) -> list[dict[str, object]]:
    """One row per group value plus a final ``all_label`` row over every clip.

    ``groups`` is a per-clip array (ambiguity level, dataset, split, ...). Rows appear in
    ``order`` when given (values absent from ``groups`` are omitted), otherwise in sorted
    order. Each row holds ``group``, the info keys (including ``n``) and every metric;
    with ``bootstrap > 0`` also ``<metric>_lo`` / ``<metric>_hi`` percentile CIs from that many
    resamples *within the group*. Each group's generator depends only on ``seed`` and the
    group's name, and the ``all`` row uses ``seed`` itself, so it matches `bootstrap_ci`
    with the same seed. Scalar candidate totals only reach the ``all`` row; per-clip counts
    are split by group. ``conventions`` sets the R² and ECE edge rules (default: ambiscope).
    """
    if bootstrap > 0:
        check_bootstrap_args(bootstrap, alpha)
    clips = make_clips(
        P, Q, n_invalid=n_invalid, n_candidates=n_candidates, eps=eps, conventions=conventions
    )
    rows = []
    if groups is not None:
        for label, mask in _group_masks(groups, clips.n, order):
            counts = subset_counts(clips.counts, mask)
            sub = Clips(clips.P[mask], clips.Q[mask], clips.eps, counts, clips.conventions)
            rng = group_seed(seed, label)
            rows.append(_table_row(label, sub, bootstrap=bootstrap, rng=rng, alpha=alpha))
    rng = np.random.default_rng(seed)
    rows.append(_table_row(all_label, clips, bootstrap=bootstrap, rng=rng, alpha=alpha))
    return rows
