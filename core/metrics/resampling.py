"""Every declared metric at once, with percentile bootstrap CIs and paired comparisons.

The engine behind `bootstrap_ci`, `paired_bootstrap` and `metric_table`: the statistics
that the metrics declare (ambiscope.core.metrics.spec) sit side by side in one float64
per-clip matrix `V`; a chunk of B bootstrap resamples is a (B, n) count matrix `C`, so
`C @ V` gives every metric's sums for every resample at once and each metric's
`from_sums` turns them into values (Spearman, which is no function of sums, gets `C`
itself). With `C` all ones the engine reproduces `compute_all`; with counts it equals
`compute_all` on the explicitly resampled clips (the tests check both).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ambiscope.core.conventions import Conventions
from ambiscope.core.metrics import METRICS
from ambiscope.core.metrics.spec import (
    DEFAULT_EPS,
    Clips,
    Counts,
    FloatArray,
    Metric,
    Resampler,
    clip_values,
    one_hot,
)
from ambiscope.core.metrics.validation import check_counts, check_eps, prepare

_CHUNK_ELEMENTS = 8_000_000  # resamples per chunk ~ this / n_clips (bounds peak memory)


def metrics() -> tuple[Metric, ...]:
    """Every declared metric, in report order."""
    return tuple(METRICS.get(name) for name in METRICS.names())


def info_keys() -> tuple[str, ...]:
    """Non-metric keys `compute_all` adds: clip count, KL smoothing epsilon, and for each
    per-clip metric that can be undefined on a clip how many clips its mean skipped."""
    return ("n", "kl_eps", *(f"{m.name}_skipped" for m in metrics() if m.skips))


def point_values(clips: Clips) -> dict[str, float]:
    """Every metric on validated clips, plus the `info_keys`."""
    out: dict[str, float] = {m.name: m.point(clips) for m in metrics()}
    for m in metrics():
        if m.skips and m.per_clip is not None:
            values = clip_values(m.name, m.per_clip, clips)
            out[f"{m.name}_skipped"] = int(np.isnan(values).sum())
    return {**out, "n": clips.n, "kl_eps": clips.eps}


def make_clips(
    P: npt.ArrayLike,
    Q: npt.ArrayLike,
    *,
    n_invalid: npt.ArrayLike | None = None,
    n_candidates: npt.ArrayLike | None = None,
    eps: float = DEFAULT_EPS,
    conventions: Conventions | None = None,
) -> Clips:
    """Validate inputs (shapes, values, row sums, counts, eps) into `Clips` evaluated under
    ``conventions`` (default: the ambiscope preset)."""
    Pm, Qm = prepare(P, Q)
    counts = check_counts(n_invalid, n_candidates, len(Pm))
    return Clips(Pm, Qm, check_eps(eps), counts, conventions or Conventions())


def compute_all(
    P: npt.ArrayLike,
    Q: npt.ArrayLike,
    *,
    n_invalid: npt.ArrayLike | None = None,
    n_candidates: npt.ArrayLike | None = None,
    eps: float = DEFAULT_EPS,
    conventions: Conventions | None = None,
) -> dict[str, float]:
    """Every metric in `METRICS` (means over clips for per-clip metrics) plus `info_keys()`.

    ``n_invalid`` / ``n_candidates`` are totals or per-clip arrays; ``invalid_rate`` is NaN
    when they are not given. Rows are renormalised via `normalize_rows`. ``conventions``
    sets the R² and ECE edge rules (default: the ambiscope preset).
    """
    clips = make_clips(
        P, Q, n_invalid=n_invalid, n_candidates=n_candidates, eps=eps, conventions=conventions
    )
    return point_values(clips)


# --------------------------------------------------------------------------------------------
# Weighted-sum engine
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatMatrix:
    """The declared statistics of some metrics for one set of clips, side by side.

    V is (n, F); `cols` says where each statistic sits; by-label statistics also sit in
    `label_cols` (K columns, one per human label) and the human labels' one-hot in
    `label_w`. `resamplers` hold the exact per-resample functions of metrics without sums.
    """

    V: FloatArray
    cols: dict[str, slice]
    label_cols: dict[str, slice]
    label_w: slice | None
    metrics: tuple[Metric, ...]
    resamplers: dict[str, Resampler]
    conventions: Conventions


def stat_matrix(clips: Clips, chosen: Sequence[Metric] | None = None) -> StatMatrix:
    """Compute the statistics `chosen` metrics (default: all) declare for `clips`."""
    chosen = tuple(chosen) if chosen is not None else metrics()
    blocks: dict[str, FloatArray] = {}
    by_label: list[str] = []
    for m in chosen:
        for stat in m.stats:
            if stat.name not in blocks:
                value = stat.compute(clips)
                if value is not None:
                    blocks[stat.name] = value
            if stat.by_label and stat.name not in by_label:
                by_label.append(stat.name)
    labels = one_hot(clips.P.argmax(axis=1), clips.P.shape[1]) if by_label else None
    names = list(blocks)
    if labels is not None:
        for name in by_label:
            blocks[f"{name}@label"] = labels * blocks[name][:, None]
        blocks["@label"] = labels
    cols: dict[str, slice] = {}
    start = 0
    for name, block in blocks.items():
        width = 1 if block.ndim == 1 else block.shape[1]
        cols[name] = slice(start, start + width)
        start += width
    V = np.column_stack(list(blocks.values())) if blocks else np.zeros((clips.n, 0))
    return StatMatrix(
        V,
        {name: cols[name] for name in names},
        {name: cols[f"{name}@label"] for name in by_label if f"{name}@label" in cols},
        cols.get("@label"),
        chosen,
        {m.name: m.resampler(clips) for m in chosen if m.resampler is not None},
        clips.conventions,
    )


class _MatrixSums:
    """`Sums` over the columns of `C @ V`."""

    def __init__(self, S: FloatArray, w: FloatArray, matrix: StatMatrix) -> None:
        self._S = S
        self._matrix = matrix
        self.w = w
        self.conventions = matrix.conventions

    def _block(self, where: slice) -> FloatArray:
        block = self._S[:, where]
        return block[:, 0] if block.shape[1] == 1 else block

    def get(self, name: str) -> FloatArray | None:
        where = self._matrix.cols.get(name)
        return None if where is None else self._block(where)

    def __getitem__(self, name: str) -> FloatArray:
        value = self.get(name)
        if value is None:
            raise KeyError(f"statistic {name!r} is unavailable")
        return value

    def by_label(self, name: str) -> FloatArray:
        return self._S[:, self._matrix.label_cols[name]]

    @property
    def label_w(self) -> FloatArray:
        assert self._matrix.label_w is not None, "no by_label statistic was declared"
        return self._S[:, self._matrix.label_w]


def weighted_metrics(matrix: StatMatrix, C: FloatArray) -> dict[str, FloatArray]:
    """Every metric of `matrix` for each row of the count/weight matrix C (B, n)."""
    sums = _MatrixSums(C @ matrix.V, C.sum(axis=1), matrix)
    return {m.name: m.resamples(sums, matrix.resamplers.get(m.name), C) for m in matrix.metrics}


def count_chunks(
    rng: np.random.Generator, n: int, n_resamples: int, chunk: int | None = None
) -> Iterator[FloatArray]:
    """Yield bootstrap count matrices ``(b, n)`` (row = how often each clip was drawn)."""
    if chunk is None:
        chunk = max(1, _CHUNK_ELEMENTS // n)
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        C = np.empty((b, n))
        for row in C:  # one bincount per resample: its n bins stay in cache
            row[:] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        yield C
        done += b


def _resample_metrics(
    matrices: Sequence[StatMatrix], n: int, n_resamples: int, rng: np.random.Generator
) -> list[dict[str, FloatArray]]:
    """Metric values for ``n_resamples`` resamples, shared by every matrix given (same
    clip indices for all, which is what makes a paired bootstrap paired)."""
    parts: list[list[dict[str, FloatArray]]] = [[] for _ in matrices]
    for C in count_chunks(rng, n, n_resamples):
        for acc, matrix in zip(parts, matrices, strict=True):
            acc.append(weighted_metrics(matrix, C))
    return [
        {m.name: np.concatenate([p[m.name] for p in acc]) for m in matrix.metrics}
        for acc, matrix in zip(parts, matrices, strict=True)
    ]


def bootstrap_resamples(
    clips: Clips, n_resamples: int, rng: np.random.Generator
) -> dict[str, FloatArray]:
    """Every metric on ``n_resamples`` bootstrap resamples of the clips."""
    (res,) = _resample_metrics([stat_matrix(clips)], clips.n, n_resamples, rng)
    return res


def percentile_ci(values: FloatArray, alpha: float) -> tuple[float, float]:
    """Percentile interval over the finite resample values (NaN resamples are dropped)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(finite, [50.0 * alpha, 100.0 - 50.0 * alpha])
    return float(lo), float(hi)


def check_bootstrap_args(n_resamples: int, alpha: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def group_seed(seed: int, label: object) -> np.random.Generator:
    """A generator per group that depends only on (seed, group name), not on the other groups."""
    return np.random.default_rng([seed, zlib.crc32(str(label).encode())])


def bootstrap_ci(
    P: npt.ArrayLike,
    Q: npt.ArrayLike,
    *,
    n_resamples: int = 1000,
    seed: int | np.random.Generator = 0,
    alpha: float = 0.05,
    n_invalid: npt.ArrayLike | None = None,
    n_candidates: npt.ArrayLike | None = None,
    eps: float = DEFAULT_EPS,
    conventions: Conventions | None = None,
) -> dict[str, tuple[float, float, float]]:
    """``{metric: (point, lo, hi)}``: point estimate and percentile bootstrap CI over clips.

    Clips are resampled with replacement ``n_resamples`` times; the interval is the
    ``alpha/2`` and ``1 - alpha/2`` percentiles of the resampled metric (resamples where a
    metric is undefined are dropped). The point is `compute_all` on the full sample.
    ``invalid_rate`` gets a CI only from per-clip counts; totals give NaN bounds.
    """
    check_bootstrap_args(n_resamples, alpha)
    clips = make_clips(
        P, Q, n_invalid=n_invalid, n_candidates=n_candidates, eps=eps, conventions=conventions
    )
    point = point_values(clips)
    res = bootstrap_resamples(clips, n_resamples, np.random.default_rng(seed))
    return {m: (point[m], *percentile_ci(res[m], alpha)) for m in res}


def sign_flip_p(observed: float, diffs: FloatArray) -> float:
    """Two-sided bootstrap p-value: twice the share of resampled differences whose sign
    disagrees with the observed one (zero counts as disagreeing), capped at 1.

    An observed difference of exactly zero gives p = 1. The resolution is ``1/n_resamples``
    (p = 0 means "< 1/n_resamples").
    """
    d = diffs[np.isfinite(diffs)]
    if not math.isfinite(observed) or d.size == 0:
        return math.nan
    if observed == 0.0:
        return 1.0
    flips = np.mean(d <= 0.0) if observed > 0 else np.mean(d >= 0.0)
    return float(min(1.0, 2.0 * flips))


def paired_bootstrap(
    P: npt.ArrayLike,
    Q1: npt.ArrayLike,
    Q2: npt.ArrayLike,
    *,
    n_resamples: int = 1000,
    seed: int | np.random.Generator = 0,
    alpha: float = 0.05,
    eps: float = DEFAULT_EPS,
    conventions: Conventions | None = None,
) -> dict[str, dict[str, float]]:
    """Paired comparison of two models (e.g. two TTS strategies) on the same clips.

    For every metric: ``{"q1", "q2", "diff", "lo", "hi", "p"}`` where ``diff = q2 - q1`` on
    the full sample, ``lo``/``hi`` its percentile CI and ``p`` the two-sided sign-flip p-value
    (twice the share of resamples whose difference has the other sign or is zero, capped at
    1). Paired means each resample uses the same clip indices for both models, so per-clip
    difficulty cancels and the test is far more sensitive than comparing two separate CIs.
    Whether a positive ``diff`` is good depends on the metric's ``higher_is_better``.
    ``invalid_rate`` is NaN here (candidate counts are per run, not given).
    """
    check_bootstrap_args(n_resamples, alpha)
    first = make_clips(P, Q1, eps=eps, conventions=conventions)
    second = make_clips(first.P, Q2, eps=eps, conventions=conventions)
    point1, point2 = point_values(first), point_values(second)
    matrices = [stat_matrix(first), stat_matrix(second)]
    res1, res2 = _resample_metrics(matrices, first.n, n_resamples, np.random.default_rng(seed))
    out: dict[str, dict[str, float]] = {}
    for m in res1:
        diff = point2[m] - point1[m]
        diffs = res2[m] - res1[m]
        lo, hi = percentile_ci(diffs, alpha)
        out[m] = {
            "q1": point1[m],
            "q2": point2[m],
            "diff": diff,
            "lo": lo,
            "hi": hi,
            "p": sign_flip_p(diff, diffs),
        }
    return out


def subset_counts(counts: Counts, mask: npt.NDArray[np.bool_] | None) -> Counts:
    """Per-clip counts follow the subset; scalar totals only describe the whole corpus."""
    if counts is None or mask is None:
        return counts
    if counts[0].ndim == 0:
        return None
    return counts[0][mask], counts[1][mask]
