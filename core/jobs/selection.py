"""Freeze a clip selection when a job is queued (explicit ids and/or a filter).

What runs is what the researcher saw when sending the clips back, and a resumed job
covers exactly the same clips even if flags changed meanwhile; the filter text is kept in
the job's params for provenance only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ambiscope.core.jobs.queue import enqueue
from ambiscope.db.errors import WorkspaceError

if TYPE_CHECKING:
    from ambiscope.db import Dataset, Job, Workspace


class DatasetSpec(Protocol):
    """A job spec over one dataset (RunSpec, SyntheticSpec)."""

    dataset: str

    def to_dict(self) -> dict[str, Any]: ...


def enqueue_on_clips(
    ws: Workspace,
    kind: str,
    spec: DatasetSpec,
    *,
    clip_ids: Sequence[int] | None = None,
    where: str | None = None,
    limit: int | None = None,
) -> Job:
    """Queue a `kind` job running `spec` over a selection of its dataset, frozen now.

    Params: the spec as a dict, the resolved clip ids, and `where`/`limit` as given.
    """
    ds = ws.get_dataset(spec.dataset)
    ids = resolve_clip_selection(ws, ds, clip_ids, where, limit)
    params = {"spec": spec.to_dict(), "clip_ids": ids, "where": where, "limit": limit}
    return enqueue(ws, kind, params, total=len(ids))


def describe_selection(params: dict[str, Any]) -> str:
    """'on N clips of DATASET where ...': the part of a job's description about its clips."""
    n = len(params.get("clip_ids") or [])
    where = f" where {params['where']!r}" if params.get("where") else ""
    return f"on {n} clips of {params.get('spec', {}).get('dataset')}{where}"


def resolve_clip_selection(
    ws: Workspace,
    ds: Dataset,
    clip_ids: Sequence[int] | None,
    where: str | None,
    limit: int | None,
) -> list[int]:
    """Clip ids of `ds`: the listed ones matching `where` (no list: every match), at most
    `limit`. Unknown ids and an empty selection are errors, not an empty job."""
    from ambiscope.core.browse.query import select_clip_ids

    if not clip_ids:
        ids = select_clip_ids(ws.conn, where, dataset_id=ds.id, limit=limit)
    else:
        wanted = list(dict.fromkeys(int(c) for c in clip_ids))
        known = set(ws.clip_ids(ds.id).values())
        missing = [c for c in wanted if c not in known]
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
            raise WorkspaceError(f"clip id(s) not in this dataset: {shown}")
        if where:
            matching = set(select_clip_ids(ws.conn, where, dataset_id=ds.id))
            wanted = [c for c in wanted if c in matching]
        ids = wanted[:limit] if limit is not None else wanted
    if not ids:
        raise WorkspaceError(f"the selection matches no clips of dataset {ds.name!r}")
    return ids
