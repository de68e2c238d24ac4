"""Human distributions per clip, cached in the workspace and refreshed when votes change.

Every vote write bumps `datasets.votes_version`; the cache records the version and the
options it was computed with (`human_state`). `ensure_human` recomputes a whole dataset
only when either differs, so the TUI, metrics and exports can call it freely. Tertile
ambiguity levels are relative to the dataset, which is why the refresh is per dataset
rather than per clip.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ambiscope.core.conventions import Conventions, resolve
from ambiscope.core.reference.distributions import (
    AMBIGUITY_LEVELS,
    AmbiguityResult,
    DistributionOptions,
    agreement_summary,
    ambiguity_levels,
    entropy_bits,
    human_distribution,
    majority_labels,
    normalized_entropy,
    vote_counts,
)
from ambiscope.core.reference.prediction_scores import rescore_dataset
from ambiscope.db import Dataset, Workspace, codec


@dataclass(frozen=True)
class HumanOptions:
    """What counts as the human reference distribution of a dataset.

    kinds: annotator kinds pooled into the distribution; the researcher's own votes
    (`self`) and actors' self-reports (`actor`) stay out unless asked for.
    """

    distribution: DistributionOptions = field(default_factory=DistributionOptions)
    kinds: tuple[str, ...] = ("human",)
    ambiguity_method: str = "tertile"
    thresholds: tuple[float, float] = (1 / 3, 2 / 3)
    entropy_norm: str = "log-k"  # normalised entropy: H / log K, or H / log(labels present)
    kappa_single: str = "drop"  # Fleiss' kappa: single-rater clips dropped or perfect

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kinds"] = list(self.kinds)
        data["thresholds"] = list(self.thresholds)
        prior = data["distribution"]["prior"]
        data["distribution"]["prior"] = None if prior is None else list(prior)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HumanOptions:
        dist = dict(data.get("distribution") or {})
        if dist.get("prior") is not None:
            dist["prior"] = tuple(dist["prior"])
        return cls(
            distribution=DistributionOptions(**dist),
            kinds=tuple(data.get("kinds", ("human",))),
            ambiguity_method=data.get("ambiguity_method", "tertile"),
            thresholds=tuple(data.get("thresholds", (1 / 3, 2 / 3))),  # type: ignore[arg-type]
            entropy_norm=data.get("entropy_norm", "log-k"),
            kappa_single=data.get("kappa_single", "drop"),
        )


@dataclass(frozen=True, eq=False)
class HumanData:
    """A dataset's human reference, aligned arrays over its clips (ordered by clip id)."""

    dataset: Dataset
    clip_ids: np.ndarray
    dist: np.ndarray  # (n, K), NaN rows for clips without votes
    valid: np.ndarray  # bool
    n_votes: np.ndarray
    entropy: np.ndarray
    norm_entropy: np.ndarray
    ambiguity: np.ndarray  # str: low/medium/high or "" for clips without votes
    majority: np.ndarray  # int label index, -1 without votes
    cuts: dict[str, Any] | None = None  # how levels were cut (computed in memory only)


@dataclass(frozen=True)
class HumanSummary:
    dataset: str
    n_clips: int
    n_with_votes: int
    level_counts: dict[str, int]
    cuts: dict[str, Any]
    agreement: dict[str, Any]


def dataset_options(dataset: Dataset) -> HumanOptions:
    """The dataset's stored default reference options (set at import), else the defaults."""
    stored = dataset.options.get("human")
    return HumanOptions.from_dict(stored) if stored else HumanOptions()


def human_options(conventions: Conventions, dataset: Dataset) -> HumanOptions:
    """The dataset's human reference under ``conventions``: which annotator kinds and
    prior stay the dataset's own; vote weighting, smoothing, entropy normalisation, the
    ambiguity rule and the agreement edge rule are the conventions'. ``multi_label`` applies
    to corpora whose raters give label lists (``label_lists`` in the dataset's options,
    IEMOCAP); elsewhere a later-rank vote is a separate question (MSP-Podcast's secondary
    emotions) weighted by ``secondary_weight``."""
    base = dataset_options(dataset)
    lists = bool(dataset.options.get("label_lists"))
    distribution = replace(
        base.distribution,
        secondary_weight=conventions.secondary_weight,
        smoothing=conventions.smoothing,
        multi_label=conventions.multi_label if lists else "primary",
    )
    return replace(
        base,
        distribution=distribution,
        ambiguity_method=conventions.ambiguity,
        thresholds=conventions.thresholds,
        entropy_norm=conventions.entropy_norm,
        kappa_single=conventions.kappa_single,
    )


def default_options(ws: Workspace, dataset: Dataset) -> HumanOptions:
    """The human options under the workspace's default conventions (`config preset`)."""
    return human_options(resolve(ws.get_meta), dataset)


def agreement_from_counts(counts: np.ndarray, single: str = "drop") -> dict[str, Any]:
    """Agreement on primary votes; undefined (with a reason) for fractional weights."""
    if counts.size and not np.allclose(counts, np.round(counts)):
        return {
            "fleiss_kappa": None,
            "krippendorff_alpha": None,
            "reason": "fractional vote weights",
        }
    summary = agreement_summary(np.round(counts), single) if counts.size else {}  # type: ignore[arg-type]
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}


def _raters_per_clip(clip_idx: np.ndarray, annotator_id: np.ndarray, n_clips: int) -> np.ndarray:
    """Distinct annotators per clip (a rater with primary + secondary labels counts once)."""
    if clip_idx.size == 0:
        return np.zeros(n_clips, dtype=np.int64)
    stride = int(annotator_id.max()) + 1
    pairs = np.unique(clip_idx * stride + annotator_id)
    return np.bincount(pairs // stride, minlength=n_clips)


def dataset_clip_ids(ws: Workspace, ds: Dataset) -> np.ndarray:
    """A dataset's clip ids in ascending order (the row order of every reference)."""
    rows = ws.conn.execute("SELECT id FROM clips WHERE dataset_id = ? ORDER BY id", (ds.id,))
    return np.array([r[0] for r in rows], dtype=np.int64)


@dataclass(frozen=True, eq=False)
class _Tally:
    """The human reference computed from the votes: what the cache stores, in memory."""

    clip_ids: np.ndarray
    primary: np.ndarray  # (n, K) primary-vote counts
    dist: np.ndarray
    valid: np.ndarray
    norm_entropy: np.ndarray
    levels: AmbiguityResult
    majority: np.ndarray
    tie: np.ndarray
    raters: np.ndarray
    n_votes: np.ndarray  # votes that count (primary ones, or every listed label's share)


def _tally(ws: Workspace, ds: Dataset, opts: HumanOptions) -> _Tally:
    clip_ids = dataset_clip_ids(ws, ds)
    votes = ws.vote_arrays(ds.id, opts.kinds)
    clip_idx = np.searchsorted(clip_ids, votes.clip_id)
    args = (clip_idx, votes.label_idx, votes.weight, votes.rank, len(clip_ids), ds.k)
    counts = vote_counts(*args, opts.distribution, annotator=votes.annotator_id)
    primary = vote_counts(*args, DistributionOptions())
    dist, valid = human_distribution(counts, opts.distribution)
    nent = normalized_entropy(dist, opts.entropy_norm)  # type: ignore[arg-type]
    levels = ambiguity_levels(
        nent,
        method=opts.ambiguity_method,
        thresholds=opts.thresholds,  # type: ignore[arg-type]
    )
    # with label lists counted (split/each), a clip's votes and majority are the counted
    # ones: a clip whose evaluators only listed an in-set label second is not vote-less
    basis = primary if opts.distribution.multi_label == "primary" else counts
    majority, tie = majority_labels(basis)
    raters = _raters_per_clip(clip_idx, votes.annotator_id, len(clip_ids))
    n_votes = basis.sum(axis=1)
    return _Tally(clip_ids, primary, dist, valid, nent, levels, majority, tie, raters, n_votes)


def compute_human(
    ws: Workspace, dataset: Dataset, options: HumanOptions | None = None
) -> HumanData:
    """A dataset's human reference from its votes, in memory: nothing is read from or
    written to the cache, so it is safe inside a read snapshot."""
    t = _tally(ws, dataset, options or default_options(ws, dataset))
    names = np.array([*AMBIGUITY_LEVELS, ""], dtype=object)
    codes = t.levels.codes
    return HumanData(
        dataset=dataset,
        clip_ids=t.clip_ids,
        dist=t.dist,
        valid=t.valid,
        n_votes=t.n_votes,
        entropy=np.where(t.valid, entropy_bits(np.nan_to_num(t.dist)), np.nan),
        norm_entropy=np.where(t.valid, t.norm_entropy, np.nan),
        ambiguity=names[np.where(codes >= 0, codes, len(AMBIGUITY_LEVELS))],
        majority=np.where(t.valid, t.majority, -1),
        cuts={"method": t.levels.method, "cuts": [float(c) for c in t.levels.cuts]},
    )


def refresh_human(
    ws: Workspace, dataset: Dataset | str | int, options: HumanOptions | None = None
) -> HumanSummary:
    """Recompute and store every clip's human distribution, entropy, level and majority,
    then rescore the stored predictions against it."""
    ds = dataset if isinstance(dataset, Dataset) else ws.get_dataset(dataset)
    ds = ws.get_dataset(ds.id)  # fresh votes_version
    opts = options or default_options(ws, ds)
    t = _tally(ws, ds, opts)
    ent = entropy_bits(t.dist)
    blobs = codec.encode_many(t.dist)
    names = ds.label_set
    codes = t.levels.codes
    rows = [
        (
            int(t.clip_ids[i]),
            blobs[i],
            float(t.n_votes[i]),
            int(t.raters[i]),
            names[t.majority[i]] if t.majority[i] >= 0 else None,
            int(t.tie[i]),
            None if not t.valid[i] else float(ent[i]),
            None if not t.valid[i] else float(t.norm_entropy[i]),
            AMBIGUITY_LEVELS[codes[i]] if codes[i] >= 0 else None,
        )
        for i in range(len(t.clip_ids))
    ]
    cuts = {"method": t.levels.method, "cuts": [float(c) for c in t.levels.cuts]}
    agreement = agreement_from_counts(t.primary[t.valid], opts.kappa_single)
    ws.write_human_cache(
        ds.id,
        rows,
        options=opts.to_dict(),
        votes_version=ds.votes_version,
        cuts=cuts,
        agreement=agreement,
    )
    if ws.runs(ds.id):
        rescore_dataset(ws, read_human(ws, ds))
    return HumanSummary(
        dataset=ds.name,
        n_clips=len(t.clip_ids),
        n_with_votes=int(t.valid.sum()),
        level_counts=dict(zip(AMBIGUITY_LEVELS, t.levels.counts, strict=True)),
        cuts=cuts,
        agreement=agreement,
    )


def is_fresh(ws: Workspace, dataset: Dataset, options: HumanOptions | None = None) -> bool:
    state = ws.human_state(dataset.id)
    if state is None:
        return False
    current = ws.get_dataset(dataset.id)
    opts = options or default_options(ws, current)
    return state["votes_version"] == current.votes_version and state["options"] == _roundtrip(
        opts.to_dict()
    )


def _roundtrip(data: dict[str, Any]) -> Any:
    return codec.loads(codec.dumps(data))


def ensure_human(
    ws: Workspace, dataset: Dataset | str | int, options: HumanOptions | None = None
) -> bool:
    """Refresh the cache if votes or options changed; returns whether it recomputed."""
    ds = dataset if isinstance(dataset, Dataset) else ws.get_dataset(dataset)
    if is_fresh(ws, ds, options):
        return False
    refresh_human(ws, ds, options)
    return True


def load_human(
    ws: Workspace, dataset: Dataset | str | int, options: HumanOptions | None = None
) -> HumanData:
    """The dataset's human reference as arrays, refreshing the cache first if stale."""
    ds = dataset if isinstance(dataset, Dataset) else ws.get_dataset(dataset)
    ensure_human(ws, ds, options)
    return read_human(ws, ds)


def snapshot_human(
    ws: Workspace, dataset: Dataset, options: HumanOptions | None = None
) -> tuple[HumanData, str]:
    """(human reference, where it came from), read-only: safe inside a read snapshot.

    Under `options` (default: the workspace's conventions). The cache when it was computed
    with them, is fresh and covers every clip; otherwise (votes changed since the last
    refresh, clips were added, other options) the reference is computed in memory from the
    votes the snapshot sees, so it never disagrees with them.
    """
    ds = ws.get_dataset(dataset.id)
    options = options or default_options(ws, ds)
    if is_fresh(ws, ds, options):
        human = read_human(ws, ds)
        if np.array_equal(human.clip_ids, dataset_clip_ids(ws, ds)):
            return human, "human-vote cache"
    return compute_human(ws, ds, options), f"votes of kind {'+'.join(options.kinds)}"


def read_human(ws: Workspace, ds: Dataset) -> HumanData:
    """The cached human reference as arrays, as stored (no staleness check)."""
    rows = ws.human_rows(ds.id)
    n = len(rows)
    dist = codec.decode_many((r[1] for r in rows), ds.k)
    dist /= dist.sum(axis=1, keepdims=True)  # undo float32 rounding; NaN rows stay NaN
    label_index = {name: i for i, name in enumerate(ds.label_set)}
    return HumanData(
        dataset=ws.get_dataset(ds.id),
        clip_ids=np.fromiter((r[0] for r in rows), dtype=np.int64, count=n),
        dist=dist,
        valid=~np.isnan(dist).any(axis=1) if n else np.zeros(0, dtype=bool),
        n_votes=np.fromiter((r[2] for r in rows), dtype=np.float64, count=n),
        entropy=np.array([np.nan if r[6] is None else r[6] for r in rows], dtype=np.float64),
        norm_entropy=np.array([np.nan if r[7] is None else r[7] for r in rows], dtype=np.float64),
        ambiguity=np.array([r[8] or "" for r in rows], dtype=object),
        majority=np.array([label_index.get(r[4], -1) for r in rows], dtype=np.int64),
    )
