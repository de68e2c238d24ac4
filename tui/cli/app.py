"""Click commands that open the TUI (`ambiscope tui`) or serve it to a browser (`serve`).

core/cli.py registers both (`main.add_command(tui)`, `main.add_command(serve)`) and opens
the TUI when `ambiscope` runs without a subcommand. The workspace is checked here, before
any Textual code starts, so a missing file or a foreign SQLite database ends with one
clear line and exit status 1 instead of a traceback inside a half-drawn screen.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

DEFAULT_DB = "ambiscope.db"


def check_workspace(path: Path) -> None:
    """Raise ClickException unless `path` is an ambiscope workspace this version reads."""
    from ambiscope.db import Workspace
    from ambiscope.db.errors import WorkspaceError

    try:
        with Workspace.open(path):  # read-write: also applies pending migrations once
            pass
    except WorkspaceError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    except OSError as exc:
        raise click.ClickException(f"{path}: {exc}") from None


def _db_from(ctx: click.Context, db: str | None) -> Path:
    if db:
        return Path(db)
    parent = ctx.find_root().obj if ctx.find_root().obj else None
    if isinstance(parent, dict) and parent.get("db"):
        return Path(parent["db"])
    return Path(os.environ.get("AMBISCOPE_DB", DEFAULT_DB))


def run_tui(path: Path) -> None:
    """Check the workspace, then run the app in this terminal."""
    check_workspace(path)
    from ambiscope.tui.app import AmbiscopeApp

    AmbiscopeApp(path).run()


@click.command("tui")
@click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False),
    default=None,
    help="Workspace file (default: the group's --db, $AMBISCOPE_DB or ./ambiscope.db).",
)
@click.pass_context
def tui(ctx: click.Context, db: str | None) -> None:
    """Open the terminal workbench: browse, listen, flag, vote, re-sample, metrics."""
    run_tui(_db_from(ctx, db))


@click.command("serve")
@click.option("--db", "db", type=click.Path(dir_okay=False), default=None, help="Workspace file.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.pass_context
def serve(ctx: click.Context, db: str | None, host: str, port: int) -> None:
    """Serve the TUI to a web browser (textual-serve); `space` plays audio in the browser.

    Binds to 127.0.0.1 by default: reach it from a laptop through an SSH tunnel,
    `ssh -L 8000:localhost:8000 user@server`, then open http://localhost:8000. Binding
    to another address exposes the workspace (and its audio) to that network.
    """
    path = _db_from(ctx, db).resolve()
    check_workspace(path)
    try:
        from textual_serve.server import Server
    except ImportError:
        raise click.ClickException(
            "`ambiscope serve` needs the textual-serve package: pip install textual-serve"
        ) from None
    command = shlex.join([sys.executable, "-m", "ambiscope.tui.cli.app", "tui", "--db", str(path)])
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(
            f"warning: serving on {host}: anyone who reaches it can browse the workspace", err=True
        )
    click.echo(f"serving {path.name} on http://{host}:{port} (Ctrl-C stops)", err=True)
    Server(command, host=host, port=port, title=f"ambiscope · {path.name}").serve()


@click.group()
def _standalone() -> None:
    """ambiscope TUI commands (also registered in the main `ambiscope` command)."""


_standalone.add_command(tui)
_standalone.add_command(serve)


if __name__ == "__main__":
    _standalone()
