"""Issue 12 repros through the CLI: each is one short line and exit status 1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ambiscope.db import Workspace
from ambiscope.tui.cli.main import MAX_MESSAGE, main
from tests.core.test_export_data import demo_db, demo_template  # noqa: F401


def one_line(db: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--db", str(db), *args])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert len(result.output) <= len("Error: ...\n") + MAX_MESSAGE
    return result.output


def test_a_value_quoted_back_is_cut(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("clip,path,annotator,label\nc1," + "x" * 100_000 + ",r1,happy\n")
    assert one_line(tmp_path / "w.db", "import", "manifest", str(manifest)).startswith(
        f"Error: {manifest}:2: "
    )


@pytest.mark.parametrize(
    ("fmt", "source"),
    [("label-studio", "/dev/zero"), ("label-studio", "fifo.json"), ("manifest", "fifo.csv")],
)
def test_devices_and_fifos_are_refused(tmp_path: Path, fmt: str, source: str) -> None:
    path = Path(source) if source.startswith("/") else tmp_path / source
    if not path.exists():
        os.mkfifo(path)
    assert "not a regular file" in one_line(tmp_path / "w.db", "import", fmt, str(path))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["make-tiny-model", "OUT", "--family", "no-such-family"],
            "'no-such-family' is not one of",
        ),
        (["sample", "-d", "demo", "-m", "m", "--batch-clips", "0"], "x>=1"),
    ],
)
def test_bad_family_and_batch_size_are_usage_errors(tmp_path: Path, args, says) -> None:
    args = [str(tmp_path / a) if a == "OUT" else a for a in args]
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "w.db"), *args])
    assert result.exit_code == 2 and says in result.output
    assert not (tmp_path / "OUT").exists() and not (tmp_path / "w.db").exists()


@pytest.mark.parametrize("command", [["sample"], ["enqueue", "resample"]])
def test_a_filter_typo_fails_before_a_model_loads_or_a_run_is_made(
    demo_db: Path,  # noqa: F811
    tmp_path: Path,
    command: list[str],
) -> None:
    """Issue 16: `--where` values are checked against the workspace as in the TUI; the
    model path does not exist, so reaching the model would be a different error."""

    def counts() -> tuple[int, int]:
        with Workspace.open(demo_db) as ws:
            runs = ws.conn.execute("SELECT count(*) FROM runs").fetchone()[0]
            return runs, ws.conn.execute("SELECT count(*) FROM jobs").fetchone()[0]

    before = counts()
    args = [*command, "-d", "demo", "-m", str(tmp_path / "no-model"), "--where", "split:tset"]
    said = one_line(demo_db, *args)
    assert "split:tset: no clip has split 'tset'" in said and "did you mean test" in said
    assert counts() == before
