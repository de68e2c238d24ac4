"""Read commands on a workspace this process cannot write (issue 12, finding 7)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ambiscope.db import Workspace
from ambiscope.db import workspace as workspace_module
from ambiscope.tui.cli import main as main_module
from ambiscope.tui.cli.main import main
from ambiscope.tui.cli.options import db_option
from tests.core.test_export_data import demo_db, demo_template  # noqa: F401


@pytest.fixture
def read_only_db(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    demo_db.chmod(0o444)
    if os.geteuid() == 0:  # root may write anything: stand in for an ordinary user
        monkeypatch.setattr(workspace_module, "_writable", lambda path: False)
    return demo_db


@pytest.mark.parametrize(
    "args",
    [
        ["stats"],
        ["compare"],
        ["metrics", "--bootstrap", "20"],
        ["export", "subset", "--format", "csv", "{out}"],
    ],
    ids=["stats", "compare", "metrics", "export"],
)
def test_read_commands_work(read_only_db: Path, tmp_path: Path, args: list[str]) -> None:
    before = read_only_db.read_bytes()
    args = [a.format(out=tmp_path / "out") for a in args]
    result = CliRunner().invoke(main, ["--db", str(read_only_db), *args])
    assert result.exit_code == 0, result.output
    assert read_only_db.read_bytes() == before


def test_a_write_says_read_only_workspace(read_only_db: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("clip,annotator,label\nc1,r1,happy\n")
    before = read_only_db.read_bytes()
    result = CliRunner().invoke(
        main, ["--db", str(read_only_db), "import", "manifest", str(manifest)]
    )
    assert result.exit_code == 1
    assert result.output == f"Error: read-only workspace: {read_only_db}\n"
    assert read_only_db.read_bytes() == before


@pytest.fixture
def frozen_folder(demo_db: Path, tmp_path: Path) -> Iterator[Path]:  # noqa: F811
    """The workspace in a folder nobody may write, root included (`chattr +i`)."""
    folder = tmp_path / "frozen"
    folder.mkdir()
    path = Path(shutil.copyfile(demo_db, folder / "w.db"))
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_really_read_only_folder(frozen_folder: Path, tmp_path: Path) -> None:
    """No -wal/-shm can be created: this gave "not an SQLite database (unable to open...)"."""
    before = frozen_folder.read_bytes()
    stats = CliRunner().invoke(main, ["--db", str(frozen_folder), "stats"])
    assert stats.exit_code == 0, stats.output
    out = tmp_path / "out"
    export = CliRunner().invoke(main, ["--db", str(frozen_folder), "export", "subset", str(out)])
    assert export.exit_code == 0, export.output
    manifest = tmp_path / "m.csv"
    manifest.write_text("clip,annotator,label\nc1,r1,happy\n")
    write = CliRunner().invoke(
        main, ["--db", str(frozen_folder), "import", "manifest", str(manifest)]
    )
    assert write.output == f"Error: read-only workspace: {frozen_folder}\n"
    assert frozen_folder.read_bytes() == before
    assert sorted(p.name for p in frozen_folder.parent.iterdir()) == ["w.db"]


@click.command()
@db_option
def write_outside_a_transaction(db: Path) -> None:
    """A write that bypasses Workspace.transaction(), as a raw UPDATE would."""
    with Workspace.open(db) as ws:
        ws.set_meta("touched", "yes")


def test_the_cli_words_a_stray_read_only_write(
    read_only_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"{__name__}:write_outside_a_transaction"
    monkeypatch.setitem(main_module.COMMANDS, "write-outside", name)
    result = CliRunner().invoke(main, ["--db", str(read_only_db), "write-outside"])
    assert result.output == f"Error: read-only workspace: {read_only_db}\n"
    assert result.exit_code == 1
