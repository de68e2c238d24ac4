"""What a metric declaration holds, and `register_metric`, which makes one.

The bootstrap engines never know a metric by name: a resample is a vector of clip counts
`c`, and every declared metric says which per-clip statistics (`Stat`) it needs and how to
turn their count-weighted sums (`Sums`) into its value. The engines compute the
statistics, sum them (one matrix product per chunk of resamples) and call `from_sums`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from ambiscope.core.conventions import Conventions
from ambiscope.core.metrics import METRICS

FloatArray = npt.NDArray[np.float64]
Counts = tuple[FloatArray, FloatArray] | None
Level = Literal["clip", "corpus"]
T = TypeVar("T")

DEFAULT_EPS = 1e-6
"""Default additive smoothing of Q for KL(P||Q)."""


def one_hot(idx: npt.NDArray[np.intp], k: int) -> FloatArray:
    """Rows with a 1 in column idx[i]: for statistics summed per label or per bin."""
    out = np.zeros((len(idx), k))
    out[np.arange(len(idx)), idx] = 1.0
    return out


@dataclass(frozen=True, eq=False)
class Clips:
    """The clips a metric is evaluated on (already validated).

    P and Q are (n, K) distributions; eps smooths Q for KL; counts are the candidates'
    (n_invalid, n_candidates), scalars (totals) or per-clip arrays, or None. conventions
    carries the edge rules a metric follows (R² on constant labels and uniform outputs,
    ECE bins), so one set of clips is always evaluated under one set of rules. `cached`
    shares a per-clip computation between the statistics of one set of clips.
    """

    P: FloatArray
    Q: FloatArray
    eps: float = DEFAULT_EPS
    counts: Counts = None
    conventions: Conventions = field(default_factory=Conventions)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return len(self.P)

    @property
    def clip_counts(self) -> Counts:
        """The counts when they are per clip (totals cannot be resampled)."""
        return self.counts if self.counts is not None and self.counts[0].ndim == 1 else None

    def cached(self, key: str, compute: Callable[[], T]) -> T:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Stat:
    """A per-clip statistic whose count-weighted sums over clips a metric needs.

    compute: (n,) or (n, m) values for the clips, or None when unavailable (the metric's
    `from_sums` then sees None). Statistics are shared by name between metrics, so one
    name must always mean one computation. reference: reads only P, so members compared
    on the same clips share it. indicator: 0/1 values, summed exactly as they are (never
    centred). by_label: also summed per human label (argmax P), as F1 needs.
    """

    name: str
    compute: Callable[[Clips], FloatArray | None]
    reference: bool = False
    indicator: bool = False
    by_label: bool = False


class Sums(Protocol):
    """Count-weighted sums of statistics for B resamples (or B = 1, unit weights)."""

    @property
    def w(self) -> FloatArray:
        """(B,) total weight (number of clips drawn)."""

    @property
    def label_w(self) -> FloatArray:
        """(B, K) weight per human label (only when a by_label statistic was asked for)."""

    @property
    def conventions(self) -> Conventions:
        """The edge rules of the clips the sums came from (`Clips.conventions`)."""

    def get(self, name: str) -> FloatArray | None:
        """(B,) or (B, m) sums of a statistic, None when it was unavailable."""

    def __getitem__(self, name: str) -> FloatArray:
        """Like `get`, for statistics that are always available (KeyError otherwise)."""

    def by_label(self, name: str) -> FloatArray:
        """(B, K) sums of a by_label statistic per human label."""


Resampler = Callable[[FloatArray], FloatArray]


@dataclass(frozen=True)
class Metric:
    """One metric's declaration (see the package docstring)."""

    name: str
    title: str
    higher_is_better: bool
    level: Level
    point: Callable[[Clips], float]
    stats: tuple[Stat, ...] = ()
    from_sums: Callable[[Sums], FloatArray] | None = None
    resampler: Callable[[Clips], Resampler] | None = None
    per_clip: Callable[[Clips], FloatArray] | None = None
    skips: bool = False
    latex: str | None = None
    plain: str | None = None

    def resamples(self, sums: Sums, resampler: Resampler | None, C: FloatArray) -> FloatArray:
        """The metric for each resample: from the sums, or exactly from the counts C."""
        if self.from_sums is not None:
            return self.from_sums(sums)
        assert resampler is not None, self.name
        return resampler(C)


def clip_values(name: str, per_clip: Callable[[Clips], FloatArray], clips: Clips) -> FloatArray:
    """A per-clip metric's values on `clips`, computed once per set of clips."""
    return clips.cached(f"metric:{name}", lambda: per_clip(clips))


def _mean_defined(per_clip: Callable[[Clips], FloatArray], key: str) -> Callable[[Clips], float]:
    def point(clips: Clips) -> float:
        values = clip_values(key, per_clip, clips)
        ok = ~np.isnan(values)
        return float(values[ok].mean()) if ok.any() else float("nan")

    return point


def _clip_stats(
    name: str, per_clip: Callable[[Clips], FloatArray], indicator: bool
) -> tuple[Stat, Stat]:
    """A per-clip metric's statistics: its values (NaN -> 0) and, when some clip is
    undefined, the indicator of defined clips (else the weight itself counts them)."""

    def values(clips: Clips) -> FloatArray:
        v = clip_values(name, per_clip, clips)
        return np.where(np.isnan(v), 0.0, v)

    def defined(clips: Clips) -> FloatArray | None:
        ok = ~np.isnan(clip_values(name, per_clip, clips))
        return None if ok.all() else ok.astype(np.float64)

    return Stat(name, values, indicator=indicator), Stat(f"{name}:defined", defined, indicator=True)


def _clip_from_sums(name: str) -> Callable[[Sums], FloatArray]:
    def from_sums(sums: Sums) -> FloatArray:
        n_ok = sums.get(f"{name}:defined")
        n_ok = sums.w if n_ok is None else n_ok
        total = sums.get(name)
        assert total is not None, name
        return np.where(n_ok > 0, total / np.maximum(n_ok, 1.0), np.nan)

    return from_sums


def register_metric(
    name: str,
    *,
    title: str,
    higher_is_better: bool,
    level: Level,
    stats: tuple[Stat, ...] = (),
    from_sums: Callable[[Sums], FloatArray] | None = None,
    resampler: Callable[[Clips], Resampler] | None = None,
    indicator: bool = False,
    skips: bool = False,
    latex: str | None = None,
    plain: str | None = None,
) -> Callable[[Callable[[Clips], Any]], Callable[[Clips], Any]]:
    """Declare the decorated function as metric `name` in `METRICS`.

    level="clip": the function gives each clip's value, (n,) with NaN where undefined; the
    metric is their mean over defined clips (`skips=True` reports how many were skipped)
    and its statistics and `from_sums` are derived (`indicator=True` for 0/1 values).
    level="corpus": the function gives the value on the whole sample; `stats` and
    `from_sums` say how a resample's value follows from count-weighted sums, or
    `resampler(clips)` returns a function from a (B, n) count matrix to B values.
    latex / plain: the title in LaTeX and in plain ASCII, when they differ from `title`.
    """

    def decorate(fn: Callable[[Clips], Any]) -> Callable[[Clips], Any]:
        if level == "clip":
            point, per_clip = _mean_defined(fn, name), fn
            sum_stats, to_value = _clip_stats(name, fn, indicator), _clip_from_sums(name)
        elif (from_sums is None) == (resampler is None):
            raise ValueError(f"metric {name!r}: give exactly one of from_sums, resampler")
        else:
            point, per_clip, sum_stats, to_value = fn, None, stats, from_sums
        metric = Metric(
            name,
            title,
            higher_is_better,
            level,
            point=point,
            stats=sum_stats,
            from_sums=to_value,
            resampler=resampler,
            per_clip=per_clip,
            skips=skips,
            latex=latex,
            plain=plain,
        )
        METRICS.add(name, metric, title=title, higher_is_better=higher_is_better, level=level)
        return fn

    return decorate
