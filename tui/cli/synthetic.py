"""`ambiscope annotate-synthetic`, `ambiscope align` and `ambiscope augment dime`.

Registered in core/cli.py with `main.add_command(annotate_synthetic)`,
`main.add_command(align)` and `main.add_command(augment)`. Importing this module also
registers the `annotate-synthetic` job kind (core/jobs.py), with a handler that imports
ambiscope.core.synthetic.raters only when a job runs, so the module stays import-light (click only) like
the rest of the CLI and can be imported by core/cli.py, the TUI and the worker at start-up.

Run standalone as `python -m ambiscope.tui.cli.synthetic --db PATH annotate-synthetic|align|augment`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click

from ambiscope.core.jobs.queue import JobContext, register_job_kind
from ambiscope.db.errors import WorkspaceError

JOB_KIND = "annotate-synthetic"


def _db_path(ctx: click.Context) -> Path:
    obj = ctx.find_object(dict) or {}
    return Path(obj.get("db") or os.environ.get("AMBISCOPE_DB") or "ambiscope.db")


# ------------------------------------------------------------------ job kind
def _annotate_job(ctx: JobContext) -> dict[str, Any]:
    from ambiscope.core.synthetic.raters import run_job

    return run_job(ctx)


def describe_annotate_job(params: dict[str, Any]) -> str:
    """One line for `ambiscope jobs` and the TUI's job list (no numpy needed)."""
    spec = params.get("spec", {})
    n = len(params.get("clip_ids") or [])
    where = f" where {params['where']!r}" if params.get("where") else ""
    return (
        f"{spec.get('raters')} synthetic raters ({spec.get('model')}) "
        f"on {n} clips of {spec.get('dataset')}{where}"
    )


# replace=True: `python -m ambiscope.tui.cli.synthetic` loads this file twice (__main__ and by name)
register_job_kind(JOB_KIND, _annotate_job, describe=describe_annotate_job, replace=True)


def _progress_printer() -> Any:
    last = [0.0]

    def show(p: Any) -> None:
        now = time.monotonic()
        if now - last[0] < 0.2 and p.done < p.total:
            return
        last[0] = now
        rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
        click.echo(
            f"\r{p.done}/{p.total} clips  {rate:5.2f} clips/s  failed {p.failed}",
            err=True,
            nl=p.done >= p.total,
        )

    return show


# ---------------------------------------------------------- annotate-synthetic
@click.command("annotate-synthetic")
@click.option("--dataset", "-d", required=True, help="Dataset to annotate.")
@click.option("--model", "-m", required=True, help="HF model id or local checkpoint path.")
@click.option("--raters", "-k", default=10, show_default=True, help="Synthetic raters K.")
@click.option(
    "--backend",
    type=click.Choice(["transformers", "openai"]),
    default="transformers",
    show_default=True,
)
@click.option("--where", help="Clip filter, e.g. 'split:train ambiguity:high'.")
@click.option("--limit", type=int, help="At most this many clips.")
@click.option("--seed", default=0, show_default=True, help="Seeds temperatures and sampling.")
@click.option(
    "--bands",
    default="0.1-0.3,0.3-0.5,0.5-0.7,0.7-0.9,0.9-0.93",
    show_default=True,
    help="Temperature bands LO-HI, cycled over raters.",
)
@click.option(
    "--personas",
    default="tone,words,subtle,overall",
    show_default=True,
    help="Preset names, or a file of 'name: instruction' lines; cycled over raters.",
)
@click.option("--jitter", default=0.05, show_default=True, help="+/- uniform temperature jitter.")
@click.option("--transcript", is_flag=True, help="Put the transcript into the prompt.")
@click.option("--max-new-tokens", default=16, show_default=True)
@click.option(
    "--prompt",
    "prompt_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Label-mode prompt template (TOML/JSON); the persona is put in front of it.",
)
@click.option("--name", help="A short name for the run.")
@click.option("--enqueue", is_flag=True, help="Queue a background job instead of running here.")
@click.option("--device", default="auto", show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--trust-remote-code", is_flag=True, help="Allow the model's own code (off).")
@click.option("--base-url", help="openai backend: the endpoint, e.g. http://127.0.0.1:8000/v1")
@click.option("--api-key-env", help="openai backend: NAME of the env var holding the key.")
@click.option("--concurrency", default=4, show_default=True)
@click.option("--timeout", default=120.0, show_default=True)
@click.pass_context
def annotate_synthetic(ctx: click.Context, **kw: Any) -> None:
    """Let an ALM play K synthetic annotators and store their votes (kind `synthetic`).

    Each rater answers one emotion per clip with its own persona hint and temperature
    (bands cycled, jittered, seeded; all stored in the run's config). Unparseable answers
    give no vote and are kept as invalid samples. Re-running the same command resumes.
    Compare the result with `ambiscope align --run ID` or `--reference synthetic|combined`.
    """
    from ambiscope.core.synthetic.raters import (
        SyntheticSpec,
        enqueue_synthetic,
        execute_synthetic,
        parse_bands,
        parse_personas,
    )
    from ambiscope.db import Workspace

    where, limit, enqueue = kw.pop("where"), kw.pop("limit"), kw.pop("enqueue")
    kw["bands"] = parse_bands(kw["bands"])
    kw["personas"] = parse_personas(kw["personas"])
    spec = SyntheticSpec(**kw)
    with Workspace.open(_db_path(ctx)) as ws:
        if enqueue:
            job = enqueue_synthetic(ws, spec, where=where, limit=limit)
            click.echo(f"queued job {job.id}: {describe_annotate_job(job.params)}")
            return
        try:
            result = execute_synthetic(
                ws, spec, where=where, limit=limit, on_progress=_progress_printer()
            )
        except KeyboardInterrupt:
            click.echo("\ninterrupted: finished clips are saved; rerun to resume", err=True)
            raise SystemExit(130) from None
    click.echo(result.summary())
    for key, error in result.failures[:5]:
        click.echo(f"  failed {key}: {error}", err=True)
    click.echo(f"next: ambiscope align --dataset {spec.dataset} --run {result.run.id}")


# ---------------------------------------------------------------------- align
@click.command("align")
@click.option("--dataset", "-d", required=True, help="Dataset of the run.")
@click.option("--run", "run_id", type=int, required=True, help="Synthetic-annotator run id.")
@click.option("--orderings", default=20, show_default=True, help="Random rater orderings.")
@click.option("--seed", default=0, show_default=True, help="Seed of the orderings.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    help="Write JS/BC-vs-k curves as PNG here (needs the `report` extra: matplotlib).",
)
@click.pass_context
def align(
    ctx: click.Context,
    dataset: str,
    run_id: int,
    orderings: int,
    seed: int,
    as_json: bool,
    plot: str | None,
) -> None:
    """How synthetic (and combined) distributions approach the human ones as raters grow.

    JS and BC at k = 1..K raters (mean ± SD over random orderings) per ambiguity level, a
    fit of a - b exp(-c k) with its saturation point (smallest k within 10% of the way
    from f(1) to the limit a), and Fleiss' kappa of the synthetic raters.
    """
    from ambiscope.core.synthetic.alignment import align_run, format_report, plot_report
    from ambiscope.db import Workspace

    with Workspace.open(_db_path(ctx)) as ws:
        report = align_run(ws, dataset, run_id, orderings=orderings, seed=seed)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(format_report(report))
    if plot:
        written = plot_report(report, plot)
        if written is None:
            click.echo(
                "plot skipped: matplotlib is not installed (pip install 'ambiscope[report]')",
                err=True,
            )
        else:
            click.echo(f"plot written to {written}", err=True)


# --------------------------------------------------------------------- augment
@click.group("augment")
def augment() -> None:
    """Data augmentation for training sets (never touches test splits)."""


@augment.command("dime")
@click.option("--dataset", "-d", required=True)
@click.option("--split", default="train", show_default=True, help="Split to balance (not test).")
@click.option(
    "--target-ratio",
    default=0.3,
    show_default=True,
    help="Top minority classes up to ceil(ratio x majority count).",
)
@click.option("--k", "k", default=3, show_default=True, help="Nearest neighbours to mix with.")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--reference",
    type=click.Choice(["human", "synthetic", "combined"]),
    default="human",
    show_default=True,
    help="Whose votes give the clip distributions and dominant labels.",
)
@click.option("--force", is_flag=True, help="Replace a non-empty OUT.")
@click.argument("out", type=click.Path(file_okay=False))
@click.pass_context
def dime(ctx: click.Context, dataset: str, out: str, **kw: Any) -> None:
    """DiME-Aug: balance a split by mixing each minority clip with a near neighbour.

    Audio, transcript and emotion distribution are mixed with the same alpha ~ U(0, 1);
    OUT is an audiofolder (audio/, metadata.jsonl, provenance.json) holding the split's
    original clips plus the augmented ones (`augmented: true`).
    """
    from ambiscope.core.synthetic.augment.dime import DimeOptions, dime_augment
    from ambiscope.db import Workspace

    opts = DimeOptions(**kw)
    with Workspace.open(_db_path(ctx)) as ws:
        result = dime_augment(ws, dataset, out, opts)
    click.echo(result.summary())


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
    """Synthetic-annotator commands without core/cli.py (tests, or before registration)."""
    ctx.ensure_object(dict)
    ctx.obj["db"] = db


cli.add_command(annotate_synthetic)
cli.add_command(align)
cli.add_command(augment)


if __name__ == "__main__":
    cli()
