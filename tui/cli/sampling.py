"""Sampling commands: `sample`, `compare` and `serve-model`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ambiscope.tui.cli.options import (
    conventions_of,
    conventions_options,
    db_option,
    interrupted,
    progress_printer,
    reference_option,
    run_spec,
    sampling_options,
    strategies_option,
)


@click.command()
@sampling_options
@db_option
def sample(db: Path, **kw: Any) -> None:
    """Sample N answers per clip from an ALM and aggregate them with every strategy.

    Re-running the same command resumes the run (finished clips are skipped); Ctrl-C
    leaves only whole clips. Prints per-strategy JS / BC / accuracy at the end.
    """
    from ambiscope.core.evaluation import evaluate, format_table
    from ambiscope.core.scaling.run import execute_run
    from ambiscope.db import Workspace

    spec, where, limit = run_spec(kw)
    with Workspace.open(db) as ws:
        try:
            result = execute_run(ws, spec, where=where, limit=limit, on_progress=progress_printer())
        except KeyboardInterrupt:
            raise interrupted() from None
        verb = "created" if result.created else "resumed"
        click.echo(
            f"run {result.run.id} {verb}: {result.processed} clips sampled, "
            f"{result.skipped} already done, {result.failed} failed, "
            f"{result.invalid}/{result.candidates} invalid candidates, "
            f"{result.seconds:.1f} s ({result.model_seconds:.1f} s in model calls)"
        )
        for key, error in result.failures[:5]:
            click.echo(f"  failed {key}: {error}", err=True)
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
        rows = evaluate(ws, spec.dataset, runs=[result.run.id], by="none")
        click.echo(format_table(rows, ("js", "bc", "accuracy")))
    if result.failed:
        raise click.ClickException(
            f"{result.failed} clips failed; run the same command again to retry them "
            "(finished clips are kept)"
        )


@click.command()
@click.option("--dataset", "-d", help="Dataset (default: every dataset with runs).")
@click.option("--run", "runs", type=int, multiple=True, help="Run ids (repeatable).")
@strategies_option("Strategies (repeatable; default: all).")
@click.option(
    "--by",
    type=click.Choice(["ambiguity", "split", "gender", "none"]),
    default="ambiguity",
    show_default=True,
)
@click.option("--bootstrap", default=0, show_default=True, help="Bootstrap resamples for CIs.")
@reference_option("Distribution the models are compared to.")
@conventions_options
@db_option
def compare(
    dataset: str | None,
    runs: tuple[int, ...],
    strategies: tuple[str, ...],
    by: str,
    bootstrap: int,
    reference: str,
    db: Path,
    **kw: Any,
) -> None:
    """Metric table of runs x strategies against the human (or synthetic) distributions.

    The human reference (ambiguity levels included) and the metrics' edge rules follow the
    conventions (--preset / --set, else the workspace's); the last line names them.
    """
    from ambiscope.core.evaluation import conventions_line, evaluate, format_table
    from ambiscope.db import Workspace

    with Workspace.open(db) as ws:
        conv = conventions_of(ws, kw)
        names = [dataset] if dataset else [d.name for d in ws.datasets() if ws.runs(d.id)]
        rows = []
        for name in names:
            rows += evaluate(
                ws,
                name,
                runs=list(runs) or None,
                strategies=list(strategies) or None,
                by=by,
                bootstrap=bootstrap,
                reference=reference,
                conventions=conv,
            )
    click.echo(format_table(rows))
    click.echo(conventions_line(conv))


@click.command("serve-model")
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--trust-remote-code", is_flag=True)
@click.option("--api-key-env", help="Require `Authorization: Bearer $NAME` from clients.")
@click.option(
    "--served-model-name",
    "served_names",
    multiple=True,
    help="Name clients must send as `model` (repeatable; default: MODEL as given).",
)
@db_option(expose_value=False)
def serve_model(
    model: str,
    host: str,
    port: int,
    device: str,
    dtype: str,
    trust_remote_code: bool,
    api_key_env: str | None,
    served_names: tuple[str, ...],
) -> None:
    """Serve MODEL through an OpenAI-compatible /v1/chat/completions endpoint.

    Lets an ambiscope elsewhere sample a model loaded here with `--backend openai
    --base-url http://HOST:PORT/v1` (e.g. through an SSH port forward). Bound to
    localhost by default. Speaks vLLM's extensions ambiscope uses (prompt_logprobs,
    continue_final_message, add_generation_prompt), so exact label scoring works
    against it; GET /v1/ambiscope/in-flight reports the requests in flight.
    """
    from ambiscope.core.alm import BACKENDS
    from ambiscope.core.alm.base import BackendError
    from ambiscope.core.alm.serve_openai import exposure_warning, serve_forever

    api_key = os.environ.get(api_key_env) if api_key_env else None
    if api_key_env and not api_key:
        raise click.ClickException(f"environment variable {api_key_env} is not set")
    if any(not name.strip() for name in served_names):
        raise click.BadParameter("must not be empty", param_hint="--served-model-name")
    warning = exposure_warning(host, api_key)
    if warning:
        click.echo(warning, err=True)
    try:
        backend = BACKENDS["transformers"](
            model, device=device, dtype=dtype, trust_remote_code=trust_remote_code
        )
    except BackendError as exc:  # e.g. no such model directory: one line, not a traceback
        raise click.ClickException(str(exc)) from None
    try:
        serve_forever(
            backend,
            host,
            port,
            api_key=api_key,
            model_name=list(served_names) or model,
            on_ready=lambda url: click.echo(
                f"serving {model} as {', '.join(served_names or (model,))} at {url}", err=True
            ),
        )
    finally:
        backend.close()
