"""Tests for the metric definitions (ambiscope.core.metrics.functions) and the engines that
read their declarations: scipy references, hand-worked cases, loop re-implementations,
hypothesis properties, and the weighted-sum bootstrap engine against explicit resampling."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from scipy.spatial.distance import jensenshannon

from ambiscope.core.metrics import METRICS
from ambiscope.core.metrics import functions as M
from ambiscope.core.metrics import resampling as R
from ambiscope.core.metrics.functions import (
    accuracy,
    bhattacharyya,
    cosine_similarity,
    ece,
    entropy_bits,
    entropy_correlation,
    invalid_rate,
    js_distance,
    js_divergence,
    kl_divergence,
    macro_f1,
    mean_pearson_r2,
    pearson_r2,
    r2_determination,
    tie_aware_accuracy,
    weighted_f1,
)
from ambiscope.core.metrics.resampling import (
    bootstrap_ci,
    compute_all,
    info_keys,
    paired_bootstrap,
)
from ambiscope.core.metrics.spec import DEFAULT_EPS
from ambiscope.core.metrics.table import metric_table
from ambiscope.core.metrics.validation import normalize_rows

INFO_KEYS = info_keys()

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _pair(
    n: int, k: int, seed: int = 0, *, sparse: bool = True, mix: float = 0.6
) -> tuple[np.ndarray, np.ndarray]:
    """Random human/model distributions; ``sparse`` zeroes some human shares (like few votes)
    and makes some rows one-hot, so ties, zeros and 0*log0 are exercised."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(k, 0.7), size=n)
    if sparse:
        P[rng.random((n, k)) < 0.3] = 0.0
        P[np.arange(0, n, 7), :] = 0.0
        P[np.arange(0, n, 7), rng.integers(0, k, size=len(range(0, n, 7)))] = 1.0
        P[P.sum(axis=1) == 0, 0] = 1.0
        P /= P.sum(axis=1, keepdims=True)
    Q = mix * P + (1 - mix) * rng.dirichlet(np.ones(k), size=n)
    return P, Q / Q.sum(axis=1, keepdims=True)


def _assert_metric_dicts_equal(a: dict, b: dict, keys=METRICS, tol: float = 1e-9) -> None:
    for key in keys:
        x, y = a[key], b[key]
        if isinstance(x, float) and math.isnan(x):
            assert math.isnan(y), key
        else:
            assert y == pytest.approx(x, abs=tol), key


def _loop_f1(t: list[int], p: list[int], k: int) -> tuple[float, float, float]:
    """Accuracy, macro-F1, weighted-F1 with plain loops (scikit-learn conventions)."""
    n = len(t)
    acc = sum(1 for a, b in zip(t, p, strict=True) if a == b) / n
    f1s, supports = [], []
    for label in range(k):
        tp = sum(1 for a, b in zip(t, p, strict=True) if a == label and b == label)
        fp = sum(1 for a, b in zip(t, p, strict=True) if a != label and b == label)
        fn = sum(1 for a, b in zip(t, p, strict=True) if a == label and b != label)
        if tp + fp + fn == 0:
            continue  # label in neither y_true nor y_pred
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
        supports.append(tp + fn)
    macro = sum(f1s) / len(f1s)
    weighted = sum(f * s for f, s in zip(f1s, supports, strict=True)) / sum(supports)
    return acc, macro, weighted


def _loop_r2(P: np.ndarray, Q: np.ndarray) -> float:
    values = []
    for k in range(P.shape[1]):
        y, yhat = list(P[:, k]), list(Q[:, k])
        mean = sum(y) / len(y)
        ss_tot = sum((v - mean) ** 2 for v in y)
        if ss_tot <= 1e-12 * len(y):
            continue
        ss_res = sum((a - b) ** 2 for a, b in zip(y, yhat, strict=True))
        values.append(1 - ss_res / ss_tot)
    return sum(values) / len(values)


@st.composite
def dist_pair(draw) -> tuple[np.ndarray, np.ndarray]:
    """Two normalised distributions over the same 2..8 labels (zeros allowed)."""
    k = draw(st.integers(2, 8))
    elems = st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False)
    raw = draw(hnp.arrays(np.float64, (2, k), elements=elems))
    assume((raw.sum(axis=1) > 1e-3).all())
    return raw[0] / raw[0].sum(), raw[1] / raw[1].sum()


# --------------------------------------------------------------------------------------------
# Per-clip metrics
# --------------------------------------------------------------------------------------------


def test_js_matches_scipy_on_random_rows():
    P, Q = _pair(200, 6, seed=1)
    ours = js_divergence(P, Q)
    ref = np.array([jensenshannon(p, q, base=2) ** 2 for p, q in zip(P, Q, strict=True)])
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    np.testing.assert_allclose(js_distance(P, Q), np.sqrt(ref), atol=1e-7)


def test_hand_worked_disjoint_and_identical():
    P = np.array([[1.0, 0.0], [0.3, 0.7]])
    Q = np.array([[0.0, 1.0], [0.3, 0.7]])
    np.testing.assert_allclose(js_divergence(P, Q), [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(bhattacharyya(P, Q), [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(cosine_similarity(P, Q), [0.0, 1.0], atol=1e-12)


def test_hand_worked_half_vs_one_hot():
    # P = [.5, .5], Q = [1, 0]  ->  M = [.75, .25]
    # KL(P||M) = .5 log2(.5/.75) + .5 log2(.5/.25) = .5 * -0.5849625007 + .5 = 0.2075187496
    # KL(Q||M) = log2(1/.75) = 0.4150374993
    # JS = (0.2075187496 + 0.4150374993) / 2 = 0.3112781245
    # BC = sqrt(.5 * 1) = 0.7071067812; cosine = .5 / (sqrt(.5) * 1) = 0.7071067812
    P, Q = np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]])
    assert js_divergence(P, Q)[0] == pytest.approx(0.3112781245, abs=1e-9)
    assert bhattacharyya(P, Q)[0] == pytest.approx(0.7071067812, abs=1e-9)
    assert cosine_similarity(P, Q)[0] == pytest.approx(0.7071067812, abs=1e-9)
    np.testing.assert_allclose(entropy_bits(np.vstack([P, Q])), [1.0, 0.0], atol=1e-12)


def test_kl_hand_worked_and_smoothing():
    # KL([.5,.5] || [.25,.75]) = .5 log2(2) + .5 log2(2/3) = .5 - 0.2924812504 = 0.2075187496
    P, Q = np.array([[0.5, 0.5]]), np.array([[0.25, 0.75]])
    assert kl_divergence(P, Q, eps=1e-12)[0] == pytest.approx(0.2075187496, abs=1e-9)
    # Q has a zero where P has mass: finite thanks to eps, = log2((1 + 2 eps) / eps) for 1-hot
    eps = 1e-6
    got = kl_divergence(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), eps=eps)[0]
    assert got == pytest.approx(math.log2((1 + 2 * eps) / eps), rel=1e-12)


def test_entropy_bits_uniform():
    assert entropy_bits(np.full((1, 4), 0.25))[0] == pytest.approx(2.0)
    assert entropy_bits(np.array([0.5, 0.25, 0.25, 0.0]))[0] == pytest.approx(1.5)


def test_pearson_r2_matches_scipy_and_constant_rows_are_nan():
    P, Q = _pair(50, 5, seed=2, sparse=False)
    ref = np.array([stats.pearsonr(p, q)[0] ** 2 for p, q in zip(P, Q, strict=True)])
    np.testing.assert_allclose(pearson_r2(P, Q), ref, atol=1e-12)
    Q[3] = 0.2  # uniform model row: correlation undefined
    Q[4] = [0.2 + 1e-8, 0.2 - 1e-8, 0.2, 0.2, 0.2]  # numerically constant: also undefined
    r2 = pearson_r2(P, Q)
    assert np.isnan(r2[[3, 4]]).all() and np.isfinite(np.delete(r2, [3, 4])).all()
    mean, skipped = mean_pearson_r2(P, Q)
    assert skipped == 2
    assert mean == pytest.approx(np.delete(ref, [3, 4]).mean(), abs=1e-12)
    out = compute_all(P, Q)
    assert out["r2_pearson_skipped"] == 2 and out["r2_pearson"] == pytest.approx(mean)


@settings(max_examples=150, deadline=None)
@given(dist_pair())
def test_js_properties(pq):
    p, q = pq
    js = js_divergence(p, q)[0]
    assert 0.0 <= js <= 1.0
    assert js == pytest.approx(js_divergence(q, p)[0], abs=1e-12)
    assert js_divergence(p, p)[0] == pytest.approx(0.0, abs=1e-12)
    if np.abs(p - q).max() > 1e-3:
        assert js > 1e-9
    if js < 1e-12:
        np.testing.assert_allclose(p, q, atol=1e-4)


@settings(max_examples=150, deadline=None)
@given(dist_pair())
def test_bc_cosine_kl_properties(pq):
    p, q = pq
    bc = bhattacharyya(p, q)[0]
    assert 0.0 <= bc <= 1.0
    assert bhattacharyya(p, p)[0] == pytest.approx(1.0, abs=1e-12)
    if np.abs(p - q).max() > 1e-3:
        assert bc < 1.0 - 1e-9
    assert 0.0 <= cosine_similarity(p, q)[0] <= 1.0
    assert kl_divergence(p, q)[0] >= 0.0
    assert kl_divergence(p, p)[0] == pytest.approx(0.0, abs=1e-4)


# --------------------------------------------------------------------------------------------
# Corpus-level metrics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_accuracy_and_f1_match_loop(seed):
    k = 5
    P, Q = _pair(80, k, seed=seed, mix=0.3)
    t, p = P.argmax(axis=1).tolist(), Q.argmax(axis=1).tolist()
    acc, macro, weighted = _loop_f1(t, p, k)
    assert accuracy(P, Q) == pytest.approx(acc, abs=1e-12)
    assert macro_f1(P, Q) == pytest.approx(macro, abs=1e-12)
    assert weighted_f1(P, Q) == pytest.approx(weighted, abs=1e-12)


def test_f1_ignores_labels_absent_from_truth_and_prediction():
    # K = 4 but label 3 is never true nor predicted: macro over labels 0..2 only.
    eye = np.eye(4)
    P = eye[[0, 0, 1, 2, 2, 2]]
    Q = eye[[0, 1, 1, 2, 2, 0]]
    _, macro, weighted = _loop_f1([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 4)
    # F1: label 0 = 2*1/(2+2) = .5, label 1 = 2*1/(1+2) = 2/3, label 2 = 2*2/(3+2) = .8
    assert macro == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
    assert macro_f1(P, Q) == pytest.approx(macro, abs=1e-12)
    assert weighted_f1(P, Q) == pytest.approx((2 * 0.5 + 2 / 3 + 3 * 0.8) / 6, abs=1e-12)
    assert weighted == pytest.approx(weighted_f1(P, Q), abs=1e-12)
    assert compute_all(P, Q)["macro_f1"] == pytest.approx(macro, abs=1e-12)


def test_argmax_ties_go_to_first_index():
    P = np.array([[0.5, 0.5, 0.0]])
    assert accuracy(P, np.array([[0.4, 0.4, 0.2]])) == 1.0
    assert accuracy(P, np.array([[0.3, 0.5, 0.2]])) == 0.0


def test_tie_aware_accuracy():
    P = np.array([[0.5, 0.5, 0.0], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    Q = np.array([[0.1, 0.9, 0.0], [0.1, 0.2, 0.7], [0.2, 0.8, 0.0], [0.0, 0.0, 1.0]])
    # argmax P = [0, 0, 0, 0], argmax Q = [1, 2, 1, 2]: plain accuracy 0.
    # Tie-aware: clip 0 (label 1 tied for max) and clip 3 (three-way tie) count.
    assert accuracy(P, Q) == 0.0
    assert tie_aware_accuracy(P, Q) == pytest.approx(0.5)
    assert compute_all(P, Q)["tie_accuracy"] == pytest.approx(0.5)


def test_r2_determination_matches_loop_and_skips_constant_labels():
    P, Q = _pair(60, 4, seed=5)
    P = np.hstack([P, np.zeros((60, 1))])  # a label nobody voted for: SS_tot = 0
    Q = np.hstack([Q * 0.9, np.full((60, 1), 0.1)])
    assert r2_determination(P, Q) == pytest.approx(_loop_r2(P, Q), abs=1e-12)
    assert r2_determination(P, P) == pytest.approx(1.0)


def test_ece_hand_worked():
    # conf = [.92, .76, .58, .55]; correct = [1, 0, 1, 0]
    # bins (.9,1]: |1 - .92| = .08 (n=1); (.7,.8]: |0 - .76| = .76 (n=1);
    # (.5,.6]: acc .5, conf .565 -> |.5 - .565| * 2 = .13
    # ECE = (.08 + .76 + .13) / 4 = .2425
    P = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    Q = np.array([[0.92, 0.08], [0.24, 0.76], [0.42, 0.58], [0.55, 0.45]])
    assert ece(P, Q) == pytest.approx(0.2425, abs=1e-12)
    assert compute_all(P, Q)["ece"] == pytest.approx(0.2425, abs=1e-12)


def test_ece_bins_are_right_closed():
    # conf .5 falls in (.4, .5], conf .55 in (.5, .6], conf 1.0 in (.9, 1]:
    # (|1 - .5| + |0 - .55| + |1 - 1|) / 3 = 1.05 / 3.  Left-closed bins would pool the first
    # two clips and give (|.5 - .525| * 2) / 3 instead.
    P = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    Q = np.array([[0.5, 0.5], [0.45, 0.55], [0.0, 1.0]])
    assert ece(P, Q) == pytest.approx(1.05 / 3, abs=1e-12)


def test_ece_perfectly_calibrated_is_zero():
    P = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    Q = np.array([[0.75, 0.25]] * 4)  # confidence .75, right on 3 of 4 clips
    assert ece(P, Q) == pytest.approx(0.25 * 0 + abs(0.25 - 0.75), abs=1e-12)
    Q2 = np.array([[0.25, 0.75]] * 4)
    assert ece(P, Q2) == pytest.approx(0.0, abs=1e-12)


def test_entropy_correlation_matches_scipy():
    P, Q = _pair(120, 6, seed=7, sparse=False)
    hp, hq = entropy_bits(P), entropy_bits(Q)
    pearson, spearman = entropy_correlation(P, Q)
    assert pearson == pytest.approx(stats.pearsonr(hq, hp)[0], abs=1e-12)
    assert spearman == pytest.approx(stats.spearmanr(hq, hp)[0], abs=1e-12)


def test_entropy_spearman_with_ties_matches_scipy_average_ranks():
    P, Q = _pair(120, 4, seed=8)  # one-hot human rows -> many tied entropies of 0
    hp = np.round(entropy_bits(P), 10)
    hq = np.round(entropy_bits(Q), 10)
    assert len(np.unique(hp)) < len(hp)
    assert entropy_correlation(P, Q)[1] == pytest.approx(stats.spearmanr(hq, hp)[0], abs=1e-12)


def test_entropy_spearman_ties_permuted_vote_distributions():
    # Permutations of the same votes have the same entropy mathematically, but the float sums
    # can differ in the last bit; they must still tie. Reference: entropy of the sorted row.
    votes = np.array([[1, 2, 3, 4, 0], [3, 2, 2, 1, 1], [5, 0, 0, 0, 0]], dtype=float)
    rng = np.random.default_rng(3)
    P = np.array([rng.permutation(votes[i % 3]) for i in range(90)])
    P /= P.sum(axis=1, keepdims=True)
    Q = rng.dirichlet(np.ones(5), size=90)
    hp_canonical = entropy_bits(np.sort(P, axis=1))
    ref = stats.spearmanr(entropy_bits(Q), hp_canonical)[0]
    assert entropy_correlation(P, Q)[1] == pytest.approx(ref, abs=1e-12)
    counts = np.bincount(rng.integers(0, 90, size=90), minlength=90)
    idx = np.repeat(np.arange(90), counts)
    got = _engine(P, Q, counts)["entropy_spearman"][0]
    assert got == pytest.approx(compute_all(P[idx], Q[idx])["entropy_spearman"], abs=1e-12)


def test_invalid_rate():
    assert invalid_rate(3, 12) == 0.25
    assert invalid_rate(np.array([1, 0, 2]), np.array([4, 4, 4])) == 0.25
    assert math.isnan(invalid_rate(0, 0))
    with pytest.raises(ValueError, match="exceeds"):
        invalid_rate(5, 4)


def test_compute_all_names_and_directions():
    P, Q = _pair(40, 4, seed=9)
    out = compute_all(P, Q, n_invalid=2, n_candidates=40, eps=1e-4)
    assert set(out) == set(METRICS) | set(INFO_KEYS)
    assert all(isinstance(METRICS.meta(m)["higher_is_better"], bool) for m in METRICS)
    assert out["kl_eps"] == 1e-4 and out["n"] == 40 and out["invalid_rate"] == 0.05
    assert math.isnan(compute_all(P, Q)["invalid_rate"])
    assert out["js"] == pytest.approx(js_divergence(P, Q).mean())
    assert out["kl"] == pytest.approx(kl_divergence(P, Q, eps=1e-4).mean())


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("P", "Q", "match"),
    [
        ([[0.5, np.nan]], [[0.5, 0.5]], "NaN"),
        ([[0.5, 0.5]], [[1.5, -0.5]], "negative"),
        ([[0.5, 0.5]], [[0.2, 0.3, 0.5]], "same shape"),
        ([[0.0, 0.0]], [[0.5, 0.5]], "sum to zero"),
        (np.zeros((0, 3)), np.zeros((0, 3)), "empty"),
    ],
)
def test_bad_input_raises(P, Q, match):
    with pytest.raises(ValueError, match=match):
        compute_all(P, Q)
    with pytest.raises(ValueError, match=match):
        js_divergence(P, Q)


def test_unnormalised_rows_warn_and_are_fixed():
    X = np.array([[2.0, 2.0], [0.25, 0.75], [1.0, 3.0]])
    with pytest.warns(UserWarning, match=r"X: renormalised 2 of 3 row"):
        fixed = normalize_rows(X, name="X")
    np.testing.assert_allclose(fixed, [[0.5, 0.5], [0.25, 0.75], [0.25, 0.75]])
    assert X[0, 0] == 2.0  # input untouched
    with pytest.warns(UserWarning, match="P: renormalised 1 of"):
        out = compute_all(X[:1], [[0.5, 0.5]])
    assert out["js"] == pytest.approx(0.0)


def test_normalised_rows_do_not_warn():
    P, Q = _pair(30, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_all(P, Q)


def test_bad_parameters_raise():
    P, Q = _pair(10, 3)
    with pytest.raises(ValueError, match="eps"):
        compute_all(P, Q, eps=0.0)
    with pytest.raises(ValueError, match="together"):
        compute_all(P, Q, n_invalid=1)
    with pytest.raises(ValueError, match="shape"):
        compute_all(P, Q, n_invalid=np.zeros(3), n_candidates=np.ones(3))
    with pytest.raises(ValueError, match="groups"):
        metric_table(P, Q, np.array(["a"] * 9))


# --------------------------------------------------------------------------------------------
# Group tables
# --------------------------------------------------------------------------------------------


def test_metric_table_group_rows_equal_subset_compute_all():
    P, Q = _pair(300, 5, seed=11)
    rng = np.random.default_rng(0)
    groups = rng.choice(np.array(["low", "medium", "high"]), size=300)
    inv = rng.integers(0, 3, size=300)
    cand = np.full(300, 4)
    rows = metric_table(
        P, Q, groups, n_invalid=inv, n_candidates=cand, order=["low", "medium", "high"]
    )
    assert [r["group"] for r in rows] == ["low", "medium", "high", "all"]
    low = groups == "low"
    ref = compute_all(P[low], Q[low], n_invalid=inv[low], n_candidates=cand[low])
    _assert_metric_dicts_equal(ref, rows[0], keys=(*METRICS, *INFO_KEYS), tol=1e-12)
    _assert_metric_dicts_equal(
        compute_all(P, Q, n_invalid=inv, n_candidates=cand), rows[-1], tol=1e-12
    )
    assert sum(r["n"] for r in rows[:-1]) == rows[-1]["n"] == 300


def test_metric_table_default_order_and_no_groups():
    P, Q = _pair(30, 3)
    rows = metric_table(P, Q, np.array([2, 1] * 15))
    assert [r["group"] for r in rows] == [1, 2, "all"]
    assert type(rows[0]["group"]) is int
    assert [r["group"] for r in metric_table(P, Q)] == ["all"]


def test_metric_table_group_ci_does_not_depend_on_other_groups():
    P, Q = _pair(120, 4, seed=21)
    groups = np.array(["b", "c", "d"] * 40)
    rows = metric_table(P, Q, groups, bootstrap=30, seed=5)
    # Rename the other groups so that "c" moves from 2nd to 3rd row: its CI must not change.
    renamed = np.where(groups == "b", "a", groups)
    renamed = np.where(groups == "d", "a0", renamed)
    rows2 = metric_table(P, Q, renamed, bootstrap=30, seed=5)
    c1 = next(r for r in rows if r["group"] == "c")
    c2 = next(r for r in rows2 if r["group"] == "c")
    assert [r["group"] for r in rows2] == ["a", "a0", "c", "all"]
    assert (c1["js_lo"], c1["js_hi"]) == (c2["js_lo"], c2["js_hi"])


def test_metric_table_bootstrap_columns_and_all_row_matches_bootstrap_ci():
    P, Q = _pair(200, 4, seed=12)
    groups = np.array(["a", "b"] * 100)
    rows = metric_table(P, Q, groups, bootstrap=50, seed=3)
    for row in rows:
        for m in METRICS:
            assert f"{m}_lo" in row and f"{m}_hi" in row
    ci = bootstrap_ci(P, Q, n_resamples=50, seed=3)
    for m in ("js", "accuracy", "entropy_spearman"):
        assert (rows[-1][f"{m}_lo"], rows[-1][f"{m}_hi"]) == ci[m][1:]


# --------------------------------------------------------------------------------------------
# Bootstrap engine
# --------------------------------------------------------------------------------------------


def _engine(P, Q, C, counts=None, eps=DEFAULT_EPS):
    inv, cand = counts if counts is not None else (None, None)
    clips = R.make_clips(P, Q, n_invalid=inv, n_candidates=cand, eps=eps)
    return R.weighted_metrics(R.stat_matrix(clips), np.atleast_2d(np.asarray(C, dtype=np.float64)))


def test_weighted_engine_with_unit_weights_equals_compute_all():
    P, Q = _pair(150, 6, seed=13)
    Q[5] = 1 / 6  # constant row: r2_pearson skip path
    inv, cand = np.arange(150) % 3, np.full(150, 5)
    ref = compute_all(P, Q, n_invalid=inv, n_candidates=cand)
    got = _engine(P, Q, np.ones(150), counts=(inv.astype(float), cand.astype(float)))
    _assert_metric_dicts_equal(ref, {m: float(v[0]) for m, v in got.items()}, tol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_engine_with_counts_equals_explicit_resample(seed):
    P, Q = _pair(60, 4, seed=20 + seed)
    Q[::11] = 0.25  # uniform model rows: tied model entropies and NaN pearson rows
    rng = np.random.default_rng(seed)
    C = np.stack([np.bincount(rng.integers(0, 60, size=60), minlength=60) for _ in range(3)])
    got = _engine(P, Q, C)
    for b, counts in enumerate(C):
        idx = np.repeat(np.arange(60), counts)
        ref = compute_all(P[idx], Q[idx])
        _assert_metric_dicts_equal(ref, {m: float(v[b]) for m, v in got.items()}, tol=1e-10)


def test_weighted_spearman_blocks_match_single_block(monkeypatch):
    P, Q = _pair(50, 4, seed=30)
    rng = np.random.default_rng(0)
    C = np.stack([np.bincount(rng.integers(0, 50, 50), minlength=50) for _ in range(5)])
    whole = _engine(P, Q, C)["entropy_spearman"]
    monkeypatch.setattr(M, "_RANK_BLOCK_ELEMENTS", 1)
    np.testing.assert_allclose(_engine(P, Q, C)["entropy_spearman"], whole, atol=1e-12)


def test_bootstrap_ci_points_and_intervals():
    P, Q = _pair(400, 5, seed=14)
    ci = bootstrap_ci(P, Q, n_resamples=300, seed=1)
    ref = compute_all(P, Q)
    assert set(ci) == set(METRICS)
    for m in METRICS:
        point, lo, hi = ci[m]
        if m == "invalid_rate":
            assert all(math.isnan(v) for v in ci[m])
            continue
        assert point == pytest.approx(ref[m], abs=1e-12)
        assert lo <= point <= hi, m
        assert hi - lo < 0.3, m


def test_bootstrap_ci_uses_percentiles_of_resamples():
    P, Q = _pair(120, 4, seed=19)
    ci = bootstrap_ci(P, Q, n_resamples=80, seed=4, alpha=0.1)
    res = R.bootstrap_resamples(R.make_clips(P, Q), 80, np.random.default_rng(4))
    for m in ("js", "r2_det", "macro_f1"):
        assert ci[m][1:] == pytest.approx(tuple(np.percentile(res[m], [5, 95])), abs=1e-12)


def test_bootstrap_ci_is_reproducible():
    P, Q = _pair(100, 4, seed=15)
    a = bootstrap_ci(P, Q, n_resamples=60, seed=7)
    b = bootstrap_ci(P, Q, n_resamples=60, seed=7)
    c = bootstrap_ci(P, Q, n_resamples=60, seed=8)
    assert a == pytest.approx(b, nan_ok=True)
    assert a["js"] != c["js"]


def test_bootstrap_invalid_rate_ci_from_per_clip_counts():
    P, Q = _pair(100, 4, seed=16)
    inv = (np.arange(100) % 4 == 0).astype(int)
    ci = bootstrap_ci(P, Q, n_resamples=100, n_invalid=inv, n_candidates=np.ones(100))
    point, lo, hi = ci["invalid_rate"]
    assert point == 0.25 and lo < 0.25 < hi


def test_paired_bootstrap_same_model_is_null():
    P, Q = _pair(150, 4, seed=17)
    out = paired_bootstrap(P, Q, Q, n_resamples=100, seed=2)
    for m in METRICS:
        if m == "invalid_rate":
            continue
        assert out[m]["diff"] == 0.0, m
        assert out[m]["p"] == 1.0, m
        assert out[m]["lo"] == out[m]["hi"] == 0.0, m


def test_paired_bootstrap_detects_clearly_better_model():
    P, Q_bad = _pair(300, 5, seed=18, mix=0.2)
    Q_good = 0.9 * P + 0.1 * Q_bad
    out = paired_bootstrap(P, Q_bad, Q_good, n_resamples=200, seed=3)
    assert out["js"]["diff"] < 0 and out["js"]["hi"] < 0
    assert out["js"]["p"] < 0.01
    assert out["bc"]["diff"] > 0 and out["bc"]["p"] < 0.01
    assert out["accuracy"]["q2"] == pytest.approx(compute_all(P, Q_good)["accuracy"])
    assert out["js"]["diff"] == pytest.approx(
        compute_all(P, Q_good)["js"] - compute_all(P, Q_bad)["js"]
    )


def test_sign_flip_p_value():
    assert R.sign_flip_p(0.5, np.array([1.0, 0.2, -0.1, 0.3])) == 0.5
    assert R.sign_flip_p(-0.5, np.array([-1.0, -0.2, -0.1, -0.3])) == 0.0
    assert R.sign_flip_p(0.1, np.array([-1.0, -2.0, 0.5])) == 1.0  # capped
    assert R.sign_flip_p(0.5, np.array([0.0, 1.0, 1.0, 1.0])) == 0.5  # zero counts as a flip
