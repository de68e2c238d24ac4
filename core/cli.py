"""The `ambiscope` command line: thin click wrappers over the library.

Only click is imported at module level so `ambiscope --help` starts in well under half a
second; numpy, SQLite helpers and (later) torch load inside the commands that need them.
Errors the user can fix (bad input, a missing or foreign workspace) are printed as one
line and exit with status 1; set AMBISCOPE_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from db.errors import WorkspaceError

DEFAULT_DB = "ambiscope.db"


class _Group(click.Group):
    """Turns anticipated errors into one-line messages instead of tracebacks."""

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


@click.group(cls=_Group)
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
    sampling runs and your audit (flags, tags, notes, own votes).
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db


@main.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def init(ctx: click.Context, path: str | None) -> None:
    """Create an empty workspace (or upgrade an existing one) at PATH or --db."""
    from db import Workspace

    target = Path(path) if path else _db_path(ctx)
    with Workspace.open(target, create=True) as ws:
        click.echo(f"workspace {target} ready (schema {ws.schema_version})")


@main.command()
@click.option("--clips", default=60, show_default=True, help="Number of demo clips.")
@click.option("--seed", default=7, show_default=True, help="Random seed for votes and prosody.")
@click.option("--force", is_flag=True, help="Rebuild the demo dataset if it exists.")
@click.option("--no-tui", is_flag=True, help="Only build and summarise; do not open the TUI.")
@click.pass_context
def demo(ctx: click.Context, clips: int, seed: int, force: bool, no_tui: bool) -> None:
    """Build the demo workspace: synthetic speech clips with simulated annotator pools.

    Clips are synthesised offline with eSpeak NG (prosody standing in for emotions) as
    16 kHz WAV files next to the workspace, and 3-12 simulated raters vote on each clip so
    that unanimous, mixed and split clips all occur.
    """
    from core.demo import DemoSpec, build_demo, format_summary

    path = _db_path(ctx)
    summary = build_demo(path, DemoSpec(n_clips=clips, seed=seed), force=force)
    click.echo(format_summary(summary))
    if not no_tui:
        click.echo("(the TUI is not built yet; showing the summary only)", err=True)


@main.command()
@click.option("--dataset", "-d", multiple=True, help="Limit to these datasets (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def stats(ctx: click.Context, dataset: tuple[str, ...], as_json: bool) -> None:
    """Per-dataset counts, raters per clip, label histogram, ambiguity and agreement."""
    import json

    from core.stats import format_stats, workspace_stats
    from db import Workspace

    with Workspace.open(_db_path(ctx)) as ws:
        result = workspace_stats(ws, list(dataset) or None)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(format_stats(result))


if __name__ == "__main__":
    main()
