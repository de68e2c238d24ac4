"""What exports read from a workspace, inside one read transaction (`Workspace.snapshot()`).

A background worker may write predictions, flags or votes while an export runs. Every
function here only reads, so the caller can run them all inside one snapshot and the
export describes exactly one state of the workspace. The one write an export may need,
refreshing a dataset's cached human distributions after votes changed, happens *before*
the snapshot (`prepare_references`); if votes change again between that refresh and the
snapshot, the reference is recomputed in memory from the snapshot's own votes, so it can
never disagree with the votes the export sees.

The human reference follows the export's conventions (`human_options(conventions, ds)`:
vote weighting, entropy normalisation, ambiguity levels); without conventions, the
workspace default's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ambiscope.core.conventions import Conventions
from ambiscope.core.export._common import ExportError
from ambiscope.core.reference.human import (
    HumanData,
    ensure_human,
    human_options,
    snapshot_human,
)
from ambiscope.core.reference.pooled import load_reference, rows_of
from ambiscope.db import Dataset, Run, Workspace

CLIP_COLUMNS = ("split", "gender", "speaker")


# -------------------------------------------------------------------------- reference
def prepare_references(
    ws: Workspace, datasets: Sequence[Dataset], conventions: Conventions | None = None
) -> None:
    """Refresh stale human caches before the snapshot (the only write an export makes),
    under `conventions` (default: the workspace's).

    A read-only or busy workspace is fine: the snapshot then computes the reference in
    memory from the votes it sees.
    """
    if ws.readonly:
        return
    for ds in datasets:
        try:
            ensure_human(ws, ds, None if conventions is None else human_options(conventions, ds))
        except sqlite3.OperationalError:  # busy: another process holds the write lock
            continue


# ------------------------------------------------------------------------ selection
def resolve_datasets(ws: Workspace, names: Sequence[str]) -> list[Dataset]:
    """The named datasets, or every dataset that has runs."""
    if names:
        return [ws.get_dataset(name) for name in dict.fromkeys(names)]
    found = [ds for ds in ws.datasets() if ws.runs(ds.id)]
    if not found:
        raise ExportError("no runs in this workspace yet: run `ambiscope sample` first")
    return found


def resolve_runs(ws: Workspace, datasets: Sequence[Dataset], run_ids: Sequence[int]) -> list[Run]:
    """The given runs (checked to belong to the datasets) or every run of the datasets."""
    ids = {ds.id for ds in datasets}
    if not run_ids:
        runs = [run for ds in datasets for run in ws.runs(ds.id)]
        if not runs:
            names = ", ".join(ds.name for ds in datasets)
            raise ExportError(f"no runs on {names}: run `ambiscope sample` first")
        return runs
    runs = []
    for run_id in dict.fromkeys(run_ids):
        run = ws.get_run(int(run_id))
        if run.dataset_id not in ids:
            names = ", ".join(ds.name for ds in datasets)
            raise ExportError(f"run {run.id} is not on the selected dataset(s) ({names})")
        runs.append(run)
    return runs


def check_strategies(ws: Workspace, runs: Sequence[Run], strategies: Sequence[str]) -> None:
    """A strategy asked for must exist in at least one of the runs (typos fail loudly)."""
    have = {s for run in runs for s in ws.strategies(run.id)}
    missing = [s for s in strategies if s not in have]
    if missing:
        known = ", ".join(sorted(have)) or "none"
        raise ExportError(
            f"no predictions for strategy {', '.join(missing)} in the selected runs "
            f"(known: {known})"
        )


# ------------------------------------------------------------------------ aligned data
@dataclass(frozen=True, eq=False)
class DatasetData:
    """One dataset's reference plus the clip columns results are broken down by."""

    dataset: Dataset
    human: HumanData
    source: str
    columns: dict[str, np.ndarray]  # split/gender/speaker aligned with human.clip_ids

    def groups(self, by: str, rows: np.ndarray) -> np.ndarray | None:
        """Group labels for the given reference rows (None for `by == "none"`)."""
        if by == "none":
            return None
        values = self.human.ambiguity if by == "ambiguity" else self.columns[by]
        out = values[rows].astype(str)
        out[out == ""] = "unknown"
        return out


@dataclass(frozen=True, eq=False)
class MemberData:
    """One (run, strategy) aligned with its dataset's reference on the clips both cover."""

    data: DatasetData
    run: Run
    strategy: str
    rows: np.ndarray  # ascending indices into data.human arrays
    Q: np.ndarray  # (n, K) model distributions
    n_invalid: np.ndarray  # per clip, from the run's stored candidates
    n_candidates: np.ndarray

    @property
    def clip_ids(self) -> np.ndarray:
        return self.data.human.clip_ids[self.rows]

    @property
    def P(self) -> np.ndarray:
        return self.data.human.dist[self.rows]


def load_dataset(
    ws: Workspace,
    ds: Dataset,
    reference: str = "human",
    conventions: Conventions | None = None,
) -> DatasetData:
    """A dataset's reference (inside a snapshot) and the clip columns to group by; the
    human reference under `conventions` (default: the workspace's)."""
    options = None if conventions is None else human_options(conventions, ds)
    human, source = snapshot_human(ws, ds, options)
    if reference != "human":
        human = load_reference(ws, human.dataset, reference, human=human)  # only reads
        source = f"{reference} votes (ambiguity levels from the human votes)"
    return dataset_data(ws, human, source)


def dataset_data(ws: Workspace, human: HumanData, source: str) -> DatasetData:
    """A loaded reference with the clip columns results are broken down by, aligned with
    `human.clip_ids` (a clip the clips table lacks gets empty columns)."""
    rows = ws.conn.execute(
        "SELECT id, coalesce(split, ''), coalesce(gender, ''), coalesce(speaker, '') "
        "FROM clips WHERE dataset_id = ? ORDER BY id",
        (human.dataset.id,),
    ).fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    at = rows_of(ids, human.clip_ids)  # -1 picks the trailing "" below
    columns = {
        name: np.array([*(r[i + 1] for r in rows), ""], dtype=object)[at]
        for i, name in enumerate(CLIP_COLUMNS)
    }
    return DatasetData(human.dataset, human, source, columns)


def _candidate_counts(ws: Workspace, run_id: int, clip_ids: np.ndarray) -> tuple[np.ndarray, ...]:
    """Invalid and total candidates per reference clip (zeros where the run has none)."""
    rows = ws.conn.execute(
        "SELECT clip_id, sum(1 - valid), count(*) FROM samples WHERE run_id = ? GROUP BY clip_id",
        (run_id,),
    ).fetchall()
    inv = np.zeros(len(clip_ids))
    cand = np.zeros(len(clip_ids))
    if rows:
        arr = np.array(rows, dtype=np.float64)
        idx = rows_of(clip_ids, arr[:, 0].astype(np.int64))
        ok = idx >= 0
        inv[idx[ok]] = arr[ok, 1]
        cand[idx[ok]] = arr[ok, 2]
    return inv, cand


def _strategy_predictions(
    ws: Workspace, run_id: int, strategy: str, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(clip_ids, (n, K) distributions) of one run's strategy, ordered by clip id.

    The hot path of a 150k-clip table: SQLite concatenates the ids and the float32 blobs
    itself (one row back instead of 150k tuples, ~3x faster); both aggregates run over the
    same rows, so ids and blobs line up whatever order SQLite picks, and they are sorted
    here. A blob of the wrong length anywhere falls back to reading row by row.
    """
    count, ids_text, joined = ws.conn.execute(
        "SELECT count(*), CAST(group_concat(clip_id) AS BLOB), "
        "CAST(group_concat(distribution, '') AS BLOB) FROM predictions "
        "WHERE run_id = ? AND strategy = ?",
        (run_id, strategy),
    ).fetchone()
    if not count:
        return np.zeros(0, dtype=np.int64), np.zeros((0, k))
    if len(joined) != 4 * k * count:
        ids, dists = ws.prediction_arrays(run_id, strategy, k)
        return ids, dists
    ids = np.array(ids_text.split(b","), dtype=np.int64)
    dists = np.frombuffer(joined, dtype="<f4").reshape(count, k).astype(np.float64)
    if len(ids) > 1 and not (np.diff(ids) > 0).all():
        order = np.argsort(ids, kind="stable")
        ids, dists = ids[order], dists[order]
    return ids, dists


def load_members(
    ws: Workspace,
    data: DatasetData,
    runs: Sequence[Run],
    strategies: Sequence[str] = (),
    *,
    clip_ids: np.ndarray | None = None,
    warnings: list[str] | None = None,
) -> list[MemberData]:
    """Aligned (run, strategy) data of one dataset's runs, restricted to `clip_ids` if given.

    Only clips with a usable human distribution are kept. Stored distributions are float32,
    so rows are renormalised; rows that are not distributions at all are dropped and
    counted in `warnings`.
    """
    human = data.human
    keep = human.valid.copy()
    if clip_ids is not None:
        allowed = np.zeros(len(human.clip_ids), dtype=bool)
        idx = rows_of(human.clip_ids, np.asarray(clip_ids, dtype=np.int64))
        allowed[idx[idx >= 0]] = True
        keep &= allowed
    members: list[MemberData] = []
    for run in runs:
        if run.dataset_id != data.dataset.id:
            continue
        inv, cand = _candidate_counts(ws, run.id, human.clip_ids)
        have = ws.strategies(run.id)
        for name in [s for s in strategies if s in have] if strategies else have:
            ids, Q = _strategy_predictions(ws, run.id, name, data.dataset.k)
            rows = rows_of(human.clip_ids, ids)
            ok = rows >= 0
            ok[ok] &= keep[rows[ok]]
            Q = Q[ok]
            sums = Q.sum(axis=1)
            good = np.isfinite(Q).all(axis=1) & (Q >= 0).all(axis=1) & (sums > 0)
            if not good.all() and warnings is not None:
                warnings.append(
                    f"run {run.id} {name}: dropped {int((~good).sum())} stored predictions "
                    "that are not distributions"
                )
            rows, Q = rows[ok][good], Q[good] / sums[good, None]
            if len(rows):
                members.append(MemberData(data, run, name, rows, Q, inv[rows], cand[rows]))
    return members
