"""Distribution and classification metrics comparing human (P) and model (Q) emotion distributions.

``P`` holds the human vote distributions and ``Q`` a model's distributions, both float arrays of
shape ``(n_clips, K)`` whose rows sum to 1 (column ``k`` is label ``k`` of the dataset's ordered
label set). Everything is vectorised over clips; there is no Python loop over clips anywhere.

Conventions
-----------
* Information quantities (JS, KL, entropy) are in **bits** (log base 2), so JS lies in [0, 1].
  ``0 * log 0 = 0`` throughout.
* Hard labels are ``argmax`` of a row; ties go to the first index (``np.argmax``).
  :func:`tie_aware_accuracy` is the variant where any label tied for the human maximum counts.
* "Numerically constant" means a variance of at most ``1e-12``; correlations and R² terms that
  would divide by such a variance are undefined (NaN / skipped) rather than huge.
* Inputs are validated: shape mismatch, NaN/inf and negative values raise ``ValueError``; rows
  that do not sum to 1 (tolerance ``1e-6``) are renormalised with a warning
  (:func:`normalize_rows`).

Bootstrap design (why it is fast)
---------------------------------
Every corpus-level metric is a function of *weighted sums over clips* of a fixed per-clip
feature matrix ``V`` (``n_clips x F``): means of per-clip metrics, per-label sums for R² and
F1, per-bin sums for ECE, centred moments for the entropy Pearson correlation. A bootstrap
resample is a vector of counts ``c`` (how often each clip was drawn), so a chunk of ``B``
resamples is a ``(B, n)`` count matrix ``C`` and all the sums are one matrix product
``C @ V``. Spearman's correlation is computed exactly per resample from count-weighted tie
groups (average ranks of the resampled multiset). With unit counts this path reproduces
:func:`compute_all` exactly, which the tests check.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special, stats

__all__ = [
    "HIGHER_IS_BETTER",
    "INFO_KEYS",
    "METRICS",
    "accuracy",
    "bhattacharyya",
    "bootstrap_ci",
    "compute_all",
    "cosine_similarity",
    "ece",
    "entropy_bits",
    "entropy_correlation",
    "invalid_rate",
    "js_distance",
    "js_divergence",
    "kl_divergence",
    "macro_f1",
    "mean_pearson_r2",
    "metric_table",
    "normalize_rows",
    "paired_bootstrap",
    "pearson_r2",
    "r2_determination",
    "tie_aware_accuracy",
    "weighted_f1",
]

METRICS: tuple[str, ...] = (
    "js",
    "js_distance",
    "kl",
    "bc",
    "cosine",
    "r2_pearson",
    "r2_det",
    "ece",
    "accuracy",
    "tie_accuracy",
    "macro_f1",
    "weighted_f1",
    "entropy_pearson",
    "entropy_spearman",
    "invalid_rate",
)
"""Stable metric names, in report order."""

HIGHER_IS_BETTER: dict[str, bool] = {
    "js": False,
    "js_distance": False,
    "kl": False,
    "bc": True,
    "cosine": True,
    "r2_pearson": True,
    "r2_det": True,
    "ece": False,
    "accuracy": True,
    "tie_accuracy": True,
    "macro_f1": True,
    "weighted_f1": True,
    "entropy_pearson": True,
    "entropy_spearman": True,
    "invalid_rate": False,
}
"""Direction of improvement for every name in :data:`METRICS`."""

INFO_KEYS: tuple[str, ...] = ("n", "kl_eps", "r2_pearson_skipped")
"""Non-metric keys :func:`compute_all` adds: clip count, KL smoothing epsilon, and how many
clips the per-clip Pearson R² mean skipped (constant rows)."""

ROW_TOL = 1e-6
"""Rows whose sum differs from 1 by more than this are renormalised (with a warning)."""
TIE_TOL = 1e-9
"""Human shares within this of the row maximum count as tied for the majority."""
DEFAULT_EPS = 1e-6
"""Default additive smoothing of Q for KL(P||Q)."""
N_BINS = 10
"""ECE uses this many equal-width confidence bins."""

_VAR_TOL = 1e-12  # variance at or below this is "numerically constant"
_RANK_DECIMALS = 10  # entropies are rounded before ranking so equal-by-maths values tie
_LN2 = math.log(2.0)
_CHUNK_ELEMENTS = 8_000_000  # resamples per chunk ~ this / n_clips (bounds peak memory)
_RANK_BLOCK_ELEMENTS = 300_000  # resamples per Spearman block ~ this / n_clips (cache-sized)

_FloatArray = npt.NDArray[np.float64]
_Counts = tuple[_FloatArray, _FloatArray] | None


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _as_matrix(X: npt.ArrayLike, name: str) -> _FloatArray:
    """Return ``X`` as a finite, non-negative float64 ``(n, K)`` matrix or raise ValueError.

    A 1-D input is one distribution and becomes a single row.
    """
    A = np.asarray(X, dtype=np.float64)
    if A.ndim == 1:
        A = A[None, :]
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n_clips, K) array, got shape {A.shape}")
    if A.size == 0:
        raise ValueError(f"{name} is empty (shape {A.shape})")
    n_bad = int(np.count_nonzero(~np.isfinite(A)))
    if n_bad:
        raise ValueError(f"{name} contains {n_bad} NaN/inf value(s)")
    n_neg = int(np.count_nonzero(A < 0))
    if n_neg:
        raise ValueError(f"{name} contains {n_neg} negative value(s)")
    return A


def _normalize_checked(A: _FloatArray, name: str) -> _FloatArray:
    """Renormalise rows of an already validated matrix (see :func:`normalize_rows`)."""
    sums = A.sum(axis=1)
    zero = sums <= 0.0
    if zero.any():
        first = np.flatnonzero(zero)[:5].tolist()
        raise ValueError(
            f"{name}: {int(zero.sum())} row(s) sum to zero and cannot be normalised "
            f"(first rows {first})"
        )
    off = np.abs(sums - 1.0) > ROW_TOL
    if not off.any():
        return A
    warnings.warn(
        f"{name}: renormalised {int(off.sum())} of {len(A)} row(s) that did not sum to 1 "
        f"(tolerance {ROW_TOL:g})",
        UserWarning,
        stacklevel=3,
    )
    return A / sums[:, None]


def normalize_rows(X: npt.ArrayLike, *, name: str = "X") -> _FloatArray:
    """Return ``X`` with every row summing to 1, warning about how many rows were fixed.

    Upstream distributions can drift (float32 storage, smoothing, parsed model JSON that sums
    to 0.99), and metrics such as JS are only bounded for true distributions, so such rows are
    divided by their sum. This is loud (a ``UserWarning`` naming the count) because a large
    count usually means a bug upstream. Rows with no mass at all cannot be repaired: they
    raise ``ValueError``, as do NaN/inf and negative values. The input is never modified; when
    nothing needs fixing the validated array itself may be returned.
    """
    return _normalize_checked(_as_matrix(X, name), name)


def _prepare(P: npt.ArrayLike, Q: npt.ArrayLike) -> tuple[_FloatArray, _FloatArray]:
    """Validate a (P, Q) pair: same shape, finite, non-negative, rows renormalised."""
    Pm = _as_matrix(P, "P")
    Qm = _as_matrix(Q, "Q")
    if Pm.shape != Qm.shape:
        raise ValueError(f"P and Q must have the same shape, got {Pm.shape} and {Qm.shape}")
    return _normalize_checked(Pm, "P"), _normalize_checked(Qm, "Q")


def _check_eps(eps: float) -> float:
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    return float(eps)


def _check_counts(
    n_invalid: npt.ArrayLike | None, n_candidates: npt.ArrayLike | None, n: int
) -> _Counts:
    """Validate candidate counts: both or neither; scalars (totals) or per-clip arrays (n,)."""
    if n_invalid is None and n_candidates is None:
        return None
    if n_invalid is None or n_candidates is None:
        raise ValueError("n_invalid and n_candidates must be given together")
    inv = np.asarray(n_invalid, dtype=np.float64)
    cand = np.asarray(n_candidates, dtype=np.float64)
    for arr, label in ((inv, "n_invalid"), (cand, "n_candidates")):
        if arr.shape not in ((), (n,)):
            raise ValueError(f"{label} must be a scalar or have shape ({n},), got {arr.shape}")
        if not np.isfinite(arr).all() or (arr < 0).any():
            raise ValueError(f"{label} must be finite and non-negative")
    if inv.shape != cand.shape:
        raise ValueError("n_invalid and n_candidates must both be scalars or both per-clip")
    if (inv > cand).any():
        raise ValueError("n_invalid exceeds n_candidates")
    return inv, cand


# --------------------------------------------------------------------------------------------
# Per-clip metrics (validated public wrappers around unchecked kernels)
# --------------------------------------------------------------------------------------------


def _js(P: _FloatArray, Q: _FloatArray) -> _FloatArray:
    M = 0.5 * (P + Q)
    nats = 0.5 * (special.rel_entr(P, M).sum(axis=1) + special.rel_entr(Q, M).sum(axis=1))
    return np.clip(nats / _LN2, 0.0, 1.0)


def _kl(P: _FloatArray, Q: _FloatArray, eps: float) -> _FloatArray:
    Qs = Q + eps
    Qs /= Qs.sum(axis=1, keepdims=True)
    return np.maximum(special.rel_entr(P, Qs).sum(axis=1) / _LN2, 0.0)


def _bc(P: _FloatArray, Q: _FloatArray) -> _FloatArray:
    return np.clip(np.sqrt(P * Q).sum(axis=1), 0.0, 1.0)


def _cosine(P: _FloatArray, Q: _FloatArray) -> _FloatArray:
    dot = np.einsum("ij,ij->i", P, Q)
    norms = np.linalg.norm(P, axis=1) * np.linalg.norm(Q, axis=1)
    return np.clip(dot / norms, 0.0, 1.0)


def _pearson_r2_rows(P: _FloatArray, Q: _FloatArray) -> _FloatArray:
    Pc = P - P.mean(axis=1, keepdims=True)
    Qc = Q - Q.mean(axis=1, keepdims=True)
    spp = np.einsum("ij,ij->i", Pc, Pc)
    sqq = np.einsum("ij,ij->i", Qc, Qc)
    spq = np.einsum("ij,ij->i", Pc, Qc)
    k = P.shape[1]
    ok = (spp > _VAR_TOL * k) & (sqq > _VAR_TOL * k)
    out = np.full(len(P), np.nan)
    out[ok] = np.minimum(spq[ok] ** 2 / (spp[ok] * sqq[ok]), 1.0)
    return out


def _entropy(X: _FloatArray) -> _FloatArray:
    return np.maximum(special.entr(X).sum(axis=1) / _LN2, 0.0)


def js_divergence(P: npt.ArrayLike, Q: npt.ArrayLike) -> _FloatArray:
    """Per-clip Jensen-Shannon divergence in bits, shape ``(n,)``, in [0, 1].

    ``JS = 0.5 KL(P||M) + 0.5 KL(Q||M)`` with ``M = (P + Q) / 2``. Unlike KL it is symmetric
    and finite when the model puts zero mass on a human label (M > 0 wherever P or Q is), which
    is why the papers use it as the headline distribution metric.
    """
    return _js(*_prepare(P, Q))


def js_distance(P: npt.ArrayLike, Q: npt.ArrayLike) -> _FloatArray:
    """Per-clip Jensen-Shannon distance ``sqrt(JS)`` (a true metric), shape ``(n,)``."""
    return np.sqrt(js_divergence(P, Q))


def kl_divergence(P: npt.ArrayLike, Q: npt.ArrayLike, eps: float = DEFAULT_EPS) -> _FloatArray:
    """Per-clip KL(P||Q') in bits, shape ``(n,)``, with ``Q' = (Q + eps) / sum(Q + eps)``.

    KL is infinite as soon as a model gives zero mass to a label some human chose, which is
    common for sampled label histograms, so Q is smoothed; the value depends on ``eps``, which
    is why :func:`compute_all` reports it as ``kl_eps``.
    """
    return _kl(*_prepare(P, Q), _check_eps(eps))


def bhattacharyya(P: npt.ArrayLike, Q: npt.ArrayLike) -> _FloatArray:
    """Per-clip Bhattacharyya coefficient ``sum_k sqrt(P_k Q_k)``, shape ``(n,)``, in [0, 1].

    It measures the overlap of the two distributions: 1 iff they are equal, 0 iff disjoint.
    """
    return _bc(*_prepare(P, Q))


def cosine_similarity(P: npt.ArrayLike, Q: npt.ArrayLike) -> _FloatArray:
    """Per-clip cosine similarity ``P.Q / (|P| |Q|)``, shape ``(n,)``; in [0, 1] for
    non-negative rows."""
    return _cosine(*_prepare(P, Q))


def pearson_r2(P: npt.ArrayLike, Q: npt.ArrayLike) -> _FloatArray:
    """Per-clip squared Pearson correlation between the two K-vectors, shape ``(n,)``.

    This is the first published R² variant. It is undefined when either row is (numerically)
    constant, e.g. a uniform model distribution; such clips get NaN rather than an arbitrary
    value. :func:`mean_pearson_r2` (and ``compute_all``'s ``r2_pearson``) skip them and report
    how many were skipped.
    """
    return _pearson_r2_rows(*_prepare(P, Q))


def mean_pearson_r2(P: npt.ArrayLike, Q: npt.ArrayLike) -> tuple[float, int]:
    """Mean of :func:`pearson_r2` over clips where it is defined, and the number skipped."""
    r2 = pearson_r2(P, Q)
    return _nanmean_skipped(r2)


def _nanmean_skipped(x: _FloatArray) -> tuple[float, int]:
    ok = ~np.isnan(x)
    skipped = int(len(x) - ok.sum())
    return (float(x[ok].mean()) if ok.any() else math.nan), skipped


def entropy_bits(X: npt.ArrayLike) -> _FloatArray:
    """Per-row Shannon entropy ``-sum_k X_k log2 X_k`` in bits (``0 log 0 = 0``), shape ``(n,)``.

    Human entropy is the paper's ambiguity measure; comparing it with model entropy shows
    whether a model is uncertain where people disagree.
    """
    return _entropy(normalize_rows(X, name="X"))


# --------------------------------------------------------------------------------------------
# Corpus-level metrics
# --------------------------------------------------------------------------------------------


def _r2_from_ss(ss_res: _FloatArray, ss_tot: _FloatArray, w: _FloatArray) -> _FloatArray:
    """Mean over labels of ``1 - SS_res/SS_tot``; labels with constant P (per weight) skipped.

    Works on stacked inputs: ``ss_res``/``ss_tot`` are ``(..., K)`` and ``w`` is ``(...)``.
    """
    valid = ss_tot > _VAR_TOL * w[..., None]
    r2 = np.where(valid, 1.0 - ss_res / np.where(valid, ss_tot, 1.0), 0.0)
    n_valid = valid.sum(axis=-1)
    return np.where(n_valid > 0, r2.sum(axis=-1) / np.maximum(n_valid, 1), np.nan)


def _r2_det(P: _FloatArray, Q: _FloatArray) -> float:
    ss_tot = ((P - P.mean(axis=0)) ** 2).sum(axis=0)
    ss_res = ((P - Q) ** 2).sum(axis=0)
    return float(_r2_from_ss(ss_res, ss_tot, np.asarray(float(len(P)))))


def r2_determination(P: npt.ArrayLike, Q: npt.ArrayLike) -> float:
    """Mean over labels k of the coefficient of determination of ``Q[:, k]`` against ``P[:, k]``.

    ``R²_k = 1 - sum_i (P_ik - Q_ik)² / sum_i (P_ik - mean_i P_ik)²`` (the second published R²
    variant: how well the model's share of label k tracks the human share across clips; it can
    be negative). Labels whose human share is numerically constant (SS_tot ~ 0, e.g. a label
    nobody used) are skipped because R² is undefined for them; NaN if all are.
    """
    return _r2_det(*_prepare(P, Q))


def _bin_index(conf: _FloatArray, n_bins: int) -> npt.NDArray[np.intp]:
    """Equal-width bins on [0, 1], right-closed: bin b holds ``b/n < conf <= (b+1)/n``."""
    inner = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    return np.searchsorted(inner, conf, side="left")


def _ece(P: _FloatArray, Q: _FloatArray, n_bins: int) -> float:
    conf = Q.max(axis=1)
    correct = (P.argmax(axis=1) == Q.argmax(axis=1)).astype(np.float64)
    gaps = np.bincount(_bin_index(conf, n_bins), weights=correct - conf, minlength=n_bins)
    return float(np.abs(gaps).sum() / len(P))


def ece(P: npt.ArrayLike, Q: npt.ArrayLike, n_bins: int = N_BINS) -> float:
    """Expected calibration error of the model's top label against the human majority.

    Confidence = ``max_k Q_k``, correct = ``argmax Q == argmax P``; with ``n_bins`` equal-width
    right-closed bins, ``ECE = sum_b (n_b / n) |acc_b - conf_b|``
    ``= sum_b |sum_{i in b} (correct_i - conf_i)| / n``. The second form is what makes it a
    weighted sum over clips (and so bootstrappable by matrix products).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    return _ece(*_prepare(P, Q), n_bins)


def accuracy(P: npt.ArrayLike, Q: npt.ArrayLike) -> float:
    """Share of clips where ``argmax Q == argmax P`` (ties: first index)."""
    Pm, Qm = _prepare(P, Q)
    return float(np.mean(Pm.argmax(axis=1) == Qm.argmax(axis=1)))


def _tie_correct(P: _FloatArray, Q: _FloatArray, tol: float) -> _FloatArray:
    top = P[np.arange(len(P)), Q.argmax(axis=1)]
    return (top >= P.max(axis=1) - tol).astype(np.float64)


def tie_aware_accuracy(P: npt.ArrayLike, Q: npt.ArrayLike, tol: float = TIE_TOL) -> float:
    """Accuracy where the model's argmax is correct if it is *any* label tied for the human
    maximum (within ``tol``).

    Plain argmax accuracy penalises a model for picking the "second" of two equally voted
    labels purely because of label order; on ambiguous corpora that is a large effect.
    """
    return float(np.mean(_tie_correct(*_prepare(P, Q), tol)))


def _f1_from_counts(
    tp: _FloatArray, n_true: _FloatArray, n_pred: _FloatArray
) -> tuple[_FloatArray, _FloatArray]:
    """(macro-F1, support-weighted F1) from per-class counts shaped ``(..., K)``.

    ``F1_k = 2 TP_k / (true_k + pred_k)``. Like scikit-learn, the macro mean runs over labels
    that occur in either the true or predicted labels, and the weighted mean uses true support.
    """
    denom = n_true + n_pred
    present = denom > 0
    f1 = np.where(present, 2.0 * tp / np.where(present, denom, 1.0), 0.0)
    macro = f1.sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)
    weighted = (f1 * n_true).sum(axis=-1) / np.maximum(n_true.sum(axis=-1), 1e-300)
    return macro, weighted


def _f1(P: _FloatArray, Q: _FloatArray) -> tuple[float, float]:
    k = P.shape[1]
    t, p = P.argmax(axis=1), Q.argmax(axis=1)
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.float64)
    macro, weighted = _f1_from_counts(np.diag(cm), cm.sum(axis=1), cm.sum(axis=0))
    return float(macro), float(weighted)


def macro_f1(P: npt.ArrayLike, Q: npt.ArrayLike) -> float:
    """Unweighted mean over labels of F1 on argmax labels (labels in neither true nor predicted
    labels are left out, as in scikit-learn)."""
    return _f1(*_prepare(P, Q))[0]


def weighted_f1(P: npt.ArrayLike, Q: npt.ArrayLike) -> float:
    """Mean over labels of F1 on argmax labels weighted by the human-label support."""
    return _f1(*_prepare(P, Q))[1]


def _corr_from_moments(
    sx: _FloatArray,
    sy: _FloatArray,
    sxx: _FloatArray,
    syy: _FloatArray,
    sxy: _FloatArray,
    w: _FloatArray,
) -> _FloatArray:
    """Pearson r from weighted sums of x, y, x², y², xy (x, y pre-centred for accuracy)."""
    mx, my = sx / w, sy / w
    vx = sxx / w - mx * mx
    vy = syy / w - my * my
    ok = (vx > _VAR_TOL) & (vy > _VAR_TOL)
    r = (sxy / w - mx * my) / np.sqrt(np.where(ok, vx * vy, 1.0))
    return np.where(ok, np.clip(r, -1.0, 1.0), np.nan)


def _pearson(x: _FloatArray, y: _FloatArray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    sums = [xc.sum(), yc.sum(), xc @ xc, yc @ yc, xc @ yc]
    return float(_corr_from_moments(*(np.asarray(s) for s in sums), np.asarray(float(len(x)))))


def _rank_values(h: _FloatArray) -> _FloatArray:
    """Entropies rounded so that mathematically equal values (permuted votes) tie exactly."""
    return np.round(h, _RANK_DECIMALS)


def _entropy_corr(P: _FloatArray, Q: _FloatArray) -> tuple[float, float]:
    hp, hq = _entropy(P), _entropy(Q)
    rp = stats.rankdata(_rank_values(hp))
    rq = stats.rankdata(_rank_values(hq))
    return _pearson(hq, hp), _pearson(rq, rp)


def entropy_correlation(P: npt.ArrayLike, Q: npt.ArrayLike) -> tuple[float, float]:
    """(Pearson, Spearman) correlation between model entropy H(Q) and human entropy H(P).

    A model that "hears" ambiguity should be uncertain where annotators disagree. Spearman
    uses average ranks of entropies rounded to 10 decimals, so clips whose votes are
    permutations of each other tie exactly. NaN when either entropy is constant over clips.
    """
    return _entropy_corr(*_prepare(P, Q))


def invalid_rate(n_invalid: npt.ArrayLike, n_total: npt.ArrayLike) -> float:
    """Share of model candidates the parser could not read: ``sum(n_invalid) / sum(n_total)``.

    Accepts totals or per-clip counts. A high rate means the distribution metrics describe
    only the readable subset, so it is always reported next to them. NaN if there are no
    candidates.
    """
    inv = np.asarray(n_invalid, dtype=np.float64)
    tot = np.asarray(n_total, dtype=np.float64)
    if inv.shape != tot.shape:
        raise ValueError(f"n_invalid and n_total shapes differ: {inv.shape} vs {tot.shape}")
    if not (np.isfinite(inv).all() and np.isfinite(tot).all()) or (inv < 0).any():
        raise ValueError("candidate counts must be finite and non-negative")
    if (inv > tot).any():
        raise ValueError("n_invalid exceeds n_total")
    total = float(tot.sum())
    return float(inv.sum()) / total if total > 0 else math.nan


# --------------------------------------------------------------------------------------------
# All metrics at once
# --------------------------------------------------------------------------------------------


def _compute_prepared(
    P: _FloatArray, Q: _FloatArray, *, eps: float, counts: _Counts
) -> dict[str, float]:
    """All metrics for already validated arrays (see :func:`compute_all`)."""
    js = _js(P, Q)
    r2p, skipped = _nanmean_skipped(_pearson_r2_rows(P, Q))
    macro, weighted = _f1(P, Q)
    ent_pearson, ent_spearman = _entropy_corr(P, Q)
    out = {
        "js": float(js.mean()),
        "js_distance": float(np.sqrt(js).mean()),
        "kl": float(_kl(P, Q, eps).mean()),
        "bc": float(_bc(P, Q).mean()),
        "cosine": float(_cosine(P, Q).mean()),
        "r2_pearson": r2p,
        "r2_det": _r2_det(P, Q),
        "ece": _ece(P, Q, N_BINS),
        "accuracy": float(np.mean(P.argmax(axis=1) == Q.argmax(axis=1))),
        "tie_accuracy": float(_tie_correct(P, Q, TIE_TOL).mean()),
        "macro_f1": macro,
        "weighted_f1": weighted,
        "entropy_pearson": ent_pearson,
        "entropy_spearman": ent_spearman,
        "invalid_rate": math.nan if counts is None else invalid_rate(*counts),
    }
    return {**out, "n": len(P), "kl_eps": eps, "r2_pearson_skipped": skipped}


def compute_all(
    P: npt.ArrayLike,
    Q: npt.ArrayLike,
    *,
    n_invalid: npt.ArrayLike | None = None,
    n_candidates: npt.ArrayLike | None = None,
    eps: float = DEFAULT_EPS,
) -> dict[str, float]:
    """Every metric in :data:`METRICS` (means over clips for per-clip metrics) plus
    :data:`INFO_KEYS` (``n``, ``kl_eps``, ``r2_pearson_skipped``).

    ``n_invalid`` / ``n_candidates`` are totals or per-clip arrays; ``invalid_rate`` is NaN
    when they are not given. Rows are renormalised via :func:`normalize_rows`.
    """
    Pm, Qm = _prepare(P, Q)
    counts = _check_counts(n_invalid, n_candidates, len(Pm))
    return _compute_prepared(Pm, Qm, eps=_check_eps(eps), counts=counts)


# --------------------------------------------------------------------------------------------
# Weighted-sum engine for the bootstrap
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TieGroups:
    """Sorted order and tie groups of one per-clip value, for count-weighted average ranks."""

    order: npt.NDArray[np.intp]  # argsort of the values
    starts: npt.NDArray[np.intp]  # start of each tie group within the sorted order
    group_sorted: npt.NDArray[np.intp]  # tie group of each sorted position
    group_of: npt.NDArray[np.intp]  # tie group of each clip

    @classmethod
    def build(cls, values: _FloatArray) -> _TieGroups:
        order = np.argsort(values, kind="stable")
        s = values[order]
        new = np.empty(len(s), dtype=bool)
        new[0] = True
        np.not_equal(s[1:], s[:-1], out=new[1:])
        group_sorted = np.cumsum(new) - 1
        group_of = np.empty(len(s), dtype=np.intp)
        group_of[order] = group_sorted
        return cls(order, np.flatnonzero(new), group_sorted, group_of)

    @property
    def has_ties(self) -> bool:
        return len(self.starts) < len(self.order)

    def sorted_weights(self, C: _FloatArray) -> tuple[_FloatArray, _FloatArray]:
        """Columns of ``C`` in sorted order, and the total count of each tie group."""
        Cs = np.take(C, self.order, axis=1)
        G = np.add.reduceat(Cs, self.starts, axis=1) if self.has_ties else Cs
        return Cs, G


def _centred_group_ranks(G: _FloatArray) -> _FloatArray:
    """Average rank of each tie group (columns of ``G``, sorted) in each count-weighted
    resample, minus the mean rank ``(W + 1) / 2``.

    A group of total count g whose predecessors hold ``cum - g`` draws occupies ranks
    ``cum - g + 1 .. cum``: average ``cum - (g - 1) / 2``. Groups with g = 0 get a rank but no
    weight.
    """
    R = np.cumsum(G, axis=1)
    W = R[:, -1:].copy()
    R -= 0.5 * (G - 1.0)
    R -= 0.5 * (W + 1.0)
    return R


def _weighted_spearman(
    C: _FloatArray, tx: _TieGroups, ty: _TieGroups, y_group_at_x: npt.NDArray[np.intp]
) -> _FloatArray:
    """Exact Spearman correlation of each count-weighted resample (rows of ``C``).

    Rows are processed a few at a time so the working arrays stay in CPU cache (this part is
    memory-bound; it dominates the bootstrap's run time).
    """
    step = max(1, _RANK_BLOCK_ELEMENTS // C.shape[1])
    parts = [
        _weighted_spearman_block(C[i : i + step], tx, ty, y_group_at_x)
        for i in range(0, len(C), step)
    ]
    return np.concatenate(parts)


def _weighted_spearman_block(
    C: _FloatArray, tx: _TieGroups, ty: _TieGroups, y_group_at_x: npt.NDArray[np.intp]
) -> _FloatArray:
    """Spearman for a small block of resamples, computed in x-sorted order so that only the
    y ranks need a scatter back (``y_group_at_x`` is the y tie group of each x-sorted clip)."""
    Cx, Gx = tx.sorted_weights(C)
    Rx = _centred_group_ranks(Gx)
    w = Gx.sum(axis=1)
    vx = np.einsum("ij,ij,ij->i", Gx, Rx, Rx) / w
    if tx.has_ties:
        Rx = np.take(Rx, tx.group_sorted, axis=1)
    _, Gy = ty.sorted_weights(C)
    Ry = _centred_group_ranks(Gy)
    vy = np.einsum("ij,ij,ij->i", Gy, Ry, Ry) / w
    del Gy
    cxy = np.einsum("ij,ij,ij->i", Cx, Rx, np.take(Ry, y_group_at_x, axis=1)) / w
    ok = (vx > _VAR_TOL) & (vy > _VAR_TOL)
    return np.where(ok, np.clip(cxy / np.sqrt(np.where(ok, vx * vy, 1.0)), -1.0, 1.0), np.nan)


@dataclass(frozen=True)
class _ClipStats:
    """Per-clip feature matrix whose count-weighted column sums determine every metric."""

    V: _FloatArray  # (n, F)
    cols: dict[str, slice]
    ties_hq: _TieGroups
    ties_hp: _TieGroups
    hp_group_at_hq: npt.NDArray[np.intp]  # H(P) tie group at each H(Q)-sorted position
    has_clip_counts: bool


def _one_hot(idx: npt.NDArray[np.intp], k: int) -> _FloatArray:
    out = np.zeros((len(idx), k))
    out[np.arange(len(idx)), idx] = 1.0
    return out


def _feature_blocks(
    P: _FloatArray, Q: _FloatArray, eps: float, counts: _Counts
) -> dict[str, _FloatArray]:
    """Named per-clip feature blocks (each ``(n,)`` or ``(n, m)``)."""
    js = _js(P, Q)
    r2p = _pearson_r2_rows(P, Q)
    r2_ok = ~np.isnan(r2p)
    t, p = P.argmax(axis=1), Q.argmax(axis=1)
    correct = (t == p).astype(np.float64)
    conf = Q.max(axis=1)
    p_c = P - P.mean(axis=0)  # centred at the full-sample mean to avoid cancellation
    hp, hq = _entropy(P), _entropy(Q)
    hp, hq = hp - hp.mean(), hq - hq.mean()
    k = P.shape[1]
    true_1h = _one_hot(t, k)
    blocks = {
        "js": js,
        "js_distance": np.sqrt(js),
        "kl": _kl(P, Q, eps),
        "bc": _bc(P, Q),
        "cosine": _cosine(P, Q),
        "r2p": np.where(r2_ok, r2p, 0.0),
        "r2p_ok": r2_ok.astype(np.float64),
        "p_c": p_c,
        "p_c2": p_c * p_c,
        "res2": (P - Q) ** 2,
        "ece_gap": _one_hot(_bin_index(conf, N_BINS), N_BINS) * (correct - conf)[:, None],
        "correct": correct,
        "tie": _tie_correct(P, Q, TIE_TOL),
        "tp": true_1h * correct[:, None],
        "true": true_1h,
        "pred": _one_hot(p, k),
        "hp": hp,
        "hq": hq,
        "hp2": hp * hp,
        "hq2": hq * hq,
        "hpq": hp * hq,
    }
    if counts is not None and counts[0].ndim == 1:
        blocks["inv"], blocks["cand"] = counts
    return blocks


def _clip_stats(P: _FloatArray, Q: _FloatArray, eps: float, counts: _Counts) -> _ClipStats:
    blocks = _feature_blocks(P, Q, eps, counts)
    cols: dict[str, slice] = {}
    start = 0
    for name, block in blocks.items():
        width = 1 if block.ndim == 1 else block.shape[1]
        cols[name] = slice(start, start + width)
        start += width
    V = np.column_stack(list(blocks.values()))
    ties_hq = _TieGroups.build(_rank_values(_entropy(Q)))
    ties_hp = _TieGroups.build(_rank_values(_entropy(P)))
    hp_at_hq = ties_hp.group_of[ties_hq.order]
    return _ClipStats(V, cols, ties_hq, ties_hp, hp_at_hq, "inv" in blocks)


def _weighted_metrics(st: _ClipStats, C: _FloatArray) -> dict[str, _FloatArray]:
    """Every metric for each row of the count/weight matrix ``C`` (shape ``(B, n)``).

    With ``C`` all ones this equals :func:`compute_all`; with bootstrap counts it equals
    ``compute_all`` on the explicitly resampled clips.
    """
    S = C @ st.V
    w = C.sum(axis=1)

    def col(name: str) -> _FloatArray:
        block = S[:, st.cols[name]]
        return block[:, 0] if block.shape[1] == 1 else block

    out = {name: col(name) / w for name in ("js", "js_distance", "kl", "bc", "cosine")}
    n_ok = col("r2p_ok")
    out["r2_pearson"] = np.where(n_ok > 0, col("r2p") / np.maximum(n_ok, 1.0), np.nan)
    sp = col("p_c")
    out["r2_det"] = _r2_from_ss(col("res2"), col("p_c2") - sp * sp / w[:, None], w)
    out["ece"] = np.abs(col("ece_gap")).sum(axis=1) / w
    out["accuracy"] = col("correct") / w
    out["tie_accuracy"] = col("tie") / w
    out["macro_f1"], out["weighted_f1"] = _f1_from_counts(col("tp"), col("true"), col("pred"))
    out["entropy_pearson"] = _corr_from_moments(
        col("hq"), col("hp"), col("hq2"), col("hp2"), col("hpq"), w
    )
    out["entropy_spearman"] = _weighted_spearman(C, st.ties_hq, st.ties_hp, st.hp_group_at_hq)
    if st.has_clip_counts:
        cand = col("cand")
        out["invalid_rate"] = np.where(cand > 0, col("inv") / np.where(cand > 0, cand, 1), np.nan)
    else:
        out["invalid_rate"] = np.full(len(C), np.nan)
    return out


def _count_chunks(
    rng: np.random.Generator, n: int, n_resamples: int, chunk: int | None = None
) -> Iterator[_FloatArray]:
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
    stats_list: Sequence[_ClipStats], n: int, n_resamples: int, rng: np.random.Generator
) -> list[dict[str, _FloatArray]]:
    """Metric values for ``n_resamples`` resamples, shared by every ``_ClipStats`` given
    (same clip indices for all, which is what makes a paired bootstrap paired)."""
    parts: list[list[dict[str, _FloatArray]]] = [[] for _ in stats_list]
    for C in _count_chunks(rng, n, n_resamples):
        for acc, st in zip(parts, stats_list, strict=True):
            acc.append(_weighted_metrics(st, C))
    return [{m: np.concatenate([p[m] for p in acc]) for m in METRICS} for acc in parts]


def _percentile_ci(values: _FloatArray, alpha: float) -> tuple[float, float]:
    """Percentile interval over the finite resample values (NaN resamples are dropped)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(finite, [50.0 * alpha, 100.0 - 50.0 * alpha])
    return float(lo), float(hi)


def _check_bootstrap_args(n_resamples: int, alpha: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _bootstrap_resamples(
    P: _FloatArray,
    Q: _FloatArray,
    *,
    n_resamples: int,
    rng: np.random.Generator,
    eps: float,
    counts: _Counts,
) -> dict[str, _FloatArray]:
    """Every metric on ``n_resamples`` bootstrap resamples of the clips."""
    (res,) = _resample_metrics([_clip_stats(P, Q, eps, counts)], len(P), n_resamples, rng)
    return res


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
) -> dict[str, tuple[float, float, float]]:
    """``{metric: (point, lo, hi)}``: point estimate and percentile bootstrap CI over clips.

    Clips are resampled with replacement ``n_resamples`` times; the interval is the
    ``alpha/2`` and ``1 - alpha/2`` percentiles of the resampled metric (resamples where a
    metric is undefined are dropped). The point is :func:`compute_all` on the full sample.
    ``invalid_rate`` gets a CI only from per-clip counts; totals give NaN bounds.
    """
    _check_bootstrap_args(n_resamples, alpha)
    Pm, Qm = _prepare(P, Q)
    eps = _check_eps(eps)
    counts = _check_counts(n_invalid, n_candidates, len(Pm))
    point = _compute_prepared(Pm, Qm, eps=eps, counts=counts)
    rng = np.random.default_rng(seed)
    res = _bootstrap_resamples(Pm, Qm, n_resamples=n_resamples, rng=rng, eps=eps, counts=counts)
    return {m: (point[m], *_percentile_ci(res[m], alpha)) for m in METRICS}


def _sign_flip_p(observed: float, diffs: _FloatArray) -> float:
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
) -> dict[str, dict[str, float]]:
    """Paired comparison of two models (e.g. two TTS strategies) on the same clips.

    For every metric: ``{"q1", "q2", "diff", "lo", "hi", "p"}`` where ``diff = q2 - q1`` on
    the full sample, ``lo``/``hi`` its percentile CI and ``p`` the two-sided sign-flip p-value
    (twice the share of resamples whose difference has the other sign or is zero, capped at
    1). Paired means each resample uses the same clip indices for both models, so per-clip
    difficulty cancels and the test is far more sensitive than comparing two separate CIs.
    Whether a positive ``diff`` is good depends on :data:`HIGHER_IS_BETTER`. ``invalid_rate``
    is NaN here (candidate counts are per run, not given).
    """
    _check_bootstrap_args(n_resamples, alpha)
    Pm, Q1m = _prepare(P, Q1)
    _, Q2m = _prepare(Pm, Q2)
    eps = _check_eps(eps)
    point1 = _compute_prepared(Pm, Q1m, eps=eps, counts=None)
    point2 = _compute_prepared(Pm, Q2m, eps=eps, counts=None)
    stats_pair = [_clip_stats(Pm, Qm, eps, None) for Qm in (Q1m, Q2m)]
    res1, res2 = _resample_metrics(stats_pair, len(Pm), n_resamples, np.random.default_rng(seed))
    out: dict[str, dict[str, float]] = {}
    for m in METRICS:
        diff = point2[m] - point1[m]
        diffs = res2[m] - res1[m]
        lo, hi = _percentile_ci(diffs, alpha)
        out[m] = {
            "q1": point1[m],
            "q2": point2[m],
            "diff": diff,
            "lo": lo,
            "hi": hi,
            "p": _sign_flip_p(diff, diffs),
        }
    return out


# --------------------------------------------------------------------------------------------
# Per-group tables
# --------------------------------------------------------------------------------------------


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


def _subset_counts(counts: _Counts, mask: npt.NDArray[np.bool_] | None) -> _Counts:
    """Per-clip counts follow the subset; scalar totals only describe the whole corpus."""
    if counts is None or mask is None:
        return counts
    if counts[0].ndim == 0:
        return None
    return counts[0][mask], counts[1][mask]


def _group_seed(seed: int, label: object) -> np.random.Generator:
    """A generator per group that depends only on (seed, group name), not on the other groups."""
    return np.random.default_rng([seed, zlib.crc32(str(label).encode())])


def _table_row(
    label: object,
    P: _FloatArray,
    Q: _FloatArray,
    *,
    counts: _Counts,
    eps: float,
    bootstrap: int,
    rng: np.random.Generator,
    alpha: float,
) -> dict[str, object]:
    row: dict[str, object] = {"group": label}
    row.update(_compute_prepared(P, Q, eps=eps, counts=counts))
    if bootstrap > 0:
        res = _bootstrap_resamples(P, Q, n_resamples=bootstrap, rng=rng, eps=eps, counts=counts)
        for m in METRICS:
            row[f"{m}_lo"], row[f"{m}_hi"] = _percentile_ci(res[m], alpha)
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
) -> list[dict[str, object]]:
    """One row per group value plus a final ``all_label`` row over every clip.

    ``groups`` is a per-clip array (ambiguity level, dataset, split, ...). Rows appear in
    ``order`` when given (values absent from ``groups`` are omitted), otherwise in sorted
    order. Each row holds ``group``, the :data:`INFO_KEYS` (including ``n``) and every metric;
    with ``bootstrap > 0`` also ``<metric>_lo`` / ``<metric>_hi`` percentile CIs from that many
    resamples *within the group*. Each group's generator depends only on ``seed`` and the
    group's name, and the ``all`` row uses ``seed`` itself, so it matches
    :func:`bootstrap_ci` with the same seed. Scalar candidate totals only reach the ``all``
    row; per-clip counts are split by group.
    """
    if bootstrap > 0:
        _check_bootstrap_args(bootstrap, alpha)
    Pm, Qm = _prepare(P, Q)
    n = len(Pm)
    counts = _check_counts(n_invalid, n_candidates, n)
    eps = _check_eps(eps)
    common = {"eps": eps, "bootstrap": bootstrap, "alpha": alpha}
    rows = []
    if groups is not None:
        for label, mask in _group_masks(groups, n, order):
            sub = _subset_counts(counts, mask)
            rng = _group_seed(seed, label)
            rows.append(_table_row(label, Pm[mask], Qm[mask], counts=sub, rng=rng, **common))
    rng_all = np.random.default_rng(seed)
    rows.append(_table_row(all_label, Pm, Qm, counts=counts, rng=rng_all, **common))
    return rows
