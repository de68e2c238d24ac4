"""How well K synthetic raters approximate the human distribution, as K grows.

Zhang et al. study the Synthetic Perceptual Proxy (SPP) by adding simulated raters one at
a time: with k raters the synthetic distribution of a clip is the histogram of their k
votes, compared with the human distribution by JS divergence and the Bhattacharyya
coefficient (BC). The curve is summarised by a saturating exponential and by the point
where adding raters stops paying off. This module computes all of that from a stored
synthetic run (`synthetic.raters`; its rater plan from `synthetic.spec.run_raters`).

Definitions (all implemented below, all in the report):

* Orderings: the K raters are added in R random orders (seeded). For ordering r and
  k = 1..K, the metric at k is the mean over clips of JS(P_human, Q_first-k); clips where
  none of the first k raters gave a parseable answer have no synthetic distribution at k
  and are left out of that mean (`n_used` says how many clips remained). The curve is the
  mean over orderings; the spread is their standard deviation (ddof=1), i.e. how much
  the result depends on which raters came first.
* Combined: human vote counts plus the first k raters' votes, normalised (each synthetic
  rater weighs as much as one human rater), compared with the human distribution.
* Groups: the human reference's ambiguity levels (low / medium / high) and `all`.
* Saturation fit: f(k) = a - b * exp(-c * k) by least squares (c in [0.001, 5]: a grid
  over c with (a, b) solved exactly, refined by scipy curve_fit). a is the limit for many
  raters; b > 0 for rising curves (BC), b < 0 for falling ones (JS).
* Saturation point: the smallest integer k >= 1 with |f(k) - a| <= 0.1 * |f(1) - a|, i.e.
  the curve has covered 90% of its way from one rater to its limit. For this model it is
  k_sat = ceil(1 + ln(10) / c), independent of a and b; it may exceed the K observed
  (then it is an extrapolation, flagged as such). A fit whose c sits at its lower bound
  is a straight line over the observed k: no saturation point is reported then.
* Sampled grid (`saturation="sampled-grid"`, Zhang et al.'s official saturation
  analysis): instead of nested orderings, for EACH k an independent sample of k raters per
  clip, drawn without replacement from the raters who gave a parseable answer on that clip
  (all of them when fewer than k did), repeated R times (`saturation_repeats`); repeat r
  draws with Python's ``random.Random(seed + r)`` clip after clip, which with seed 42 are
  the official code's draws. The curve is the mean over repeats, fitted as above. The
  saturation point is read off the fitted curve on a 100-point grid over [1, K]: for
  falling curves (JS), the first grid point with f(x) <= a + 0.1 (max observed - a); for
  rising ones (BC), the first with f(x) >= 0.95 a (the notebook's higher-is-better
  branch); rounded half to even like Python's ``round``. It never extrapolates beyond K
  (no grid point qualifying = no saturation).
* Agreement: Fleiss' kappa of the synthetic raters' votes (generalised to a varying
  number of ratings per clip: unparseable answers are missing ratings), and of the human
  primary votes on the same clips for comparison.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from ambiscope.core.conventions import Conventions
from ambiscope.core.metrics.functions import bhattacharyya, js_divergence
from ambiscope.core.reference.distributions import (
    AMBIGUITY_LEVELS,
    DistributionOptions,
    fleiss_kappa,
)
from ambiscope.core.reference.distributions import human_distribution as normalise_counts
from ambiscope.core.reference.human import dataset_options, human_options, load_human
from ambiscope.core.reference.pooled import reference_counts, rows_of
from ambiscope.core.synthetic.spec import is_synthetic_run, rater_labels

METRICS: tuple[str, ...] = ("js", "bc", "combined_js", "combined_bc")
ALL = "all"
SATURATION_SHARE = 0.1
GRID_POINTS = 100  # the sampled-grid rule's grid over [1, K]
RISING_SHARE = 0.95  # the sampled-grid rule for rising curves: 95% of the limit
LOWER_IS_BETTER = frozenset({"js", "combined_js"})
C_BOUNDS = (1e-3, 5.0)
_CHUNK_ELEMENTS = 4_000_000


# ------------------------------------------------------------------------ curves
@dataclass(frozen=True, eq=False)
class Curve:
    """Mean and spread over orderings of each metric at k = 1..K for one group of clips."""

    group: str
    n_clips: int
    k: np.ndarray
    mean: dict[str, np.ndarray]
    sd: dict[str, np.ndarray]
    n_used: np.ndarray  # clips with >= 1 synthetic vote among the first k (mean over orders)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "n_clips": self.n_clips,
            "k": self.k.tolist(),
            "mean": {m: _floats(v) for m, v in self.mean.items()},
            "sd": {m: _floats(v) for m, v in self.sd.items()},
            "n_used": _floats(self.n_used),
        }


def _floats(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 6) for v in values]


def _one_hot(labels: np.ndarray, n_labels: int) -> np.ndarray:
    """(n, K) label indices (-1 = none) -> (n, K, L) float one-hot."""
    out = np.zeros((*labels.shape, n_labels))
    n_idx, k_idx = np.nonzero(labels >= 0)
    out[n_idx, k_idx, labels[n_idx, k_idx]] = 1.0
    return out


def _pairwise(P: np.ndarray, Q: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """JS and BC of P (c, L) against each Q (c, K, L) where mask (c, K); NaN elsewhere."""
    c, K, L = Q.shape
    js = np.full((c, K), np.nan)
    bc = np.full((c, K), np.nan)
    if mask.any():
        P_rep = np.broadcast_to(P[:, None, :], (c, K, L))[mask]
        js[mask] = js_divergence(P_rep, Q[mask])
        bc[mask] = bhattacharyya(P_rep, Q[mask])
    return js, bc


def _ordering_metrics(
    onehot: np.ndarray,
    P: np.ndarray,
    human_counts: np.ndarray,
    perm: np.ndarray,
    options: DistributionOptions,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-clip metrics (c, K) for one ordering of raters, plus the has-vote mask."""
    cum = np.cumsum(onehot[:, perm, :], axis=1)
    total = cum.sum(axis=2)
    has = total > 0
    Q = cum / np.where(has, total, 1.0)[..., None]
    js, bc = _pairwise(P, Q, has)
    c, K, L = cum.shape
    pooled = (human_counts[:, None, :] + cum).reshape(-1, L)
    combined, ok = normalise_counts(pooled, options)
    combined = combined.reshape(c, K, L)
    cjs, cbc = _pairwise(P, combined, ok.reshape(c, K))
    return {"js": js, "bc": bc, "combined_js": cjs, "combined_bc": cbc}, has


@dataclass(frozen=True)
class _Inputs:
    """What both curve builders start from: rater labels (n, K), the human distributions
    (n, L), the counts synthetic votes pool with, and the groups as names and masks."""

    labels: np.ndarray
    P: np.ndarray
    counts: np.ndarray
    options: DistributionOptions
    names: list[str]
    masks: list[np.ndarray]

    @classmethod
    def of(
        cls,
        labels: np.ndarray,
        human_dist: np.ndarray,
        human_counts: np.ndarray | None,
        options: DistributionOptions | None,
        groups: np.ndarray | None,
        group_order: Sequence[str],
    ) -> _Inputs:
        labels = np.asarray(labels, dtype=np.int64)
        P = np.asarray(human_dist, dtype=np.float64)
        n = labels.shape[0]
        if P.shape[0] != n:
            raise ValueError(f"labels cover {n} clips but human_dist has {P.shape[0]} rows")
        counts = P if human_counts is None else np.asarray(human_counts, dtype=np.float64)
        names = _group_names(groups, n, group_order)
        masks = [np.ones(n, dtype=bool) if g == ALL else (np.asarray(groups) == g) for g in names]
        return cls(labels, P, counts, options or DistributionOptions(), names, masks)

    def tallies(self, repeats: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Zeroed (sums, counts of finite values) per metric: (group, repeat, k)."""
        shape = (len(self.names), repeats, self.labels.shape[1])
        return {m: np.zeros(shape) for m in METRICS}, {m: np.zeros(shape) for m in METRICS}

    def curves(self, sums: dict[str, np.ndarray], used: dict[str, np.ndarray]) -> dict[str, Curve]:
        """One Curve per group from the filled tallies."""
        K = self.labels.shape[1]
        return {
            name: _curve(name, int(self.masks[g].sum()), g, sums, used, K)
            for g, name in enumerate(self.names)
        }


def alignment_curves(
    labels: np.ndarray,
    human_dist: np.ndarray,
    human_counts: np.ndarray | None = None,
    *,
    groups: np.ndarray | None = None,
    orderings: int = 20,
    seed: int = 0,
    options: DistributionOptions | None = None,
    group_order: Sequence[str] = AMBIGUITY_LEVELS,
) -> dict[str, Curve]:
    """Curves per group (and `all`) from rater votes (n, K) and human distributions (n, L).

    `human_counts` (default: the distributions themselves, i.e. one "vote" of mass 1) are
    what the combined distribution pools the synthetic votes with; pass the real weighted
    vote counts so each synthetic rater weighs as much as one human rater.
    """
    if orderings < 1:
        raise ValueError("--orderings must be >= 1")
    data = _Inputs.of(labels, human_dist, human_counts, options, groups, group_order)
    labels, P, counts, opts, masks = data.labels, data.P, data.counts, data.options, data.masks
    n, K = labels.shape
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(K) for _ in range(orderings)]
    sums, used = data.tallies(orderings)
    step = max(1, _CHUNK_ELEMENTS // max(1, K * P.shape[1]))
    for start in range(0, n, step):
        sl = slice(start, start + step)
        onehot = _one_hot(labels[sl], P.shape[1])
        for r, perm in enumerate(perms):
            values, _ = _ordering_metrics(onehot, P[sl], counts[sl], perm, opts)
            for m, v in values.items():
                finite = np.isfinite(v)
                for g, mask in enumerate(masks):
                    part = mask[sl]
                    sums[m][g, r] += np.where(finite[part], v[part], 0.0).sum(axis=0)
                    used[m][g, r] += finite[part].sum(axis=0)
    return data.curves(sums, used)


def _group_names(groups: np.ndarray | None, n: int, order: Sequence[str]) -> list[str]:
    if groups is None:
        return [ALL]
    values = np.asarray(groups).astype(str)
    if len(values) != n:
        raise ValueError("groups must have one entry per clip")
    present = set(values.tolist()) - {""}
    ordered = [g for g in order if g in present] + sorted(present - set(order))
    return [*ordered, ALL]


def _curve(
    name: str,
    n_clips: int,
    g: int,
    sums: dict[str, np.ndarray],
    used: dict[str, np.ndarray],
    K: int,
) -> Curve:
    mean: dict[str, np.ndarray] = {}
    sd: dict[str, np.ndarray] = {}
    for m in METRICS:
        with np.errstate(invalid="ignore", divide="ignore"):
            per_order = np.where(used[m][g] > 0, sums[m][g] / used[m][g], np.nan)
        mean[m] = _nan_stat(per_order, np.nanmean)
        sd[m] = _nan_stat(per_order, lambda x, axis: np.nanstd(x, axis=axis, ddof=1))
        if per_order.shape[0] == 1:
            sd[m] = np.zeros(K)
    return Curve(name, n_clips, np.arange(1, K + 1), mean, sd, used["js"][g].mean(axis=0))


def _nan_stat(values: np.ndarray, fn: Any) -> np.ndarray:
    out = np.full(values.shape[1], np.nan)
    ok = np.isfinite(values).sum(axis=0) > 0
    if ok.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[ok] = fn(values[:, ok], axis=0)
    return out


def sampled_curves(
    labels: np.ndarray,
    human_dist: np.ndarray,
    human_counts: np.ndarray | None = None,
    *,
    groups: np.ndarray | None = None,
    repeats: int = 5,
    seed: int = 0,
    options: DistributionOptions | None = None,
    group_order: Sequence[str] = AMBIGUITY_LEVELS,
) -> dict[str, Curve]:
    """Curves like `alignment_curves`, but each k from its own sample of k raters per clip
    (the sampled-grid rule of the module docstring; `sd` is over repeats)."""
    if repeats < 1:
        raise ValueError("saturation_repeats must be >= 1")
    data = _Inputs.of(labels, human_dist, human_counts, options, groups, group_order)
    labels, P, counts, opts, masks = data.labels, data.P, data.counts, data.options, data.masks
    n, K = labels.shape
    valid = [labels[i][labels[i] >= 0].tolist() for i in range(n)]
    sums, used = data.tallies(repeats)
    for k in range(1, K + 1):
        for r in range(repeats):
            votes = _sampled_votes(valid, k, random.Random(seed + r), P.shape[1])
            values = _vote_metrics(votes, P, counts, opts)
            for m, v in values.items():
                finite = np.isfinite(v)
                for g, mask in enumerate(masks):
                    sums[m][g, r, k - 1] = v[mask & finite].sum()
                    used[m][g, r, k - 1] = (mask & finite).sum()
    return data.curves(sums, used)


def _sampled_votes(valid: list[list[int]], k: int, rng: random.Random, n_labels: int) -> np.ndarray:
    """(n, L) vote counts of min(k, available) raters drawn per clip, clips in order."""
    rows: list[int] = []
    picked: list[int] = []
    for i, answers in enumerate(valid):
        drawn = rng.sample(answers, min(k, len(answers)))
        rows += [i] * len(drawn)
        picked += drawn
    out = np.zeros((len(valid), n_labels))
    np.add.at(out, (rows, picked), 1.0)
    return out


def _vote_metrics(
    votes: np.ndarray, P: np.ndarray, human_counts: np.ndarray, options: DistributionOptions
) -> dict[str, np.ndarray]:
    """Per-clip JS and BC of the sampled votes, alone and pooled with the human votes."""
    total = votes.sum(axis=1)
    has = total > 0
    Q = votes / np.where(has, total, 1.0)[:, None]
    js, bc = _pairwise(P, Q[:, None, :], has[:, None])
    combined, ok = normalise_counts(human_counts + votes, options)
    cjs, cbc = _pairwise(P, combined[:, None, :], ok[:, None])
    return {"js": js[:, 0], "bc": bc[:, 0], "combined_js": cjs[:, 0], "combined_bc": cbc[:, 0]}


# ------------------------------------------------------------------------ saturation
def saturation_model(k: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """f(k) = a - b * exp(-c * k)."""
    return a - b * np.exp(-c * np.asarray(k, dtype=np.float64))


def saturation_point(c: float, b: float = 1.0) -> int:
    """Smallest integer k >= 1 with |f(k) - a| <= 0.1 |f(1) - a|: ceil(1 + ln(10) / c)."""
    if b == 0 or not math.isfinite(c):
        return 1
    return max(1, math.ceil(1.0 + math.log(1.0 / SATURATION_SHARE) / c - 1e-9))


@dataclass(frozen=True)
class SaturationFit:
    ok: bool
    a: float = math.nan
    b: float = math.nan
    c: float = math.nan
    rmse: float = math.nan
    k_sat: int | None = None
    observed_k: int = 0
    message: str = ""

    @property
    def extrapolated(self) -> bool:
        return self.k_sat is not None and self.k_sat > self.observed_k

    def predict(self, k: np.ndarray) -> np.ndarray:
        return saturation_model(k, self.a, self.b, self.c)

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return round(x, 6) if math.isfinite(x) else None

        return {
            "ok": self.ok,
            "a": num(self.a),
            "b": num(self.b),
            "c": num(self.c),
            "rmse": num(self.rmse),
            "k_sat": self.k_sat,
            "observed_k": self.observed_k,
            "extrapolated": self.extrapolated,
            "message": self.message,
        }


def grid_saturation(
    fit: SaturationFit,
    k: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    lower_is_better: bool,
) -> SaturationFit:
    """``fit`` with its saturation point by the sampled-grid rule (module docstring)."""
    if not fit.ok:
        return fit
    kk = np.asarray(k, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(kk) & np.isfinite(yy)
    grid = np.linspace(kk[ok].min(), kk[ok].max(), GRID_POINTS)
    curve = fit.predict(grid)
    if lower_is_better:
        threshold = fit.a + SATURATION_SHARE * (float(yy[ok].max()) - fit.a)
        hits = np.flatnonzero(curve <= threshold)
    else:
        hits = np.flatnonzero(curve >= RISING_SHARE * fit.a)
    if not len(hits):
        return replace(fit, k_sat=None, message="no grid point reaches the saturation level")
    message = "" if fit.k_sat is None else fit.message  # "still linear" no longer holds
    return replace(fit, k_sat=round(float(grid[hits[0]])), message=message)


def fit_saturation(
    k: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray
) -> SaturationFit:
    """Least-squares fit of f(k) = a - b exp(-c k), c in `C_BOUNDS`.

    Fitted in the equivalent, well-conditioned form a - d exp(-c (k - k0)) with k0 the
    smallest k (d = b exp(-c k0) is the gap between the limit and the first point): for a
    fixed c the model is linear in (a, d), so c is first located on a log grid with (a, d)
    solved exactly, then all three are refined by curve_fit (analytic Jacobian).
    """
    kk = np.asarray(k, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(kk) & np.isfinite(yy)
    kk, yy = kk[ok], yy[ok]
    observed = int(kk.max()) if len(kk) else 0
    if len(kk) < 3:
        return SaturationFit(False, observed_k=observed, message="needs at least 3 points of k")
    if np.ptp(yy) < 1e-12:
        a = float(yy.mean())
        return SaturationFit(True, a, 0.0, 1.0, 0.0, 1, observed, "flat curve")
    k0 = float(kk.min())
    a, d, c = _grid_fit(kk - k0, yy)
    a, d, c = _refine(kk - k0, yy, (a, d, c))
    residual = a - d * np.exp(-c * (kk - k0)) - yy
    rmse = math.sqrt(float((residual**2).mean()))
    b = d * math.exp(c * k0)
    if c <= C_BOUNDS[0] * 1.01:
        return SaturationFit(
            True, a, b, c, rmse, None, observed, "no saturation: the curve is still linear"
        )
    return SaturationFit(True, a, b, c, rmse, saturation_point(c, b), observed)


def _grid_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    best: tuple[float, float, float, float] | None = None
    for c in np.geomspace(C_BOUNDS[0], C_BOUNDS[1], 80):
        design = np.column_stack([np.ones_like(x), -np.exp(-c * x)])
        (a, d), *_ = np.linalg.lstsq(design, y, rcond=None)
        sse = float(((design @ (a, d) - y) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, float(a), float(d), float(c))
    assert best is not None
    return best[1], best[2], best[3]


def _refine(
    x: np.ndarray, y: np.ndarray, start: tuple[float, float, float]
) -> tuple[float, float, float]:
    def model(x: np.ndarray, a: float, d: float, c: float) -> np.ndarray:
        return a - d * np.exp(-c * x)

    def jac(x: np.ndarray, a: float, d: float, c: float) -> np.ndarray:
        e = np.exp(-c * x)
        return np.column_stack([np.ones_like(x), -e, d * x * e])

    c0 = float(np.clip(start[2], C_BOUNDS[0] * 1.0001, C_BOUNDS[1] * 0.9999))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(
                model,
                x,
                y,
                p0=(start[0], start[1], c0),
                jac=jac,
                bounds=((-np.inf, -np.inf, C_BOUNDS[0]), (np.inf, np.inf, C_BOUNDS[1])),
                maxfev=2000,
            )
    except (RuntimeError, ValueError):
        return start
    sse_new = float(((model(x, *params) - y) ** 2).sum())
    sse_old = float(((model(x, *start) - y) ** 2).sum())
    return tuple(float(p) for p in params) if sse_new <= sse_old else start  # type: ignore[return-value]


# ------------------------------------------------------------------------ the report
@dataclass(frozen=True, eq=False)
class AlignmentReport:
    dataset: str
    run_id: int
    run_label: str
    model: str
    raters: int
    n_clips: int
    orderings: int
    seed: int
    answers: int
    invalid: int
    kappa_synthetic: float
    kappa_human: float
    curves: dict[str, Curve]
    fits: dict[str, dict[str, SaturationFit]] = field(default_factory=dict)
    saturation: str = "nested-fit"  # the `saturation` convention; `orderings` = repeats
    conventions: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return round(x, 6) if math.isfinite(x) else None

        return {
            "dataset": self.dataset,
            "run": self.run_id,
            "run_label": self.run_label,
            "model": self.model,
            "raters": self.raters,
            "n_clips": self.n_clips,
            "orderings": self.orderings,
            "seed": self.seed,
            "answers": self.answers,
            "invalid": self.invalid,
            "fleiss_kappa": {
                "synthetic": num(self.kappa_synthetic),
                "human": num(self.kappa_human),
            },
            "saturation": self.saturation,
            "saturation_definition": SATURATION_DEFINITIONS[self.saturation],
            "conventions": self.conventions,
            "curves": {g: c.to_dict() for g, c in self.curves.items()},
            "fits": {g: {m: f.to_dict() for m, f in fits.items()} for g, fits in self.fits.items()},
        }


SATURATION_DEFINITIONS = {
    "nested-fit": (
        "smallest integer k >= 1 with |f(k) - a| <= 0.1 |f(1) - a| for the fit "
        "f(k) = a - b exp(-c k); equals ceil(1 + ln(10) / c)"
    ),
    "sampled-grid": (
        "fit f(k) = a - b exp(-c k) to the mean over repeats of independent k-rater samples; "
        "first of 100 grid points over [1, K] with f <= a + 0.1 (max observed - a) (JS) or "
        "f >= 0.95 a (BC), rounded"
    ),
}


def fit_curves(
    curves: dict[str, Curve],
    metrics: Sequence[str] = ("js", "bc"),
    saturation: str = "nested-fit",
) -> dict[str, dict[str, SaturationFit]]:
    """Each group's fit per metric, its saturation point by the `saturation` rule."""

    def fit(curve: Curve, metric: str) -> SaturationFit:
        result = fit_saturation(curve.k, curve.mean[metric])
        if saturation != "sampled-grid":
            return result
        lower = metric in LOWER_IS_BETTER
        return grid_saturation(result, curve.k, curve.mean[metric], lower_is_better=lower)

    return {g: {m: fit(c, m) for m in metrics} for g, c in curves.items()}


def align_run(
    ws: Any,
    dataset: str | int,
    run_id: int,
    *,
    orderings: int = 20,
    seed: int = 0,
    conventions: Conventions | None = None,
) -> AlignmentReport:
    """Alignment report of one synthetic run against the dataset's human reference.

    ``conventions`` (default: the dataset's stored reference options and nested orderings)
    choose the human reference and the saturation rule; under ``sampled-grid`` the
    `saturation_repeats` repeats replace ``orderings``.
    """
    ds = ws.get_dataset(dataset)
    run = ws.get_run(run_id)
    if run.dataset_id != ds.id:
        raise ValueError(f"run {run.id} belongs to another dataset than {ds.name!r}")
    if not is_synthetic_run(run):
        raise ValueError(
            f"run {run.id} is not a synthetic-annotator run (make one with annotate-synthetic)"
        )
    clip_ids, labels = rater_labels(ws, run)
    options = dataset_options(ds) if conventions is None else human_options(conventions, ds)
    human = load_human(ws, ds, options)
    rows = rows_of(human.clip_ids, clip_ids)
    keep = rows >= 0
    keep[keep] &= human.valid[rows[keep]]
    if not keep.any():
        raise ValueError(
            f"run {run.id} has no finished clip with human votes on {ds.name!r} to compare"
        )
    rows, labels = rows[keep], labels[keep]
    counts, count_ids = reference_counts(ws, ds, "human")
    primary, _ = reference_counts(ws, ds, "human", primary_only=True)
    count_rows = rows_of(count_ids, human.clip_ids[rows])
    saturation = "nested-fit" if conventions is None else conventions.saturation
    single = "drop" if conventions is None else conventions.kappa_single
    data = (labels, human.dist[rows], counts[count_rows])
    common: dict[str, Any] = {
        "groups": human.ambiguity[rows],
        "seed": seed,
        "options": options.distribution,
    }
    if conventions is not None and saturation == "sampled-grid":
        orderings = conventions.saturation_repeats
        curves = sampled_curves(*data, repeats=orderings, **common)
    else:
        curves = alignment_curves(*data, orderings=orderings, **common)
    answers, invalid = ws.conn.execute(
        "SELECT count(*), coalesce(sum(1 - valid), 0) FROM samples WHERE run_id = ?", (run.id,)
    ).fetchone()
    return AlignmentReport(
        dataset=ds.name,
        run_id=run.id,
        run_label=run.label,
        model=run.model,
        raters=labels.shape[1],
        n_clips=len(rows),
        orderings=orderings,
        seed=seed,
        answers=int(answers),
        invalid=int(invalid),
        kappa_synthetic=fleiss_kappa(_label_counts(labels, ds.k), single),
        kappa_human=fleiss_kappa(np.round(primary[count_rows]), single),
        curves=curves,
        fits=fit_curves(curves, saturation=saturation),
        saturation=saturation,
        conventions=None if conventions is None else conventions.to_dict(),
    )


def _label_counts(labels: np.ndarray, n_labels: int) -> np.ndarray:
    return _one_hot(labels, n_labels).sum(axis=1)


# ------------------------------------------------------------------------ output
def _cell(mean: float, sd: float) -> str:
    if not math.isfinite(mean):
        return f"{'n/a':>13}"
    return f"{mean:6.3f}±{sd if math.isfinite(sd) else 0.0:5.3f} "


def _draws(report: AlignmentReport) -> str:
    if report.saturation == "sampled-grid":
        return f"{report.orderings} repeats of k sampled raters per k"
    return f"orderings {report.orderings}"


def _fit_line(metric: str, fit: SaturationFit) -> str:
    if not fit.ok:
        return f"  fit {metric}: {fit.message}"
    head = f"  fit {metric}: a={fit.a:.3f} b={fit.b:+.3f} c={fit.c:.3f} (rmse {fit.rmse:.4f}); "
    if fit.k_sat is None:
        return head + fit.message
    where = "extrapolated" if fit.extrapolated else f"within 1..{fit.observed_k}"
    return head + f"saturation k={fit.k_sat} ({where})"


def format_report(report: AlignmentReport, *, groups: Sequence[str] | None = None) -> str:
    """Text tables (80 columns): per group, mean±SD over orderings at each k, then fits."""
    share = report.invalid / report.answers if report.answers else 0.0
    lines = [
        f"synthetic run {report.run_id} ({report.run_label}, {report.model}) vs human "
        f"votes on {report.dataset}",
        f"clips {report.n_clips}, raters K={report.raters}, {_draws(report)} (seed {report.seed})",
        f"answers {report.answers}, unparseable {report.invalid} ({share:.1%})",
        f"Fleiss' kappa: synthetic raters {report.kappa_synthetic:.3f}, "
        f"human raters {report.kappa_human:.3f} (same clips)",
    ]
    for name in groups or list(report.curves):
        curve = report.curves[name]
        lines += [
            "",
            f"{name} ambiguity (n={curve.n_clips})"
            if name != ALL
            else f"all clips (n={curve.n_clips})",
        ]
        lines.append(f"{'k':>3}  {'JS syn':>13} {'BC syn':>13} {'JS comb':>13} {'BC comb':>13}")
        for i, k in enumerate(curve.k):
            cells = "".join(_cell(curve.mean[m][i], curve.sd[m][i]) for m in METRICS)
            lines.append(f"{k:>3}  {cells}".rstrip())
        for metric, fit in report.fits.get(name, {}).items():
            lines.append(_fit_line(metric.upper(), fit))
    return "\n".join(lines)


def plot_report(report: AlignmentReport, path: str | Path) -> Path | None:
    """JS and BC vs k per ambiguity level (mean ± SD band, fitted curve for `all`) as PNG.

    Returns None when matplotlib (the `report` extra) is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, metric, title in ((axes[0], "js", "JS divergence"), (axes[1], "bc", "Bhattacharyya")):
        for name, curve in report.curves.items():
            mean, sd = curve.mean[metric], curve.sd[metric]
            (line,) = ax.plot(curve.k, mean, marker="o", ms=3, label=f"{name} (n={curve.n_clips})")
            ax.fill_between(curve.k, mean - sd, mean + sd, color=line.get_color(), alpha=0.15)
            fit = report.fits.get(name, {}).get(metric)
            if name == ALL and fit is not None and fit.ok:
                grid = np.linspace(1, curve.k.max(), 200)
                sat = f"k_sat={fit.k_sat}" if fit.k_sat is not None else "no saturation"
                ax.plot(grid, fit.predict(grid), "k--", lw=1, label=f"fit, {sat}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("synthetic raters k")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"run {report.run_id} ({report.run_label}) vs human, {report.dataset}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
