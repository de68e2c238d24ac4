"""TTS strategies on hand-worked candidate sets: every number below is computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ambiscope.core.scaling.strategies import (
    STRATEGIES,
    CandidateSet,
    aggregate,
    aggregate_many,
    applicable_strategies,
    bon,
    cot,
    default_curves,
    dirichlet,
    first_answer_strategies,
    likelihood,
    preferred_strategy,
    scalable_strategies,
    single,
    subsample,
    verifier,
    vote,
    wbon,
    wverifier,
)

NAN = math.nan


def _labels(*answers, k=3, **kw) -> CandidateSet:
    return CandidateSet.from_labels(list(answers), k, **kw)


def test_registry_order():
    assert STRATEGIES.names() == (
        "single",
        "cot",
        "vote",
        "bon",
        "wbon",
        "verifier",
        "wverifier",
        "dirichlet",
        "likelihood",
        "likelihood~",
    )


def test_approximate_label_scores_feed_only_likelihood_tilde():
    """An endpoint's first-token approximation is never reported as the exact strategy."""
    from ambiscope.core.scaling.strategies import aggregate, approximate_strategies

    loglik = [-0.5, -1.5, -3.0]
    exact = CandidateSet.from_labels([0, 1], 3, label_loglik=loglik)
    approx = CandidateSet(exact.dists, exact.valid, label_loglik=loglik, likelihood_exact=False)
    assert "likelihood" in aggregate(exact) and "likelihood~" not in aggregate(exact)
    got = aggregate(approx)
    assert "likelihood" not in got
    np.testing.assert_allclose(got["likelihood~"], aggregate(exact)["likelihood"])
    assert approximate_strategies() == {"likelihood~"}


def test_declarations_drive_the_derived_lists():
    meta = STRATEGIES.meta("wbon")
    assert meta["needs"] == ("logprobs",) and meta["params"] == {"tau"}
    assert STRATEGIES.meta("likelihood")["params"] == {"temperature"}
    assert first_answer_strategies() == ("single", "cot")
    assert "likelihood" not in scalable_strategies() and "vote" in scalable_strategies()
    assert default_curves() == ("vote", "wbon")
    assert preferred_strategy(["bon", "vote", "wverifier"]) == "wverifier"
    assert preferred_strategy(["single", "likelihood"]) is None


def test_single_and_cot_take_the_first_valid_candidate():
    cs = _labels(None, 2, 1)
    assert single(cs).tolist() == [0, 0, 1]
    assert cot(cs).tolist() == [0, 0, 1]


def test_vote_is_the_label_histogram():
    cs = _labels(0, 1, 1, None, 2)  # invalid candidate ignored: 4 valid votes
    np.testing.assert_allclose(vote(cs), [0.25, 0.5, 0.25])


def test_vote_averages_distributions():
    cs = CandidateSet(np.array([[0.5, 0.5, 0.0], [0.1, 0.3, 0.6]]))
    np.testing.assert_allclose(vote(cs), [0.3, 0.4, 0.3])


def test_invalid_rows_are_never_read():
    dists = np.array([[NAN, NAN, NAN], [0.0, 1.0, 0.0], [-5.0, 9.0, 1.0]])
    cs = CandidateSet(dists, valid=[False, True, False], logprob_norm=[0.0, -3.0, 5.0])
    for name in ("single", "vote", "bon", "wbon", "dirichlet"):
        assert STRATEGIES[name](cs).tolist() == [0, 1, 0], name


def test_nothing_valid_gives_none():
    cs = _labels(None, None, logprob_norm=[-1, -2], verifier=[0.5, 0.5])
    for name in STRATEGIES.names():
        assert STRATEGIES[name](cs) is None, name
    assert aggregate(cs, STRATEGIES.names()) == {}


def test_bon_picks_the_best_normalised_logprob():
    cs = _labels(0, 1, 2, None, logprob_norm=[-1.0, -0.5, -2.0, 0.0])  # invalid best ignored
    assert bon(cs).tolist() == [0, 1, 0]
    tie = _labels(0, 1, logprob_norm=[-1.0, -1.0])
    assert bon(tie).tolist() == [1, 0, 0]  # earliest wins ties


def test_wbon_softmax_weights_by_hand():
    cs = _labels(0, 1, 2, logprob_norm=[-1.0, -2.0, -3.0])
    z = math.exp(-1) + math.exp(-2) + math.exp(-3)
    expected = [math.exp(-1) / z, math.exp(-2) / z, math.exp(-3) / z]  # 0.665, 0.245, 0.090
    np.testing.assert_allclose(wbon(cs), expected, rtol=1e-12)
    np.testing.assert_allclose(wbon(cs), [0.66524096, 0.24472847, 0.09003057], atol=1e-8)
    # tau = 2: weights e^-0.5, e^-1, e^-1.5
    z2 = math.exp(-0.5) + math.exp(-1) + math.exp(-1.5)
    np.testing.assert_allclose(
        wbon(cs, tau=2.0), [math.exp(-0.5) / z2, math.exp(-1) / z2, math.exp(-1.5) / z2]
    )


def test_wbon_limits_and_missing_logprobs():
    cs = _labels(0, 1, 1, logprob_norm=[-1.0, -2.0, -2.5])
    np.testing.assert_allclose(wbon(cs, tau=1e-6), bon(cs), atol=1e-12)
    np.testing.assert_allclose(wbon(cs, tau=1e9), vote(cs), atol=1e-8)
    part = _labels(0, 1, 2, logprob_norm=[NAN, -1.0, -1.0])  # unscored candidate left out
    np.testing.assert_allclose(wbon(part), [0, 0.5, 0.5])
    assert bon(_labels(0, 1)) is None and wbon(_labels(0, 1)) is None
    with pytest.raises(ValueError, match="tau"):
        wbon(cs, tau=0.0)


def test_wbon_is_stable_for_very_negative_logprobs():
    cs = _labels(0, 1, logprob_norm=[-1000.0, -1001.0])
    e = math.exp(-1)
    np.testing.assert_allclose(wbon(cs), [1 / (1 + e), e / (1 + e), 0])


def test_verifier_and_weighted_verifier_by_hand():
    cs = _labels(0, 1, 1, 2, None, verifier=[0.2, 0.5, 0.1, 0.2, 1.0])
    assert verifier(cs).tolist() == [0, 1, 0]
    # weights 0.2, 0.5, 0.1, 0.2 over 1.0: label0 0.2, label1 0.6, label2 0.2
    np.testing.assert_allclose(wverifier(cs), [0.2, 0.6, 0.2])
    unscored = _labels(0, 1, 2, verifier=[NAN, 0.3, 0.1])
    np.testing.assert_allclose(wverifier(unscored), [0, 0.75, 0.25])
    assert verifier(_labels(0, 1)) is None and wverifier(_labels(0, 1)) is None


def test_wverifier_all_zero_scores_fall_back_to_vote():
    cs = _labels(0, 1, 1, verifier=[0.0, 0.0, 0.0])
    np.testing.assert_allclose(wverifier(cs), [1 / 3, 2 / 3, 0])


def test_dirichlet_recovers_the_mean_of_a_dirichlet_sample():
    alpha = np.array([2.0, 5.0, 3.0])
    sample = np.random.default_rng(7).dirichlet(alpha, size=400)
    np.testing.assert_allclose(dirichlet(CandidateSet(sample)), alpha / alpha.sum(), atol=0.02)


def test_dirichlet_falls_back_to_the_mean_on_degenerate_input():
    same = _labels(1, 1, 1, None)
    assert dirichlet(same).tolist() == [0, 1, 0]  # one distinct candidate: the mean
    one = CandidateSet(np.array([[0.2, 0.3, 0.5]]))
    np.testing.assert_allclose(dirichlet(one), [0.2, 0.3, 0.5])
    single_label = CandidateSet(np.array([[1.0], [1.0]]))
    assert dirichlet(single_label).tolist() == [1.0]


def test_dirichlet_on_one_hot_answers_is_a_smoothed_pooling():
    cs = _labels(0, 1, 1, 1, 2, 1)
    result = dirichlet(cs)
    assert result is not None and abs(result.sum() - 1) < 1e-12
    assert int(np.argmax(result)) == 1  # the majority label stays the mode
    assert result[0] == pytest.approx(result[2])  # symmetric counts, symmetric mass
    assert (result > 0).all()


def test_likelihood_is_a_tempered_softmax():
    cs = _labels(0, k=3, label_loglik=[-1.0, -2.0, -3.0])
    z = math.exp(-1) + math.exp(-2) + math.exp(-3)
    np.testing.assert_allclose(
        likelihood(cs), [math.exp(-1) / z, math.exp(-2) / z, math.exp(-3) / z]
    )
    np.testing.assert_allclose(likelihood(cs, temperature=1e-3), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(likelihood(cs, temperature=1e6), [1 / 3] * 3, atol=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        likelihood(cs, temperature=-1)


def test_likelihood_needs_scores_but_no_valid_candidates():
    assert likelihood(_labels(0)) is None
    assert likelihood(_labels(0, label_loglik=[NAN, -1, -1])) is None
    assert likelihood(_labels(0, label_loglik=[-math.inf] * 3)) is None
    no_answers = CandidateSet(np.zeros((0, 2)), label_loglik=[0.0, -math.inf])
    assert likelihood(no_answers).tolist() == [1.0, 0.0]


@pytest.mark.parametrize(
    ("mode", "flags", "expected"),
    [
        ("label", (False, False, False), ["single", "vote", "dirichlet"]),
        ("cot", (False, False, False), ["cot", "vote", "dirichlet"]),
        (
            "distribution",
            (True, True, True),
            ["single", "vote", "bon", "wbon", "verifier", "wverifier", "dirichlet", "likelihood"],
        ),
        ("cot", (True, False, True), ["cot", "vote", "bon", "wbon", "dirichlet", "likelihood"]),
        ("label", (False, True, False), ["single", "vote", "verifier", "wverifier", "dirichlet"]),
    ],
)
def test_applicable_strategies(mode, flags, expected):
    assert applicable_strategies(mode, *flags) == expected


def test_applicable_strategies_rejects_unknown_modes():
    with pytest.raises(ValueError, match="unknown output mode"):
        applicable_strategies("json", False, False, False)


def test_aggregate_infers_applicable_strategies_and_routes_params():
    cs = _labels(0, 1, 1, logprob_norm=[-1.0, -2.0, -3.0])
    out = aggregate(cs, tau=1e-6)
    assert list(out) == ["single", "vote", "bon", "wbon", "dirichlet"]
    np.testing.assert_allclose(out["wbon"], [1, 0, 0], atol=1e-12)
    assert list(aggregate(cs, mode="cot")) == ["cot", "vote", "bon", "wbon", "dirichlet"]
    explicit = aggregate(cs, ["vote", "verifier"])
    assert list(explicit) == ["vote"]  # verifier cannot be computed: left out
    with pytest.raises(ValueError, match="unknown strategy parameter"):
        aggregate(cs, T=2.0)
    with pytest.raises(ValueError, match="unknown strategy"):
        aggregate(cs, ["majority"])


def test_aggregate_many_stacks_rows_with_nan_for_missing():
    sets = [_labels(0, 1, verifier=[0.9, 0.1]), _labels(None, None), _labels(2, 2)]
    out = aggregate_many(sets)
    assert list(out) == ["single", "vote", "verifier", "wverifier", "dirichlet"]
    np.testing.assert_allclose(out["vote"][0], [0.5, 0.5, 0])
    assert np.isnan(out["vote"][1]).all()
    np.testing.assert_allclose(out["verifier"][0], [1, 0, 0])
    assert np.isnan(out["verifier"][2]).all()
    with pytest.raises(ValueError, match="different label counts"):
        aggregate_many([_labels(0, k=2), _labels(0, k=3)])


def test_subsample_takes_the_first_n():
    cs = _labels(0, 1, None, 2, logprob_norm=[-1, -2, -3, -4], verifier=[0.1, 0.2, 0.3, 0.4])
    sub = subsample(cs, 2, np.random.default_rng(0))
    assert sub.n == 2 and sub.valid.tolist() == [True, True]
    assert sub.logprob_norm.tolist() == [-1, -2] and sub.verifier.tolist() == [0.1, 0.2]
    np.testing.assert_allclose(vote(sub), [0.5, 0.5, 0])
    assert subsample(cs, 10).n == 4  # fewer candidates than asked: all of them
    assert subsample(cs, 1).n == 1
    with pytest.raises(ValueError, match=">= 1"):
        subsample(cs, 0)


def test_candidate_set_validation():
    with pytest.raises(ValueError, match="2-D"):
        CandidateSet(np.zeros(3))
    with pytest.raises(ValueError, match="sum to 1"):
        CandidateSet(np.array([[0.5, 0.4]]))
    with pytest.raises(ValueError, match=">= 0"):
        CandidateSet(np.array([[1.5, -0.5]]))
    with pytest.raises(ValueError, match="logprob_norm"):
        CandidateSet(np.eye(2), logprob_norm=[1.0])
    with pytest.raises(ValueError, match="label_loglik"):
        CandidateSet(np.eye(2), label_loglik=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="verifier"):
        CandidateSet(np.eye(2), verifier=[-0.1, 0.5])
    float32 = CandidateSet(np.array([[0.1, 0.2, 0.7]], dtype=np.float32))
    assert float32.dists.dtype == np.float64 and abs(float32.dists.sum() - 1) < 1e-15


def test_tables_never_star_an_approximate_strategy_and_say_what_the_tilde_means():
    from ambiscope.core.evaluation import format_table

    rows = [
        {"run_label": "r", "strategy": "vote", "group": "all", "n": 5, "js": 0.4},
        {"run_label": "r", "strategy": "likelihood~", "group": "all", "n": 5, "js": 0.1},
    ]
    table = format_table(rows, ("js",))
    lines = table.splitlines()
    assert "0.400*" in next(line for line in lines if " vote " in line)
    assert "*" not in next(line for line in lines if "likelihood~" in line)
    assert lines[-1].startswith("~ = computed from approximate scores")
