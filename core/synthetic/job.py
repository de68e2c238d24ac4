"""The `annotate-synthetic` job kind: synthetic raters annotate frozen clips in a worker.

`ambiscope annotate-synthetic --enqueue` queues it with `enqueue_synthetic`. Import-light
(the job registry imports this module to list kinds): the raters' code loads when a job
is queued or runs.

The queued spec carries the resolved rater conventions as its own fields (and the full
conventions object for provenance), so the worker reproduces the command's conventions
whatever the workspace default is by the time the job runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ambiscope.core.jobs.kinds import JobContext, job_kind
from ambiscope.core.jobs.selection import describe_selection, enqueue_on_clips

if TYPE_CHECKING:
    from ambiscope.core.synthetic.spec import SyntheticSpec
    from ambiscope.db import Job, Workspace

KIND = "annotate-synthetic"


def enqueue_synthetic(
    ws: Workspace,
    spec: SyntheticSpec,
    *,
    clip_ids: Sequence[int] | None = None,
    where: str | None = None,
    limit: int | None = None,
) -> Job:
    """Queue an `annotate-synthetic` job (selection resolved and frozen now, as for resample)."""
    spec.template()  # a bad prompt file fails now, not in the worker
    return enqueue_on_clips(ws, KIND, spec, clip_ids=clip_ids, where=where, limit=limit)


def describe_annotate(params: dict[str, Any]) -> str:
    """One line for `ambiscope jobs` and the TUI's job list (no numpy needed)."""
    spec = params.get("spec", {})
    preset = (spec.get("conventions") or {}).get("preset")
    model = spec.get("model") if preset is None else f"{spec.get('model')}, {preset}"
    return f"{spec.get('raters')} synthetic raters ({model}) {describe_selection(params)}"


@job_kind(KIND, describe=describe_annotate)
def annotate_synthetic(ctx: JobContext) -> dict[str, Any]:
    """Run (or resume) the synthetic-rater spec with the worker's backend."""
    from ambiscope.core.synthetic.raters import execute_synthetic
    from ambiscope.core.synthetic.spec import SyntheticSpec

    spec = SyntheticSpec.from_dict(ctx.params["spec"])
    if ctx.device:
        spec = replace(spec, device=ctx.device)
    if ctx.ray:  # a worker started with --ray runs every job on its cluster
        spec = replace(spec, ray=ctx.ray)
    backend = None if spec.ray else ctx.backend(spec.run_spec())

    def on_progress(p: Any) -> None:
        ctx.progress(p.done, p.total)

    result = execute_synthetic(
        ctx.ws,
        spec,
        clip_ids=ctx.params["clip_ids"],
        backend=backend,
        on_progress=on_progress,
        should_stop=ctx.should_stop,
    )
    for key, error in result.failures[:20]:
        ctx.log(f"clip {key} failed: {error}", "warning")
    if result.processed and result.failed == result.processed and not result.stopped:
        raise RuntimeError(f"all {result.failed} clips failed: {result.failures[0][1]}")
    for note in result.notes:
        ctx.log(note)
    ctx.log(result.summary())
    return {
        "run_id": result.run.id,
        "created": result.created,
        "processed": result.processed,
        "skipped": result.skipped,
        "failed": result.failed,
        "answers": result.answers,
        "votes": result.votes,
        "invalid": result.invalid,
        "seconds": round(result.seconds, 3),
        "stopped": result.stopped,
    }
