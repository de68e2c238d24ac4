"""Metric tables, reports and exports under conventions: the numbers follow them, every
format names them and every provenance record holds all their fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ambiscope.core.conventions import preset, resolve, write_default
from ambiscope.core.evaluation import evaluate
from ambiscope.core.export.provenance import build_provenance
from ambiscope.core.export.report import ReportOptions, build_report
from ambiscope.core.export.tables import TableOptions, compute_benchmark, render
from ambiscope.db import Workspace
from tests.core.export.tiny import ECE_LEFT, ECE_RIGHT, tiny_workspace

OFFICIAL = preset("scaling-ambiguity")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return tiny_workspace(tmp_path / "tiny.db")


def _all_row(rows: list[dict]) -> dict:
    (row,) = [r for r in rows if r["group"] == "all"]
    return row


def _table(ws: Workspace, conventions=None, by: str = "none"):
    options = TableOptions(
        metrics=("ece", "r2_det"), by=by, bootstrap=0, baseline=None, conventions=conventions
    )
    return compute_benchmark(ws, options=options)


def test_metric_table_follows_and_records_the_conventions(tiny: Path) -> None:
    conv = OFFICIAL.with_overrides({"r2_uniform": "skip"})
    with Workspace.open(tiny) as ws:
        table, prov = _table(ws, conv)
        default_table, default_prov = _table(ws)
    assert _all_row(table.rows)["ece"] == pytest.approx(ECE_LEFT, abs=1e-6)
    assert _all_row(default_table.rows)["ece"] == pytest.approx(ECE_RIGHT, abs=1e-6)
    assert prov["conventions"] == json.loads(json.dumps(conv.to_dict()))
    assert prov["conventions"]["overrides"] == {"r2_uniform": "skip"}
    assert "conventions" not in prov["options"]
    assert default_prov["conventions"]["preset"] == "ambiscope"
    label = "scaling-ambiguity + r2_uniform=skip"
    assert render(table, "table").splitlines()[-1] == f"conventions: {label}"
    assert "Conventions: scaling-ambiguity + r2\\_uniform=skip." in render(table, "md")
    caption = next(x for x in render(table, "latex").splitlines() if x.startswith("\\caption"))
    assert "Conventions: scaling-ambiguity + r2\\_uniform=skip." in caption
    assert json.loads(render(table, "json", prov))["options"]["conventions"]["preset"] == (
        "scaling-ambiguity"
    )


def test_ambiguity_groups_follow_the_preset(tiny: Path) -> None:
    """Tertiles with ties low: a, b low and c high; exact thirds by rank: one per level."""
    with Workspace.open(tiny) as ws:
        ours, _ = _table(ws, by="ambiguity")
        theirs, _ = _table(ws, OFFICIAL, by="ambiguity")
        compared = evaluate(ws, "tiny", conventions=OFFICIAL)
    assert {r["group"]: r["n"] for r in ours.rows} == {"low": 2, "high": 1, "all": 3}
    levels = {"low": 1, "medium": 1, "high": 1, "all": 3}
    assert {r["group"]: r["n"] for r in theirs.rows} == levels
    assert {r["group"]: r["n"] for r in compared} == levels
    assert _all_row(compared)["ece"] == pytest.approx(ECE_LEFT, abs=1e-6)


def test_workspace_default_is_used_and_recorded(tiny: Path) -> None:
    with Workspace.open(tiny) as ws:
        write_default(ws.set_meta, OFFICIAL)
        table, prov = _table(ws)
        record = build_provenance(ws, export="subset", datasets=[], runs=[])
    assert table.options.conventions == OFFICIAL
    assert prov["conventions"]["preset"] == record["conventions"]["preset"] == "scaling-ambiguity"
    assert _all_row(table.rows)["ece"] == pytest.approx(ECE_LEFT, abs=1e-6)


def test_report_names_and_records_the_conventions(tiny: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is the optional `report` extra")
    out = tmp_path / "report"
    conv = OFFICIAL.with_overrides({"ece_bins": "right-closed"})
    options = TableOptions(
        metrics=("js", "bc", "ece"), bootstrap=0, baseline=None, conventions=conv
    )
    with Workspace.open(tiny) as ws:
        build_report(ws, out, ReportOptions(table=options, scaling_clips=0))
        assert resolve(ws.get_meta).preset == "ambiscope"  # the default is left alone
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["conventions"] == json.loads(json.dumps(conv.to_dict()))
    text = (out / "report.md").read_text()
    assert "Conventions: scaling-ambiguity + ece_bins=right-closed" in text
    metrics = json.loads((out / "metrics.json").read_text())
    (row,) = [r for r in metrics["rows"] if r["group"] == "all"]
    assert row["ece"] == pytest.approx(ECE_RIGHT, abs=1e-6)
