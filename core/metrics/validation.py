"""Input validation shared by every metric entry point: shapes, finiteness, row sums.

Upstream distributions drift (float32 storage, parsed model JSON that sums to 0.99), so
rows are renormalised loudly; NaN/inf, negative values and empty rows are errors.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt

from ambiscope.core.metrics.spec import Counts, FloatArray

ROW_TOL = 1e-6
"""Rows whose sum differs from 1 by more than this are renormalised (with a warning)."""


def as_matrix(X: npt.ArrayLike, name: str) -> FloatArray:
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


def _normalize_checked(A: FloatArray, name: str) -> FloatArray:
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


def normalize_rows(X: npt.ArrayLike, *, name: str = "X") -> FloatArray:
    """Return ``X`` with every row summing to 1, warning about how many rows were fixed.

    Upstream distributions can drift (float32 storage, smoothing, parsed model JSON that sums
    to 0.99), and metrics such as JS are only bounded for true distributions, so such rows are
    divided by their sum. This is loud (a ``UserWarning`` naming the count) because a large
    count usually means a bug upstream. Rows with no mass at all cannot be repaired: they
    raise ``ValueError``, as do NaN/inf and negative values. The input is never modified; when
    nothing needs fixing the validated array itself may be returned.
    """
    return _normalize_checked(as_matrix(X, name), name)


def prepare(P: npt.ArrayLike, Q: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate a (P, Q) pair: same shape, finite, non-negative, rows renormalised."""
    Pm = as_matrix(P, "P")
    Qm = as_matrix(Q, "Q")
    if Pm.shape != Qm.shape:
        raise ValueError(f"P and Q must have the same shape, got {Pm.shape} and {Qm.shape}")
    return _normalize_checked(Pm, "P"), _normalize_checked(Qm, "Q")


def check_eps(eps: float) -> float:
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    return float(eps)


def check_counts(
    n_invalid: npt.ArrayLike | None, n_candidates: npt.ArrayLike | None, n: int
) -> Counts:
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
