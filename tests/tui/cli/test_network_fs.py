"""The command line on a workspace on a network file system (issue 14, item 6).

$AMBISCOPE_MOUNTINFO points the detector at a mount table file declaring the test's
folder an NFS mount; everything else (SQLite, click, the worker process) is real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ambiscope.db import Workspace
from ambiscope.db.mounts import ALLOW_ENV, MOUNTINFO_ENV
from ambiscope.tui.cli.main import main


@pytest.fixture
def nfs_db(tmp_path: Path) -> tuple[Path, dict[str, str | None]]:
    """A workspace in a folder the mount table says is NFS, and the env that says so."""
    share = tmp_path / "share"
    share.mkdir()
    db = share / "ws.db"
    Workspace.open(db, create=True, allow_network_fs=True).close()
    table = tmp_path / "mountinfo"
    table.write_text(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        f"61 27 0:45 / {os.path.realpath(share)} rw,relatime - nfs4 fs1:/export rw\n"
    )
    # the runner restores both after each invoke, so a flag that sets ALLOW_ENV cannot leak
    return db, {MOUNTINFO_ENV: str(table), ALLOW_ENV: None}


WRITE = ("config", "preset", "ambiscope")  # a command that writes the workspace


def test_writing_on_nfs_is_refused_in_one_line(nfs_db: tuple[Path, dict[str, str | None]]) -> None:
    db, env = nfs_db
    result = CliRunner(env=env).invoke(main, ["--db", str(db), *WRITE])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert "network file system (nfs4" in line
    assert "--ray" in line and "--allow-network-fs" in line


@pytest.mark.parametrize(
    "args",
    [
        ["--allow-network-fs", "--db", "{db}", *WRITE],
        ["--db", "{db}", *WRITE, "--allow-network-fs"],
        [*WRITE, "--db", "{db}", "--allow-network-fs"],
    ],
    ids=["before", "after", "after-both"],
)
def test_allow_network_fs_before_or_after_the_command(
    nfs_db: tuple[Path, dict[str, str | None]], args: list[str]
) -> None:
    db, env = nfs_db
    result = CliRunner(env=env).invoke(main, [a.format(db=db) for a in args])
    assert result.exit_code == 0, result.output
    assert "default conventions: ambiscope" in result.output


def test_reading_on_nfs_is_allowed(nfs_db: tuple[Path, dict[str, str | None]]) -> None:
    """`stats` only reads (it computes under the conventions in memory)."""
    db, env = nfs_db
    result = CliRunner(env=env).invoke(main, ["--db", str(db), "stats"])
    assert result.exit_code == 0, result.output
    assert "no datasets yet" in result.output


def test_environment_variable_allows(nfs_db: tuple[Path, dict[str, str | None]]) -> None:
    db, env = nfs_db
    result = CliRunner(env={**env, ALLOW_ENV: "1"}).invoke(main, ["--db", str(db), *WRITE])
    assert result.exit_code == 0, result.output


def test_workbench_is_refused_before_the_app_starts(
    nfs_db: tuple[Path, dict[str, str | None]],
) -> None:
    db, env = nfs_db
    for args in (["--db", str(db)], ["--db", str(db), "tui"]):
        result = CliRunner(env=env).invoke(main, args)
        assert result.exit_code == 1
        assert "network file system" in result.output


def test_real_processes_cli_and_worker(nfs_db: tuple[Path, dict[str, str | None]]) -> None:
    """Exit status and stderr as a shell sees them; the worker takes the flag too."""
    db, env = nfs_db
    environ = {**os.environ, MOUNTINFO_ENV: str(env[MOUNTINFO_ENV])}
    environ.pop(ALLOW_ENV, None)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *argv], capture_output=True, text=True, env=environ, check=False
        )

    cli = run("ambiscope.tui.cli.main", "--db", str(db), *WRITE)
    assert cli.returncode == 1
    assert cli.stderr.count("\n") == 1 and "network file system" in cli.stderr
    worker = ("ambiscope.core.jobs", "--db", str(db), "--once")
    refused = run(*worker)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "network file system" in refused.stderr
    allowed = run(*worker, "--allow-network-fs")
    assert allowed.returncode == 0, allowed.stderr
    assert "worker finished" in allowed.stderr
