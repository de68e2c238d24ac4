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
* The edge rules that published code settles differently are conventions
  (ambiscope.core.conventions), carried by `Clips.conventions`: ``r2_constant`` (a label
  constant in the reference: skipped, or scored like sklearn's ``r2_score``), ``r2_uniform``
  (a clip whose model output is uniform: skipped, or scored like a constant prediction),
  ``ece_bins`` / ``ece_n_bins`` (right-closed bins, or ``min(int(conf * n), n - 1)``).
* Inputs are validated (ambiscope.core.metrics.validation): shape mismatch, NaN/inf and
  negative values raise ``ValueError``; rows that do not sum to 1 (tolerance ``1e-6``) are
  renormalised with a warning.

Declarations (why the bootstrap is fast)
----------------------------------------
Each metric is declared once, below its definition, with ``@register_metric`` (see
ambiscope.core.metrics). Every corpus-level metric but Spearman's is a function of
*count-weighted sums over clips* of per-clip statistics: means of per-clip metrics,
per-label sums for R² and F1, per-bin sums for ECE, centred moments for the entropy Pearson
correlation. A bootstrap resample is a vector of counts ``c`` (how often each clip was
drawn), so a chunk of ``B`` resamples is a ``(B, n)`` count matrix ``C`` and all the sums are
one matrix product ``C @ V`` (ambiscope.core.metrics.resampling). Spearman's correlation is
computed exactly per resample from count-weighted tie groups (average ranks of the
resampled multiset). With unit counts the sums reproduce the point values, which the tests
check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from ambiscope.core.conventions import Conventions
from ambiscope.core.metrics.spec import (
    DEFAULT_EPS,
    Clips,
    FloatArray,
    Resampler,
    Stat,
    Sums,
    one_hot,
    register_metric,
)
from ambiscope.core.metrics.validation import (
    check_eps,
    normalize_rows,
    prepare,
)

__all__ = [
    "N_BINS",
    "TIE_TOL",
    "accuracy",
    "bhattacharyya",
    "cosine_similarity",
    "ece",
    "ece_bin_index",
    "entropy_bits",
    "entropy_correlation",
    "invalid_rate",
    "js_distance",
    "js_divergence",
    "kl_divergence",
    "macro_f1",
    "mean_pearson_r2",
    "pearson_r2",
    "r2_determination",
    "tie_aware_accuracy",
    "weighted_f1",
]

TIE_TOL = 1e-9
"""Human shares within this of the row maximum count as tied for the majority."""
N_BINS = Conventions().ece_n_bins
"""ECE uses this many equal-width confidence bins unless the conventions say otherwise."""
EDGE_TOL = 1e-6
"""A confidence this close to an ECE bin edge is on the edge (float32 storage noise)."""

_VAR_TOL = 1e-12  # variance at or below this is "numerically constant"
_RANK_DECIMALS = 10  # entropies are rounded before ranking so equal-by-maths values tie
_LN2 = math.log(2.0)
_RANK_BLOCK_ELEMENTS = 300_000  # resamples per Spearman block ~ this / n_clips (cache-sized)


# --------------------------------------------------------------------------------------------
# Per-clip metrics (validated public wrappers around unchecked kernels)
# --------------------------------------------------------------------------------------------


def _check_choice(name: str, value: str) -> str:
    """``value`` if it is an allowed choice of convention ``name`` (ValueError naming it)."""
    allowed = Conventions.CHOICES[name]
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _js(P: FloatArray, Q: FloatArray) -> FloatArray:
    M = 0.5 * (P + Q)
    nats = 0.5 * (special.rel_entr(P, M).sum(axis=1) + special.rel_entr(Q, M).sum(axis=1))
    return np.clip(nats / _LN2, 0.0, 1.0)


def _kl(P: FloatArray, Q: FloatArray, eps: float) -> FloatArray:
    Qs = Q + eps
    Qs /= Qs.sum(axis=1, keepdims=True)
    return np.maximum(special.rel_entr(P, Qs).sum(axis=1) / _LN2, 0.0)


def _bc(P: FloatArray, Q: FloatArray) -> FloatArray:
    return np.clip(np.sqrt(P * Q).sum(axis=1), 0.0, 1.0)


def _cosine(P: FloatArray, Q: FloatArray) -> FloatArray:
    dot = np.einsum("ij,ij->i", P, Q)
    norms = np.linalg.norm(P, axis=1) * np.linalg.norm(Q, axis=1)
    return np.clip(dot / norms, 0.0, 1.0)


def _pearson_r2_rows(P: FloatArray, Q: FloatArray, uniform: str = "skip") -> FloatArray:
    """Per-clip squared correlation; NaN where undefined (see `pearson_r2` for ``uniform``)."""
    Pc = P - P.mean(axis=1, keepdims=True)
    Qc = Q - Q.mean(axis=1, keepdims=True)
    spp = np.einsum("ij,ij->i", Pc, Pc)
    sqq = np.einsum("ij,ij->i", Qc, Qc)
    spq = np.einsum("ij,ij->i", Pc, Qc)
    k = P.shape[1]
    p_flat, q_flat = spp <= _VAR_TOL * k, sqq <= _VAR_TOL * k
    ok = ~p_flat & ~q_flat
    out = np.full(len(P), np.nan)
    out[ok] = np.minimum(spq[ok] ** 2 / (spp[ok] * sqq[ok]), 1.0)
    if _check_choice("r2_uniform", uniform) == "keep":
        out[q_flat] = p_flat[q_flat].astype(np.float64)  # exact (both uniform): 1, else 0
    return out


def _entropy(X: FloatArray) -> FloatArray:
    return np.maximum(special.entr(X).sum(axis=1) / _LN2, 0.0)


def js_divergence(P: npt.ArrayLike, Q: npt.ArrayLike) -> FloatArray:
    """Per-clip Jensen-Shannon divergence in bits, shape ``(n,)``, in [0, 1].

    ``JS = 0.5 KL(P||M) + 0.5 KL(Q||M)`` with ``M = (P + Q) / 2``. Unlike KL it is symmetric
    and finite when the model puts zero mass on a human label (M > 0 wherever P or Q is), which
    is why the papers use it as the headline distribution metric.
    """
    return _js(*prepare(P, Q))


def _js_clips(clips: Clips) -> FloatArray:
    return clips.cached("js", lambda: _js(clips.P, clips.Q))


@register_metric("js", title="JS", higher_is_better=False, level="clip")
def _js_metric(clips: Clips) -> FloatArray:
    return _js_clips(clips)


def js_distance(P: npt.ArrayLike, Q: npt.ArrayLike) -> FloatArray:
    """Per-clip Jensen-Shannon distance ``sqrt(JS)`` (a true metric), shape ``(n,)``."""
    return np.sqrt(js_divergence(P, Q))


@register_metric("js_distance", title="JS dist", higher_is_better=False, level="clip")
def _js_distance_metric(clips: Clips) -> FloatArray:
    return np.sqrt(_js_clips(clips))


def kl_divergence(P: npt.ArrayLike, Q: npt.ArrayLike, eps: float = DEFAULT_EPS) -> FloatArray:
    """Per-clip KL(P||Q') in bits, shape ``(n,)``, with ``Q' = (Q + eps) / sum(Q + eps)``.

    KL is infinite as soon as a model gives zero mass to a label some human chose, which is
    common for sampled label histograms, so Q is smoothed; the value depends on ``eps``, which
    is why :func:`compute_all` reports it as ``kl_eps``.
    """
    return _kl(*prepare(P, Q), check_eps(eps))


@register_metric("kl", title="KL", higher_is_better=False, level="clip")
def _kl_metric(clips: Clips) -> FloatArray:
    return _kl(clips.P, clips.Q, clips.eps)


def bhattacharyya(P: npt.ArrayLike, Q: npt.ArrayLike) -> FloatArray:
    """Per-clip Bhattacharyya coefficient ``sum_k sqrt(P_k Q_k)``, shape ``(n,)``, in [0, 1].

    It measures the overlap of the two distributions: 1 iff they are equal, 0 iff disjoint.
    """
    return _bc(*prepare(P, Q))


@register_metric("bc", title="BC", higher_is_better=True, level="clip")
def _bc_metric(clips: Clips) -> FloatArray:
    return _bc(clips.P, clips.Q)


def cosine_similarity(P: npt.ArrayLike, Q: npt.ArrayLike) -> FloatArray:
    """Per-clip cosine similarity ``P.Q / (|P| |Q|)``, shape ``(n,)``; in [0, 1] for
    non-negative rows."""
    return _cosine(*prepare(P, Q))


@register_metric("cosine", title="Cosine", higher_is_better=True, level="clip")
def _cosine_metric(clips: Clips) -> FloatArray:
    return _cosine(clips.P, clips.Q)


def pearson_r2(P: npt.ArrayLike, Q: npt.ArrayLike, uniform: str = "skip") -> FloatArray:
    """Per-clip squared Pearson correlation between the two K-vectors, shape ``(n,)``.

    This is the first published R² variant. It is undefined when either row is (numerically)
    constant. ``uniform="skip"`` (convention ``r2_uniform``) gives such clips NaN rather than
    an arbitrary value; :func:`mean_pearson_r2` (and ``compute_all``'s ``r2_pearson``) skip
    them and report how many were skipped. ``uniform="keep"`` scores a uniform model output
    the way sklearn scores a constant prediction: 1 if the human row is uniform too (the
    prediction is exact), else 0 (it explains none of the variation), so a model that
    often answers "no idea" is not rewarded by having those clips dropped. A uniform human
    row with a non-uniform output stays NaN under both rules.
    """
    return _pearson_r2_rows(*prepare(P, Q), uniform)


@register_metric(
    "r2_pearson",
    title="R²",
    latex="R$^2$",
    plain="R2",
    higher_is_better=True,
    level="clip",
    skips=True,
)
def _r2_pearson_metric(clips: Clips) -> FloatArray:
    return _pearson_r2_rows(clips.P, clips.Q, clips.conventions.r2_uniform)


def mean_pearson_r2(P: npt.ArrayLike, Q: npt.ArrayLike, uniform: str = "skip") -> tuple[float, int]:
    """Mean of :func:`pearson_r2` over clips where it is defined, and the number skipped."""
    r2 = pearson_r2(P, Q, uniform)
    return _nanmean_skipped(r2)


def _nanmean_skipped(x: FloatArray) -> tuple[float, int]:
    ok = ~np.isnan(x)
    skipped = int(len(x) - ok.sum())
    return (float(x[ok].mean()) if ok.any() else math.nan), skipped


def entropy_bits(X: npt.ArrayLike) -> FloatArray:
    """Per-row Shannon entropy ``-sum_k X_k log2 X_k`` in bits (``0 log 0 = 0``), shape ``(n,)``.

    Human entropy is the paper's ambiguity measure; comparing it with model entropy shows
    whether a model is uncertain where people disagree.
    """
    return _entropy(normalize_rows(X, name="X"))


# --------------------------------------------------------------------------------------------
# Corpus-level metrics
# --------------------------------------------------------------------------------------------


def _r2_from_ss(
    ss_res: FloatArray, ss_tot: FloatArray, w: FloatArray, constant: str = "skip"
) -> FloatArray:
    """Mean over labels of ``1 - SS_res/SS_tot``; labels with constant P (per weight) are
    skipped (``constant="skip"``) or score 1 if predicted exactly, else 0 (``"sklearn"``).

    Works on stacked inputs: ``ss_res``/``ss_tot`` are ``(..., K)`` and ``w`` is ``(...)``.
    """
    tol = _VAR_TOL * w[..., None]
    valid = ss_tot > tol
    r2 = np.where(valid, 1.0 - ss_res / np.where(valid, ss_tot, 1.0), 0.0)
    if _check_choice("r2_constant", constant) == "sklearn":
        r2 = np.where(valid, r2, (ss_res <= tol).astype(np.float64))
        return np.where(w >= 2, r2.mean(axis=-1), np.nan)
    n_valid = valid.sum(axis=-1)
    return np.where(n_valid > 0, r2.sum(axis=-1) / np.maximum(n_valid, 1), np.nan)


def _r2_det(P: FloatArray, Q: FloatArray, constant: str = "skip") -> float:
    ss_tot = ((P - P.mean(axis=0)) ** 2).sum(axis=0)
    ss_res = ((P - Q) ** 2).sum(axis=0)
    return float(_r2_from_ss(ss_res, ss_tot, np.asarray(float(len(P))), constant))


def r2_determination(P: npt.ArrayLike, Q: npt.ArrayLike, constant: str = "skip") -> float:
    """Mean over labels k of the coefficient of determination of ``Q[:, k]`` against ``P[:, k]``.

    ``R²_k = 1 - sum_i (P_ik - Q_ik)² / sum_i (P_ik - mean_i P_ik)²`` (the second published R²
    variant: how well the model's share of label k tracks the human share across clips; it can
    be negative). A label whose human share is numerically constant (SS_tot ~ 0, e.g. a label
    nobody used) has no R². ``constant`` is the convention ``r2_constant``: ``"skip"`` leaves
    such labels out of the mean (NaN if all are); ``"sklearn"`` averages over every label
    with sklearn's ``r2_score`` rule for them (1.0 if predicted exactly, SS_res ~ 0, else
    0.0) and gives NaN for fewer than two clips, as the official code of Zhang et al. does
    by calling ``r2_score`` per label.
    """
    return _r2_det(*prepare(P, Q), constant)


def _p_centred(clips: Clips) -> FloatArray:
    """P centred at the sample's mean (sums of squares without cancellation)."""
    return clips.cached("p_c", lambda: clips.P - clips.P.mean(axis=0))


def _r2_det_sums(sums: Sums) -> FloatArray:
    sp = sums["p_c"]
    ss_tot = sums["p_c2"] - sp * sp / sums.w[:, None]
    return _r2_from_ss(sums["res2"], ss_tot, sums.w, sums.conventions.r2_constant)


@register_metric(
    "r2_det",
    title="R² (det)",
    latex="R$^2_{\\mathrm{det}}$",
    plain="R2 (det)",
    higher_is_better=True,
    level="corpus",
    stats=(
        Stat("res2", lambda c: (c.P - c.Q) ** 2),
        Stat("p_c", _p_centred, reference=True),
        Stat("p_c2", lambda c: _p_centred(c) * _p_centred(c), reference=True),
    ),
    from_sums=_r2_det_sums,
)
def _r2_det_metric(clips: Clips) -> float:
    return _r2_det(clips.P, clips.Q, clips.conventions.r2_constant)


def ece_bin_index(conf: FloatArray, n_bins: int, bins: str) -> npt.NDArray[np.intp]:
    """Equal-width confidence bins on [0, 1]; ``bins`` says where an edge ``b/n`` goes.

    ``"right-closed"``: bin b holds ``b/n < conf <= (b+1)/n`` (bin 0 also holds 0).
    ``"left-closed"``: bin b holds ``b/n <= conf < (b+1)/n`` (the last bin also holds 1),
    i.e. the official code's ``min(int(conf * n), n - 1)`` on exact vote fractions.
    A confidence within `EDGE_TOL` of an edge counts as on it: stored distributions are
    float32, so a stored 0.3 reads back as 0.29999999..., and without the tolerance the
    side of the edge it lands on would be float noise rather than the convention.
    """
    rule = _check_choice("ece_bins", bins)
    scaled = conf * n_bins
    edge = np.rint(scaled)
    on_edge = np.abs(scaled - edge) <= EDGE_TOL * n_bins
    at_edge = edge if rule == "left-closed" else edge - 1
    return np.clip(np.where(on_edge, at_edge, np.floor(scaled)), 0, n_bins - 1).astype(np.intp)


def _ece(P: FloatArray, Q: FloatArray, n_bins: int, bins: str) -> float:
    conf = Q.max(axis=1)
    correct = (P.argmax(axis=1) == Q.argmax(axis=1)).astype(np.float64)
    at = ece_bin_index(conf, n_bins, bins)
    gaps = np.bincount(at, weights=correct - conf, minlength=n_bins)
    return float(np.abs(gaps).sum() / len(P))


def ece(
    P: npt.ArrayLike, Q: npt.ArrayLike, n_bins: int = N_BINS, bins: str = "right-closed"
) -> float:
    """Expected calibration error of the model's top label against the human majority.

    Confidence = ``max_k Q_k``, correct = ``argmax Q == argmax P``; with ``n_bins`` equal-width
    bins, ``ECE = sum_b (n_b / n) |acc_b - conf_b|``
    ``= sum_b |sum_{i in b} (correct_i - conf_i)| / n``. The second form is what makes it a
    weighted sum over clips (and so bootstrappable by matrix products). ``bins`` is the
    convention ``ece_bins``: which bin a confidence exactly on an edge (0.3, 0.5) joins,
    the lower (``"right-closed"``) or the upper (``"left-closed"``, as Zhang et al.'s code);
    histogram-like outputs (N samples of a few labels) put many confidences on edges.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    return _ece(*prepare(P, Q), n_bins, bins)


def _correct(clips: Clips) -> FloatArray:
    """1 where the model's top label is the human majority (first index on ties)."""
    return clips.cached(
        "correct", lambda: (clips.P.argmax(axis=1) == clips.Q.argmax(axis=1)).astype(np.float64)
    )


def _ece_gap(clips: Clips) -> FloatArray:
    """Per clip, (correct - confidence) in the column of its confidence bin."""
    conf = clips.Q.max(axis=1)
    n_bins, bins = clips.conventions.ece_n_bins, clips.conventions.ece_bins
    return one_hot(ece_bin_index(conf, n_bins, bins), n_bins) * (_correct(clips) - conf)[:, None]


@register_metric(
    "ece",
    title="ECE",
    higher_is_better=False,
    level="corpus",
    stats=(Stat("ece_gap", _ece_gap),),
    from_sums=lambda sums: np.abs(sums["ece_gap"]).sum(axis=1) / sums.w,
)
def _ece_metric(clips: Clips) -> float:
    return _ece(clips.P, clips.Q, clips.conventions.ece_n_bins, clips.conventions.ece_bins)


def accuracy(P: npt.ArrayLike, Q: npt.ArrayLike) -> float:
    """Share of clips where ``argmax Q == argmax P`` (ties: first index)."""
    Pm, Qm = prepare(P, Q)
    return float(np.mean(Pm.argmax(axis=1) == Qm.argmax(axis=1)))


@register_metric("accuracy", title="Acc", higher_is_better=True, level="clip", indicator=True)
def _accuracy_metric(clips: Clips) -> FloatArray:
    return _correct(clips)


def _tie_correct(P: FloatArray, Q: FloatArray, tol: float) -> FloatArray:
    top = P[np.arange(len(P)), Q.argmax(axis=1)]
    return (top >= P.max(axis=1) - tol).astype(np.float64)


def tie_aware_accuracy(P: npt.ArrayLike, Q: npt.ArrayLike, tol: float = TIE_TOL) -> float:
    """Accuracy where the model's argmax is correct if it is *any* label tied for the human
    maximum (within ``tol``).

    Plain argmax accuracy penalises a model for picking the "second" of two equally voted
    labels purely because of label order; on ambiguous corpora that is a large effect.
    """
    return float(np.mean(_tie_correct(*prepare(P, Q), tol)))


@register_metric(
    "tie_accuracy", title="Tie acc", higher_is_better=True, level="clip", indicator=True
)
def _tie_accuracy_metric(clips: Clips) -> FloatArray:
    return _tie_correct(clips.P, clips.Q, TIE_TOL)


def _f1_from_counts(
    tp: FloatArray, n_true: FloatArray, n_pred: FloatArray
) -> tuple[FloatArray, FloatArray]:
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


def _f1(P: FloatArray, Q: FloatArray) -> tuple[float, float]:
    k = P.shape[1]
    t, p = P.argmax(axis=1), Q.argmax(axis=1)
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.float64)
    macro, weighted = _f1_from_counts(np.diag(cm), cm.sum(axis=1), cm.sum(axis=0))
    return float(macro), float(weighted)


def macro_f1(P: npt.ArrayLike, Q: npt.ArrayLike) -> float:
    """Unweighted mean over labels of F1 on argmax labels (labels in neither true nor predicted
    labels are left out, as in scikit-learn)."""
    return _f1(*prepare(P, Q))[0]


def weighted_f1(P: npt.ArrayLike, Q: npt.ArrayLike) -> float:
    """Mean over labels of F1 on argmax labels weighted by the human-label support."""
    return _f1(*prepare(P, Q))[1]


_F1_STATS = (
    Stat("correct", _correct, indicator=True, by_label=True),  # true positives per label
    Stat("pred", lambda c: one_hot(c.Q.argmax(axis=1), c.Q.shape[1]), indicator=True),
)


def _f1_sums(sums: Sums) -> tuple[FloatArray, FloatArray]:
    return _f1_from_counts(sums.by_label("correct"), sums.label_w, sums["pred"])


@register_metric(
    "macro_f1",
    title="F1",
    higher_is_better=True,
    level="corpus",
    stats=_F1_STATS,
    from_sums=lambda sums: _f1_sums(sums)[0],
)
def _macro_f1_metric(clips: Clips) -> float:
    return _f1(clips.P, clips.Q)[0]


@register_metric(
    "weighted_f1",
    title="W-F1",
    higher_is_better=True,
    level="corpus",
    stats=_F1_STATS,
    from_sums=lambda sums: _f1_sums(sums)[1],
)
def _weighted_f1_metric(clips: Clips) -> float:
    return _f1(clips.P, clips.Q)[1]


def _corr_from_moments(
    sx: FloatArray,
    sy: FloatArray,
    sxx: FloatArray,
    syy: FloatArray,
    sxy: FloatArray,
    w: FloatArray,
) -> FloatArray:
    """Pearson r from weighted sums of x, y, x², y², xy (x, y pre-centred for accuracy)."""
    mx, my = sx / w, sy / w
    vx = sxx / w - mx * mx
    vy = syy / w - my * my
    ok = (vx > _VAR_TOL) & (vy > _VAR_TOL)
    r = (sxy / w - mx * my) / np.sqrt(np.where(ok, vx * vy, 1.0))
    return np.where(ok, np.clip(r, -1.0, 1.0), np.nan)


def _pearson(x: FloatArray, y: FloatArray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    sums = [xc.sum(), yc.sum(), xc @ xc, yc @ yc, xc @ yc]
    return float(_corr_from_moments(*(np.asarray(s) for s in sums), np.asarray(float(len(x)))))


def _rank_values(h: FloatArray) -> FloatArray:
    """Entropies rounded so that mathematically equal values (permuted votes) tie exactly."""
    return np.round(h, _RANK_DECIMALS)


def _entropy_corr(P: FloatArray, Q: FloatArray) -> tuple[float, float]:
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
    return _entropy_corr(*prepare(P, Q))


@dataclass(frozen=True)
class _TieGroups:
    """Sorted order and tie groups of one per-clip value, for count-weighted average ranks."""

    order: npt.NDArray[np.intp]  # argsort of the values
    starts: npt.NDArray[np.intp]  # start of each tie group within the sorted order
    group_sorted: npt.NDArray[np.intp]  # tie group of each sorted position
    group_of: npt.NDArray[np.intp]  # tie group of each clip

    @classmethod
    def build(cls, values: FloatArray) -> _TieGroups:
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

    def sorted_weights(self, C: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Columns of ``C`` in sorted order, and the total count of each tie group."""
        Cs = np.take(C, self.order, axis=1)
        G = np.add.reduceat(Cs, self.starts, axis=1) if self.has_ties else Cs
        return Cs, G


def _centred_group_ranks(G: FloatArray) -> FloatArray:
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
    C: FloatArray, tx: _TieGroups, ty: _TieGroups, y_group_at_x: npt.NDArray[np.intp]
) -> FloatArray:
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
    C: FloatArray, tx: _TieGroups, ty: _TieGroups, y_group_at_x: npt.NDArray[np.intp]
) -> FloatArray:
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


def _centred_entropy(X: FloatArray) -> FloatArray:
    h = _entropy(X)
    return h - h.mean()


def _h_p(clips: Clips) -> FloatArray:
    return clips.cached("h_p", lambda: _centred_entropy(clips.P))


def _h_q(clips: Clips) -> FloatArray:
    return clips.cached("h_q", lambda: _centred_entropy(clips.Q))


@register_metric(
    "entropy_pearson",
    title="H corr",
    higher_is_better=True,
    level="corpus",
    stats=(
        Stat("h_q", _h_q),
        Stat("h_q2", lambda c: _h_q(c) * _h_q(c)),
        Stat("h_pq", lambda c: _h_p(c) * _h_q(c)),
        Stat("h_p", _h_p, reference=True),
        Stat("h_p2", lambda c: _h_p(c) * _h_p(c), reference=True),
    ),
    from_sums=lambda sums: _corr_from_moments(
        sums["h_q"], sums["h_p"], sums["h_q2"], sums["h_p2"], sums["h_pq"], sums.w
    ),
)
def _entropy_pearson_metric(clips: Clips) -> float:
    return _pearson(_entropy(clips.Q), _entropy(clips.P))


def _spearman_resampler(clips: Clips) -> Resampler:
    """Exact Spearman correlation of H(Q) and H(P) per count-weighted resample."""
    ties_hq = _TieGroups.build(_rank_values(_entropy(clips.Q)))
    ties_hp = _TieGroups.build(_rank_values(_entropy(clips.P)))
    at_hq = ties_hp.group_of[ties_hq.order]
    return partial(_weighted_spearman, tx=ties_hq, ty=ties_hp, y_group_at_x=at_hq)


@register_metric(
    "entropy_spearman",
    title="H rank corr",
    higher_is_better=True,
    level="corpus",
    resampler=_spearman_resampler,
)
def _entropy_spearman_metric(clips: Clips) -> float:
    return _entropy_corr(clips.P, clips.Q)[1]


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


def _candidates(clips: Clips) -> FloatArray | None:
    """Per clip (n_invalid, n_candidates); None without per-clip counts or candidates."""
    counts = clips.clip_counts
    if counts is None or counts[1].sum() <= 0:
        return None
    return np.column_stack(counts)


def _invalid_rate_sums(sums: Sums) -> FloatArray:
    counts = sums.get("candidates")
    if counts is None:
        return np.full(len(sums.w), np.nan)
    inv, cand = counts[:, 0], counts[:, 1]
    return np.where(cand > 0, inv / np.where(cand > 0, cand, 1), np.nan)


@register_metric(
    "invalid_rate",
    title="Invalid",
    higher_is_better=False,
    level="corpus",
    stats=(Stat("candidates", _candidates),),
    from_sums=_invalid_rate_sums,
)
def _invalid_rate_metric(clips: Clips) -> float:
    return math.nan if clips.counts is None else invalid_rate(*clips.counts)
