"""Bootstrap CIs and paired p-values for many (run, strategy) tables at once.

`ambiscope.core.metrics.table.metric_table` bootstraps one model at a time and computes
every metric, Spearman's rank correlation included (an exact re-ranking per resample,
which dominates its run time). A benchmark table has dozens of models x strategies on the
*same* clips, so this module draws each group's bootstrap resamples once and shares them:

- A resample is a vector of clip counts `c`; every metric declared with `from_sums` (see
  ambiscope.core.metrics) is a function of count-weighted sums of the per-clip statistics
  it declares. The statistics of all members of a cohort (models on the same clips) sit
  side by side in one matrix `V`, so one matrix product `C @ V` per chunk of resamples
  gives every member's every metric.
- Counts are drawn exactly as `metric_table` / `paired_bootstrap` draw them (same
  generators per group, same order), so intervals and p-values equal theirs for the same
  seed; the tests pin that equality.
- Paired comparisons between members of a cohort (strategy vs baseline of the same run)
  reuse the same resamples: the difference per resample is all a paired test needs.

Metrics without `from_sums` (`entropy_spearman`) are refused (use `ambiscope compare` or
`metric_table` for them). Counts are kept as uint8 (a clip is drawn more than 255 times
in one resample with probability ~1e-500), which keeps 1000 resamples of 150k clips at
150 MB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ambiscope.core.conventions import Conventions
from ambiscope.core.metrics import METRICS
from ambiscope.core.metrics.resampling import group_seed, percentile_ci, sign_flip_p
from ambiscope.core.metrics.spec import DEFAULT_EPS, Clips, Metric, Stat

_BATCH_BYTES = 256 * 2**20  # float32 statistics matrix of one batch of members
_CHUNK_ELEMENTS = 16_000_000  # resamples per matrix product ~ this / n_clips (64 MB)


def cohort_metrics() -> tuple[str, ...]:
    """Metrics this module can bootstrap: every declared metric with `from_sums`."""
    return tuple(n for n in METRICS.names() if METRICS.get(n).from_sums is not None)


def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """The metrics without repeats, or a one-line error naming what cannot be used."""
    supported = cohort_metrics()
    unknown = [m for m in metrics if m not in supported]
    if unknown:
        exact = [m for m in unknown if m in METRICS]
        hint = (
            f" ({', '.join(exact)} needs an exact computation per resample: use `ambiscope "
            "compare`)"
            if exact
            else ""
        )
        raise ValueError(
            f"unknown metric {', '.join(unknown)}{hint}; choose from {', '.join(supported)}"
        )
    return tuple(dict.fromkeys(metrics))


@dataclass(frozen=True, eq=False)
class CohortMember:
    """One model's distributions over the cohort's clips (rows renormalised)."""

    Q: np.ndarray
    n_invalid: np.ndarray | None = None
    n_candidates: np.ndarray | None = None


@dataclass
class CohortResult:
    """Per group: every member's row and every pair's comparison."""

    rows: dict[tuple[int, str], dict[str, float]]  # (member, group) -> metric values + CIs
    pairs: dict[tuple[int, str], dict[str, dict[str, float]]]  # (pair, group) -> metric -> diff


def _declared_stats(chosen: Sequence[Metric]) -> dict[str, Stat]:
    """The statistics the chosen metrics declare, by name (a name is one computation)."""
    stats: dict[str, Stat] = {}
    for m in chosen:
        for stat in m.stats:
            held = stats.get(stat.name)
            stats[stat.name] = stat if held is None or stat.by_label else held
    return stats


def _computed(stats: Sequence[Stat], clips: Clips) -> dict[str, np.ndarray]:
    values = {s.name: s.compute(clips) for s in stats}
    return {name: v for name, v in values.items() if v is not None}


def _member_clips(
    P: np.ndarray, m: CohortMember, rows: np.ndarray, eps: float, conventions: Conventions
) -> Clips:
    counts = None
    if m.n_invalid is not None and m.n_candidates is not None:
        counts = (
            np.asarray(m.n_invalid, dtype=np.float64)[rows],
            np.asarray(m.n_candidates, dtype=np.float64)[rows],
        )
    return Clips(P, m.Q[rows], eps, counts, conventions)


# ---------------------------------------------------------------------------- resampling
def draw_counts(
    rng: np.random.Generator, n: int, n_resamples: int, relabel: np.ndarray | None = None
) -> np.ndarray:
    """(n_resamples, n) uint8 clip counts, drawn like resampling.count_chunks draws them.

    `relabel[i]` is where clip i sits in the layout (the clips are sorted by human label):
    the draws are the same, only the columns are permuted.
    """
    out = np.empty((n_resamples, n), dtype=np.uint8)
    for row in out:
        drawn = rng.integers(0, n, size=n)
        counts = np.bincount(drawn if relabel is None else relabel[drawn], minlength=n)
        if n > 255 and counts.max() > 255:  # pragma: no cover - probability ~1e-500
            raise OverflowError("a clip was drawn more than 255 times in one resample")
        row[:] = counts
    return out


class _Layout:
    """Feature blocks of a batch of members side by side, ready for resampling.

    Keeps the exact float64 column sums (the point estimates) and a float32 copy of the
    statistics centred at their means (see `resample_sums`), column-major so each block is
    written contiguously. Clips are ordered by human label (`bounds` delimit the labels),
    so per-label sums of by_label statistics (F1's true positives) and the per-label
    weights (its supports) are sums over contiguous label blocks: one skinny product per
    block instead of 2K one-hot columns per member.
    """

    def __init__(
        self,
        groups: Sequence[dict[str, np.ndarray]],
        n: int,
        bounds: np.ndarray,
        stats: dict[str, Stat],
    ) -> None:
        width = sum(_width(b) for blocks in groups for b in blocks.values())
        self.bounds = bounds
        self.sums = np.empty(width)
        self.mean = np.zeros(width)
        self.centred = np.empty((n, width), dtype=np.float32, order="F")
        self.slices: list[dict[str, slice]] = []
        self.split: list[int] = []  # by_label columns, summed per label block as well
        self.label_at: list[dict[str, int]] = []  # name -> position in `split`
        start = 0
        for blocks in groups:
            where: dict[str, slice] = {}
            label_at: dict[str, int] = {}
            for name, block in blocks.items():
                block = block[:, None] if block.ndim == 1 else block
                cols = slice(start, start + block.shape[1])
                where[name] = cols
                self.sums[cols] = block.sum(axis=0)
                if not stats[name].indicator and n:
                    self.mean[cols] = self.sums[cols] / n
                self.centred[:, cols] = block - self.mean[cols]
                if stats[name].by_label:
                    label_at[name] = len(self.split)
                    self.split.append(cols.start)
                start = cols.stop
            self.slices.append(where)
            self.label_at.append(label_at)

    def unit_split(self) -> np.ndarray:
        """(1, K, n_split) per-label sums of the split columns with unit weights."""
        cs = np.vstack([np.zeros(len(self.split)), np.cumsum(self.centred[:, self.split], axis=0)])
        return (cs[self.bounds[1:]] - cs[self.bounds[:-1]])[None, :, :].astype(np.float64)

    def resample_sums(self, counts: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
        """(counts @ features, per-label sums of split columns, per-label weights).

        Computed as float32 products of the centred features plus w * mean: sum_i c_i v_i
        = sum_i c_i (v_i - mean) + w * mean with w = sum_i c_i exact. The centred sum is of
        order sqrt(n) * std rather than n * mean, so its float32 rounding is ~1e-9
        relative to the result (tests hold it to metric_table's float64 values) while
        float32 halves memory traffic and doubles BLAS throughput. 0/1 indicator columns
        (labels, correctness) are not centred: their count-weighted sums are integers below
        2**24 (for fewer than 16.7M clips), exact in float32.
        """
        B, n = counts.shape
        k = len(self.bounds) - 1
        step = max(1, _CHUNK_ELEMENTS // max(n, 1))
        out = np.empty((B, self.centred.shape[1]))
        split = np.zeros((B, k, len(self.split)))
        label_w = np.zeros((B, k))
        by_label = np.asfortranarray(self.centred[:, self.split]) if k > 1 else None
        for start in range(0, B, step):
            chunk = counts[start : start + step].astype(np.float32)
            rows = slice(start, start + len(chunk))
            out[rows] = chunk @ self.centred
            if by_label is None:
                split[rows, 0] = out[rows][:, self.split]
                label_w[rows, 0] = weights[rows]
                continue
            for j, (lo, hi) in enumerate(zip(self.bounds[:-1], self.bounds[1:], strict=True)):
                if hi > lo:
                    split[rows, j] = chunk[:, lo:hi] @ by_label[lo:hi]
                    label_w[rows, j] = chunk[:, lo:hi].sum(axis=1, dtype=np.float64)
        out += weights[:, None] * self.mean[None, :]
        return out, split, label_w


def _width(block: np.ndarray) -> int:
    return 1 if block.ndim == 1 else int(block.shape[1])


def _batches(widths: list[int], shared: int, n: int) -> list[list[int]]:
    """Split members into batches whose float32 feature matrix fits _BATCH_BYTES."""
    limit = max(1, _BATCH_BYTES // (4 * max(n, 1)))
    batches: list[list[int]] = []
    current: list[int] = []
    used = shared
    for i, width in enumerate(widths):
        if current and used + width > limit:
            batches.append(current)
            current, used = [], shared
        current.append(i)
        used += width
    if current:
        batches.append(current)
    return batches


@dataclass(frozen=True, eq=False)
class _Group:
    """A group's clips in layout order (sorted by human label for by_label statistics)."""

    label: str
    rows: np.ndarray  # cohort rows, in layout order
    bounds: np.ndarray  # label block boundaries into rows (one block without by_label statistics)
    relabel: np.ndarray  # cohort-group position -> layout position (for the draws)


def _group(label: str, mask: np.ndarray, P: np.ndarray, by_label: bool) -> _Group:
    rows = np.flatnonzero(mask)
    k = P.shape[1]
    if not by_label:
        return _Group(label, rows, np.array([0, len(rows)]), np.arange(len(rows)))
    truth = P[rows].argmax(axis=1)
    order = np.argsort(truth, kind="stable")
    bounds = np.searchsorted(truth[order], np.arange(k + 1), side="left")
    relabel = np.empty(len(rows), dtype=np.int64)
    relabel[order] = np.arange(len(rows))
    return _Group(label, rows[order], bounds, relabel)


class _LayoutSums:
    """`Sums` of one member's statistics out of a layout's column sums."""

    def __init__(
        self,
        S: np.ndarray,
        split: np.ndarray,
        label_w: np.ndarray,
        w: np.ndarray,
        where: dict[str, slice],
        label_at: dict[str, int],
        conventions: Conventions,
    ) -> None:
        self._S, self._split, self.label_w, self.w = S, split, label_w, w
        self._where, self._label_at = where, label_at
        self.conventions = conventions

    def get(self, name: str) -> np.ndarray | None:
        if name not in self._where:
            return None
        block = self._S[:, self._where[name]]
        return block[:, 0] if block.shape[1] == 1 else block

    def __getitem__(self, name: str) -> np.ndarray:
        value = self.get(name)
        if value is None:
            raise KeyError(f"statistic {name!r} is unavailable")
        return value

    def by_label(self, name: str) -> np.ndarray:
        return self._split[:, :, self._label_at[name]]


def _evaluate_group(
    P: np.ndarray,
    members: Sequence[CohortMember],
    group: _Group,
    chosen: Sequence[Metric],
    eps: float,
    counts: np.ndarray | None,
    conventions: Conventions,
) -> tuple[list[dict[str, float]], list[dict[str, np.ndarray]]]:
    """(point values, resampled values) of every member on the group's clips."""
    stats = _declared_stats(chosen)
    Pg = P[group.rows]
    clips = [_member_clips(Pg, m, group.rows, eps, conventions) for m in members]
    n = len(group.rows)
    shared = _computed([s for s in stats.values() if s.reference], clips[0]) if clips else {}
    own = [s for s in stats.values() if not s.reference]
    features = [_computed(own, c) for c in clips]
    del clips
    widths = [sum(_width(b) for b in f.values()) for f in features]
    weights = None if counts is None else counts.sum(axis=1, dtype=np.float64)
    points: list[dict[str, float]] = [{} for _ in members]
    resampled: list[dict[str, np.ndarray]] = [{} for _ in members]
    unit_weight = np.array([float(n)])
    unit_label_w = np.diff(group.bounds)[None, :].astype(np.float64)
    for batch in _batches(widths, sum(_width(b) for b in shared.values()), n):
        layout = _Layout([shared, *(features[i] for i in batch)], n, group.bounds, stats)
        unit = (layout.sums[None, :], layout.unit_split(), unit_label_w)
        sums = None if counts is None else layout.resample_sums(counts, weights)
        for j, i in enumerate(batch):
            where = {**layout.slices[0], **layout.slices[j + 1]}
            label_at = {**layout.label_at[0], **layout.label_at[j + 1]}
            at_unit = _LayoutSums(*unit, unit_weight, where, label_at, conventions)
            points[i] = {m.name: float(m.from_sums(at_unit)[0]) for m in chosen}  # type: ignore[misc]
            if sums is not None and weights is not None:
                at = _LayoutSums(*sums, weights, where, label_at, conventions)
                resampled[i] = {m.name: m.from_sums(at) for m in chosen}  # type: ignore[misc]
        del layout, sums
    return points, resampled


def _group_masks(
    groups: np.ndarray | None, n: int, order: Sequence[str] | None, all_label: str
) -> list[tuple[str, np.ndarray]]:
    """(label, mask) in metric_table's order, the `all` row last."""
    out: list[tuple[str, np.ndarray]] = []
    if groups is not None:
        values = order if order is not None else np.unique(groups).tolist()
        out += [(str(v), groups == v) for v in values if (groups == v).any()]
    out.append((all_label, np.ones(n, dtype=bool)))
    return out


def evaluate_cohort(
    P: np.ndarray,
    members: Sequence[CohortMember],
    groups: np.ndarray | None = None,
    *,
    metrics: Sequence[str],
    order: Sequence[str] | None = None,
    pairs: Sequence[tuple[int, int]] = (),
    bootstrap: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    eps: float = DEFAULT_EPS,
    all_label: str = "all",
    conventions: Conventions | None = None,
) -> CohortResult:
    """Metrics (with CIs) of every member and paired tests for `pairs` (base, other).

    P (n, K) is the human reference of the cohort's clips, each member's Q the same shape.
    Groups follow `metric_table`: one row per group value in `order` (sorted values when
    None), then `all_label` over every clip; each group resamples within itself with the
    generator metric_table would use, so a member's CIs equal metric_table's. A pair's
    `diff` is other - base on the full group, `lo`/`hi` its percentile interval and `p`
    the two-sided sign-flip p-value of `ambiscope.core.metrics.resampling.paired_bootstrap`.
    ``conventions`` sets the R² and ECE edge rules (default: the ambiscope preset).
    """
    metrics = check_metrics(metrics)
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0, got {bootstrap}")
    chosen = [METRICS.get(m) for m in metrics]
    by_label = any(s.by_label for s in _declared_stats(chosen).values())
    rows: dict[tuple[int, str], dict[str, float]] = {}
    paired: dict[tuple[int, str], dict[str, dict[str, float]]] = {}
    for label, mask in _group_masks(groups, len(P), order, all_label):
        group = _group(label, mask, P, by_label)
        counts = None
        if bootstrap:
            rng = np.random.default_rng(seed) if label == all_label else group_seed(seed, label)
            counts = draw_counts(rng, len(group.rows), bootstrap, group.relabel)
        points, resampled = _evaluate_group(
            P, members, group, chosen, eps, counts, conventions or Conventions()
        )
        for i, point in enumerate(points):
            row: dict[str, float] = {"n": len(group.rows), **point}
            for m in metrics if bootstrap else ():
                row[f"{m}_lo"], row[f"{m}_hi"] = percentile_ci(resampled[i][m], alpha)
            rows[(i, label)] = row
        for j, (base, other) in enumerate(pairs):
            paired[(j, label)] = _compare(points, resampled, base, other, metrics, alpha)
        del counts
    return CohortResult(rows, paired)


def _compare(
    points: list[dict[str, float]],
    resampled: list[dict[str, np.ndarray]],
    base: int,
    other: int,
    metrics: Sequence[str],
    alpha: float,
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for m in metrics:
        diff = points[other][m] - points[base][m]
        entry = {"diff": diff, "lo": np.nan, "hi": np.nan, "p": np.nan}
        if resampled[other]:
            diffs = resampled[other][m] - resampled[base][m]
            entry["lo"], entry["hi"] = percentile_ci(diffs, alpha)
            entry["p"] = sign_flip_p(diff, diffs)
        out[m] = entry
    return out
