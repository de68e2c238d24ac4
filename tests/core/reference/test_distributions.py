"""ambiscope.core.reference.distributions: hand-worked and published agreement examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ambiscope.core.reference.distributions import (
    AMBIGUITY_LEVELS,
    NO_LEVEL,
    DistributionOptions,
    agreement_summary,
    ambiguity_levels,
    entropy_bits,
    fleiss_kappa,
    human_distribution,
    krippendorff_alpha_from_reliability,
    krippendorff_alpha_nominal,
    level_names,
    majority_labels,
    normalized_entropy,
    vote_counts,
)


def _votes(rows):
    """rows: (clip, label, weight, rank) tuples -> the four flat arrays."""
    clip, label, weight, rank = zip(*rows, strict=True)
    return (
        np.array(clip, dtype=np.int64),
        np.array(label, dtype=np.int64),
        np.array(weight, dtype=np.float64),
        np.array(rank, dtype=np.int64),
    )


# clip 0: primary A, A, B; secondary C (rank 1)
# clip 1: anonymous weighted votes B x3, C x1 (CREMA-D style), plus an out-of-set vote (-1)
# clip 2: no votes at all
# clip 3: only a secondary vote
VOTES = _votes(
    [
        (0, 0, 1.0, 0),
        (0, 0, 1.0, 0),
        (0, 1, 1.0, 0),
        (0, 2, 1.0, 1),
        (1, 1, 3.0, 0),
        (1, 2, 1.0, 0),
        (1, -1, 5.0, 0),
        (3, 1, 1.0, 1),
    ]
)


# ------------------------------------------------------------------------------ vote counts


def test_vote_counts_primary_only_default():
    counts = vote_counts(*VOTES, n_clips=4, K=3)
    assert counts.dtype == np.float64
    np.testing.assert_array_equal(counts, [[2, 1, 0], [0, 3, 1], [0, 0, 0], [0, 0, 0]])


def test_vote_counts_secondary_weight():
    opts = DistributionOptions(secondary_weight=0.5)
    counts = vote_counts(*VOTES, n_clips=4, K=3, options=opts)
    np.testing.assert_array_equal(counts, [[2, 1, 0.5], [0, 3, 1], [0, 0, 0], [0, 0.5, 0]])


def test_human_distribution_plain_and_empty_clip():
    counts = vote_counts(*VOTES, n_clips=4, K=3)
    dist, valid = human_distribution(counts)
    np.testing.assert_allclose(dist[0], [2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(dist[1], [0, 3 / 4, 1 / 4])
    # empty vote set (clip 2) and secondary-only with weight 0 (clip 3): NaN, invalid
    assert valid.tolist() == [True, True, False, False]
    assert np.isnan(dist[2]).all() and np.isnan(dist[3]).all()


def test_human_distribution_secondary_weight():
    opts = DistributionOptions(secondary_weight=0.5)
    dist, valid = human_distribution(vote_counts(*VOTES, n_clips=4, K=3, options=opts), opts)
    np.testing.assert_allclose(dist[0], [2 / 3.5, 1 / 3.5, 0.5 / 3.5])
    np.testing.assert_allclose(dist[3], [0, 1, 0])
    assert valid.tolist() == [True, True, False, True]


def test_human_distribution_smoothing():
    opts = DistributionOptions(smoothing=1.0)
    dist, valid = human_distribution(vote_counts(*VOTES, n_clips=4, K=3), opts)
    np.testing.assert_allclose(dist[0], [3 / 6, 2 / 6, 1 / 6])
    np.testing.assert_allclose(dist[1], [1 / 7, 4 / 7, 2 / 7])
    # smoothing never turns an empty clip into a uniform distribution
    assert np.isnan(dist[2]).all() and not valid[2]


def test_human_distribution_dirichlet_prior_and_smoothing():
    opts = DistributionOptions(prior=(1.0, 0.0, 2.0))
    dist, _ = human_distribution(vote_counts(*VOTES, n_clips=4, K=3), opts)
    # posterior mean (c + alpha) / (total + sum alpha)
    np.testing.assert_allclose(dist[0], [3 / 6, 1 / 6, 2 / 6])
    np.testing.assert_allclose(dist[1], [1 / 7, 3 / 7, 3 / 7])
    both = DistributionOptions(smoothing=0.5, prior=(1.0, 0.0, 2.0))
    dist, _ = human_distribution(vote_counts(*VOTES, n_clips=4, K=3), both)
    np.testing.assert_allclose(dist[0], [3.5 / 7.5, 1.5 / 7.5, 2.5 / 7.5])


def test_options_validation():
    with pytest.raises(ValueError):
        DistributionOptions(secondary_weight=-1)
    with pytest.raises(ValueError):
        DistributionOptions(smoothing=math.nan)
    with pytest.raises(ValueError):
        DistributionOptions(prior=(1.0, math.inf))
    with pytest.raises(ValueError, match="prior has 2 values"):
        human_distribution(np.ones((2, 3)), DistributionOptions(prior=(1.0, 1.0)))
    assert DistributionOptions(prior=[1, 2]).prior == (1.0, 2.0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("weight", math.nan, "finite"),
        ("weight", math.inf, "finite"),
        ("weight", -1.0, "non-negative"),
        ("label", 3, "label index 3"),
        ("label", -2, "label index -2"),
        ("clip", 4, "clip index 4"),
        ("clip", -1, "clip index -1"),
        ("rank", -1, "rank"),
    ],
)
def test_vote_counts_rejects_bad_votes(field, value, message):
    clip, label, weight, rank = (a.copy() for a in VOTES)
    arrays = {"clip": clip, "label": label, "weight": weight, "rank": rank}
    arrays[field][0] = value
    with pytest.raises(ValueError, match=message):
        vote_counts(clip, label, weight, rank, n_clips=4, K=3)


def test_vote_counts_rejects_length_mismatch_and_float_indices():
    clip, label, weight, rank = VOTES
    with pytest.raises(ValueError, match="same length"):
        vote_counts(clip, label[:-1], weight, rank, n_clips=4, K=3)
    with pytest.raises(ValueError, match="integers"):
        vote_counts(clip.astype(float), label, weight, rank, n_clips=4, K=3)


def test_vote_counts_no_votes():
    empty = np.array([], dtype=np.int64)
    counts = vote_counts(empty, empty, np.array([]), empty, n_clips=2, K=3)
    assert counts.shape == (2, 3) and not counts.any()
    dist, valid = human_distribution(counts)
    assert not valid.any() and np.isnan(dist).all()


def _loop_counts(clip, label, weight, rank, n_clips, K, secondary_weight):
    out = [[0.0] * K for _ in range(n_clips)]
    for c, lab, w, r in zip(
        clip.tolist(), label.tolist(), weight.tolist(), rank.tolist(), strict=True
    ):
        if lab == -1:
            continue
        out[c][lab] += w if r == 0 else w * secondary_weight
    return out


def _loop_distribution(row, smoothing, prior):
    total = sum(row)
    if total == 0:
        return None
    pseudo = [smoothing + a for a in prior]
    denom = total + sum(pseudo)
    return [(x + a) / denom for x, a in zip(row, pseudo, strict=True)]


def _loop_entropy(p):
    return -sum(x * math.log2(x) for x in p if x > 0)


def test_vectorised_matches_loop_on_random_votes():
    rng = np.random.default_rng(1234)
    n_clips, K, n_votes = 200, 5, 1500
    clip = rng.integers(0, n_clips, n_votes)
    label = rng.integers(-1, K, n_votes)
    weight = rng.choice([1.0, 1.0, 2.0, 0.0, 3.5], n_votes)
    rank = rng.choice([0, 0, 0, 1, 2], n_votes)
    prior = (0.5, 0.0, 1.0, 0.25, 2.0)
    opts = DistributionOptions(secondary_weight=0.3, smoothing=0.1, prior=prior)

    counts = vote_counts(clip, label, weight, rank, n_clips, K, opts)
    expected = _loop_counts(clip, label, weight, rank, n_clips, K, 0.3)
    np.testing.assert_allclose(counts, expected, rtol=1e-12, atol=1e-12)

    dist, valid = human_distribution(counts, opts)
    h = entropy_bits(dist)
    hn = normalized_entropy(dist)
    for i, row in enumerate(expected):
        ref = _loop_distribution(row, 0.1, prior)
        if ref is None:
            assert not valid[i] and np.isnan(dist[i]).all() and np.isnan(h[i])
        else:
            assert valid[i]
            np.testing.assert_allclose(dist[i], ref, rtol=1e-12)
            assert h[i] == pytest.approx(_loop_entropy(ref), rel=1e-12, abs=1e-12)
            assert hn[i] == pytest.approx(_loop_entropy(ref) / math.log2(K), abs=1e-12)


# ------------------------------------------------------------------------------ entropy


@pytest.mark.parametrize("K", [2, 3, 4, 7, 11])
def test_entropy_uniform_and_one_hot(K):
    uniform = np.full((1, K), 1 / K)
    one_hot = np.eye(K)[:1]
    assert entropy_bits(uniform)[0] == pytest.approx(math.log2(K))
    assert entropy_bits(one_hot)[0] == 0.0
    assert normalized_entropy(uniform)[0] == pytest.approx(1.0)
    assert normalized_entropy(one_hot)[0] == 0.0


def test_entropy_nan_rows_and_k1():
    dist = np.array([[0.5, 0.5], [np.nan, np.nan], [1.0, 0.0]])
    h = entropy_bits(dist)
    assert h[0] == pytest.approx(1.0) and np.isnan(h[1]) and h[2] == 0.0
    hn = normalized_entropy(np.array([[1.0], [np.nan]]))
    assert hn[0] == 0.0 and np.isnan(hn[1])


def test_entropy_is_permutation_invariant_bitwise():
    p = np.array([[0.5, 0.25, 0.125, 0.125], [0.125, 0.125, 0.25, 0.5], [0.25, 0.125, 0.5, 0.125]])
    h = entropy_bits(p)
    assert h[0] == h[1] == h[2] == 1.75


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
        elements=st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
    ),
    st.floats(0, 5),
)
def test_normalized_entropy_in_unit_interval(counts, smoothing):
    dist, valid = human_distribution(counts, DistributionOptions(smoothing=smoothing))
    hn = normalized_entropy(dist)
    assert np.isnan(hn[~valid]).all()
    assert ((hn[valid] >= 0) & (hn[valid] <= 1)).all()


# ------------------------------------------------------------------------------ ambiguity


def test_tertile_levels_known_array():
    h = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, np.nan])
    res = ambiguity_levels(h)
    q1, q2 = np.quantile(h[:-1], [1 / 3, 2 / 3])
    assert res.cuts == pytest.approx((q1, q2))
    assert res.method == "tertile"
    assert res.codes.dtype == np.int8
    # q1 = 0.2666.., q2 = 0.5333..
    assert res.codes.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, -1]
    assert res.counts == (3, 3, 3)
    assert res.names[-2:] == ["high", NO_LEVEL]


def test_tertile_ties_go_low_and_may_be_unbalanced():
    # 5 of 9 clips unanimous: q1 = q2 = 0 ... the unanimous clips are all low
    h = np.array([0, 0, 0, 0, 0, 0.5, 0.5, 0.9, 1.0])
    res = ambiguity_levels(h)
    assert res.cuts == (0.0, 0.5)
    assert res.codes.tolist() == [0, 0, 0, 0, 0, 1, 1, 2, 2]
    assert res.counts == (5, 2, 2)


def test_tertile_all_three_levels_on_spread_array():
    h = np.random.default_rng(0).uniform(0, 1, 999)
    res = ambiguity_levels(h)
    assert set(res.codes.tolist()) == {0, 1, 2}
    assert all(abs(n - 333) <= 1 for n in res.counts)


def test_tertile_no_valid_values():
    res = ambiguity_levels(np.array([np.nan, np.nan]))
    assert res.codes.tolist() == [-1, -1]
    assert all(math.isnan(c) for c in res.cuts)


def test_fixed_thresholds():
    h = np.array([0.0, 1 / 3, 0.34, 2 / 3, 0.9, np.nan])
    res = ambiguity_levels(h, method="fixed")
    assert res.codes.tolist() == [0, 0, 1, 1, 2, -1]
    res = ambiguity_levels(h, method="fixed", thresholds=(0.5, 0.8))
    assert res.codes.tolist() == [0, 0, 0, 1, 2, -1]
    assert res.cuts == (0.5, 0.8) and res.method == "fixed"
    with pytest.raises(ValueError):
        ambiguity_levels(h, method="fixed", thresholds=(0.8, 0.5))
    with pytest.raises(ValueError):
        ambiguity_levels(h, method="quartile")


def test_level_names():
    assert AMBIGUITY_LEVELS == ("low", "medium", "high")
    assert level_names(np.array([0, 1, 2, -1], dtype=np.int8)) == [
        "low",
        "medium",
        "high",
        NO_LEVEL,
    ]
    with pytest.raises(ValueError):
        level_names(np.array([3]))


# ------------------------------------------------------------------------------ majority


def test_majority_labels():
    counts = np.array([[2, 1, 0], [1, 1, 0], [0, 0, 0], [0.1 + 0.2, 0.3, 0], [0, 1, 3]])
    labels, tie = majority_labels(counts)
    assert labels.tolist() == [0, 0, -1, 0, 2]
    assert tie.tolist() == [False, True, False, True, False]


# ------------------------------------------------------------------------------ agreement

# Fleiss (1971) as reproduced on Wikipedia: 10 items, 14 raters, 5 categories.
FLEISS_WIKI = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C:
# 4 observers x 12 units, missing data; nominal alpha = 0.743.
NA = np.nan
KRIPP_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NA, NA, NA],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NA, 3],
        [NA, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NA],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NA],
    ]
)


def test_fleiss_kappa_wikipedia_example():
    assert fleiss_kappa(FLEISS_WIKI) == pytest.approx(0.20993, abs=5e-5)
    assert round(fleiss_kappa(FLEISS_WIKI), 3) == 0.210


def test_krippendorff_alpha_2011_example():
    alpha = krippendorff_alpha_from_reliability(KRIPP_2011)
    assert round(alpha, 3) == 0.743
    # exact value 113/152 (n = 40 pairable values; the paper rounds to 0.743)
    assert alpha == pytest.approx(0.7434210526, abs=1e-9)


def test_krippendorff_from_counts_matches_reliability_and_drops_singletons():
    # units x values (values 1..5), built by hand from KRIPP_2011; unit 12 has one value only
    counts = np.array(
        [
            [3, 0, 0, 0, 0],
            [0, 3, 1, 0, 0],
            [0, 0, 4, 0, 0],
            [0, 0, 4, 0, 0],
            [0, 4, 0, 0, 0],
            [1, 1, 1, 1, 0],
            [0, 0, 0, 4, 0],
            [3, 1, 0, 0, 0],
            [0, 4, 0, 0, 0],
            [0, 0, 0, 0, 3],
            [2, 0, 0, 0, 0],
            [0, 0, 1, 0, 0],
        ]
    )
    assert krippendorff_alpha_nominal(counts) == pytest.approx(
        krippendorff_alpha_from_reliability(KRIPP_2011), abs=1e-12
    )
    assert krippendorff_alpha_nominal(counts[:-1]) == pytest.approx(
        krippendorff_alpha_nominal(counts), abs=1e-12
    )


def test_alpha_and_kappa_relation_with_equal_raters():
    # with n_i equal for all items: alpha = 1 - (1 - 1/n_total) (1 - kappa)
    kappa = fleiss_kappa(FLEISS_WIKI)
    alpha = krippendorff_alpha_nominal(FLEISS_WIKI)
    n_total = FLEISS_WIKI.sum()
    assert alpha == pytest.approx(1 - (1 - 1 / n_total) * (1 - kappa), abs=1e-12)


def test_perfect_agreement():
    counts = np.array([[5, 0, 0], [0, 5, 0], [0, 0, 5], [3, 0, 0]])
    assert fleiss_kappa(counts) == pytest.approx(1.0)
    assert krippendorff_alpha_nominal(counts) == pytest.approx(1.0)
    data = np.array([[1, 2, 3, 1], [1, 2, 3, NA], [1, 2, 3, 1]])
    assert krippendorff_alpha_from_reliability(data) == pytest.approx(1.0)


def test_agreement_undefined_cases_are_nan():
    one_category = np.array([[3, 0], [4, 0]])
    assert math.isnan(fleiss_kappa(one_category))
    assert math.isnan(krippendorff_alpha_nominal(one_category))
    singletons = np.array([[1, 0], [0, 1]])
    assert math.isnan(fleiss_kappa(singletons))
    assert math.isnan(krippendorff_alpha_nominal(singletons))


def test_fleiss_varying_raters_generalisation():
    counts = np.array([[2, 1], [0, 3], [1, 1], [4, 0], [1, 0]])  # last item dropped (n_i = 1)
    used = counts[:-1].astype(float)
    n_i = used.sum(1)
    p_bar = np.mean((used * (used - 1)).sum(1) / (n_i * (n_i - 1)))
    p_k = used.sum(0) / used.sum()
    p_e = (p_k**2).sum()
    assert fleiss_kappa(counts) == pytest.approx((p_bar - p_e) / (1 - p_e))


def test_agreement_rejects_fractional_counts():
    with pytest.raises(ValueError, match="integer"):
        fleiss_kappa(np.array([[1.5, 1.0]]))


def test_agreement_summary():
    counts = np.vstack([FLEISS_WIKI, [[1, 0, 0, 0, 0]]])
    s = agreement_summary(counts)
    assert s["fleiss_kappa"] == pytest.approx(0.20993, abs=5e-5)
    assert s["krippendorff_alpha"] == pytest.approx(krippendorff_alpha_nominal(FLEISS_WIKI))
    assert s["n_items"] == 11
    assert s["n_items_used"] == 10
    assert s["n_ratings_used"] == 140
    assert s["mean_raters_per_item"] == 14.0
    assert s["equal_raters"] is True
