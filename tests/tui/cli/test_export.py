"""The `metrics`, `report` and `export subset` commands, through the real `ambiscope` group."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ambiscope.db import Workspace
from ambiscope.tui.cli.export import DEFAULT_METRICS, export, metrics, subset
from ambiscope.tui.cli.main import main
from tests.core.test_export_data import demo_db, demo_template  # noqa: F401


def invoke(db: Path, *args: str) -> click.testing.Result:
    return CliRunner().invoke(main, ["--db", str(db), *args])


def test_choices_come_from_the_registries() -> None:
    """--format, --reference and --strategy list what core registered; nothing is copied."""
    from ambiscope.core.export import SUBSET_FORMATS, TABLE_FORMATS, tables
    from ambiscope.core.reference import REFERENCES
    from ambiscope.core.scaling.strategies import STRATEGIES

    def choices(command: click.Command, name: str) -> tuple[str, ...]:
        (param,) = [p for p in command.params if p.name == name]
        return tuple(param.type.choices)  # type: ignore[attr-defined]

    assert choices(metrics, "fmt") == TABLE_FORMATS.names()
    assert choices(subset, "fmt") == SUBSET_FORMATS.names()
    assert choices(metrics, "reference") == REFERENCES.names()
    assert choices(metrics, "strategies") == STRATEGIES.names()
    assert choices(metrics, "by") == tables.BY_CHOICES
    assert tuple(DEFAULT_METRICS.split(",")) == tables.DEFAULT_METRICS
    assert "subset" in export.commands


def test_metrics_to_stdout_and_to_a_file(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    result = invoke(demo_db, "metrics", "--bootstrap", "50", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["rows"] and data["provenance"]["runs"][0]["config"]["fake"] is True
    out = tmp_path / "tables" / "bench.tex"
    result = invoke(
        demo_db, "metrics", "--bootstrap", "20", "--format", "latex", "-o", str(out), "--by", "none"
    )
    assert result.exit_code == 0, result.output
    assert "\\toprule" in out.read_text()
    prov = json.loads((tmp_path / "tables" / "bench.tex.provenance.json").read_text())
    assert prov["options"]["by"] == "none" and prov["options"]["bootstrap"] == 20


def test_metrics_takes_db_before_and_after_the_command(demo_db: Path) -> None:  # noqa: F811
    args = ["metrics", "--bootstrap", "0", "--format", "csv"]
    before = CliRunner().invoke(main, ["--db", str(demo_db), *args])
    after = CliRunner().invoke(main, [*args, "--db", str(demo_db)])
    assert before.exit_code == after.exit_code == 0, before.output
    assert before.output == after.output and before.output.startswith("dataset,")


def test_metrics_all_and_baseline_none(demo_db: Path) -> None:  # noqa: F811
    result = invoke(
        demo_db,
        "metrics",
        "--bootstrap",
        "0",
        "--metrics",
        "all",
        "--baseline",
        "none",
        "--format",
        "csv",
    )
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0].split(",")
    assert "entropy_pearson" in header and "invalid_rate_hi" in header


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["metrics", "--run", "77"], "no run with id 77"),
        (["metrics", "--dataset", "nope"], "no dataset 'nope'"),
        (["metrics", "--where", "mood:calm"], "unknown filter field"),
        (["metrics", "--metrics", "entropy_spearman"], "compare"),
        (["export", "subset", "--where", "flag:none-set", "OUT"], "no clips match"),
        (["export", "subset", "--where", "js>0.2", "OUT"], "needs a run and a strategy"),
        (["export", "subset", "--run", "5", "OUT"], "no run with id 5"),
        # issue 16: values are checked against the workspace, as in the TUI
        (["export", "subset", "--where", "split:tset", "OUT"], "did you mean test"),
        (["export", "subset", "--where", "gender:X", "OUT"], "no clip has gender 'X'"),
        (["metrics", "--where", "-split:tset"], "did you mean test"),
        (["metrics", "--where", "dataset:demmo"], "did you mean demo"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    demo_db: Path,  # noqa: F811
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    result = invoke(demo_db, *args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert not (tmp_path / "out").exists()


def test_export_subset_command(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "sub"
    result = invoke(
        demo_db,
        "export",
        "subset",
        "--where",
        "ambiguity:high -split:train",
        "--format",
        "label-studio",
        "--run",
        "2",
        "--strategy",
        "wbon",
        "--link",
        str(out),
    )
    assert result.exit_code == 0, result.output
    with Workspace.open(demo_db) as ws:
        from ambiscope.core.browse.query import select_clip_ids

        expected = len(select_clip_ids(ws.conn, "ambiguity:high -split:train"))
    assert f"exported {expected} of {expected} clips as label-studio" in result.output
    tasks = json.loads((out / "tasks.json").read_text())
    assert {p["model_version"] for t in tasks for p in t["predictions"]} == {"poor / wbon"}
    again = invoke(demo_db, "export", "subset", str(out))
    assert again.exit_code == 1 and "--force" in again.output
    forced = invoke(demo_db, "export", "subset", "--format", "csv", "--force", str(out))
    assert forced.exit_code == 0 and (out / "clips.csv").exists()


def test_report_command(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    pytest.importorskip("matplotlib", reason="matplotlib is the optional `report` extra")
    out = tmp_path / "rep"
    result = invoke(
        demo_db, "report", str(out), "--bootstrap", "20", "--run", "1", "--scaling-clips", "10"
    )
    assert result.exit_code == 0, result.output
    assert (out / "report.md").exists() and (out / "provenance.json").exists()


def test_report_without_matplotlib_exits_with_the_install_line(
    demo_db: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name)
    )
    result = invoke(demo_db, "report", str(tmp_path / "rep"))
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == "Error: the report needs matplotlib: pip install 'ambiscope[report]'"
    )
    assert not (tmp_path / "rep").exists()


def test_unknown_strategy_or_metric_is_a_usage_error_naming_the_choices(
    demo_db: Path,  # noqa: F811
) -> None:
    result = invoke(demo_db, "metrics", "--strategy", "magic")
    assert result.exit_code == 2
    assert "'magic' is not one of" in result.output and "'wbon'" in result.output
    result = invoke(demo_db, "metrics", "--metrics", "js,magic")
    assert result.exit_code == 2
    assert "unknown magic (known: js," in result.output
    # N-scaling curves only for strategies declared scalable (likelihood ignores N)
    result = invoke(demo_db, "report", "OUT", "--scaling-strategies", "vote,likelihood")
    assert result.exit_code == 2 and "unknown likelihood (known: single," in result.output


def test_metrics_all_means_what_the_table_computes() -> None:
    from ambiscope.core.metrics import METRICS
    from ambiscope.core.metrics.bootstrap import cohort_metrics

    (param,) = [p for p in metrics.params if p.name == "metrics"]
    assert param.type.convert("all", param, None) == cohort_metrics()
    assert set(cohort_metrics()) < set(METRICS.names())


def test_importing_the_commands_stays_light() -> None:
    code = (
        "import sys; import ambiscope.tui.cli.export, ambiscope.core.export; "
        "print(','.join(m for m in ('numpy', 'matplotlib', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ------------------------------------------------------------------ end to end, tiny model
def test_tiny_model_run_then_export(
    demo_db: Path,  # noqa: F811
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    """A real (random-weight) ALM samples a few clips; metrics and a subset read them back."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from ambiscope.core.scaling.run import RunSpec, execute_run

    with Workspace.open(demo_db) as ws:
        # 64 answers: the random model answers with a valid label ~10% of the time, so the
        # candidate strategies (single, vote) have clips whatever the RNG stream drew
        spec = RunSpec(
            dataset="demo", model=str(tiny_model_dir), n=16, max_new_tokens=8, name="tiny"
        )
        run = execute_run(ws, spec, limit=4).run
    result = invoke(
        demo_db,
        "metrics",
        "--run",
        str(run.id),
        "--bootstrap",
        "20",
        "--by",
        "none",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    assert {r["strategy"] for r in rows} >= {"single", "vote", "likelihood"}
    assert all(0 < r["n"] <= 4 for r in rows)
    assert next(r["n"] for r in rows if r["strategy"] == "likelihood") == 4
    out = tmp_path / "tiny-subset"
    result = invoke(
        demo_db, "export", "subset", "--run", str(run.id), "--where", "failed -failed", str(out)
    )
    assert result.exit_code == 1  # contradictory filter: nothing selected, nothing written
    result = invoke(
        demo_db,
        "export",
        "subset",
        "--run",
        str(run.id),
        "--strategy",
        "likelihood",
        "--format",
        "jsonl",
        str(out),
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(x) for x in (out / "clips.jsonl").read_text().splitlines()]
    with_model = [r for r in records if r["predictions"]]
    assert len(with_model) == 4
    assert with_model[0]["predictions"][0]["run_label"] == "tiny"
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["runs"][0]["config"]["spec"]["model"] == str(tiny_model_dir)
