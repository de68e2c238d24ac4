"""`ambiscope tui` (the terminal workbench) and `ambiscope serve` (the same in a browser).

`ambiscope` without a command also opens the workbench (main.py calls `run_tui`). The
workspace is opened here before any Textual code starts, so a missing file or a foreign
SQLite database ends as one line (the root group's error handler) instead of a
traceback inside a half-drawn screen.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from ambiscope.tui.cli.options import db_option


def check_workspace(path: Path) -> None:
    """Raise WorkspaceError/OSError unless `path` is a workspace this version reads."""
    from ambiscope.db import Workspace

    with Workspace.open(path):  # read-write: also applies pending migrations once
        pass


def run_tui(path: Path) -> None:
    """Check the workspace, then run the app in this terminal."""
    check_workspace(path)
    from ambiscope.tui.app import AmbiscopeApp

    AmbiscopeApp(path).run()


@click.command("tui")
@db_option
def tui(db: Path) -> None:
    """Open the terminal workbench: browse, listen, flag, vote, re-sample, metrics."""
    run_tui(db)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@db_option
def serve(host: str, port: int, db: Path) -> None:
    """Serve the TUI to a web browser (textual-serve); `space` plays the clip in the page.

    Binds to 127.0.0.1 by default: reach it from a laptop through an SSH tunnel,
    `ssh -L 8000:localhost:8000 user@server`, then open http://localhost:8000. Binding
    to another address exposes the workspace (and its audio) to that network.
    """
    path = db.resolve()
    check_workspace(path)
    try:
        from ambiscope.tui.web_audio import AmbiscopeServer
    except ImportError:
        raise click.ClickException(
            "`ambiscope serve` needs the textual-serve package: pip install textual-serve"
        ) from None
    argv = [sys.executable, "-m", "ambiscope.tui.cli.main", "--db", str(path), "tui"]
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(
            f"warning: serving on {host}: anyone who reaches it can browse the workspace", err=True
        )
    click.echo(f"serving {path.name} on http://{host}:{port} (Ctrl-C stops)", err=True)
    server = AmbiscopeServer(
        shlex.join(argv), db=path, host=host, port=port, title=f"ambiscope · {path.name}"
    )
    server.serve()
