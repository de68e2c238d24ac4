"""Job commands: `enqueue resample`, `jobs` (list, show, cancel, retry, workers), `worker`.

`enqueue resample` takes exactly the options of `ambiscope sample` (`sampling_options`)
plus the clip selection. `worker` runs the same library function as the detached worker
(`python -m ambiscope.core.jobs`), with the same options.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from ambiscope.tui.cli.options import (
    JOB_KINDS,
    RegistryChoice,
    db_option,
    json_option,
    run_spec,
    sampling_options,
)

STATUSES = ("queued", "running", "done", "failed", "cancelled")


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
@click.group()
@db_option(expose_value=False)
def enqueue() -> None:
    """Queue background work for `ambiscope worker` (watch it with `ambiscope jobs`)."""


@enqueue.command("resample")
@sampling_options
@click.option(
    "--clip", "clip_ids", type=int, multiple=True, help="Clip id to re-sample (repeatable)."
)
@click.option("--start-worker", is_flag=True, help="Start a detached worker if none is alive.")
@db_option
def enqueue_resample(clip_ids: tuple[int, ...], start_worker: bool, db: Path, **kw: Any) -> None:
    """Re-sample clips in the background (same options as `ambiscope sample`).

    Select clips with --clip (repeatable) and/or --where (both: the listed clips that
    match); neither means the whole dataset. The selection is fixed when queued.
    """
    from ambiscope.core.jobs.kinds import describe_job, job_needs
    from ambiscope.core.jobs.policy import WorkerPolicy
    from ambiscope.core.jobs.spawn import ensure_worker, worker_log_path
    from ambiscope.core.scaling.job import enqueue_resample as queue_resample
    from ambiscope.db import Workspace

    spec, where, limit = run_spec(kw)
    with Workspace.open(db) as ws:
        job = queue_resample(ws, spec, clip_ids=clip_ids or None, where=where, limit=limit)
    click.echo(f"job {job.id} queued: resample {describe_job(job)}")
    flags = WorkerPolicy().missing_flags(job_needs(job.kind, job.params))
    if flags:
        click.echo(
            f"note: a worker runs it only if started with {' '.join(flags)} "
            f"(e.g. `ambiscope worker {' '.join(flags)}`); others fail it",
            err=True,
        )
    if start_worker:
        click.echo(f"worker pid {ensure_worker(db)} is running it (log: {worker_log_path(db)})")
    else:
        click.echo("run it with `ambiscope worker` (or enqueue with --start-worker)")


# --------------------------------------------------------------------- jobs
@click.group(invoke_without_command=True)
@db_option
@click.pass_context
def jobs(ctx: click.Context, db: Path) -> None:
    """Background jobs: list (default), show ID, cancel ID, retry ID, workers."""
    if ctx.invoked_subcommand is None:
        _print_jobs(db, status=None, kind=None, limit=30, as_json=False)


@jobs.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only jobs with this status.")
@click.option("--kind", type=RegistryChoice(JOB_KINDS), help="Only jobs of this kind.")
@click.option("--limit", default=30, show_default=True, help="Newest N jobs.")
@json_option
@db_option
def list_cmd(status: str | None, kind: str | None, limit: int, as_json: bool, db: Path) -> None:
    """Jobs, newest first, with progress and owner."""
    _print_jobs(db, status=status, kind=kind, limit=limit, as_json=as_json)


def _print_jobs(
    db: Path, *, status: str | None, kind: str | None, limit: int, as_json: bool
) -> None:
    from ambiscope.core.jobs.kinds import describe_job
    from ambiscope.db import Workspace
    from ambiscope.db.jobs import list_jobs

    with Workspace.open(db) as ws:
        rows = [j for j in list_jobs(ws, status=status) if kind is None or j.kind == kind]
    rows = rows[:limit]
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
    out = asdict(job)
    out.pop("params")
    return out


@jobs.command("show")
@click.argument("job_id", type=int)
@click.option("--events", default=20, show_default=True, help="Last N log lines.")
@json_option
@db_option
def show_cmd(job_id: int, events: int, as_json: bool, db: Path) -> None:
    """One job: parameters, progress, owner and lease, result, error, log lines."""
    from ambiscope.core.jobs.kinds import describe_job
    from ambiscope.core.jobs.queue import job_detail
    from ambiscope.db import Workspace

    with Workspace.open(db) as ws:
        d = job_detail(ws, job_id, events=events)
    j = d.job
    if as_json:
        data = {**_job_dict(j), "params": j.params, "result": d.result, "traceback": d.traceback}
        data["events"] = [asdict(e) for e in d.events]
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


@jobs.command("cancel")
@click.argument("job_ids", type=int, nargs=-1, required=True)
@db_option
def cancel_cmd(job_ids: tuple[int, ...], db: Path) -> None:
    """Cancel jobs: queued ones at once, running ones after their current clip."""
    from ambiscope.core.jobs.queue import cancel_job
    from ambiscope.db import Workspace

    with Workspace.open(db) as ws:
        for job_id in job_ids:
            job = cancel_job(ws, job_id)
            verb = "cancelled" if job.status == "cancelled" else "cancelling (after this clip)"
            click.echo(f"job {job_id}: {verb}")


@jobs.command("retry")
@click.argument("job_ids", type=int, nargs=-1, required=True)
@db_option
def retry_cmd(job_ids: tuple[int, ...], db: Path) -> None:
    """Queue failed or cancelled jobs again; they resume where they stopped."""
    from ambiscope.core.jobs.queue import retry_job
    from ambiscope.db import Workspace

    with Workspace.open(db) as ws:
        for job_id in job_ids:
            retry_job(ws, job_id)
            click.echo(f"job {job_id}: queued again")


@jobs.command("workers")
@click.option("--all", "show_all", is_flag=True, help="Include stopped and lost workers.")
@db_option
def workers_cmd(show_all: bool, db: Path) -> None:
    """Workers of this workspace and whether they are alive."""
    from ambiscope.core.jobs.liveness import worker_alive
    from ambiscope.db import Workspace
    from ambiscope.db.jobs import list_workers

    with Workspace.open(db) as ws:
        rows = list_workers(ws)
    shown = [(w, worker_alive(w)) for w in rows]
    shown = [(w, alive) for w, alive in shown if show_all or alive]
    if not shown:
        click.echo("no live worker (start one: `ambiscope worker`)")
        return
    for w, alive in shown:
        state = "alive" if alive else w.status
        job = f"job {w.current_job}" if w.current_job else "idle"
        click.echo(
            f"{w.id}  {state:<7} {job:<8} device {w.device or 'auto'}  "
            f"heartbeat {_age(w.heartbeat)}  {w.jobs_done} jobs"
        )


# ------------------------------------------------------------------- worker
@click.command()
@click.option("--device", help="Device for every job, e.g. cuda:0 (default: each job's own).")
@click.option(
    "--ray",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Run every job's model work on this Ray cluster (alone: a local Ray instance); "
    "this worker stays the workspace's only writer.",
)
@click.option(
    "--once",
    is_flag=True,
    help="Exit when nothing is queued or running (waits for jobs other workers hold).",
)
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
@click.option(
    "--allow-remote-code",
    is_flag=True,
    help="Run jobs that ask for trust_remote_code (the model folder's own Python).",
)
@click.option(
    "--allow-endpoint",
    "allow_endpoints",
    multiple=True,
    metavar="URL",
    help="Let jobs send requests to this base URL (repeatable).",
)
@click.option(
    "--allow-key-env",
    "allow_key_envs",
    multiple=True,
    metavar="NAME",
    help="Let jobs send the value of this environment variable as an API key (repeatable).",
)
@click.option(
    "--allow-dir",
    "allow_dirs",
    multiple=True,
    metavar="DIR",
    help="Let jobs read prompt files in this folder (the workspace's is always allowed).",
)
@click.option("--heartbeat", "heartbeat_s", type=float, hidden=True)
@click.option("--no-pid-check", is_flag=True, hidden=True, help="Recover by lease only.")
@db_option
def worker(no_pid_check: bool, db: Path, **kw: Any) -> None:
    """Run background jobs of this workspace (re-sampling) until stopped.

    Claims the oldest queued job, renews its lease while it runs, writes each clip in one
    transaction and re-queues jobs of workers that died. SIGTERM / Ctrl-C stop after the
    current clip and hand the job back; several workers (e.g. one per GPU) may share a
    workspace. The TUI starts the same worker detached (`python -m ambiscope.core.jobs`).

    A job is data in a workspace that may come from someone else, so the worker refuses
    (fails) jobs that would run the model folder's code, send an environment variable's
    value or reach an endpoint, unless allowed here with the --allow-* options.
    """
    from ambiscope.core.jobs.worker import WorkerConfig, run_worker

    stats = run_worker(db, WorkerConfig(pid_check=not no_pid_check, **kw))
    click.echo(f"worker finished: {stats.summary()}", err=True)
