"""Bootstrap CIs and paired p-values for many (run, strategy) tables at once.

`ambiscope.core.metrics.functions.metric_table` bootstraps one model at a time and computes every metric,
Spearman's rank correlation included (an exact re-ranking per resample, which dominates
its run time). A benchmark table has dozens of models x strategies on the *same* clips,
so this module draws each group's bootstrap resamples once and shares them:

- A resample is a vector of clip counts `c`; every supported metric is a function of
  count-weighted column sums of a per-clip feature matrix (see ambiscope.core.metrics.functions' module
  docstring). The features of all members of a cohort (models on the same clips) sit
  side by side in one matrix `V`, so one matrix product `C @ V` per chunk of resamples
  gives every member's every metric.
- Counts are drawn exactly as `metric_table` / `paired_bootstrap` draw them (same
  generators per group, same order), so intervals and p-values equal theirs for the same
  seed; the tests pin that equality.
- Paired comparisons between members of a cohort (strategy vs baseline of the same run)
  reuse the same resamples: the difference per resample is all a paired test needs.

`entropy_spearman` is not supported here (use `ambiscope compare --bootstrap` or
`ambiscope.core.metrics.functions.metric_table` for it). Counts are kept as uint8 (a clip is drawn more than
255 times in one resample with probability ~1e-500), which keeps 1000 resamples of 150k
clips at 150 MB.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# The same kernels and helpers as ambiscope.core.metrics.functions, so the numbers match metric_table exactly.
from ambiscope.core.metrics.functions import (
    DEFAULT_EPS,
    METRICS,
    N_BINS,
    TIE_TOL,
    _bc,
    _bin_index,
    _corr_from_moments,
    _cosine,
    _entropy,
    _f1_from_counts,
    _group_seed,
    _js,
    _kl,
    _pearson_r2_rows,
    _percentile_ci,
    _r2_from_ss,
    _sign_flip_p,
    _tie_correct,
)

SUPPORTED: tuple[str, ...] = tuple(m for m in METRICS if m != "entropy_spearman")
"""Metrics this module can bootstrap (every ambiscope.core.metrics.functions metric but Spearman)."""

_MEMBER_FEATURES: dict[str, tuple[str, ...]] = {
    "js": ("js",),
    "js_distance": ("js_distance",),
    "kl": ("kl",),
    "bc": ("bc",),
    "cosine": ("cosine",),
    "r2_pearson": ("r2p",),
    "r2_det": ("res2",),
    "ece": ("ece_gap",),
    "accuracy": ("correct",),
    "tie_accuracy": ("tie",),
    "macro_f1": ("correct", "pred"),
    "weighted_f1": ("correct", "pred"),
    "entropy_pearson": ("hq",),
    "invalid_rate": ("inv",),
}
_SHARED_FEATURES: dict[str, tuple[str, ...]] = {"r2_det": ("p_c",), "entropy_pearson": ("hp",)}
_F1 = frozenset({"macro_f1", "weighted_f1"})
_INDICATOR_FEATURES = frozenset({"pred", "correct", "tie", "r2p_ok"})
_BATCH_BYTES = 256 * 2**20  # float32 feature matrix of one batch of members
_CHUNK_ELEMENTS = 16_000_000  # resamples per matrix product ~ this / n_clips (64 MB)


def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    unknown = [m for m in metrics if m not in SUPPORTED]
    if unknown:
        hint = (
            " (entropy_spearman needs exact ranks per resample: use `ambiscope compare`)"
            if "entropy_spearman" in unknown
            else ""
        )
        raise ValueError(
            f"unknown metric {', '.join(unknown)}{hint}; choose from {', '.join(SUPPORTED)}"
        )
    return tuple(dict.fromkeys(metrics))


@dataclass(frozen=True, eq=False)
class CohortMember:
    """One model's distributions over the cohort's clips (rows renormalised)."""

    Q: np.ndarray
    n_invalid: np.ndarray | None = None
    n_candidates: np.ndarray | None = None


@dataclass
class CohortResult:
    """Per group: every member's row and every pair's comparison."""

    rows: dict[tuple[int, str], dict[str, float]]  # (member, group) -> metric values + CIs
    pairs: dict[tuple[int, str], dict[str, dict[str, float]]]  # (pair, group) -> metric -> diff


# ---------------------------------------------------------------------------- features
def _one_hot(idx: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(idx), k))
    out[np.arange(len(idx)), idx] = 1.0
    return out


def _member_features(
    P: np.ndarray, m: CohortMember, names: set[str], eps: float
) -> dict[str, np.ndarray]:
    """Per-clip features of one member over the whole cohort (see ambiscope.core.metrics.functions'
    _feature_blocks); groups take row slices of them, so each is computed once."""
    Q = m.Q
    out: dict[str, np.ndarray] = {}
    if names & {"js", "js_distance"}:
        js = _js(P, Q)
        out.update({n: v for n, v in (("js", js), ("js_distance", np.sqrt(js))) if n in names})
    if "kl" in names:
        out["kl"] = _kl(P, Q, eps)
    if "bc" in names:
        out["bc"] = _bc(P, Q)
    if "cosine" in names:
        out["cosine"] = _cosine(P, Q)
    if "r2p" in names:
        r2p = _pearson_r2_rows(P, Q)
        ok = ~np.isnan(r2p)
        out["r2p"] = np.where(ok, r2p, 0.0)
        if not ok.all():  # all defined (the usual case): the count is the weight itself
            out["r2p_ok"] = ok.astype(np.float64)
    if "res2" in names:
        out["res2"] = (P - Q) ** 2
    correct = (P.argmax(axis=1) == Q.argmax(axis=1)).astype(np.float64)
    if "ece_gap" in names:
        conf = Q.max(axis=1)
        out["ece_gap"] = _one_hot(_bin_index(conf, N_BINS), N_BINS) * (correct - conf)[:, None]
    if "correct" in names:
        out["correct"] = correct
    if "tie" in names:
        out["tie"] = _tie_correct(P, Q, TIE_TOL)
    if "pred" in names:
        out["pred"] = Q.argmax(axis=1)  # label index; one-hot per group (memory)
    if "hq" in names:
        out["hq"] = _entropy(Q)
    if "inv" in names and m.n_candidates is not None and np.sum(m.n_candidates) > 0:
        out["inv"] = np.asarray(m.n_invalid, dtype=np.float64)
        out["cand"] = np.asarray(m.n_candidates, dtype=np.float64)
    return out


def _group_features(
    raw: dict[str, np.ndarray], rows: np.ndarray, hp: np.ndarray | None, k: int
) -> dict[str, np.ndarray]:
    """A group's rows of a member's features; entropy moments centred within the group."""
    out = {name: block[rows] for name, block in raw.items() if name not in ("hq", "pred")}
    if "pred" in raw:
        out["pred"] = _one_hot(raw["pred"][rows], k)
    if "hq" in raw and hp is not None:
        hq = raw["hq"][rows]
        hq = hq - hq.mean()
        out.update(hq=hq, hq2=hq * hq, hpq=hp * hq)
    if "inv" in out and out["cand"].sum() <= 0:
        del out["inv"], out["cand"]
    return out


def _shared_features(Pg: np.ndarray, names: set[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    if "p_c" in names:
        p_c = Pg - Pg.mean(
            axis=0
        )  # centred at the sample mean, as ambiscope.core.metrics.functions does
        out["p_c"], out["p_c2"] = p_c, p_c * p_c
    if "hp" in names:
        hp = _entropy(Pg)
        hp = hp - hp.mean()
        out["hp"], out["hp2"] = hp, hp * hp
    return out


def _metrics_from_sums(
    col: Callable[[str], np.ndarray | None], w: np.ndarray, metrics: Sequence[str]
) -> dict[str, np.ndarray]:
    """Metric values per row of summed features (see ambiscope.core.metrics.functions._weighted_metrics).

    `tp` and `true` are per-label sums of `correct` and of the weights, which the layout
    gets for free by splitting clips into blocks of equal human label.
    """
    out: dict[str, np.ndarray] = {}
    for m in ("js", "js_distance", "kl", "bc", "cosine"):
        if m in metrics:
            out[m] = col(m) / w
    if "r2_pearson" in metrics:
        n_ok = col("r2p_ok")
        n_ok = w if n_ok is None else n_ok
        out["r2_pearson"] = np.where(n_ok > 0, col("r2p") / np.maximum(n_ok, 1.0), np.nan)
    if "r2_det" in metrics:
        sp = col("p_c")
        out["r2_det"] = _r2_from_ss(col("res2"), col("p_c2") - sp * sp / w[:, None], w)
    if "ece" in metrics:
        out["ece"] = np.abs(col("ece_gap")).sum(axis=1) / w
    if "accuracy" in metrics:
        out["accuracy"] = col("correct") / w
    if "tie_accuracy" in metrics:
        out["tie_accuracy"] = col("tie") / w
    if _F1 & set(metrics):
        macro, weighted = _f1_from_counts(col("tp"), col("true"), col("pred"))
        out.update(
            {k: v for k, v in (("macro_f1", macro), ("weighted_f1", weighted)) if k in metrics}
        )
    if "entropy_pearson" in metrics:
        out["entropy_pearson"] = _corr_from_moments(
            col("hq"), col("hp"), col("hq2"), col("hp2"), col("hpq"), w
        )
    if "invalid_rate" in metrics:
        cand = col("cand")
        if cand is None:
            out["invalid_rate"] = np.full(len(w), np.nan)
        else:
            out["invalid_rate"] = np.where(
                cand > 0, col("inv") / np.where(cand > 0, cand, 1), np.nan
            )
    return out


# ---------------------------------------------------------------------------- resampling
def draw_counts(
    rng: np.random.Generator, n: int, n_resamples: int, relabel: np.ndarray | None = None
) -> np.ndarray:
    """(n_resamples, n) uint8 clip counts, drawn like ambiscope.core.metrics.functions._count_chunks.

    `relabel[i]` is where clip i sits in the layout (the clips are sorted by human label):
    the draws are the same, only the columns are permuted.
    """
    out = np.empty((n_resamples, n), dtype=np.uint8)
    for row in out:
        drawn = rng.integers(0, n, size=n)
        counts = np.bincount(drawn if relabel is None else relabel[drawn], minlength=n)
        if n > 255 and counts.max() > 255:  # pragma: no cover - probability ~1e-500
            raise OverflowError("a clip was drawn more than 255 times in one resample")
        row[:] = counts
    return out


class _Layout:
    """Feature blocks of a batch of members side by side, ready for resampling.

    Keeps the exact float64 column sums (the point estimates) and a float32 copy of the
    features centred at their means (see `resample_sums`), column-major so each block is
    written contiguously. Clips are ordered by human label (`bounds` delimit the labels),
    so F1's per-label true positives and supports are sums of `correct` and of the
    weights over contiguous label blocks: one skinny product per block instead of 2K
    one-hot columns per member.
    """

    def __init__(self, groups: Sequence[dict[str, np.ndarray]], n: int, bounds: np.ndarray) -> None:
        width = sum(_width(b) for blocks in groups for b in blocks.values())
        self.bounds = bounds
        self.sums = np.empty(width)
        self.mean = np.zeros(width)
        self.centred = np.empty((n, width), dtype=np.float32, order="F")
        self.slices: list[dict[str, slice]] = []
        self.split: list[int] = []  # `correct` columns, summed per label block as well
        start = 0
        for blocks in groups:
            where: dict[str, slice] = {}
            for name, block in blocks.items():
                block = block[:, None] if block.ndim == 1 else block
                cols = slice(start, start + block.shape[1])
                where[name] = cols
                self.sums[cols] = block.sum(axis=0)
                if name not in _INDICATOR_FEATURES and n:
                    self.mean[cols] = self.sums[cols] / n
                self.centred[:, cols] = block - self.mean[cols]
                if name == "correct":
                    self.split.append(cols.start)
                start = cols.stop
            self.slices.append(where)

    def unit_split(self) -> np.ndarray:
        """(1, K, n_split) per-label sums of the split columns with unit weights."""
        cs = np.vstack([np.zeros(len(self.split)), np.cumsum(self.centred[:, self.split], axis=0)])
        return (cs[self.bounds[1:]] - cs[self.bounds[:-1]])[None, :, :].astype(np.float64)

    def resample_sums(self, counts: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
        """(counts @ features, per-label sums of split columns, per-label weights).

        Computed as float32 products of the centred features plus w * mean: sum_i c_i v_i
        = sum_i c_i (v_i - mean) + w * mean with w = sum_i c_i exact. The centred sum is of
        order sqrt(n) * std rather than n * mean, so its float32 rounding is ~1e-9
        relative to the result (tests hold it to metric_table's float64 values) while
        float32 halves memory traffic and doubles BLAS throughput. 0/1 indicator columns
        (labels, correctness) are not centred: their count-weighted sums are integers below
        2**24 (for fewer than 16.7M clips), exact in float32.
        """
        B, n = counts.shape
        k = len(self.bounds) - 1
        step = max(1, _CHUNK_ELEMENTS // max(n, 1))
        out = np.empty((B, self.centred.shape[1]))
        split = np.zeros((B, k, len(self.split)))
        label_w = np.zeros((B, k))
        by_label = np.asfortranarray(self.centred[:, self.split]) if k > 1 else None
        for start in range(0, B, step):
            chunk = counts[start : start + step].astype(np.float32)
            rows = slice(start, start + len(chunk))
            out[rows] = chunk @ self.centred
            if by_label is None:
                split[rows, 0] = out[rows][:, self.split]
                label_w[rows, 0] = weights[rows]
                continue
            for j, (lo, hi) in enumerate(zip(self.bounds[:-1], self.bounds[1:], strict=True)):
                if hi > lo:
                    split[rows, j] = chunk[:, lo:hi] @ by_label[lo:hi]
                    label_w[rows, j] = chunk[:, lo:hi].sum(axis=1, dtype=np.float64)
        out += weights[:, None] * self.mean[None, :]
        return out, split, label_w


def _width(block: np.ndarray) -> int:
    return 1 if block.ndim == 1 else int(block.shape[1])


def _batches(widths: list[int], shared: int, n: int) -> list[list[int]]:
    """Split members into batches whose float32 feature matrix fits _BATCH_BYTES."""
    limit = max(1, _BATCH_BYTES // (4 * max(n, 1)))
    batches: list[list[int]] = []
    current: list[int] = []
    used = shared
    for i, width in enumerate(widths):
        if current and used + width > limit:
            batches.append(current)
            current, used = [], shared
        current.append(i)
        used += width
    if current:
        batches.append(current)
    return batches


@dataclass(frozen=True, eq=False)
class _Group:
    """A group's clips in layout order (sorted by human label when F1 is asked for)."""

    label: str
    rows: np.ndarray  # cohort rows, in layout order
    bounds: np.ndarray  # label block boundaries into rows (one block without F1)
    relabel: np.ndarray  # cohort-group position -> layout position (for the draws)


def _group(label: str, mask: np.ndarray, P: np.ndarray, by_label: bool) -> _Group:
    rows = np.flatnonzero(mask)
    k = P.shape[1]
    if not by_label:
        return _Group(label, rows, np.array([0, len(rows)]), np.arange(len(rows)))
    truth = P[rows].argmax(axis=1)
    order = np.argsort(truth, kind="stable")
    bounds = np.searchsorted(truth[order], np.arange(k + 1), side="left")
    relabel = np.empty(len(rows), dtype=np.int64)
    relabel[order] = np.arange(len(rows))
    return _Group(label, rows[order], bounds, relabel)


def _evaluate_group(
    P: np.ndarray,
    raw: list[dict[str, np.ndarray]],
    group: _Group,
    metrics: Sequence[str],
    counts: np.ndarray | None,
) -> tuple[list[dict[str, float]], list[dict[str, np.ndarray]]]:
    """(point values, resampled values) of every member on the group's clips."""
    Pg = P[group.rows]
    n = len(Pg)
    shared = _shared_features(Pg, {f for m in metrics for f in _SHARED_FEATURES.get(m, ())})
    features = [_group_features(r, group.rows, shared.get("hp"), P.shape[1]) for r in raw]
    widths = [sum(_width(b) for b in f.values()) for f in features]
    weights = None if counts is None else counts.sum(axis=1, dtype=np.float64)
    points: list[dict[str, float]] = [{} for _ in raw]
    resampled: list[dict[str, np.ndarray]] = [{} for _ in raw]
    unit_weight = np.array([float(n)])
    unit_label_w = np.diff(group.bounds)[None, :].astype(np.float64)
    for batch in _batches(widths, sum(_width(b) for b in shared.values()), n):
        layout = _Layout([shared, *(features[i] for i in batch)], n, group.bounds)
        unit = (layout.sums[None, :], layout.unit_split(), unit_label_w)
        sums = None if counts is None else layout.resample_sums(counts, weights)
        for j, i in enumerate(batch):
            where = {**layout.slices[0], **layout.slices[j + 1]}
            split_at = layout.split.index(where["correct"].start) if "correct" in where else -1
            point = _metrics_from_sums(_getter(*unit, where, split_at), unit_weight, metrics)
            points[i] = {k: float(v[0]) for k, v in point.items()}
            if sums is not None and weights is not None:
                resampled[i] = _metrics_from_sums(_getter(*sums, where, split_at), weights, metrics)
        del layout, sums
    return points, resampled


def _getter(
    S: np.ndarray,
    split: np.ndarray,
    label_w: np.ndarray,
    where: dict[str, slice],
    split_at: int,
) -> Callable[[str], np.ndarray | None]:
    def col(name: str) -> np.ndarray | None:
        if name == "tp":
            return split[:, :, split_at]
        if name == "true":
            return label_w
        if name not in where:
            return None
        block = S[:, where[name]]
        return block[:, 0] if block.shape[1] == 1 else block

    return col


def _group_masks(
    groups: np.ndarray | None, n: int, order: Sequence[str] | None, all_label: str
) -> list[tuple[str, np.ndarray]]:
    """(label, mask) in metric_table's order, the `all` row last."""
    out: list[tuple[str, np.ndarray]] = []
    if groups is not None:
        values = order if order is not None else np.unique(groups).tolist()
        out += [(str(v), groups == v) for v in values if (groups == v).any()]
    out.append((all_label, np.ones(n, dtype=bool)))
    return out


def evaluate_cohort(
    P: np.ndarray,
    members: Sequence[CohortMember],
    groups: np.ndarray | None = None,
    *,
    metrics: Sequence[str],
    order: Sequence[str] | None = None,
    pairs: Sequence[tuple[int, int]] = (),
    bootstrap: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    eps: float = DEFAULT_EPS,
    all_label: str = "all",
) -> CohortResult:
    """Metrics (with CIs) of every member and paired tests for `pairs` (base, other).

    P (n, K) is the human reference of the cohort's clips, each member's Q the same shape.
    Groups follow `metric_table`: one row per group value in `order` (sorted values when
    None), then `all_label` over every clip; each group resamples within itself with the
    generator metric_table would use, so a member's CIs equal metric_table's. A pair's
    `diff` is other - base on the full group, `lo`/`hi` its percentile interval and `p`
    the two-sided sign-flip p-value of `ambiscope.core.metrics.functions.paired_bootstrap`.
    """
    metrics = check_metrics(metrics)
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0, got {bootstrap}")
    names = {f for m in metrics for f in _MEMBER_FEATURES[m]}
    raw = [_member_features(P, m, names, eps) for m in members]
    by_label = bool(_F1 & set(metrics))
    rows: dict[tuple[int, str], dict[str, float]] = {}
    paired: dict[tuple[int, str], dict[str, dict[str, float]]] = {}
    for label, mask in _group_masks(groups, len(P), order, all_label):
        group = _group(label, mask, P, by_label)
        counts = None
        if bootstrap:
            rng = np.random.default_rng(seed) if label == all_label else _group_seed(seed, label)
            counts = draw_counts(rng, len(group.rows), bootstrap, group.relabel)
        points, resampled = _evaluate_group(P, raw, group, metrics, counts)
        for i, point in enumerate(points):
            row: dict[str, float] = {"n": len(group.rows), **point}
            for m in metrics if bootstrap else ():
                row[f"{m}_lo"], row[f"{m}_hi"] = _percentile_ci(resampled[i][m], alpha)
            rows[(i, label)] = row
        for j, (base, other) in enumerate(pairs):
            paired[(j, label)] = _compare(points, resampled, base, other, metrics, alpha)
        del counts
    return CohortResult(rows, paired)


def _compare(
    points: list[dict[str, float]],
    resampled: list[dict[str, np.ndarray]],
    base: int,
    other: int,
    metrics: Sequence[str],
    alpha: float,
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for m in metrics:
        diff = points[other][m] - points[base][m]
        entry = {"diff": diff, "lo": np.nan, "hi": np.nan, "p": np.nan}
        if resampled[other]:
            diffs = resampled[other][m] - resampled[base][m]
            entry["lo"], entry["hi"] = _percentile_ci(diffs, alpha)
            entry["p"] = _sign_flip_p(diff, diffs)
        out[m] = entry
    return out
