"""Post-hoc calibration of model distributions against human soft labels.

Why: sampled ALM distributions are over-confident (a model that answers "angry" 9 times
out of 10 where people split 5/5), and the published benchmarks report JS/BC on the raw
outputs only. A map fitted on one split and applied to the other clips separates how much
of the gap to the humans a monotone re-scaling of the model's confidence fixes from what
it cannot fix (the model ranks the labels differently from people).

Methods (`CALIBRATIONS`, one decorated fit function each; the CLI's `--calibration`
choices are its names). Both act on log-probabilities ``z = log Q`` and fit on human soft
labels, not on argmax labels:

* ``temperature``: ``Q_T ∝ Q^(1/T)``, i.e. ``softmax(z / T)`` (Guo et al. 2017). One
  parameter; ``T > 1`` flattens, ``T < 1`` sharpens; it never changes the argmax, so
  accuracy and F1 stay as they were and only the distribution metrics and ECE move.
* ``vector``: ``softmax(w * z + b)`` with a per-label scale ``w`` and bias ``b`` (vector
  scaling, i.e. Dirichlet calibration with a diagonal matrix, Kull et al. 2019), with an
  L2 penalty ``l2 * (|w - 1|² + |b|²)`` towards the identity map so a small fitting split
  cannot over-fit ``2K`` parameters. It can move the argmax (a label the model over-uses
  gets a negative bias). The penalty also fixes ``b``'s free constant (adding one number
  to every bias changes nothing): the fitted biases sum to zero.

Objective: the mean over clips of the cross-entropy ``H(P, Q_cal) = H(P) + KL(P || Q_cal)``
to the human distribution ``P``, so the argmin is also the mean-KL minimiser; it is a
proper scoring rule, smooth and convex in ``1/T`` (and in ``(w, b)``), so the fit is
unique and deterministic (bounded Brent for the temperature, BFGS from the identity for
the vector). Losses are reported in bits, like every information quantity here.

Convention (recorded in provenance with the parameters): stored distributions contain
exact zeros (a histogram of N sampled answers), ``log 0 = -inf``, and no temperature could
then give mass to a label the model never said. Before taking logs ``Q`` is smoothed the
way the ``kl`` metric smooths it, ``(Q + eps) / (1 + K eps)`` with ``eps = CALIBRATION_EPS``
(= the metrics' ``DEFAULT_EPS``, 1e-6). For histogram outputs the fitted temperature
depends on this floor (a zero reads as ~13.8 nats below a certain label), which is why it
is part of the record. The temperature is searched in ``[T_MIN, T_MAX]``; a fit at a bound
(``at_bound`` in its parameters) says the data want an even more extreme map: at
``T_MAX`` the model's distributions carry no information the humans share, and the
calibrated ones are nearly uniform.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from ambiscope.core.metrics.spec import DEFAULT_EPS, FloatArray
from ambiscope.core.metrics.validation import check_eps, prepare
from ambiscope.core.registry import Registry

__all__ = [
    "CALIBRATIONS",
    "CALIBRATION_EPS",
    "Calibration",
    "fit_calibration",
    "fit_temperature",
    "fit_vector",
    "log_probs",
]

CALIBRATION_EPS = DEFAULT_EPS
"""Additive floor on Q before the logarithm (see the module docstring)."""
T_MIN, T_MAX = 0.01, 100.0
"""The temperature search interval."""
DEFAULT_L2 = 1e-3
"""Vector scaling's L2 weight per parameter, against a mean cross-entropy in nats."""

_LN2 = math.log(2.0)
_BOUND_TOL = 1e-4  # |log T - log bound| below this: the fit stopped at the bound

FitFunction = Callable[..., "Calibration"]
CALIBRATIONS: Registry[FitFunction] = Registry("calibration method")
"""Calibration method name -> fit function ``(P, Q, eps=...) -> Calibration``."""


@dataclass(frozen=True)
class Calibration:
    """A fitted map ``Q -> softmax(scale * log Q_eps + bias)`` and how it was fitted.

    Temperature scaling is the case ``scale = 1/T`` for every label, ``bias = 0``, so one
    `apply` serves every method; `params` holds what the method's name promises
    (``temperature``, or ``scale`` and ``bias`` per label) for provenance.
    """

    method: str
    scale: FloatArray  # (K,)
    bias: FloatArray  # (K,)
    params: dict[str, Any]
    eps: float
    n_fit: int
    loss_before: float  # mean cross-entropy H(P, Q) on the fitting clips, bits
    loss_after: float  # the same for the calibrated Q

    def apply(self, Q: npt.ArrayLike) -> FloatArray:
        """The calibrated distributions of `Q` (rows of any clips, e.g. held-out ones)."""
        z = log_probs(Q, self.eps)
        return special.softmax(z * self.scale + self.bias, axis=1)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for provenance."""
        return {
            "method": self.method,
            **self.params,
            "eps": self.eps,
            "n_fit": self.n_fit,
            "loss_before_bits": self.loss_before,
            "loss_after_bits": self.loss_after,
        }


def log_probs(Q: npt.ArrayLike, eps: float = CALIBRATION_EPS) -> FloatArray:
    """``log`` of the rows of Q smoothed by the `eps` floor (finite even where Q is 0)."""
    Qs = np.asarray(Q, dtype=np.float64) + check_eps(eps)
    return np.log(Qs / Qs.sum(axis=1, keepdims=True))


def _mean_ce(P: FloatArray, S: FloatArray) -> float:
    """Mean cross-entropy in nats of softmax(S) to P (logits S, rows of P sum to 1)."""
    return float(-(P * special.log_softmax(S, axis=1)).sum(axis=1).mean())


def _fit_input(P: npt.ArrayLike, Q: npt.ArrayLike, eps: float) -> tuple[FloatArray, FloatArray]:
    Pm, Qm = prepare(P, Q)  # an empty P or Q fails here, naming which
    return Pm, log_probs(Qm, eps)


@CALIBRATIONS.register("temperature")
def fit_temperature(
    P: npt.ArrayLike, Q: npt.ArrayLike, *, eps: float = CALIBRATION_EPS
) -> Calibration:
    """The temperature T minimising the mean cross-entropy of ``softmax(log Q / T)`` to P.

    The loss is convex in ``1/T``; it is minimised over ``log(1/T)`` by bounded Brent
    search on ``[T_MIN, T_MAX]`` (deterministic, no starting point to choose).
    """
    from scipy.optimize import minimize_scalar

    Pm, z = _fit_input(P, Q, eps)
    result = minimize_scalar(
        lambda u: _mean_ce(Pm, z * math.exp(u)),
        bounds=(-math.log(T_MAX), -math.log(T_MIN)),
        method="bounded",
        options={"xatol": 1e-9},
    )
    temperature = math.exp(-float(result.x))
    at_bound = min(abs(math.log(temperature / t)) for t in (T_MIN, T_MAX)) < _BOUND_TOL
    k = Pm.shape[1]
    return Calibration(
        "temperature",
        np.full(k, 1.0 / temperature),
        np.zeros(k),
        {"temperature": temperature, "at_bound": at_bound},
        eps,
        len(Pm),
        _mean_ce(Pm, z) / _LN2,
        float(result.fun) / _LN2,
    )


@CALIBRATIONS.register("vector")
def fit_vector(
    P: npt.ArrayLike,
    Q: npt.ArrayLike,
    *,
    eps: float = CALIBRATION_EPS,
    l2: float = DEFAULT_L2,
) -> Calibration:
    """Per-label scale ``w`` and bias ``b`` of ``softmax(w * log Q + b)`` minimising the mean
    cross-entropy to P plus ``l2 * (|w - 1|² + |b|²)`` (BFGS from the identity map)."""
    from scipy.optimize import minimize

    if not l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    Pm, z = _fit_input(P, Q, eps)
    n, k = Pm.shape

    def loss(theta: FloatArray) -> tuple[float, FloatArray]:
        w, b = theta[:k], theta[k:]
        S = z * w + b
        R = special.softmax(S, axis=1)
        value = _mean_ce(Pm, S) + l2 * (((w - 1.0) ** 2).sum() + (b**2).sum())
        G = (R - Pm) / n  # d mean-CE / d logits
        grad = np.concatenate(
            [(G * z).sum(axis=0) + 2 * l2 * (w - 1.0), G.sum(axis=0) + 2 * l2 * b]
        )
        return value, grad

    start = np.concatenate([np.ones(k), np.zeros(k)])
    result = minimize(loss, start, jac=True, method="BFGS")
    w, b = result.x[:k].copy(), result.x[k:].copy()
    return Calibration(
        "vector",
        w,
        b,
        {"scale": w.tolist(), "bias": b.tolist(), "l2": l2},
        eps,
        n,
        _mean_ce(Pm, z) / _LN2,
        _mean_ce(Pm, z * w + b) / _LN2,
    )


def fit_calibration(
    method: str, P: npt.ArrayLike, Q: npt.ArrayLike, *, eps: float = CALIBRATION_EPS
) -> Calibration:
    """Fit the named method (ValueError listing `CALIBRATIONS` for an unknown one)."""
    if method not in CALIBRATIONS:
        raise ValueError(
            f"calibration must be one of {', '.join(CALIBRATIONS.names())}, got {method!r}"
        )
    return CALIBRATIONS[method](P, Q, eps=eps)
