"""The `ambiscope` command line: thin click wrappers over the library.

Only click is imported at module level so `ambiscope --help` starts in well under half a
second; numpy, SQLite helpers and (later) torch load inside the commands that need them.
Errors the user can fix (bad input, a missing or foreign workspace) are printed as one
line and exit with status 1; set AMBISCOPE_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from ambiscope.db.errors import WorkspaceError
from ambiscope.tui.cli.export import COMMANDS as EXPORT_COMMANDS
from ambiscope.tui.cli.jobs import enqueue, jobs, worker
from ambiscope.tui.cli.synthetic import align, annotate_synthetic, augment

DEFAULT_DB = "ambiscope.db"


# Commands that live in the TUI layer, imported only when used: core must not depend on
# tui at import time (layering tui -> core -> db), yet `ambiscope tui` belongs here.
_LAZY_COMMANDS = {"tui": "ambiscope.tui.cli.app:tui", "serve": "ambiscope.tui.cli.app:serve"}


class _Group(click.Group):
    """Turns anticipated errors into one-line messages instead of tracebacks, and loads
    the TUI's commands lazily."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _LAZY_COMMANDS and name not in self.commands:
            module, attr = _LAZY_COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (WorkspaceError, ValueError, OSError) as exc:
            if os.environ.get("AMBISCOPE_DEBUG"):
                raise
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise click.ClickException(message) from None


def _db_path(ctx: click.Context) -> Path:
    return Path(ctx.obj["db"])


@click.group(cls=_Group, invoke_without_command=True)
@click.option(
    "--db",
    envvar="AMBISCOPE_DB",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Workspace file (SQLite). Also read from $AMBISCOPE_DB.",
)
@click.version_option(package_name="ambiscope")
@click.pass_context
def main(ctx: click.Context, db: str) -> None:
    """ambiscope: audit how audio-language models hear ambiguous emotions.

    A workspace is one SQLite file holding corpora with every annotator's vote, ALM
    sampling runs and your audit (flags, tags, notes, own votes). Without a command,
    opens the terminal workbench on the workspace.
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
    if ctx.invoked_subcommand is None:
        from ambiscope.tui.cli.app import run_tui

        run_tui(Path(db))


@main.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def init(ctx: click.Context, path: str | None) -> None:
    """Create an empty workspace (or upgrade an existing one) at PATH or --db."""
    from ambiscope.db import Workspace

    target = Path(path) if path else _db_path(ctx)
    with Workspace.open(target, create=True) as ws:
        click.echo(f"workspace {target} ready (schema {ws.schema_version})")


@main.command()
@click.option("--clips", default=60, show_default=True, help="Number of demo clips.")
@click.option("--seed", default=7, show_default=True, help="Random seed for votes and prosody.")
@click.option("--n", "n", default=8, show_default=True, help="Model candidates per clip.")
@click.option("--force", is_flag=True, help="Rebuild the demo dataset if it exists.")
@click.option("--no-model", is_flag=True, help="Skip sampling the tiny model.")
@click.option("--no-tui", is_flag=True, help="Do not open the TUI afterwards.")
@click.pass_context
def demo(
    ctx: click.Context, clips: int, seed: int, n: int, force: bool, no_model: bool, no_tui: bool
) -> None:
    """Build the demo workspace, sample the tiny model on it, open the workbench.

    Clips are synthesised offline with eSpeak NG (prosody standing in for emotions) as
    16 kHz WAV files next to the workspace, and 3-12 simulated raters vote on each clip so
    that unanimous, mixed and split clips all occur. Then a tiny random-weight
    Qwen2-Audio checkpoint (built offline) answers N times per clip and every strategy
    (including the model as its own verifier and exact label likelihood) is computed, so
    every screen has data. The run resumes if interrupted. The TUI opens when the
    terminal is interactive.
    """
    from ambiscope.core.demo import DemoSpec, build_demo, demo_run_spec, format_summary

    path = _db_path(ctx)
    summary = build_demo(path, DemoSpec(n_clips=clips, seed=seed), force=force)
    click.echo(format_summary(summary))
    if not no_model:
        from ambiscope.core.alm.tiny import build_tiny_model
        from ambiscope.core.evaluation import evaluate, format_table
        from ambiscope.core.scaling.run import execute_run
        from ambiscope.db import Workspace

        model_dir = path.parent / f"{path.stem}-tiny-model"
        if not (model_dir / "config.json").is_file():
            build_tiny_model(model_dir)
        click.echo(f"\nsampling the tiny model ({model_dir}), {n} candidates per clip:", err=True)
        with Workspace.open(path) as ws:
            result = execute_run(ws, demo_run_spec(model_dir, n), on_progress=_progress_printer())
            rows = evaluate(ws, "demo", runs=[result.run.id], by="none")
        click.echo(format_table(rows, ("js", "bc", "accuracy", "invalid_rate")))
        click.echo("(a random-weight model: expect near-chance numbers and invalid answers)")
    if no_tui or not (sys.stdin.isatty() and sys.stdout.isatty()):
        click.echo(f"\nopen the workbench with: ambiscope --db {path}")
        return
    from ambiscope.tui.cli.app import run_tui

    run_tui(path)


@main.command()
@click.option("--dataset", "-d", multiple=True, help="Limit to these datasets (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def stats(ctx: click.Context, dataset: tuple[str, ...], as_json: bool) -> None:
    """Per-dataset counts, raters per clip, label histogram, ambiguity and agreement."""
    import json

    from ambiscope.core.stats import format_stats, workspace_stats
    from ambiscope.db import Workspace

    with Workspace.open(_db_path(ctx)) as ws:
        result = workspace_stats(ws, list(dataset) or None)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(format_stats(result))


@main.command("import")
@click.argument("format", metavar="FORMAT")
@click.argument("path", type=click.Path(exists=True))
@click.option("--name", help="Dataset name (default: derived from the corpus).")
@click.option("--audio-root", type=click.Path(file_okay=False), help="Where the audio lives.")
@click.option("--labels", help="Restrict the label set: a comma list or `4class`.")
@click.option("--merge-excited", is_flag=True, help="Fold excited into happy (IEMOCAP 4-class).")
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="WORD=LABEL",
    help="Map an unknown label word explicitly (repeatable).",
)
@click.option(
    "--unknown",
    type=click.Choice(["error", "other", "drop"]),
    default="error",
    show_default=True,
    help="What to do with label words nobody mapped.",
)
@click.option(
    "--modality",
    type=click.Choice(["voice", "face", "av"]),
    default="voice",
    show_default=True,
    help="CREMA-D: which rating modality to import.",
)
@click.option("--skip-bad", is_flag=True, help="Skip malformed lines (report a count).")
@click.option("--replace", is_flag=True, help="Delete and re-read the dataset.")
@click.pass_context
def import_(
    ctx: click.Context,
    format: str,
    path: str,
    name: str | None,
    audio_root: str | None,
    labels: str | None,
    merge_excited: bool,
    mapping: tuple[str, ...],
    unknown: str,
    modality: str,
    skip_bad: bool,
    replace: bool,
) -> None:
    """Import a corpus with every rater's vote.

    FORMAT is one of crema-d, iemocap, msp-podcast, label-studio, manifest; PATH is the
    corpus folder (or export/manifest file) exactly as its owners ship it. The import is
    one transaction: on error nothing is written. Re-importing adds nothing new.
    """
    from ambiscope.core.corpora import import_corpus
    from ambiscope.core.corpora.base import ImportOptions
    from ambiscope.core.labels import parse_label_list, parse_mapping
    from ambiscope.core.reference.human import refresh_human
    from ambiscope.db import Workspace

    options = ImportOptions(
        name=name,
        audio_root=audio_root,
        labels=parse_label_list(labels) if labels else None,
        merge_excited=merge_excited,
        label_map=parse_mapping(list(mapping)),
        unknown=unknown,  # type: ignore[arg-type]
        skip_bad=skip_bad,
        replace=replace,
        extra={"modality": modality} if format == "crema-d" else {},
    )
    with Workspace.open(_db_path(ctx), create=True) as ws:
        result = import_corpus(ws, format, path, options)
        refresh_human(ws, result.dataset)
    click.echo(result.summary())


@main.command("make-tiny-model")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--seed", default=0, show_default=True)
def make_tiny_model(out: str, seed: int) -> None:
    """Build a tiny random-weight Qwen2-Audio checkpoint in OUT (offline, < 1 s).

    It loads with AutoProcessor + AutoModelForMultimodalLM like a real model, so the
    whole sampling pipeline can be exercised without downloading weights.
    """
    from ambiscope.core.alm.tiny import build_tiny_model

    path = build_tiny_model(Path(out), seed=seed)
    click.echo(f"tiny Qwen2-Audio checkpoint written to {path}")


def _progress_printer() -> Any:
    import time

    last = [0.0]

    def show(p: Any) -> None:
        now = time.monotonic()
        if now - last[0] < 0.2 and p.done < p.total:
            return
        last[0] = now
        rate = (p.done / p.elapsed) if p.elapsed > 0 else 0.0
        remaining = (p.total - p.done) / rate if rate > 0 else float("nan")
        eta = f"{remaining:5.0f}s" if remaining == remaining else "  ?  "
        width = 24
        filled = int(width * p.done / max(p.total, 1))
        bar = "#" * filled + "." * (width - filled)
        click.echo(
            f"\r[{bar}] {p.done}/{p.total} clips  {rate:5.2f} clips/s  ETA {eta}"
            f"  failed {p.failed}",
            err=True,
            nl=p.done >= p.total,
        )

    return show


@main.command()
@click.option("--dataset", "-d", required=True, help="Dataset to sample.")
@click.option("--model", "-m", required=True, help="HF model id or local checkpoint path.")
@click.option(
    "--backend",
    type=click.Choice(["transformers", "openai"]),
    default="transformers",
    show_default=True,
)
@click.option(
    "--mode",
    type=click.Choice(["label", "distribution", "cot"]),
    default="label",
    show_default=True,
    help="What the model is asked to answer.",
)
@click.option("--n", "n", default=16, show_default=True, help="Candidates per clip.")
@click.option("--temperature", default=0.8, show_default=True)
@click.option("--top-p", type=float, default=None)
@click.option(
    "--search", type=click.Choice(["sample", "beam"]), default="sample", show_default=True
)
@click.option("--beams", default=4, show_default=True, help="Beams for --search beam.")
@click.option("--max-new-tokens", default=48, show_default=True)
@click.option("--verifier", help="Verifier model for ALM-v strategies (`self` = same model).")
@click.option("--no-likelihood", is_flag=True, help="Skip the exact label-likelihood pass.")
@click.option(
    "--prompt",
    "prompt_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Prompt template file (TOML/JSON).",
)
@click.option("--transcript", is_flag=True, help="Put the transcript into the prompt.")
@click.option("--seed", default=0, show_default=True)
@click.option("--name", help="A short name for the run.")
@click.option("--where", help="Clip filter, e.g. 'flagged', 'ambiguity:high split:test'.")
@click.option("--limit", type=int, help="At most this many clips.")
@click.option("--device", default="auto", show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--trust-remote-code", is_flag=True, help="Allow the model's own code (off).")
@click.option("--base-url", help="openai backend: the endpoint, e.g. http://127.0.0.1:8000/v1")
@click.option("--api-key-env", help="openai backend: NAME of the env var holding the key.")
@click.option("--concurrency", default=4, show_default=True)
@click.option("--timeout", default=120.0, show_default=True)
@click.pass_context
def sample(ctx: click.Context, **kw: Any) -> None:
    """Sample N answers per clip from an ALM and aggregate them with every strategy.

    Re-running the same command resumes the run (finished clips are skipped); Ctrl-C
    leaves only whole clips. Prints per-strategy JS / BC / accuracy at the end.
    """
    from ambiscope.core.evaluation import evaluate, format_table
    from ambiscope.core.scaling.run import RunSpec, execute_run
    from ambiscope.db import Workspace

    where, limit = kw.pop("where"), kw.pop("limit")
    kw["likelihood"] = not kw.pop("no_likelihood")
    spec = RunSpec(**kw)
    with Workspace.open(_db_path(ctx)) as ws:
        try:
            result = execute_run(
                ws, spec, where=where, limit=limit, on_progress=_progress_printer()
            )
        except KeyboardInterrupt:
            click.echo("\ninterrupted: finished clips are saved; rerun to resume", err=True)
            raise SystemExit(130) from None
        verb = "created" if result.created else "resumed"
        click.echo(
            f"run {result.run.id} {verb}: {result.processed} clips sampled, "
            f"{result.skipped} already done, {result.failed} failed, "
            f"{result.invalid}/{result.candidates} invalid candidates, "
            f"{result.seconds:.1f} s ({result.model_seconds:.1f} s in model calls)"
        )
        for key, error in result.failures[:5]:
            click.echo(f"  failed {key}: {error}", err=True)
        rows = evaluate(ws, spec.dataset, runs=[result.run.id], by="none")
        click.echo(format_table(rows, ("js", "bc", "accuracy")))


@main.command()
@click.option("--dataset", "-d", help="Dataset (default: every dataset with runs).")
@click.option("--run", "runs", type=int, multiple=True, help="Run ids (repeatable).")
@click.option("--strategy", "strategies", multiple=True, help="Strategies (repeatable).")
@click.option(
    "--by",
    type=click.Choice(["ambiguity", "split", "gender", "none"]),
    default="ambiguity",
    show_default=True,
)
@click.option("--bootstrap", default=0, show_default=True, help="Bootstrap resamples for CIs.")
@click.option(
    "--reference",
    type=click.Choice(["human", "synthetic", "combined"]),
    default="human",
    show_default=True,
    help="Distribution the models are compared to.",
)
@click.pass_context
def compare(
    ctx: click.Context,
    dataset: str | None,
    runs: tuple[int, ...],
    strategies: tuple[str, ...],
    by: str,
    bootstrap: int,
    reference: str,
) -> None:
    """Metric table of runs x strategies against the human (or synthetic) distributions."""
    from ambiscope.core.evaluation import evaluate, format_table
    from ambiscope.db import Workspace

    with Workspace.open(_db_path(ctx)) as ws:
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
            )
    click.echo(format_table(rows))


@main.command("serve-model")
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--trust-remote-code", is_flag=True)
@click.option("--api-key-env", help="Require `Authorization: Bearer $NAME` from clients.")
def serve_model(
    model: str,
    host: str,
    port: int,
    device: str,
    dtype: str,
    trust_remote_code: bool,
    api_key_env: str | None,
) -> None:
    """Serve MODEL through an OpenAI-compatible /v1/chat/completions endpoint.

    Lets an ambiscope elsewhere sample a model loaded here with `--backend openai
    --base-url http://HOST:PORT/v1` (e.g. through an SSH port forward). Bound to
    localhost by default.
    """
    from ambiscope.core.alm.serve_openai import serve_forever
    from ambiscope.core.alm.transformers_backend import TransformersBackend

    api_key = os.environ.get(api_key_env) if api_key_env else None
    if api_key_env and not api_key:
        raise click.ClickException(f"environment variable {api_key_env} is not set")
    backend = TransformersBackend(
        model, device=device, dtype=dtype, trust_remote_code=trust_remote_code
    )
    try:
        serve_forever(
            backend,
            host,
            port,
            api_key=api_key,
            on_ready=lambda url: click.echo(f"serving {model} at {url}", err=True),
        )
    finally:
        backend.close()


for _command in (
    enqueue,
    jobs,
    worker,
    annotate_synthetic,
    align,
    augment,
    *EXPORT_COMMANDS,
):
    main.add_command(_command)

if __name__ == "__main__":
    main()
