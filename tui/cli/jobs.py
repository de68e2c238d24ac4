"""`ambiscope enqueue`, `ambiscope jobs` and `ambiscope worker` (registered in core/cli.py).

Kept out of core/cli.py so the job system can grow without touching the main command
file; core/cli.py does `main.add_command(enqueue)`, `main.add_command(jobs)` and
`main.add_command(worker)`. `enqueue resample` takes exactly the options of `ambiscope
sample` (looked up from that command on first use, so the two never drift and core/cli.py
may import this module at its top) plus the clip selection.

Run standalone as `python -m ambiscope.tui.cli.jobs --db PATH worker|jobs|enqueue ...` too.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click

from ambiscope.db.errors import WorkspaceError


def _db_path(ctx: click.Context) -> Path:
    obj = ctx.find_object(dict) or {}
    return Path(obj.get("db") or os.environ.get("AMBISCOPE_DB") or "ambiscope.db")


def _age(t: float | None) -> str:
    if t is None:
        return "-"
    s = max(0.0, time.time() - t)
    if s < 120:
        return f"{s:.0f}s ago"
    if s < 7200:
        return f"{s / 60:.0f}m ago"
    return f"{s / 3600:.1f}h ago"


# ------------------------------------------------------------------ enqueue
class _WithSampleOptions(click.Command):
    """A command whose options are `ambiscope sample`'s followed by its own.

    The list is built on first use (by then core/cli.py is fully imported) and then kept:
    click appends and pops its help option on this very list object.
    """

    _resolved: list[click.Parameter] | None = None

    @property  # type: ignore[override]
    def params(self) -> list[click.Parameter]:
        if self._resolved is None:
            from ambiscope.tui.cli.main import sample

            self._resolved = [*sample.params, *self._own_params]
        return self._resolved

    @params.setter
    def params(self, value: list[click.Parameter]) -> None:
        self._own_params = list(value)
        self._resolved = None


@click.group()
def enqueue() -> None:
    """Queue background work for `ambiscope worker` (watch it with `ambiscope jobs`)."""


@enqueue.command("resample", cls=_WithSampleOptions)
@click.option(
    "--clip", "clip_ids", type=int, multiple=True, help="Clip id to re-sample (repeatable)."
)
@click.option("--start-worker", is_flag=True, help="Start a detached worker if none is alive.")
@click.pass_context
def enqueue_resample(
    ctx: click.Context, clip_ids: tuple[int, ...], start_worker: bool, **kw: Any
) -> None:
    """Re-sample clips in the background (same options as `ambiscope sample`).

    Select clips with --clip (repeatable) and/or --where (both: the listed clips that
    match); neither means the whole dataset. The selection is fixed when queued.
    """
    from ambiscope.core.jobs.queue import describe_job, enqueue_resample, ensure_worker
    from ambiscope.core.scaling.run import RunSpec
    from ambiscope.db import Workspace

    where, limit = kw.pop("where"), kw.pop("limit")
    kw["likelihood"] = not kw.pop("no_likelihood")
    spec = RunSpec(**kw)
    path = _db_path(ctx)
    with Workspace.open(path) as ws:
        job = enqueue_resample(ws, spec, clip_ids=clip_ids or None, where=where, limit=limit)
    click.echo(f"job {job.id} queued: resample {describe_job(job)}")
    if start_worker:
        click.echo(f"worker pid {ensure_worker(path)} is running it (log: {path}.worker.log)")
    else:
        click.echo("run it with `ambiscope worker` (or enqueue with --start-worker)")


# --------------------------------------------------------------------- jobs
@click.group(invoke_without_command=True)
@click.pass_context
def jobs(ctx: click.Context) -> None:
    """Background jobs: list (default), show ID, cancel ID, retry ID, workers."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_cmd)


@jobs.command("list")
@click.option(
    "--status",
    type=click.Choice(["queued", "running", "done", "failed", "cancelled"]),
    help="Only jobs with this status.",
)
@click.option("--limit", default=30, show_default=True, help="Newest N jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, status: str | None, limit: int, as_json: bool) -> None:
    """Jobs, newest first, with progress and owner."""
    from ambiscope.core.jobs.queue import describe_job, list_jobs
    from ambiscope.db import Workspace

    with Workspace.open(_db_path(ctx)) as ws:
        rows = list_jobs(ws, status=status, limit=limit)
    if as_json:
        click.echo(json.dumps([_job_dict(j) for j in rows], indent=2))
        return
    if not rows:
        click.echo("no jobs")
        return
    click.echo(f"{'id':>5}  {'kind':<10} {'status':<10} {'progress':>9}  {'created':<10} what")
    for j in rows:
        extra = f"  error: {j.error}" if j.error else ""
        cancel = " (cancelling)" if j.cancel_requested and j.status == "running" else ""
        click.echo(
            f"{j.id:>5}  {j.kind:<10} {j.status + cancel:<10} "
            f"{j.progress_done:>4}/{j.progress_total:<4}  {_age(j.created_at):<10} "
            f"{describe_job(j)}{extra}"
        )


def _job_dict(job: Any) -> dict[str, Any]:
    out = {name.strip(): getattr(job, name.strip()) for name in job.COLUMNS.split(",")}
    out.pop("params")
    return out


@jobs.command("show")
@click.argument("job_id", type=int)
@click.option("--events", default=20, show_default=True, help="Last N log lines.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show_cmd(ctx: click.Context, job_id: int, events: int, as_json: bool) -> None:
    """One job: parameters, progress, owner and lease, result, error, log lines."""
    from ambiscope.core.jobs.queue import describe_job, job_detail
    from ambiscope.db import Workspace

    with Workspace.open(_db_path(ctx)) as ws:
        d = job_detail(ws, job_id, events=events)
    j = d.job
    if as_json:
        data = {**_job_dict(j), "params": j.params, "result": d.result, "traceback": d.traceback}
        data["events"] = [_event(e) for e in d.events]
        click.echo(json.dumps(data, indent=2, default=str))
        return
    lines = [
        f"job {j.id} {j.kind}: {j.status}" + (" (cancel requested)" if j.cancel_requested else ""),
        f"  what:     {describe_job(j)}",
        f"  progress: {j.progress_done}/{j.progress_total}",
        f"  attempts: {j.attempts}/{d.max_attempts}",
        f"  created:  {_age(j.created_at)}; started {_age(j.started_at)}; "
        f"finished {_age(j.finished_at)}",
    ]
    if j.owner:
        lease = "-" if j.lease_expires is None else f"{j.lease_expires - time.time():+.0f}s"
        lines.append(f"  owner:    {j.owner} (heartbeat {_age(j.heartbeat)}, lease {lease})")
    if d.result:
        lines.append(f"  result:   {json.dumps(d.result)}")
    if j.error:
        lines.append(f"  error:    {j.error}")
    click.echo("\n".join(lines))
    for e in d.events:
        stamp = time.strftime("%H:%M:%S", time.localtime(e.time))
        click.echo(f"  {stamp} {e.level:<7} {e.message}")
    if d.traceback:
        click.echo("traceback:\n" + d.traceback.rstrip())


def _event(e: Any) -> dict[str, Any]:
    return {n.strip(): getattr(e, n.strip()) for n in e.COLUMNS.split(",")}


@jobs.command("cancel")
@click.argument("job_ids", type=int, nargs=-1, required=True)
@click.pass_context
def cancel_cmd(ctx: click.Context, job_ids: tuple[int, ...]) -> None:
    """Cancel jobs: queued ones at once, running ones after their current clip."""
    from ambiscope.core.jobs.queue import cancel_job
    from ambiscope.db import Workspace

    with Workspace.open(_db_path(ctx)) as ws:
        for job_id in job_ids:
            job = cancel_job(ws, job_id)
            verb = "cancelled" if job.status == "cancelled" else "cancelling (after this clip)"
            click.echo(f"job {job_id}: {verb}")


@jobs.command("retry")
@click.argument("job_ids", type=int, nargs=-1, required=True)
@click.pass_context
def retry_cmd(ctx: click.Context, job_ids: tuple[int, ...]) -> None:
    """Queue failed or cancelled jobs again; they resume where they stopped."""
    from ambiscope.core.jobs.queue import retry_job
    from ambiscope.db import Workspace

    with Workspace.open(_db_path(ctx)) as ws:
        for job_id in job_ids:
            retry_job(ws, job_id)
            click.echo(f"job {job_id}: queued again")


@jobs.command("workers")
@click.option("--all", "show_all", is_flag=True, help="Include stopped and lost workers.")
@click.pass_context
def workers_cmd(ctx: click.Context, show_all: bool) -> None:
    """Workers of this workspace and whether they are alive."""
    from ambiscope.core.jobs.queue import workers
    from ambiscope.db import Workspace

    with Workspace.open(_db_path(ctx)) as ws:
        rows = workers(ws)
    shown = [w for w in rows if show_all or w.alive()]
    if not shown:
        click.echo("no live worker (start one: `ambiscope worker`)")
        return
    for w in shown:
        state = "alive" if w.alive() else w.status
        job = f"job {w.current_job}" if w.current_job else "idle"
        click.echo(
            f"{w.id}  {state:<7} {job:<8} device {w.device or 'auto'}  "
            f"heartbeat {_age(w.heartbeat)}  {w.jobs_done} jobs"
        )


# ------------------------------------------------------------------- worker
@click.command()
@click.option("--device", help="Device for every job, e.g. cuda:0 (default: each job's own).")
@click.option("--once", is_flag=True, help="Exit when no queued job is left.")
@click.option("--max-jobs", type=int, help="Exit after this many jobs.")
@click.option(
    "--lease", "lease_s", type=float, default=30.0, show_default=True, help="Lease seconds."
)
@click.option("--poll", "poll_s", type=float, default=1.0, show_default=True)
@click.option("--idle-exit", "idle_exit_s", type=float, help="Exit after this many idle seconds.")
@click.option(
    "--unload-after",
    "unload_idle_s",
    type=float,
    default=300.0,
    show_default=True,
    help="Close loaded models after this many idle seconds.",
)
@click.option(
    "--import",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Import a module that registers job kinds (also $AMBISCOPE_JOB_MODULES).",
)
@click.option("--heartbeat", "heartbeat_s", type=float, hidden=True)
@click.option("--no-pid-check", is_flag=True, hidden=True, help="Recover by lease only.")
@click.pass_context
def worker(ctx: click.Context, no_pid_check: bool, **kw: Any) -> None:
    """Run background jobs of this workspace (re-sampling) until stopped.

    Claims the oldest queued job, renews its lease while it runs, writes each clip in one
    transaction and re-queues jobs of workers that died. SIGTERM / Ctrl-C stop after the
    current clip and hand the job back; several workers (e.g. one per GPU) may share a
    workspace.
    """
    from ambiscope.core.jobs.worker import WorkerConfig, run_worker

    config = WorkerConfig(pid_check=not no_pid_check, **kw)
    stats = run_worker(_db_path(ctx), config)
    click.echo(f"worker finished: {stats.summary()}", err=True)


# ------------------------------------------------------ standalone entry point
class _Root(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (WorkspaceError, ValueError, OSError) as exc:
            if os.environ.get("AMBISCOPE_DEBUG"):
                raise
            raise click.ClickException(str(exc).splitlines()[0] or type(exc).__name__) from None


@click.group(cls=_Root)
@click.option("--db", envvar="AMBISCOPE_DB", default="ambiscope.db", show_default=True)
@click.pass_context
def cli(ctx: click.Context, db: str) -> None:
    """Job commands without core/cli.py (tests, or before they are registered there)."""
    ctx.ensure_object(dict)
    ctx.obj["db"] = db


cli.add_command(enqueue)
cli.add_command(jobs)
cli.add_command(worker)


if __name__ == "__main__":
    cli()
