"""Test-time-scaling strategies: N stored candidates of one clip -> one emotion distribution.

Every strategy is a pure function of a `CandidateSet` (numpy arrays read back from the
`samples` table), so any strategy can be recomputed, re-tuned (tau, temperature) or
evaluated at smaller N (`subsample`) without re-running a model (DESIGN.md "ALM
candidates and strategies"; Jia et al. 2026).

Notation (all over VALID candidates only; rows of invalid candidates are never read):
d_i is candidate i's distribution over the K labels (one-hot for a label answer, the
parsed vector for a distribution answer), l_i its length-normalised log-probability,
v_i its verifier score P(Yes), and L_k the log-likelihood of label string k.

Each strategy returns a length-K float64 vector summing to 1, or None when it cannot be
computed for this clip (no valid candidate, no log-probabilities, no verifier scores).
Ties between candidates go to the earliest one, which keeps results deterministic.

Each strategy is ONE function decorated with `@strategy(...)`, which registers it in
`STRATEGIES` with what it needs (`needs`: log-probabilities, verifier scores, label
likelihoods), the output modes it applies to, whether it can be re-aggregated for
N-scaling curves (`scalable`) and its keyword parameters (read from its signature).
`applicable_strategies`, the parameter routing, the benchmark table's row order, the
report's N-scaling choices and the TUI's default strategy all read those declarations,
so a new strategy is one decorated function here and nothing else.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln

from ambiscope.core.alm.prompts import MODES
from ambiscope.core.registry import Registry

Strategy = Callable[..., "np.ndarray | None"]

NEEDS: tuple[str, ...] = ("logprobs", "verifier", "likelihood", "likelihood_approx")
"""What a strategy may need beyond the candidates' answers (`CandidateSet.has_<need>`)."""

STRATEGIES: Registry[Strategy] = Registry("strategy")
"""Name -> strategy function; metadata: needs, modes, scalable, first_answer, params,
preference, default_curve (see `strategy`)."""

DIRICHLET_EPS = 1e-3
_ROW_SUM_TOL = 1e-4


def _vector(value: np.ndarray | Sequence[float] | None, n: int, name: str) -> np.ndarray:
    if value is None:
        return np.full(n, np.nan)
    out = np.asarray(value, dtype=np.float64).reshape(-1)
    if out.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {out.shape}")
    return out


@dataclass(frozen=True, eq=False)
class CandidateSet:
    """One clip's N candidates as arrays (see the module docstring for the notation).

    dists (N, K); valid (N,) bool (default: all valid); logprob_norm (N,) and verifier
    (N,) with NaN where unavailable (default: all NaN); label_loglik (K,) or None.
    Valid rows must be distributions (finite, >= 0, sum 1 within 1e-4, as float32
    storage round-trips them); they are renormalised exactly. Inputs are copied.
    """

    dists: np.ndarray
    valid: np.ndarray | None = None
    logprob_norm: np.ndarray | None = None
    verifier: np.ndarray | None = None
    label_loglik: np.ndarray | None = None
    # False when the backend could only approximate the label log-likelihoods (an endpoint
    # with first-token top-k log-probs): they feed `likelihood~`, never `likelihood`
    likelihood_exact: bool = True

    def __post_init__(self) -> None:
        dists = np.array(self.dists, dtype=np.float64)
        if dists.ndim != 2:
            raise ValueError(f"dists must be 2-D (N, K), got shape {dists.shape}")
        n, k = dists.shape
        if k < 1:
            raise ValueError("dists needs at least one label column")
        valid = np.ones(n, dtype=bool) if self.valid is None else np.array(self.valid, bool)
        if valid.shape != (n,):
            raise ValueError(f"valid must have shape ({n},), got {valid.shape}")
        rows = dists[valid]
        if rows.size and (not np.isfinite(rows).all() or (rows < 0).any()):
            raise ValueError("valid candidate distributions must be finite and >= 0")
        sums = rows.sum(axis=1)
        if rows.size and (np.abs(sums - 1.0) > _ROW_SUM_TOL).any():
            raise ValueError("valid candidate distributions must sum to 1")
        if rows.size:
            dists[valid] = rows / sums[:, None]
        verifier = _vector(self.verifier, n, "verifier")
        if (verifier < 0).any():
            raise ValueError("verifier scores must be >= 0 (P(Yes))")
        loglik = self.label_loglik
        if loglik is not None:
            loglik = np.array(loglik, dtype=np.float64).reshape(-1)
            if loglik.shape != (k,):
                raise ValueError(f"label_loglik must have shape ({k},), got {loglik.shape}")
        object.__setattr__(self, "dists", dists)
        object.__setattr__(self, "valid", valid)
        object.__setattr__(self, "logprob_norm", _vector(self.logprob_norm, n, "logprob_norm"))
        object.__setattr__(self, "verifier", verifier)
        object.__setattr__(self, "label_loglik", loglik)

    @classmethod
    def from_labels(
        cls,
        answers: Sequence[int | None],
        k: int,
        *,
        logprob_norm: Sequence[float] | None = None,
        verifier: Sequence[float] | None = None,
        label_loglik: Sequence[float] | None = None,
    ) -> CandidateSet:
        """Label-mode candidates from answer indices (None = invalid answer)."""
        dists = np.zeros((len(answers), k))
        for i, answer in enumerate(answers):
            if answer is not None:
                dists[i, answer] = 1.0
        return cls(
            dists,
            np.array([a is not None for a in answers], dtype=bool),
            None if logprob_norm is None else np.asarray(logprob_norm, dtype=np.float64),
            None if verifier is None else np.asarray(verifier, dtype=np.float64),
            None if label_loglik is None else np.asarray(label_loglik, dtype=np.float64),
        )

    @property
    def n(self) -> int:
        return int(self.dists.shape[0])

    @property
    def k(self) -> int:
        return int(self.dists.shape[1])

    @property
    def n_valid(self) -> int:
        return int(self.valid.sum())

    @property
    def has_logprobs(self) -> bool:
        return bool(np.isfinite(self.logprob_norm[self.valid]).any())

    @property
    def has_verifier(self) -> bool:
        return bool(np.isfinite(self.verifier[self.valid]).any())

    @property
    def has_likelihood(self) -> bool:
        return self.likelihood_exact and self._has_loglik()

    @property
    def has_likelihood_approx(self) -> bool:
        return not self.likelihood_exact and self._has_loglik()

    def _has_loglik(self) -> bool:
        return self.label_loglik is not None and not np.isnan(self.label_loglik).any()


def _mixture(dists: np.ndarray, weights: np.ndarray) -> np.ndarray:
    out = weights @ dists / weights.sum()
    return out / out.sum()


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max())
    return z / z.sum()


def _positive(value: float, name: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def strategy(
    name: str,
    *,
    needs: Iterable[str] = (),
    modes: Iterable[str] = MODES,
    scalable: bool = True,
    first_answer: bool = False,
    preference: int | None = None,
    default_curve: bool = False,
    approximate: bool = False,
) -> Callable[[Strategy], Strategy]:
    """Register a strategy in `STRATEGIES`, declaring what it needs.

    needs: data beyond the answers (a subset of NEEDS); modes: the output modes whose runs
    report it; scalable: False when its value does not depend on N (no N-scaling curve);
    first_answer: it is "the first answer" (N = 1), the benchmark table's default baseline;
    preference: rank among the strategies shown first (lower first, None = never first);
    default_curve: plotted in the report's N-scaling curves by default; approximate: its
    inputs are an approximation (named with a trailing ``~``, never starred as the best in
    a table). Keyword-only
    parameters of the function (tau, eps, ...) become its tunable parameters.
    """
    needs, modes = tuple(needs), tuple(modes)
    unknown = [n for n in needs if n not in NEEDS] + [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"strategy {name!r}: unknown needs or modes {', '.join(unknown)}")

    def decorate(fn: Strategy) -> Strategy:
        params = frozenset(
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        )
        STRATEGIES.add(
            name,
            fn,
            needs=needs,
            modes=modes,
            scalable=scalable,
            first_answer=first_answer,
            params=params,
            preference=preference,
            default_curve=default_curve,
            approximate=approximate,
        )
        return fn

    return decorate


@strategy("single", modes=("label", "distribution"), first_answer=True)
def single(cs: CandidateSet) -> np.ndarray | None:
    """The first valid candidate's distribution: the N = 1 baseline.

    p = d_f, f = min{i : valid_i}. The first (not a random) candidate, so N-scaling curves
    start exactly at this value.
    """
    idx = np.flatnonzero(cs.valid)
    return cs.dists[idx[0]].copy() if idx.size else None


@strategy("cot", modes=("cot",), first_answer=True)
def cot(cs: CandidateSet) -> np.ndarray | None:
    """Chain-of-thought: the first valid CoT answer (p = d_f), as `single` for cot runs.

    A separate name so results tables say which prompt produced the N = 1 answer: CoT is
    the paper's own strategy (reasoning as test-time compute), not the plain baseline.
    """
    return single(cs)


@strategy("vote", preference=2, default_curve=True)
def vote(cs: CandidateSet) -> np.ndarray | None:
    """Majority vote as a distribution: p = mean_i d_i over valid candidates.

    For label answers this is the normalised histogram of the N labels.
    """
    if not cs.valid.any():
        return None
    return _mixture(cs.dists[cs.valid], np.ones(cs.n_valid))


@strategy("bon", needs=("logprobs",), preference=3)
def bon(cs: CandidateSet) -> np.ndarray | None:
    """Best-of-N: p = d_j, j = argmax_i l_i over valid candidates with a log-probability.

    Length-normalised so long CoT answers are not penalised for their length.
    """
    mask = cs.valid & np.isfinite(cs.logprob_norm)
    if not mask.any():
        return None
    idx = np.flatnonzero(mask)
    return cs.dists[idx[int(np.argmax(cs.logprob_norm[idx]))]].copy()


@strategy("wbon", needs=("logprobs",), preference=0, default_curve=True)
def wbon(cs: CandidateSet, *, tau: float = 1.0) -> np.ndarray | None:
    """Weighted Best-of-N: p = sum_i w_i d_i, w = softmax(l / tau) over valid candidates.

    tau -> 0 recovers `bon`; tau -> inf recovers `vote`. Candidates without a
    log-probability are left out.
    """
    tau = _positive(tau, "tau")
    mask = cs.valid & np.isfinite(cs.logprob_norm)
    if not mask.any():
        return None
    return _mixture(cs.dists[mask], _softmax(cs.logprob_norm[mask] / tau))


@strategy("verifier", needs=("verifier",))
def verifier(cs: CandidateSet) -> np.ndarray | None:
    """ALM-as-verifier: p = d_j, j = argmax_i v_i over valid, scored candidates."""
    mask = cs.valid & np.isfinite(cs.verifier)
    if not mask.any():
        return None
    idx = np.flatnonzero(mask)
    return cs.dists[idx[int(np.argmax(cs.verifier[idx]))]].copy()


@strategy("wverifier", needs=("verifier",), preference=1)
def wverifier(cs: CandidateSet) -> np.ndarray | None:
    """Weighted ALM-verifier: p = sum_i (v_i / sum_j v_j) d_i over valid, scored candidates.

    When every score is 0 the weights are undefined; their limit for equal tiny scores is
    uniform, so the result falls back to the vote over the scored candidates.
    """
    mask = cs.valid & np.isfinite(cs.verifier)
    if not mask.any():
        return None
    weights = cs.verifier[mask]
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    return _mixture(cs.dists[mask], weights)


def _dirichlet_nll(theta: np.ndarray, mean_log: np.ndarray) -> tuple[float, np.ndarray]:
    """Per-sample negative Dirichlet log-likelihood and its gradient in theta = log alpha.

    log L / n = lnG(a0) - sum_k lnG(a_k) + sum_k (a_k - 1) mean_i log p_ik.
    """
    alpha = np.exp(theta)
    a0 = alpha.sum()
    ll = gammaln(a0) - gammaln(alpha).sum() + ((alpha - 1.0) * mean_log).sum()
    grad = (digamma(a0) - digamma(alpha) + mean_log) * alpha
    return -float(ll), -grad


def _moment_init(p: np.ndarray) -> np.ndarray:
    """Method-of-moments alpha (Minka 2000, eq. 21), a good start for the MLE."""
    mean = p.mean(axis=0)
    var = p[:, 0].var()
    scale = mean[0] * (1 - mean[0]) / var - 1 if var > 0 else 1.0
    scale = scale if math.isfinite(scale) and scale > 0 else 1.0
    return np.clip(mean * scale, 1e-3, 1e6)


def dirichlet_alpha(p: np.ndarray) -> np.ndarray | None:
    """Dirichlet MLE alpha for rows of p (all > 0), or None when the fit fails.

    L-BFGS-B on log alpha (alpha > 0 by construction), bounded to [1e-3, 1e6] so
    near-identical rows cannot send the concentration to infinity.
    """
    from scipy.optimize import minimize  # lazy: ~0.4 s import, only needed here

    mean_log = np.log(p).mean(axis=0)
    start = np.log(_moment_init(p))
    try:
        res = minimize(
            _dirichlet_nll,
            start,
            args=(mean_log,),
            jac=True,
            method="L-BFGS-B",
            bounds=[(math.log(1e-3), math.log(1e6))] * p.shape[1],
        )
    except (ValueError, FloatingPointError, ArithmeticError):
        return None
    alpha = np.exp(res.x)
    start_nll, _ = _dirichlet_nll(start, mean_log)
    if not (np.isfinite(alpha).all() and math.isfinite(res.fun) and res.fun <= start_nll):
        return None
    return alpha


@strategy("dirichlet")
def dirichlet(cs: CandidateSet, *, eps: float = DIRICHLET_EPS) -> np.ndarray | None:
    """Dirichlet pooling: p = alpha / sum(alpha), alpha = Dirichlet MLE over valid d_i.

    Candidate vectors with zeros (every one-hot label answer) have log-likelihood -inf,
    so each is smoothed first: d' = (d + eps) / (1 + K eps), eps = 1e-3 by default.
    Falls back to `vote` (the plain mean) when fewer than two distinct valid candidates
    exist (the MLE is unbounded there) or the optimiser fails.
    """
    eps = _positive(eps, "eps")
    if not cs.valid.any():
        return None
    rows = cs.dists[cs.valid]
    if cs.k < 2 or len(np.unique(rows, axis=0)) < 2:
        return vote(cs)
    smoothed = (rows + eps) / (1.0 + cs.k * eps)
    alpha = dirichlet_alpha(smoothed)
    if alpha is None:
        return vote(cs)
    return alpha / alpha.sum()


@strategy("likelihood", needs=("likelihood",), scalable=False)
def likelihood(cs: CandidateSet, *, temperature: float = 1.0) -> np.ndarray | None:
    """Exact label distribution: p = softmax(L / T) over the K label strings.

    No sampling: with label-constrained decoding at temperature T this is the limit of
    `vote` as N -> infinity. T -> 0 tends to the argmax label. None without scores (or
    when every label has log-likelihood -inf).
    """
    temperature = _positive(temperature, "temperature")
    loglik = cs.label_loglik
    if loglik is None or np.isnan(loglik).any() or not np.isfinite(loglik).any():
        return None
    if np.isposinf(loglik).any():
        return None
    return _softmax(loglik / temperature)


@strategy("likelihood~", needs=("likelihood_approx",), scalable=False, approximate=True)
def likelihood_approx(cs: CandidateSet, *, temperature: float = 1.0) -> np.ndarray | None:
    """`likelihood` over APPROXIMATE label scores (an endpoint without prompt log-probs:
    each label scored by its first token's top-k log-probability, a floor for unlisted
    ones); labels sharing a first token tie. Indicative only."""
    exact = CandidateSet(cs.dists, cs.valid, cs.logprob_norm, cs.verifier, cs.label_loglik)
    return likelihood(exact, temperature=temperature)


def approximate_strategies() -> frozenset[str]:
    """Strategies computed from approximations (tables mark them, never star them)."""
    return frozenset(n for n in STRATEGIES.names() if STRATEGIES.meta(n).get("approximate"))


def applicable_strategies(
    mode: str,
    has_logprobs: bool,
    has_verifier: bool,
    has_likelihood: bool,
    has_likelihood_approx: bool = False,
) -> list[str]:
    """The strategies a run can report, in registration order (see `strategy`).

    A strategy applies when the run's mode is among its modes and the run has everything
    it needs: e.g. `cot` only for cot-mode runs and `single` only for the others (both are
    "the first answer"; the name says which prompt made it), bon/wbon need
    log-probabilities, verifier/wverifier verifier scores, likelihood label-string scores.
    """
    if mode not in MODES:
        raise ValueError(f"unknown output mode {mode!r} (expected {', '.join(MODES)})")
    have = {
        "logprobs": has_logprobs,
        "verifier": has_verifier,
        "likelihood": has_likelihood,
        "likelihood_approx": has_likelihood_approx,
    }
    return [
        name
        for name in STRATEGIES.names()
        if mode in STRATEGIES.meta(name)["modes"]
        and all(have[need] for need in STRATEGIES.meta(name)["needs"])
    ]


def scalable_strategies() -> tuple[str, ...]:
    """Strategies whose value depends on N, so an N-scaling curve means something."""
    return tuple(n for n in STRATEGIES.names() if STRATEGIES.meta(n)["scalable"])


def first_answer_strategies() -> tuple[str, ...]:
    """Strategies that report the first answer (N = 1), one per kind of prompt."""
    return tuple(n for n in STRATEGIES.names() if STRATEGIES.meta(n)["first_answer"])


def default_curves() -> tuple[str, ...]:
    """Strategies the report plots as N-scaling curves unless told otherwise."""
    return tuple(n for n in STRATEGIES.names() if STRATEGIES.meta(n)["default_curve"])


def preferred_strategy(available: Iterable[str]) -> str | None:
    """The available strategy to show first (lowest declared preference), or None."""
    ranked = [
        (STRATEGIES.meta(n)["preference"], n)
        for n in available
        if n in STRATEGIES and STRATEGIES.meta(n)["preference"] is not None
    ]
    return min(ranked)[1] if ranked else None


def strategy_rank(name: str) -> tuple[int, str]:
    """Sort key: registration order, unknown names last (alphabetically)."""
    names = STRATEGIES.names()
    return (names.index(name) if name in names else len(names), name)


def _check(strategies: Iterable[str], params: dict[str, float]) -> list[str]:
    names = list(strategies)
    unknown = [name for name in names if name not in STRATEGIES]
    if unknown:
        raise ValueError(
            f"unknown strategy {', '.join(unknown)} (known: {', '.join(STRATEGIES.names())})"
        )
    known = frozenset().union(*(STRATEGIES.meta(n)["params"] for n in STRATEGIES.names()))
    bad = sorted(set(params) - known)
    if bad:
        raise ValueError(
            f"unknown strategy parameter {', '.join(bad)} (known: {', '.join(sorted(known))})"
        )
    return names


def _run(name: str, cs: CandidateSet, params: dict[str, float]) -> np.ndarray | None:
    takes = STRATEGIES.meta(name)["params"]
    return STRATEGIES[name](cs, **{k: v for k, v in params.items() if k in takes})


def aggregate(
    cs: CandidateSet,
    strategies: Iterable[str] | None = None,
    *,
    mode: str = "label",
    **params: float,
) -> dict[str, np.ndarray]:
    """Run strategies on one clip; those that cannot be computed are left out.

    strategies=None means applicable_strategies(mode, ...) judged from this clip's data;
    for a whole run pass the run's list, so every clip is judged by the same strategies.
    params (tau, temperature, eps) go to the strategies that take them.
    """
    if strategies is None:
        strategies = applicable_strategies(
            mode, cs.has_logprobs, cs.has_verifier, cs.has_likelihood, cs.has_likelihood_approx
        )
    out: dict[str, np.ndarray] = {}
    for name in _check(strategies, params):
        result = _run(name, cs, params)
        if result is not None:
            out[name] = result
    return out


def aggregate_many(
    sets: Sequence[CandidateSet],
    strategies: Iterable[str] | None = None,
    *,
    mode: str = "label",
    **params: float,
) -> dict[str, np.ndarray]:
    """Run strategies on many clips: {strategy: (n_clips, K)}, NaN rows where None.

    strategies=None judges applicability over the whole set (a strategy is run when any
    clip has the data it needs), so every clip gets a row for the same strategies.
    """
    ks = {cs.k for cs in sets}
    if len(ks) > 1:
        raise ValueError(f"candidate sets have different label counts: {sorted(ks)}")
    if strategies is None:
        strategies = applicable_strategies(
            mode,
            any(cs.has_logprobs for cs in sets),
            any(cs.has_verifier for cs in sets),
            any(cs.has_likelihood for cs in sets),
            any(cs.has_likelihood_approx for cs in sets),
        )
    names = _check(strategies, params)
    k = ks.pop() if ks else 0
    out = {name: np.full((len(sets), k), np.nan) for name in names}
    for row, cs in enumerate(sets):
        for name in names:
            result = _run(name, cs, params)
            if result is not None:
                out[name][row] = result
    return out


def subsample(cs: CandidateSet, n: int, rng: np.random.Generator | None = None) -> CandidateSet:
    """The first n candidates (all of them when the clip has fewer), for N-scaling curves.

    First-n, not random: candidates are i.i.d. samples, so the first n are an unbiased
    subsample, the curve is deterministic, and the n-subsample is nested in the
    (n+1)-subsample (curves do not jitter). `rng` is accepted for call compatibility and
    deliberately unused. Beam-search candidates are stored best first, so first-n is the
    n best beams. label_loglik does not depend on N and is kept.
    """
    del rng
    if n < 1:
        raise ValueError(f"subsample size must be >= 1, got {n}")
    return CandidateSet(
        cs.dists[:n],
        cs.valid[:n],
        cs.logprob_norm[:n],
        cs.verifier[:n],
        cs.label_loglik,
    )
