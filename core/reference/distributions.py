"""Human vote distributions, entropy, ambiguity levels and inter-rater agreement.

Everything here is pure numpy/scipy and vectorised over clips: votes arrive as flat parallel
arrays (one entry per vote, as the database layer hands them over) and every function works on
whole ``(n_clips, K)`` matrices, so a corpus of 150k clips / 1M votes takes well under a second.

Conventions
-----------
* ``K`` is the size of the dataset's ordered label set; column ``k`` of every matrix is label
  ``k`` of that set.
* A *vote* is ``(clip_idx, label_idx, weight, rank)``. ``label_idx == -1`` marks a vote outside
  the label set (e.g. dropped by a label-subset projection); it is ignored. ``weight`` lets a
  single row stand for several identical votes (CREMA-D stores anonymous vote counts this way).
  ``rank`` 0 is a rater's primary label, 1, 2, ... are that rater's secondary labels.
* The human distribution is the normalised weighted vote count (the papers' default), with
  optional secondary-label weight, additive smoothing and a Dirichlet prior.
* Clips without any (effective) vote get a NaN distribution and ``valid == False``. They are
  excluded from metrics downstream; they are never silently given a uniform distribution,
  which would masquerade as "maximally ambiguous".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.special import xlogy

__all__ = [
    "AMBIGUITY_LEVELS",
    "NO_LEVEL",
    "AmbiguityResult",
    "DistributionOptions",
    "agreement_summary",
    "ambiguity_levels",
    "entropy_bits",
    "fleiss_kappa",
    "human_distribution",
    "krippendorff_alpha_from_reliability",
    "krippendorff_alpha_nominal",
    "level_names",
    "majority_labels",
    "normalized_entropy",
    "vote_counts",
]

AMBIGUITY_LEVELS: tuple[str, ...] = ("low", "medium", "high")
"""Names of the ambiguity level codes 0, 1, 2."""

NO_LEVEL = "n/a"
"""Name used by :func:`level_names` for code -1 (clip without a valid distribution)."""

_LN2 = math.log(2.0)
# Relative tolerance used to decide that two weighted counts are tied for the maximum.
_TIE_RTOL = 1e-9


# --------------------------------------------------------------------------------------------
# options


def _check_nonneg_finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
    return value


@dataclass(frozen=True)
class DistributionOptions:
    """How votes become a human distribution.

    Attributes:
        secondary_weight: multiplier applied to the weight of secondary votes (``rank >= 1``).
            0 keeps primary labels only, the papers' default; e.g. 0.5 lets each secondary
            label count half a vote.
        smoothing: additive (Laplace / Lidstone) pseudo-count added to every label of a clip
            before normalising: ``p_k = (c_k + s) / (total + K s)``. Avoids hard zeros for
            metrics such as KL divergence.
        prior: Dirichlet prior pseudo-counts ``alpha_k`` per label (length K, checked when
            used). The distribution is then the posterior mean
            ``p_k = (c_k + alpha_k) / (total + sum(alpha))``. Combined with ``smoothing`` the
            pseudo-counts add up: ``c_k + s + alpha_k``.
        multi_label: how a rater's label LIST counts (IEMOCAP evaluators write
            ``Frustration; Anger``: rank 0, 1, ... of one annotator). ``primary``: rank 0
            counts, later ranks by ``secondary_weight``; ``split``: every listed label counts
            ``1/len(list)`` of the rater's weight (a rater is one voice however many labels
            they list; a listed label stored outside the set, ``label_idx == -1``, keeps its
            share, which is lost; an import projection does not store such labels, so the
            list is then the rater's in-set labels);
            ``each``: every listed label counts fully (the official code of Zhang et al.).
            Needs the annotator of each vote (`vote_counts`' ``annotator``).
    """

    secondary_weight: float = 0.0
    smoothing: float = 0.0
    prior: tuple[float, ...] | None = None
    multi_label: Literal["primary", "split", "each"] = "primary"

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "secondary_weight",
            _check_nonneg_finite("secondary_weight", self.secondary_weight),
        )
        object.__setattr__(self, "smoothing", _check_nonneg_finite("smoothing", self.smoothing))
        if self.multi_label not in ("primary", "split", "each"):
            raise ValueError(
                f"multi_label must be primary, split or each, got {self.multi_label!r}"
            )
        if self.prior is not None:
            prior = tuple(_check_nonneg_finite("prior value", a) for a in self.prior)
            object.__setattr__(self, "prior", prior)

    def pseudo_counts(self, n_labels: int) -> np.ndarray:
        """Per-label pseudo-counts ``smoothing + prior_k`` as a float64 array of length K."""
        pseudo = np.full(n_labels, self.smoothing, dtype=np.float64)
        if self.prior is not None:
            if len(self.prior) != n_labels:
                raise ValueError(
                    f"prior has {len(self.prior)} values but the label set has {n_labels} labels"
                )
            pseudo += np.asarray(self.prior, dtype=np.float64)
        return pseudo


_DEFAULT_OPTIONS = DistributionOptions()


# --------------------------------------------------------------------------------------------
# votes -> counts -> distributions


def _int_array(name: str, values: object) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def vote_counts(
    clip_idx: np.ndarray,
    label_idx: np.ndarray,
    weight: np.ndarray,
    rank: np.ndarray,
    n_clips: int,
    K: int,
    options: DistributionOptions | None = None,
    annotator: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted vote counts per clip and label, shape ``(n_clips, K)``, float64.

    Each vote contributes ``weight * (1 if rank == 0 else options.secondary_weight)`` to cell
    ``(clip_idx, label_idx)`` (``multi_label="primary"``, the default; see
    `DistributionOptions` for ``split`` and ``each``, which need ``annotator``: one id per
    vote); votes with ``label_idx == -1`` (outside the label set) are ignored. Implemented as
    a single ``np.bincount`` over the flat index ``clip * K + label``.

    Raises:
        ValueError: on length mismatch, NaN / infinite / negative weights, negative ranks,
            label indices ``>= K`` or ``< -1``, or clip indices outside ``[0, n_clips)``.
    """
    opts = options if options is not None else _DEFAULT_OPTIONS
    n_clips = int(n_clips)
    K = int(K)
    if n_clips < 0:
        raise ValueError(f"n_clips must be >= 0, got {n_clips}")
    if K < 1:
        raise ValueError(f"K (number of labels) must be >= 1, got {K}")

    clips = _int_array("clip_idx", clip_idx)
    labels = _int_array("label_idx", label_idx)
    ranks = _int_array("rank", rank)
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 1:
        raise ValueError(f"weight must be a 1-D array, got shape {w.shape}")
    n = clips.shape[0]
    if not (labels.shape[0] == n and ranks.shape[0] == n and w.shape[0] == n):
        raise ValueError(
            "clip_idx, label_idx, weight and rank must have the same length, got "
            f"{n}, {labels.shape[0]}, {w.shape[0]}, {ranks.shape[0]}"
        )

    if n:
        if not np.isfinite(w).all():
            raise ValueError("vote weights must be finite (found NaN or inf)")
        if (w < 0).any():
            raise ValueError(f"vote weights must be non-negative (min {w.min()!r})")
        lo, hi = labels.min(), labels.max()
        if lo < -1 or hi >= K:
            bad = lo if lo < -1 else hi
            raise ValueError(f"label index {bad} outside the label set (expected -1..{K - 1})")
        if clips.min() < 0 or clips.max() >= n_clips:
            bad = clips.min() if clips.min() < 0 else clips.max()
            raise ValueError(f"clip index {bad} out of range (expected 0..{n_clips - 1})")
        if ranks.min() < 0:
            raise ValueError(f"vote rank must be >= 0, got {ranks.min()}")

    keep = labels >= 0
    if opts.multi_label == "primary":
        eff = np.where(ranks[keep] == 0, w[keep], w[keep] * opts.secondary_weight)
    elif opts.multi_label == "each":
        eff = w[keep]
    else:
        eff = (w / _list_lengths(clips, annotator, n))[keep]
    flat = clips[keep] * K + labels[keep]
    counts = np.bincount(flat, weights=eff, minlength=n_clips * K)
    return counts.reshape(n_clips, K)


def _list_lengths(clips: np.ndarray, annotator: np.ndarray | None, n: int) -> np.ndarray:
    """Per vote, how many votes its annotator gave the same clip (the length of that
    rater's label list, out-of-set labels included)."""
    if annotator is None:
        raise ValueError("multi_label='split' needs the annotator of every vote")
    who = _int_array("annotator", annotator)
    if who.shape[0] != n:
        raise ValueError(f"annotator must have one entry per vote ({n}), got {who.shape[0]}")
    if n == 0:
        return np.ones(0)
    pair = clips * (int(who.max()) + 1) + who
    _, inverse, sizes = np.unique(pair, return_inverse=True, return_counts=True)
    return sizes[inverse].astype(np.float64)


def _as_counts(counts: object, name: str = "counts") -> np.ndarray:
    arr = np.asarray(counts, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n_clips, K) array, got shape {arr.shape}")
    if arr.size and (not np.isfinite(arr).all() or (arr < 0).any()):
        raise ValueError(f"{name} must be finite and non-negative")
    return arr


def human_distribution(
    counts: np.ndarray, options: DistributionOptions | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Normalise weighted vote counts into per-clip label distributions.

    ``p_ik = (c_ik + s + alpha_k) / (sum_k c_ik + K s + sum_k alpha_k)`` where ``s`` is
    ``options.smoothing`` and ``alpha`` the optional Dirichlet prior (posterior mean).
    With the default options this is plain ``counts / total``.

    A clip whose *raw* total is 0 (the empty vote set: no votes, or only votes that carry no
    weight, e.g. secondary votes with ``secondary_weight == 0``) gets a NaN row and
    ``valid_mask`` False, even when smoothing or a prior would make the ratio defined: such
    clips have no human evidence and must be excluded from metrics rather than be given the
    prior (uniform for plain smoothing) as if humans had produced it.

    Returns:
        ``(dist, valid_mask)``: float64 ``(n_clips, K)`` and bool ``(n_clips,)``.
    """
    opts = options if options is not None else _DEFAULT_OPTIONS
    c = _as_counts(counts)
    K = c.shape[1]
    pseudo = opts.pseudo_counts(K)
    total = c.sum(axis=1)
    valid = total > 0
    denom = total + pseudo.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = (c + pseudo) / denom[:, None]
    dist[~valid] = np.nan
    return dist, valid


# --------------------------------------------------------------------------------------------
# entropy and ambiguity


def entropy_bits(dist: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits along the last axis: ``H = -sum_k p_k log2 p_k``.

    ``0 log 0`` is taken as 0; rows containing NaN (invalid clips) give NaN. Each row is
    sorted before summing so the result is exactly permutation invariant: clips with the same
    multiset of probabilities get bit-identical entropies, which keeps ties at ambiguity cut
    points deterministic.
    """
    p = np.sort(np.asarray(dist, dtype=np.float64), axis=-1)
    return -xlogy(p, p).sum(axis=-1) / _LN2


def normalized_entropy(
    dist: np.ndarray, norm: Literal["log-k", "log-present"] = "log-k"
) -> np.ndarray:
    """Entropy divided by a maximum, in ``[0, 1]`` (NaN rows stay NaN).

    ``norm="log-k"`` (ambiscope): ``H / log2(K)`` with ``K`` the number of columns (the size
    of the label set, not the number of labels that received votes), so values are
    comparable within a dataset and a 50/50 split of two labels among ten is 0.30, not
    maximal. ``norm="log-present"`` (Zhang et al.'s official code): ``H / log2(m)`` with ``m``
    the number of labels with non-zero probability in that clip, 0 when ``m == 1``: every
    even split is 1.0 whatever its size. The base of the logarithm cancels in both. Results
    are clipped to ``[0, 1]`` to absorb rounding.
    """
    d = np.asarray(dist, dtype=np.float64)
    h = entropy_bits(d)
    if norm == "log-present":
        m = (d > 0).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(m > 1, h / np.log2(np.maximum(m, 2)), 0.0)
        return np.where(np.isnan(h), np.nan, np.clip(out, 0.0, 1.0))
    if norm != "log-k":
        raise ValueError(f"unknown entropy normalisation {norm!r} (log-k or log-present)")
    K = d.shape[-1]
    if K <= 1:
        return np.where(np.isnan(h), np.nan, 0.0)
    return np.clip(h / math.log2(K), 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class AmbiguityResult:
    """Ambiguity level per clip plus the cut points that produced it.

    Attributes:
        codes: int8 array, 0/1/2 = low/medium/high (see ``AMBIGUITY_LEVELS``), -1 for clips
            without a valid (non-NaN) normalised entropy.
        cuts: ``(q1, q2)``: value ``<= q1`` is low, ``<= q2`` medium, otherwise high
            (``rank-thirds``: the values of the last low and the last medium clip).
            NaN when no valid value exists.
        method: ``"tertile"``, ``"rank-thirds"`` or ``"fixed"``.
    """

    codes: np.ndarray
    cuts: tuple[float, float]
    method: str
    counts: tuple[int, int, int] = field(default=(0, 0, 0))

    @property
    def names(self) -> list[str]:
        """Level name per clip (``NO_LEVEL`` for code -1)."""
        return level_names(self.codes)


def ambiguity_levels(
    norm_entropy: np.ndarray,
    *,
    method: Literal["tertile", "rank-thirds", "fixed"] = "tertile",
    thresholds: tuple[float, float] = (1 / 3, 2 / 3),
) -> AmbiguityResult:
    """Bin normalised entropies into low / medium / high ambiguity.

    ``method="rank-thirds"`` (Zhang et al.'s official code): the valid clips sorted by value
    (stable: ties keep their order, the clip order = the corpus file order) and cut into
    thirds by rank: the first ``n // 3`` are low, the next ``n // 3`` medium, the rest high.
    Levels are balanced, and clips with the same value may fall on both sides of a cut.

    ``method="tertile"`` (the papers' analysis): cut points are the 1/3 and 2/3 quantiles
    (numpy's default linear interpolation) of the valid values in ``norm_entropy``. Pass one
    dataset at a time, since tertiles are relative to the dataset. ``method="fixed"`` uses
    ``thresholds`` as the cut points, which makes levels comparable across datasets.

    Assignment in both cases: ``value <= q1`` -> low (0), ``q1 < value <= q2`` -> medium (1),
    ``value > q2`` -> high (2), NaN -> -1. Ties at a cut point therefore always go to the
    lower level. Because many clips often share exactly the same entropy (all unanimous clips
    have 0; every 2-vs-1 split of three raters has the same value), tertile levels are in
    general *not* balanced thirds: if over a third of the clips are unanimous, q1 == 0 and all
    of them are "low". This is intended: clips with identical vote distributions must get the
    same level.
    """
    h = np.asarray(norm_entropy, dtype=np.float64)
    valid = ~np.isnan(h)
    if method == "rank-thirds":
        return _rank_thirds(h, valid)
    if method == "tertile":
        vals = h[valid]
        if vals.size:
            q1, q2 = (float(q) for q in np.quantile(vals, [1 / 3, 2 / 3]))
        else:
            q1 = q2 = math.nan
    elif method == "fixed":
        if len(thresholds) != 2:
            raise ValueError(f"thresholds must be two cut points, got {thresholds!r}")
        q1, q2 = (float(t) for t in thresholds)
        if not (math.isfinite(q1) and math.isfinite(q2)) or q1 > q2:
            raise ValueError(f"thresholds must be finite with t1 <= t2, got {thresholds!r}")
    else:
        raise ValueError(
            f"unknown ambiguity method {method!r} (use 'tertile', 'rank-thirds' or 'fixed')"
        )

    codes = np.full(h.shape, -1, dtype=np.int8)
    hv = h[valid]
    codes[valid] = np.where(hv <= q1, 0, np.where(hv <= q2, 1, 2)).astype(np.int8)
    n_per = np.bincount(codes[valid].astype(np.int64), minlength=3)
    return AmbiguityResult(
        codes=codes,
        cuts=(q1, q2),
        method=method,
        counts=(int(n_per[0]), int(n_per[1]), int(n_per[2])),
    )


def _rank_thirds(h: np.ndarray, valid: np.ndarray) -> AmbiguityResult:
    """Exact thirds by rank of the valid values (see `ambiguity_levels`)."""
    index = np.flatnonzero(valid)
    order = index[np.argsort(h[index], kind="stable")]
    n = order.size
    third = n // 3
    codes = np.full(h.shape, -1, dtype=np.int8)
    codes[order[:third]] = 0
    codes[order[third : 2 * third]] = 1
    codes[order[2 * third :]] = 2
    cut1 = float(h[order[third - 1]]) if third > 0 else math.nan
    cut2 = float(h[order[2 * third - 1]]) if third > 0 else math.nan
    return AmbiguityResult(
        codes=codes,
        cuts=(cut1, cut2),
        method="rank-thirds",
        counts=(third, third, n - 2 * third),
    )


_LEVEL_NAME_TABLE = np.array([*AMBIGUITY_LEVELS, NO_LEVEL], dtype=object)


def level_names(codes: np.ndarray) -> list[str]:
    """Map level codes (0/1/2, -1) to ``"low"/"medium"/"high"`` and ``NO_LEVEL``."""
    c = np.asarray(codes, dtype=np.int64)
    if c.size and (c.min() < -1 or c.max() > 2):
        raise ValueError("ambiguity level codes must be in -1..2")
    # index -1 picks the last table entry, NO_LEVEL
    return _LEVEL_NAME_TABLE[c].tolist()


# --------------------------------------------------------------------------------------------
# majority labels


def majority_labels(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plurality label per clip and whether the maximum is shared.

    Returns ``(labels, is_tie)``: ``labels`` is the index of the largest count (the first one
    among tied labels, matching the metrics' "ties: first index" rule), -1 for clips with no
    votes; ``is_tie`` is True when two or more labels share the maximum (up to a 1e-9 relative
    tolerance, so weighted sums such as 0.1 + 0.2 vs 0.3 still tie). Works on counts or on
    distributions (NaN rows count as empty).
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"counts must be a 2-D (n_clips, K) array, got shape {c.shape}")
    c = np.where(np.isnan(c), 0.0, c)
    if c.shape[1] == 0:
        n = c.shape[0]
        return np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool)
    mx = c.max(axis=1)
    near = c >= (mx - _TIE_RTOL * np.maximum(np.abs(mx), 1.0))[:, None]
    labels = near.argmax(axis=1).astype(np.int64)
    empty = mx <= 0
    labels[empty] = -1
    is_tie = (near.sum(axis=1) > 1) & ~empty
    return labels, is_tie


# --------------------------------------------------------------------------------------------
# agreement


def _rater_counts(counts: object) -> np.ndarray:
    c = _as_counts(counts)
    if c.size and np.abs(c - np.round(c)).max() > 1e-9:
        raise ValueError(
            "agreement needs integer rater counts (use primary votes only, secondary_weight=0)"
        )
    return np.round(c)


def _pairable(counts: object) -> tuple[np.ndarray, np.ndarray] | None:
    """Items with at least two ratings and their rating totals (None if there are none):
    an item rated once has no rater pairs, so agreement statistics drop it."""
    c = _rater_counts(counts)
    totals = c.sum(axis=1)
    use = totals >= 2
    if not use.any():
        return None
    return c[use], totals[use]


def fleiss_kappa(counts: np.ndarray, single: Literal["drop", "perfect"] = "drop") -> float:
    """Fleiss' kappa from an ``(n_items, K)`` matrix of rater counts ``n_ik``.

    Classical Fleiss (1971) assumes every item has the same number of raters ``n``. Crowd
    corpora vary (MSP-Podcast, CREMA-D), so the common generalisation is used: with
    ``n_i = sum_k n_ik``,

        P_i   = sum_k n_ik (n_ik - 1) / (n_i (n_i - 1))   (agreeing rater pairs of item i)
        P_bar = mean_i P_i
        p_k   = sum_i n_ik / sum_i n_i                    (pooled label proportions)
        P_e   = sum_k p_k^2
        kappa = (P_bar - P_e) / (1 - P_e)

    which reduces exactly to Fleiss' formula when all ``n_i`` are equal. Items with fewer than
    2 ratings have no rater pairs and are dropped (also from ``p_k``). Returns NaN when the
    statistic is undefined: no usable item, or ``P_e == 1`` (every rating in one category).

    ``single="perfect"`` follows Zhang et al.'s official code instead: an item rated once
    counts as perfect agreement (``P_i = 1``) and its rating enters ``p_k``; a mean of at most
    one rating per item gives 1.0, and ``P_e == 1`` gives 1.0 when ``P_bar > 0.99``, else 0.
    """
    if single == "perfect":
        return _fleiss_single_perfect(counts)
    if single != "drop":
        raise ValueError(f"single must be 'drop' or 'perfect', got {single!r}")
    pairable = _pairable(counts)
    if pairable is None:
        return math.nan
    c, n_i = pairable
    p_i = (c * (c - 1)).sum(axis=1) / (n_i * (n_i - 1))
    p_bar = float(p_i.mean())
    p_k = c.sum(axis=0) / n_i.sum()
    p_e = float((p_k**2).sum())
    if p_e >= 1.0 - 1e-12:
        return math.nan
    return (p_bar - p_e) / (1.0 - p_e)


def _fleiss_single_perfect(counts: np.ndarray) -> float:
    """Fleiss' kappa with single-rater items as perfect agreement (see `fleiss_kappa`)."""
    c = _rater_counts(counts)
    c = c[c.sum(axis=1) > 0]
    if c.shape[0] == 0 or c.shape[1] <= 1:
        return 1.0
    n_i = c.sum(axis=1)
    if n_i.mean() <= 1:
        return 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        pairs = (c * (c - 1)).sum(axis=1) / (n_i * (n_i - 1))
    p_bar = float(np.where(n_i <= 1, 1.0, pairs).mean())
    p_e = float(((c.sum(axis=0) / n_i.sum()) ** 2).sum())
    if abs(p_e - 1.0) < 1e-10:
        return 1.0 if p_bar > 0.99 else 0.0
    return (p_bar - p_e) / (1.0 - p_e)


def krippendorff_alpha_nominal(counts: np.ndarray) -> float:
    """Krippendorff's alpha for nominal data from a units-by-values count matrix.

    ``counts[u, c]`` = number of coders who assigned value ``c`` to unit ``u`` (n_uc); missing
    ratings simply do not appear, so varying numbers of coders are handled natively. Units
    with ``m_u = sum_c n_uc < 2`` have no pairable values and are dropped. Via the
    coincidence matrix (Krippendorff 2011), with ``n_c = sum_u n_uc`` over pairable units and
    ``n = sum_c n_c``:

        D_o ~ sum_u sum_c n_uc (m_u - n_uc) / (m_u - 1)   (observed disagreeing pairs)
        D_e ~ sum_c sum_{k != c} n_c n_k / (n - 1) = (n^2 - sum_c n_c^2) / (n - 1)
        alpha = 1 - (n - 1) * sum_u sum_c n_uc (m_u - n_uc) / (m_u - 1) / (n^2 - sum_c n_c^2)

    Returns NaN when undefined (fewer than 2 pairable values, or a single value used
    throughout, where expected disagreement is 0).
    """
    pairable = _pairable(counts)
    if pairable is None:
        return math.nan
    c, m_u = pairable
    n_c = c.sum(axis=0)
    n = float(n_c.sum())
    observed = float((c * (m_u[:, None] - c) / (m_u[:, None] - 1)).sum())
    expected = n * n - float((n_c**2).sum())
    if expected <= 0:
        return math.nan
    return 1.0 - (n - 1.0) * observed / expected


def krippendorff_alpha_from_reliability(data: np.ndarray) -> float:
    """Nominal Krippendorff's alpha from a reliability data matrix (coders x units).

    ``data[j, u]`` is the value coder ``j`` gave unit ``u`` (any numbers, treated as nominal
    categories), ``np.nan`` where missing. Converted to the units-by-values count matrix and
    passed to :func:`krippendorff_alpha_nominal`.
    """
    d = np.asarray(data, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"reliability data must be 2-D (coders x units), got shape {d.shape}")
    if np.isinf(d).any():
        raise ValueError("reliability data must not contain inf (use NaN for missing)")
    n_units = d.shape[1]
    present = ~np.isnan(d)
    units = np.broadcast_to(np.arange(n_units), d.shape)[present]
    cats, cat_idx = np.unique(d[present], return_inverse=True)
    n_cat = max(len(cats), 1)
    counts = np.bincount(units * n_cat + cat_idx.ravel(), minlength=n_units * n_cat)
    return krippendorff_alpha_nominal(counts.reshape(n_units, n_cat).astype(np.float64))


def agreement_summary(
    counts: np.ndarray, single: Literal["drop", "perfect"] = "drop"
) -> dict[str, float | int | bool]:
    """Agreement statistics for one dataset (or split) from its ``(n_items, K)`` rater counts.

    Keys: ``fleiss_kappa``, ``krippendorff_alpha`` (NaN where undefined), ``n_items`` (rows
    given), ``n_items_used`` (items with >= 2 ratings, the ones both statistics use),
    ``n_ratings_used``, ``mean_raters_per_item`` (over used items, NaN if none) and
    ``equal_raters`` (True when all used items have the same number of ratings, i.e. classical
    Fleiss applies exactly rather than its generalisation).
    """
    c = _rater_counts(counts)
    n_i = c.sum(axis=1)
    used = n_i[n_i >= 2]
    return {
        "fleiss_kappa": fleiss_kappa(c, single),
        "krippendorff_alpha": krippendorff_alpha_nominal(c),
        "n_items": int(c.shape[0]),
        "n_items_used": int(used.size),
        "n_ratings_used": int(used.sum()),
        "mean_raters_per_item": float(used.mean()) if used.size else math.nan,
        "equal_raters": bool(used.size > 0 and (used == used[0]).all()),
    }
