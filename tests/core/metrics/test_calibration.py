"""Calibration maps (core/metrics/calibration.py) on synthetic models with known miscalibration.

The over-confident model is ``Q = softmax(T0 * log P + noise)``: its distributions are the
human ones raised to the power T0, so the temperature that undoes it is T0 itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from ambiscope.core.metrics.calibration import (
    CALIBRATION_EPS,
    CALIBRATIONS,
    T_MAX,
    fit_calibration,
    fit_temperature,
    fit_vector,
    log_probs,
)
from ambiscope.core.metrics.functions import ece, js_divergence

T0 = 2.5
K = 6


def humans(n: int, seed: int) -> np.ndarray:
    """Soft labels from 8 votes per clip on a Dirichlet-drawn emotion mix."""
    rng = np.random.default_rng(seed)
    mix = rng.dirichlet(np.full(K, 0.8), size=n)
    return rng.multinomial(8, mix) / 8, mix


def overconfident(mix: np.ndarray, seed: int, noise: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return special.softmax(T0 * np.log(mix) + rng.normal(0, noise, mix.shape), axis=1)


def test_temperature_recovers_the_overconfidence_and_helps_held_out_clips() -> None:
    P, mix = humans(600, seed=1)
    Q = overconfident(mix, seed=2)
    fit, held = slice(0, 300), slice(300, None)
    cal = fit_temperature(P[fit], Q[fit])
    assert cal.params["temperature"] == pytest.approx(T0, rel=0.06)
    assert not cal.params["at_bound"]
    assert cal.n_fit == 300 and cal.loss_after < cal.loss_before
    after = cal.apply(Q[held])
    assert np.allclose(after.sum(axis=1), 1.0)
    assert (after.argmax(axis=1) == Q[held].argmax(axis=1)).all()  # T never moves the argmax
    assert js_divergence(P[held], after).mean() < 0.8 * js_divergence(P[held], Q[held]).mean()


def test_an_overconfident_and_often_wrong_model_loses_ece_on_held_out_clips() -> None:
    """ECE scores the top label against the human majority, so it drops when confidence
    was high on clips the model gets wrong (with a right argmax, flattening can raise it)."""
    P, mix = humans(600, seed=1)
    rng = np.random.default_rng(2)
    Q = special.softmax(T0 * (np.log(mix) + rng.normal(0, 1.0, mix.shape)), axis=1)
    cal = fit_temperature(P[:300], Q[:300])
    before, after = Q[300:], cal.apply(Q[300:])
    assert ece(P[300:], after) < 0.5 * ece(P[300:], before)
    assert js_divergence(P[300:], after).mean() < 0.8 * js_divergence(P[300:], before).mean()


def test_a_calibrated_model_keeps_temperature_one_and_fits_are_deterministic() -> None:
    P, mix = humans(400, seed=3)
    Q = special.softmax(np.log(mix) + np.random.default_rng(4).normal(0, 0.05, mix.shape), axis=1)
    first, again = fit_temperature(P, Q), fit_temperature(P, Q)
    assert first.params["temperature"] == pytest.approx(1.0, abs=0.08)
    assert first.to_dict() == again.to_dict()


def test_exact_zeros_are_floored_not_infinite() -> None:
    """A histogram of sampled answers has zeros; the floor keeps every label reachable."""
    P = np.array([[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 0.5, 0.5]])
    Q = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    z = log_probs(Q)
    assert np.isfinite(z).all() and z.min() == pytest.approx(np.log(CALIBRATION_EPS), rel=1e-3)
    cal = fit_temperature(P, Q)
    assert 1.0 < cal.params["temperature"] <= T_MAX
    assert (cal.apply(Q) > 0.05).sum() > 3  # mass moved onto labels the model never said
    assert cal.to_dict()["eps"] == CALIBRATION_EPS
    assert np.isfinite(cal.loss_before) and cal.loss_after < cal.loss_before


def test_an_uninformative_model_is_fitted_to_the_bound_and_says_so() -> None:
    """One-hot answers unrelated to the votes: the best map is (nearly) uniform."""
    P, _ = humans(200, seed=9)
    Q = np.eye(K)[np.random.default_rng(10).integers(K, size=200)]
    cal = fit_temperature(P, Q)
    assert cal.params == {"temperature": pytest.approx(T_MAX, rel=1e-3), "at_bound": True}
    assert np.abs(cal.apply(Q) - 1 / K).max() < 0.05


def test_vector_scaling_recovers_per_label_biases() -> None:
    P, mix = humans(2000, seed=5)
    bias = np.array([0.9, -0.6, 0.3, 0.0, -0.2, -0.4])
    rng = np.random.default_rng(6)
    Q = special.softmax(np.log(mix) + bias + rng.normal(0, 0.05, mix.shape), axis=1)
    cal = fit_vector(P, Q)
    assert np.abs(cal.bias - (-bias + bias.mean())).max() < 0.15  # biases sum to zero
    assert np.abs(cal.scale - 1.0).max() < 0.1
    assert cal.params["scale"] == cal.scale.tolist() and cal.params["l2"] > 0
    assert cal.loss_after < cal.loss_before
    # temperature alone cannot remove a label preference; the vector map does
    held_P, held_mix = humans(300, seed=7)
    held_Q = special.softmax(np.log(held_mix) + bias, axis=1)
    js_t = js_divergence(held_P, fit_temperature(P, Q).apply(held_Q)).mean()
    assert js_divergence(held_P, cal.apply(held_Q)).mean() < 0.8 * js_t


def test_methods_come_from_the_registry_and_bad_input_fails() -> None:
    assert CALIBRATIONS.names() == ("temperature", "vector")
    P, mix = humans(20, seed=8)
    assert fit_calibration("vector", P, mix).method == "vector"
    with pytest.raises(ValueError, match="one of temperature, vector, got 'platt'"):
        fit_calibration("platt", P, mix)
    with pytest.raises(ValueError, match="P is empty"):
        fit_temperature(np.zeros((0, K)), np.zeros((0, K)))
    with pytest.raises(ValueError, match="same shape"):
        fit_temperature(P, mix[:, :3])
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        fit_vector(P, mix, l2=-1.0)
