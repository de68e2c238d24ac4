"""`compare`, `metrics` and `report` under --preset / --set: the numbers, the line naming
the conventions, the provenance, and bad names (on the hand-worked tiny workspace)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ambiscope.core.conventions import preset
from ambiscope.tui.cli.main import main
from tests.core.export.tiny import ECE_LEFT, ECE_RIGHT, tiny_workspace


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return tiny_workspace(tmp_path / "tiny.db")


def invoke(db: Path, *args: str) -> click.testing.Result:
    return CliRunner().invoke(main, ["--db", str(db), *args])


METRICS = ("metrics", "--metrics", "ece", "--by", "none", "--bootstrap", "0", "--baseline", "none")


def _ece(result: click.testing.Result) -> float:
    assert result.exit_code == 0, result.output
    (row,) = [r for r in json.loads(result.output)["rows"] if r["group"] == "all"]
    return float(row["ece"])


def test_metrics_preset_is_recorded_in_provenance(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    result = invoke(
        tiny, *METRICS, "--preset", "scaling-ambiguity", "--format", "md", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    prov = json.loads(Path(f"{out}.provenance.json").read_text())
    assert prov["conventions"] == json.loads(json.dumps(preset("scaling-ambiguity").to_dict()))
    assert "Conventions: scaling-ambiguity." in out.read_text()


def test_set_ece_bins_changes_ece(tiny: Path) -> None:
    right = _ece(invoke(tiny, *METRICS, "--format", "json"))
    left = _ece(invoke(tiny, *METRICS, "--format", "json", "--set", "ece_bins=left-closed"))
    assert right == pytest.approx(ECE_RIGHT, abs=1e-6)  # 0.3167
    assert left == pytest.approx(ECE_LEFT, abs=1e-6)  # 0.4833


def test_metrics_text_names_the_conventions(tiny: Path) -> None:
    result = invoke(tiny, *METRICS, "--set", "ece_bins=left-closed")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "conventions: ambiscope + ece_bins=left-closed"


def test_compare_prints_the_conventions_and_follows_them(tiny: Path) -> None:
    result = invoke(tiny, "compare", "--by", "none", "--preset", "scaling-ambiguity")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == "conventions: scaling-ambiguity"
    (row,) = [line for line in lines if line.startswith("stored")]
    assert f"{ECE_LEFT:.3f}*" in row.split()  # ece column, left-closed bins
    plain = invoke(tiny, "compare", "--by", "none")
    assert plain.output.splitlines()[-1] == "conventions: ambiscope"
    assert f"{ECE_RIGHT:.3f}*" in plain.output.split()


@pytest.mark.parametrize("command", [METRICS, ("compare",), ("report", "out")])
def test_unknown_set_name_is_one_line(tiny: Path, tmp_path: Path, command: tuple[str, ...]) -> None:
    args = [str(tmp_path / a) if a == "out" else a for a in command]
    result = invoke(tiny, *args, "--set", "ece_binz=left-closed")
    (error,) = _usage_error(result)
    assert "ece_binz" in error and "no such convention" in error


def test_bad_set_value_is_one_line(tiny: Path) -> None:
    (error,) = _usage_error(invoke(tiny, *METRICS, "--set", "ece_bins=middle"))
    assert "ece_bins" in error and "middle" in error


def _usage_error(result: click.testing.Result) -> list[str]:
    """The `Error:` lines of a usage error (exit 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return [line for line in result.output.splitlines() if line.startswith("Error:")]
