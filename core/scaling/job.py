"""The `resample` job kind: run (or resume) a sampling spec over frozen clips in a worker.

The TUI's re-sample dialog and `ambiscope enqueue resample` queue it with
`enqueue_resample`; a worker runs `resample` with its cached backends. Import-light (the
job registry imports this module to list kinds): numpy and torch load when a job runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ambiscope.core.jobs.kinds import JobContext, job_kind
from ambiscope.core.jobs.selection import describe_selection, enqueue_on_clips

if TYPE_CHECKING:
    from ambiscope.core.scaling.run import RunSpec
    from ambiscope.db import Job, Workspace

KIND = "resample"


def enqueue_resample(
    ws: Workspace,
    spec: RunSpec,
    *,
    clip_ids: Sequence[int] | None = None,
    where: str | None = None,
    limit: int | None = None,
) -> Job:
    """Queue a re-sampling job: a run spec over explicit clips and/or a filter (frozen now)."""
    return enqueue_on_clips(ws, KIND, spec, clip_ids=clip_ids, where=where, limit=limit)


def describe_resample(params: dict[str, Any]) -> str:
    spec = params.get("spec", {})
    return (
        f"{spec.get('model')} n={spec.get('n')} {spec.get('mode', 'label')} "
        f"{describe_selection(params)}"
    )


@job_kind(KIND, describe=describe_resample)
def resample(ctx: JobContext) -> dict[str, Any]:
    """Run (or resume) the spec over the job's clips with the worker's cached models."""
    from ambiscope.core.scaling.run import RunSpec, execute_run

    spec = RunSpec.from_dict(ctx.params["spec"])
    if ctx.device:  # the worker owns its device (e.g. one worker per GPU)
        spec = replace(spec, device=ctx.device)
    if ctx.ray:  # a worker started with --ray runs every job on its cluster
        spec = replace(spec, ray=ctx.ray)
    backend = verifier = None
    if spec.ray is None:  # on Ray the actors load the models; else the worker's cache
        backend = ctx.backend(spec)
        if spec.verifier:
            verifier = backend if spec.verifier == "self" else ctx.backend(spec, spec.verifier)

    def on_progress(p: Any) -> None:
        ctx.progress(p.done, p.total)
        if p.last is not None and not p.last.ok:
            ctx.log(f"clip {p.last.clip_id} failed: {p.last.error}", "warning")

    result = execute_run(
        ctx.ws,
        spec,
        clip_ids=ctx.params["clip_ids"],
        backend=backend,
        verifier=verifier,
        on_progress=on_progress,
        should_stop=ctx.should_stop,
    )
    if result.processed and result.failed == result.processed and not result.stopped:
        raise RuntimeError(f"all {result.failed} clips failed: {result.failures[0][1]}")
    for note in result.notes:
        ctx.log(note)
    verb = "created" if result.created else "resumed"
    ctx.log(
        f"run {result.run.id} {verb}: {result.processed} clips sampled, {result.skipped} "
        f"already done, {result.failed} failed, {result.invalid}/{result.candidates} "
        f"invalid candidates, {result.seconds:.1f} s"
    )
    return {
        "run_id": result.run.id,
        "created": result.created,
        "processed": result.processed,
        "skipped": result.skipped,
        "failed": result.failed,
        "candidates": result.candidates,
        "invalid": result.invalid,
        "seconds": round(result.seconds, 3),
        "model_seconds": round(result.model_seconds, 3),
        "stopped": result.stopped,
    }
