"""The registered references (human, synthetic, combined): which votes each one pools.

`human` is the dataset's configured human reference, cached by `reference.human`.
`synthetic` and `combined` are computed in memory from the votes with the dataset's
distribution options, so asking for them never rewrites the human cache (which holds one
option set per dataset). Ambiguity levels always stay those of the HUMAN reference, so
"high ambiguity" names the same clips whichever reference the metrics use.

Callers go through `load_reference` / `reference_distributions` / `reference_counts`
with a name from `ambiscope.core.reference.REFERENCES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ambiscope.core.reference import REFERENCES, reference_name
from ambiscope.core.reference.distributions import (
    DistributionOptions,
    entropy_bits,
    human_distribution,
    majority_labels,
    normalized_entropy,
    vote_counts,
)
from ambiscope.core.reference.human import (
    HumanData,
    dataset_clip_ids,
    dataset_options,
    default_options,
    load_human,
)
from ambiscope.db import Dataset, Run, Workspace

HUMAN_KINDS = "human"  # in `Reference.pools`: the dataset's configured human kinds


@dataclass(frozen=True)
class Reference:
    """A reference that pools the votes of some annotator kinds.

    `pools` lists annotator kinds; `"human"` stands for the human kinds of the dataset
    (its configured reference kinds, e.g. ("human",), or ("human", "self") when the TUI
    pools the researcher's own votes).
    """

    name: str
    pools: tuple[str, ...]

    def kinds(self, ds: Dataset, human_kinds: Sequence[str] | None = None) -> tuple[str, ...]:
        """The annotator kinds this reference pools on `ds`."""
        base = tuple(human_kinds) if human_kinds is not None else dataset_options(ds).kinds
        out: list[str] = []
        for kind in self.pools:
            out.extend(base if kind == HUMAN_KINDS else (kind,))
        return tuple(dict.fromkeys(out))

    def counts(
        self,
        ws: Workspace,
        ds: Dataset,
        *,
        run: int | Run | None = None,
        human_kinds: Sequence[str] | None = None,
        primary_only: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """((n, K) weighted vote counts, clip ids by id) of the pooled kinds.

        Counts follow the dataset's distribution options (secondary-vote weight) unless
        `primary_only`; pseudo-counts (smoothing, prior) are not included. `run` keeps
        only that synthetic run's raters among the synthetic votes.
        """
        clip_ids = dataset_clip_ids(ws, ds)
        votes = ws.vote_arrays(ds.id, self.kinds(ds, human_kinds))
        keep = np.ones(len(votes), dtype=bool)
        excluded = _other_runs_annotators(ws, ds, run)
        if excluded:
            keep = ~np.isin(votes.annotator_id, np.fromiter(excluded, dtype=np.int64))
        options = DistributionOptions() if primary_only else default_options(ws, ds).distribution
        counts = vote_counts(
            np.searchsorted(clip_ids, votes.clip_id[keep]),
            votes.label_idx[keep],
            votes.weight[keep],
            votes.rank[keep],
            len(clip_ids),
            ds.k,
            options,
            annotator=votes.annotator_id[keep],
        )
        return counts, clip_ids

    @property
    def is_human(self) -> bool:
        """Whether this is the dataset's human reference (the one the cache holds)."""
        return self.pools == (HUMAN_KINDS,)

    def distributions(
        self,
        ws: Workspace,
        ds: Dataset,
        *,
        run: int | Run | None = None,
        human_kinds: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(clip_ids, (n, K) distributions, valid) over every clip by id.

        The human reference with the dataset's own kinds is the cache (refreshed if stale,
        with the dataset's own options, so the cache never flips between option sets);
        everything else is computed in memory. Rows without votes are NaN, valid False.
        """
        if self.is_human and human_kinds is None:
            human = load_human(ws, ds)
            return human.clip_ids, human.dist, human.valid
        counts, clip_ids = self.counts(ws, ds, run=run, human_kinds=human_kinds)
        dist, valid = human_distribution(counts, default_options(ws, ds).distribution)
        return clip_ids, dist, valid

    def load(
        self,
        ws: Workspace,
        ds: Dataset,
        *,
        human: HumanData | None = None,
        run: int | Run | None = None,
        human_kinds: Sequence[str] | None = None,
    ) -> HumanData:
        """A HumanData whose distributions are this reference's, aligned with `human`.

        `human` is the human reference already loaded by the caller (the TUI's, own votes
        in or out, or an export's snapshot read); given, nothing is read from or written
        to the human cache, and it is the human reference itself. Otherwise
        distributions, validity, entropies and majority labels (primary votes, ties to
        the first label) come from the pooled votes; ambiguity levels stay the human
        reference's.
        """
        human = human if human is not None else load_human(ws, ds)
        if self.is_human:
            return human
        counts, count_ids = self.counts(ws, ds, run=run, human_kinds=human_kinds)
        primary, _ = self.counts(ws, ds, run=run, human_kinds=human_kinds, primary_only=True)
        rows = rows_of(count_ids, human.clip_ids)
        found = rows >= 0
        n = len(human.clip_ids)
        aligned = np.zeros((n, ds.k))
        aligned[found] = counts[rows[found]]
        aligned_primary = np.zeros((n, ds.k))
        aligned_primary[found] = primary[rows[found]]
        options = default_options(ws, ds)
        dist, valid = human_distribution(aligned, options.distribution)
        majority, _ = majority_labels(aligned_primary)
        clean = np.nan_to_num(dist)
        return HumanData(
            dataset=human.dataset,
            clip_ids=human.clip_ids,
            dist=dist,
            valid=valid,
            n_votes=aligned_primary.sum(axis=1),
            entropy=np.where(valid, entropy_bits(clean), np.nan),
            norm_entropy=np.where(
                valid,
                normalized_entropy(clean, options.entropy_norm),  # type: ignore[arg-type]
                np.nan,
            ),
            ambiguity=human.ambiguity,
            majority=np.where(valid, majority, -1),
        )


HUMAN = Reference("human", (HUMAN_KINDS,))
SYNTHETIC = Reference("synthetic", ("synthetic",))
COMBINED = Reference("combined", (HUMAN_KINDS, "synthetic"))


def get_reference(name: str) -> Reference:
    """The registered reference called `name` (one-line ValueError if unknown)."""
    found: Reference = REFERENCES.get(reference_name(name))
    return found


def _dataset(ws: Workspace, dataset: Dataset | str | int) -> Dataset:
    return dataset if isinstance(dataset, Dataset) else ws.get_dataset(dataset)


def load_reference(
    ws: Workspace,
    dataset: Dataset | str | int,
    name: str,
    *,
    human: HumanData | None = None,
    run: int | Run | None = None,
    human_kinds: Sequence[str] | None = None,
) -> HumanData:
    """The named reference of a dataset as HumanData (what evaluation and exports use)."""
    reference = get_reference(name)
    return reference.load(ws, _dataset(ws, dataset), human=human, run=run, human_kinds=human_kinds)


def reference_distributions(
    ws: Workspace,
    dataset: Dataset | str | int,
    name: str,
    *,
    run: int | Run | None = None,
    human_kinds: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clip_ids, (n, K) distributions, valid) of the named reference, every clip by id."""
    reference = get_reference(name)
    return reference.distributions(ws, _dataset(ws, dataset), run=run, human_kinds=human_kinds)


def reference_counts(
    ws: Workspace,
    ds: Dataset,
    name: str,
    *,
    run: int | Run | None = None,
    human_kinds: Sequence[str] | None = None,
    primary_only: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """((n, K) vote counts, clip ids by id) of the named reference (`Reference.counts`)."""
    return get_reference(name).counts(
        ws, ds, run=run, human_kinds=human_kinds, primary_only=primary_only
    )


def _other_runs_annotators(ws: Workspace, ds: Dataset, run: int | Run | None) -> set[int]:
    """Synthetic annotator ids NOT to pool when restricted to one run (empty: keep all)."""
    if run is None:
        return set()
    run_id = run.id if isinstance(run, Run) else int(run)
    return {a.id for a in ws.annotators(ds.id) if a.kind == "synthetic" and a.run_id != run_id}


def rows_of(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each id in sorted_ids, -1 where absent."""
    if not len(sorted_ids):
        return np.full(len(ids), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1)
