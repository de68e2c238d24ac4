"""The `ambiscope` CLI, run as a real subprocess where start-up behaviour matters."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ambiscope.tui.cli.main import main


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ambiscope.tui.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys; from click.testing import CliRunner; from ambiscope.tui.cli.main import main; "
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
        "heavy = [m for m in ('torch', 'transformers', 'numpy', 'textual') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_init_then_stats_on_empty_workspace(tmp_path):
    db = tmp_path / "ws.db"
    result = run("--db", str(db), "init")
    assert result.returncode == 0, result.stderr
    assert "schema" in result.stdout
    result = run("stats", env={"AMBISCOPE_DB": str(db)})
    assert result.returncode == 0
    assert "no datasets yet" in result.stdout


def test_missing_workspace_is_one_line_nonzero(tmp_path):
    result = run("--db", str(tmp_path / "nope.db"), "stats")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "no workspace here" in result.stderr
    assert "Traceback" not in result.stderr


def test_foreign_database_is_refused(tmp_path):
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    result = run("--db", str(db), "stats")
    assert result.returncode == 1
    assert "not an ambiscope workspace" in result.stderr


def test_demo_builds_summary_and_is_reused(tmp_path):
    db = tmp_path / "demo.db"
    runner = CliRunner()
    first = runner.invoke(
        main, ["--db", str(db), "demo", "--no-tui", "--no-model", "--clips", "18"]
    )
    assert first.exit_code == 0, first.output
    assert "built" in first.output and "ambiguity: low" in first.output
    second = runner.invoke(
        main, ["--db", str(db), "demo", "--no-tui", "--no-model", "--clips", "18"]
    )
    assert "already present" in second.output
    stats = runner.invoke(main, ["--db", str(db), "stats", "--json"])
    data = json.loads(stats.output)
    demo = data["datasets"][0]
    assert demo["clips"] == 18 and demo["clips_with_audio"] == 18


@pytest.mark.parametrize("clips", ["0", "abc"])
def test_demo_rejects_bad_clip_counts(tmp_path, clips):
    result = CliRunner().invoke(
        main, ["--db", str(tmp_path / "d.db"), "demo", "--no-tui", "--no-model", "--clips", clips]
    )
    assert result.exit_code != 0


def test_demo_samples_the_tiny_model_with_every_strategy(tmp_path):
    from ambiscope.db import Workspace

    db = tmp_path / "demo.db"
    result = CliRunner().invoke(
        main, ["--db", str(db), "demo", "--no-tui", "--clips", "3", "--n", "2"]
    )
    assert result.exit_code == 0, result.output
    # the random-weight model's answers are mostly unreadable, so only strategies that
    # need no valid candidate are certain; every candidate must be stored all the same
    assert "likelihood" in result.output
    assert "open the workbench with" in result.output
    assert (tmp_path / "demo-tiny-model" / "config.json").is_file()
    with Workspace.open(db) as ws:
        (run,) = ws.runs()
        assert run.verifier == "self" and run.n == 2
        assert len(ws.samples(run.id)) == 6
        assert "likelihood" in ws.strategies(run.id)
