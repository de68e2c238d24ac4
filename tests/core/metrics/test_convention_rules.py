"""R² and ECE under both conventions, on cases worked by hand (and checked against sklearn).

Every expected value below was computed on paper; the sklearn numbers were confirmed once
with scikit-learn 1.9 ``r2_score`` per column (it is not a dependency, so not imported).
The engines (point values, the count-weighted bootstrap sums, the cohort bootstrap) must
all agree with the hand values, since each computes the metric its own way.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ambiscope.core.conventions import Conventions, preset
from ambiscope.core.export.report import reliability_bins
from ambiscope.core.metrics.bootstrap import CohortMember, evaluate_cohort
from ambiscope.core.metrics.functions import (
    ece,
    ece_bin_index,
    mean_pearson_r2,
    r2_determination,
)
from ambiscope.core.metrics.resampling import (
    compute_all,
    make_clips,
    stat_matrix,
    weighted_metrics,
)
from ambiscope.core.metrics.table import metric_table

SKLEARN = Conventions().with_overrides({"r2_constant": "sklearn"})
LEFT = Conventions().with_overrides({"ece_bins": "left-closed"})

# Three clips, three labels; label 2 is never voted (constant 0 in the reference).
P = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
# Label 0: SS_tot = 0.25 + 0.25 + 0 = 0.5, SS_res = 0.04 + 0.01 + 0 = 0.05 -> 0.9
# Label 1: SS_tot = 0.5, SS_res = 0.01 + 0.04 + 0.01 = 0.06 -> 0.88
# Label 2: constant reference, SS_res = 3 x 0.01 = 0.03 != 0 -> sklearn scores 0
Q_MISS = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1]])
# Label 0 and 1: SS_res = 0.01 + 0.01 + 0 = 0.02 -> 0.96; label 2 predicted exactly -> 1
Q_EXACT = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.5, 0.5, 0.0]])


@pytest.mark.parametrize(
    ("Q", "skip", "sklearn"),
    [
        (Q_MISS, (0.9 + 0.88) / 2, (0.9 + 0.88 + 0.0) / 3),  # 0.89 vs 0.5933
        (Q_EXACT, 0.96, (0.96 + 0.96 + 1.0) / 3),  # 0.96 vs 0.9733
    ],
    ids=["unused-label-missed", "unused-label-exact"],
)
def test_r2_det_on_a_label_nobody_used(Q: np.ndarray, skip: float, sklearn: float) -> None:
    assert r2_determination(P, Q) == pytest.approx(skip, abs=1e-12)
    assert r2_determination(P, Q, "sklearn") == pytest.approx(sklearn, abs=1e-12)
    assert compute_all(P, Q)["r2_det"] == pytest.approx(skip, abs=1e-12)
    assert compute_all(P, Q, conventions=SKLEARN)["r2_det"] == pytest.approx(sklearn, abs=1e-12)


def test_r2_det_sklearn_needs_two_clips() -> None:
    """sklearn's r2_score is NaN for one sample; so is a one-clip group here."""
    assert math.isnan(r2_determination(P[:1], Q_MISS[:1], "sklearn"))
    assert math.isnan(r2_determination(P[:1], Q_MISS[:1]))  # every label constant


def test_r2_det_engines_agree_with_the_hand_value() -> None:
    """Point, unit-weight sums, metric_table and the cohort bootstrap: one number."""
    expected = (0.9 + 0.88 + 0.0) / 3
    clips = make_clips(P, Q_MISS, conventions=SKLEARN)
    unit = weighted_metrics(stat_matrix(clips), np.ones((1, 3)))
    assert unit["r2_det"][0] == pytest.approx(expected, abs=1e-12)
    (row,) = metric_table(P, Q_MISS, conventions=SKLEARN)
    assert row["r2_det"] == pytest.approx(expected, abs=1e-12)
    result = evaluate_cohort(
        P, [CohortMember(Q_MISS)], metrics=("r2_det",), bootstrap=0, conventions=SKLEARN
    )
    assert result.rows[(0, "all")]["r2_det"] == pytest.approx(expected, abs=1e-6)


def test_r2_det_resample_equals_the_explicit_resample() -> None:
    """Counts (2, 1, 0) are the sample [clip 0, clip 0, clip 1]: on it label 2 is constant
    and mispredicted, label 0 and 1 are scored normally, under sklearn's rule."""
    clips = make_clips(P, Q_MISS, conventions=SKLEARN)
    resampled = weighted_metrics(stat_matrix(clips), np.array([[2.0, 1.0, 0.0]]))
    explicit = r2_determination(P[[0, 0, 1]], Q_MISS[[0, 0, 1]], "sklearn")
    # label 0: P = 1,1,0 (SS_tot 2/3), SS_res = .04+.04+.01 = .09 -> 1 - .135 = .865
    # label 1: P = 0,0,1 (SS_tot 2/3), SS_res = .01+.01+.04 = .06 -> 1 - .09 = .91
    assert explicit == pytest.approx((0.865 + 0.91 + 0.0) / 3, abs=1e-12)
    assert resampled["r2_det"][0] == pytest.approx(explicit, abs=1e-12)


# Per-clip Pearson R²: clip 0 perfectly correlated, clip 1 uniform output on a one-hot
# reference, clip 2 uniform output on a uniform reference, clip 3 uniform reference.
THIRD = np.full(3, 1 / 3)
P_ROWS = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], THIRD, THIRD])
Q_ROWS = np.array([[0.6, 0.2, 0.2], THIRD, THIRD, [0.6, 0.2, 0.2]])


def test_r2_pearson_uniform_outputs_skipped_or_kept() -> None:
    mean, skipped = mean_pearson_r2(P_ROWS, Q_ROWS)
    assert (mean, skipped) == (pytest.approx(1.0), 3)
    mean, skipped = mean_pearson_r2(P_ROWS, Q_ROWS, "keep")
    assert (mean, skipped) == (pytest.approx((1.0 + 0.0 + 1.0) / 3), 1)
    kept = compute_all(P_ROWS, Q_ROWS, conventions=preset("scaling-ambiguity"))
    assert kept["r2_pearson"] == pytest.approx(2 / 3) and kept["r2_pearson_skipped"] == 1


def test_ece_bin_edges() -> None:
    """0.3, 0.5 and 0.7 sit on edges; 1.0 is the top bin under both rules, 0 the bottom."""
    conf = np.array([0.0, 0.25, 0.3, 0.5, 0.7, 1.0])
    right = ece_bin_index(conf, 10, "right-closed")
    left = ece_bin_index(conf, 10, "left-closed")
    assert right.tolist() == [0, 2, 2, 4, 6, 9]
    assert left.tolist() == [0, 2, 3, 5, 7, 9]
    # the official rule on exact fractions, and the float32 round trip of a stored 0.3
    assert left.tolist() == [min(int(c * 10), 9) for c in conf]
    stored = np.float64(np.float32(0.3)) / np.float64(np.float32(0.3) + np.float32(0.7))
    assert ece_bin_index(np.array([stored]), 10, "left-closed").tolist() == [3]
    assert ece_bin_index(np.array([stored]), 10, "right-closed").tolist() == [2]


# Clip 0: conf 0.3, correct; clip 1: conf 0.25 (uniform, argmax 0), wrong; clip 2: conf
# 0.5, correct (argmax 2 on the first of the tied labels).
P_ECE = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 2 / 3, 1 / 3]], dtype=float)
Q_ECE = np.array([[0.3, 0.25, 0.25, 0.2], [0.25] * 4, [0, 0, 0.5, 0.5]])
ECE_RIGHT = (abs((1 - 0.3) + (0 - 0.25)) + (1 - 0.5)) / 3  # 0.3 and 0.25 share bin 2
ECE_LEFT = ((1 - 0.3) + 0.25 + (1 - 0.5)) / 3  # 0.3 -> bin 3, 0.25 -> 2, 0.5 -> 5


def test_ece_right_and_left_closed() -> None:
    assert ece(P_ECE, Q_ECE) == pytest.approx(ECE_RIGHT)  # 0.3167
    assert ece(P_ECE, Q_ECE, bins="left-closed") == pytest.approx(ECE_LEFT)  # 0.4833
    assert compute_all(P_ECE, Q_ECE, conventions=LEFT)["ece"] == pytest.approx(ECE_LEFT)
    result = evaluate_cohort(
        P_ECE, [CohortMember(Q_ECE)], metrics=("ece",), bootstrap=0, conventions=LEFT
    )
    assert result.rows[(0, "all")]["ece"] == pytest.approx(ECE_LEFT, abs=1e-6)


def test_ece_n_bins_from_the_conventions() -> None:
    """With 5 bins (width 0.2) 0.25 and 0.3 share bin 1 under both rules; 0.5 is inside."""
    five = LEFT.with_overrides({"ece_n_bins": "5"})
    assert compute_all(P_ECE, Q_ECE, conventions=five)["ece"] == pytest.approx(ECE_RIGHT)


def test_reliability_diagram_bins_like_the_table() -> None:
    _, _, right = reliability_bins(P_ECE, Q_ECE)
    _, _, left = reliability_bins(P_ECE, Q_ECE, LEFT)
    assert right.tolist() == [0, 0, 2, 0, 1, 0, 0, 0, 0, 0]
    assert left.tolist() == [0, 0, 1, 1, 0, 1, 0, 0, 0, 0]


def test_unknown_rule_names_the_convention() -> None:
    with pytest.raises(ValueError, match="r2_constant"):
        r2_determination(P, Q_MISS, "zero")
    with pytest.raises(ValueError, match="ece_bins"):
        ece(P_ECE, Q_ECE, bins="both")
