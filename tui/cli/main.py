"""The `ambiscope` command line: the root group, a table of lazily loaded commands, and the
one place where anticipated errors become one line.

Each command family is its own module (workspace, corpora, sampling, jobs, export,
synthetic, app); a command's module is imported only when the command runs or its help
is shown, and modules import only click at the top, so `ambiscope --help` starts fast
and never loads numpy, torch or textual. Errors the user can fix (bad input, a missing
or foreign workspace, an unknown registry name) are printed as one line with exit status
1; set AMBISCOPE_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import click

from ambiscope.db.errors import WorkspaceError
from ambiscope.tui.cli.options import _remember_db, db_option

COMMANDS: dict[str, str] = {
    "init": "ambiscope.tui.cli.workspace:init",
    "demo": "ambiscope.tui.cli.workspace:demo",
    "stats": "ambiscope.tui.cli.workspace:stats",
    "config": "ambiscope.tui.cli.workspace:config",
    "make-tiny-model": "ambiscope.tui.cli.workspace:make_tiny_model",
    "import": "ambiscope.tui.cli.corpora:import_",
    "sample": "ambiscope.tui.cli.sampling:sample",
    "compare": "ambiscope.tui.cli.sampling:compare",
    "queue": "ambiscope.tui.cli.queue:queue",
    "serve-model": "ambiscope.tui.cli.sampling:serve_model",
    "enqueue": "ambiscope.tui.cli.jobs:enqueue",
    "jobs": "ambiscope.tui.cli.jobs:jobs",
    "worker": "ambiscope.tui.cli.jobs:worker",
    "metrics": "ambiscope.tui.cli.export:metrics",
    "report": "ambiscope.tui.cli.export:report",
    "export": "ambiscope.tui.cli.export:export",
    "annotate-synthetic": "ambiscope.tui.cli.synthetic:annotate_synthetic",
    "align": "ambiscope.tui.cli.synthetic:align",
    "reliability": "ambiscope.tui.cli.reliability:reliability",
    "augment": "ambiscope.tui.cli.synthetic:augment",
    "tui": "ambiscope.tui.cli.app:tui",
    "serve": "ambiscope.tui.cli.app:serve",
}
"""Command name -> ``"module:attr"`` of its click command (imported on first use)."""

MAX_MESSAGE = 1000
"""Longest error line printed; file, line and field come first, so they survive the cut."""


class LazyGroup(click.Group):
    """Loads commands from `COMMANDS` by name, and turns anticipated errors into one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, _, attr = COMMANDS[name].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except sqlite3.OperationalError as exc:
            # the backstop for a write outside Workspace.transaction(), which words these
            name = exc.sqlite_errorname
            if os.environ.get("AMBISCOPE_DEBUG") or name not in ("SQLITE_FULL", "SQLITE_READONLY"):
                raise
            db = _remember_db(ctx, None, None)  # type: ignore[arg-type]
            what = "disk full writing" if name == "SQLITE_FULL" else "read-only workspace:"
            raise click.ClickException(f"{what} {db}") from None
        except Exception as exc:
            if os.environ.get("AMBISCOPE_DEBUG") or not _expected(exc):
                raise
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if len(message) > MAX_MESSAGE:  # a 200,000-character field quoted back
                message = message[:MAX_MESSAGE] + "..."
            raise click.ClickException(message) from None


def _expected(exc: Exception) -> bool:
    """Errors that are the user's input or environment, shown as one line: workspace and
    value errors, OS errors, and a backend that cannot serve (endpoint down, model not
    served). A backend error can only exist once its module is loaded, so `--help` stays
    free of numpy."""
    if isinstance(exc, WorkspaceError | ValueError | OSError):
        return True
    base = sys.modules.get("ambiscope.core.alm.base")
    return base is not None and isinstance(exc, base.BackendError)


@click.group(cls=LazyGroup, invoke_without_command=True)
@db_option
@click.version_option(package_name="ambiscope")
@click.pass_context
def main(ctx: click.Context, db: Path) -> None:
    """ambiscope: audit how audio-language models hear ambiguous emotions.

    A workspace is one SQLite file holding corpora with every annotator's vote, ALM
    sampling runs and your audit (flags, tags, notes, own votes). Without a command,
    opens the terminal workbench on the workspace.
    """
    if ctx.invoked_subcommand is None:
        from ambiscope.tui.cli.app import run_tui

        run_tui(db)


if __name__ == "__main__":
    main()
