"""The `ambiscope` CLI, run as a real subprocess where start-up behaviour matters."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import click
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


def _command_paths() -> list[list[str]]:
    """Every command and subcommand of the real root group, as argv prefixes."""
    ctx = click.Context(main)
    paths: list[list[str]] = []
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        paths.append([name])
        if isinstance(command, click.Group):
            paths += [[name, sub] for sub in command.list_commands(ctx)]
    return paths


def test_every_command_takes_db() -> None:
    runner = CliRunner()
    paths = _command_paths()
    assert ["jobs", "list"] in paths and ["export", "subset"] in paths
    for path in paths:
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "--db FILE" in result.output, path


@pytest.mark.parametrize(
    "command",
    [["stats"], ["jobs", "list"], ["jobs"]],
)
def test_db_before_and_after_the_command(tmp_path, command):
    db = tmp_path / "ws.db"
    runner = CliRunner()
    assert (
        runner.invoke(
            main, ["demo", "--no-tui", "--no-model", "--clips", "6", "--db", str(db)]
        ).exit_code
        == 0
    )
    before = runner.invoke(main, ["--db", str(db), *command], env={"AMBISCOPE_DB": None})
    after = runner.invoke(main, [*command, "--db", str(db)], env={"AMBISCOPE_DB": None})
    assert before.exit_code == after.exit_code == 0, (before.output, after.output)
    assert before.output == after.output


def test_init_db_positions_and_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert "a.db ready" in runner.invoke(main, ["--db", "a.db", "init"]).output
    assert "b.db ready" in runner.invoke(main, ["init", "--db", "b.db"]).output
    # the --db nearest the command wins; $AMBISCOPE_DB and ./ambiscope.db are fallbacks
    assert "c.db ready" in runner.invoke(main, ["--db", "x.db", "init", "--db", "c.db"]).output
    assert "d.db ready" in runner.invoke(main, ["init"], env={"AMBISCOPE_DB": "d.db"}).output
    result = runner.invoke(main, ["init"], env={"AMBISCOPE_DB": None})
    assert "ambiscope.db ready" in result.output
    assert not (tmp_path / "x.db").exists()


def test_db_after_a_subcommand_in_a_subprocess(tmp_path):
    db = tmp_path / "ws.db"
    assert run("init", "--db", str(db)).returncode == 0
    result = run("jobs", "list", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no jobs"


def test_every_registry_choice_resolves() -> None:
    """Choices are read lazily from core's registries; a renamed registry fails here."""
    from ambiscope.tui.cli.options import RegistryChoice, RegistryNames

    ctx = click.Context(main)
    seen = set()
    for path in _command_paths():
        command = main.get_command(ctx, path[0])
        if len(path) == 2:
            command = command.get_command(ctx, path[1])  # type: ignore[union-attr]
        for param in command.params:  # type: ignore[union-attr]
            if isinstance(param.type, RegistryChoice):
                assert param.type.choices, (path, param.name)
                if isinstance(param.default, str):
                    assert param.default in param.type.choices, (path, param.name)
                seen.add(param.type.registry)
            elif isinstance(param.type, RegistryNames):
                assert param.type.convert("all", param, None), (path, param.name)
                seen.add(param.type.registry)
    assert {
        "ambiscope.core.corpora:FORMATS",
        "ambiscope.core.alm:BACKENDS",
        "ambiscope.core.alm.prompts:MODES",
        "ambiscope.core.scaling.strategies:STRATEGIES",
        "ambiscope.core.metrics:METRICS",
        "ambiscope.core.export:TABLE_FORMATS",
        "ambiscope.core.export:SUBSET_FORMATS",
        "ambiscope.core.reference:REFERENCES",
        "ambiscope.core.jobs.kinds:JOB_KINDS",
    } <= seen
