"""The report (Markdown + PNG figures) and its building blocks: N-scaling, reliability."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from ambiscope.core.export._common import ExportError
from ambiscope.core.export.data import load_dataset, load_members
from ambiscope.core.export.report import (
    INSTALL_HINT,
    ReportOptions,
    build_report,
    confusion,
    reliability_bins,
    require_matplotlib,
)
from ambiscope.core.export.scaling import read_scaling_input, scaling_curves, scaling_sizes
from ambiscope.core.export.tables import TableOptions
from ambiscope.core.metrics.functions import ece, js_divergence
from ambiscope.db import Workspace
from tests.core.test_export_data import demo_db, demo_template  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n"


def test_scaling_sizes() -> None:
    assert scaling_sizes(1) == [1]
    assert scaling_sizes(8) == [1, 2, 4, 8]
    assert scaling_sizes(10) == [1, 2, 4, 8, 10]


def test_scaling_curve_ends_at_the_stored_prediction(demo_db: Path) -> None:  # noqa: F811
    with Workspace.open(demo_db) as ws:
        ds = ws.get_dataset("demo")
        run = ws.runs(ds.id)[0]
        with ws.snapshot():
            data = load_dataset(ws, ds)
            vote = load_members(ws, data, [run], ["vote"])[0]
            single = load_members(ws, data, [run], ["single"])[0]
            inputs = read_scaling_input(ws, vote, max_clips=25, seed=1)
    assert inputs is not None and len(inputs.sets) == 25
    curves = {c.strategy: c for c in scaling_curves(inputs, ["vote", "wbon", "single"])}
    assert curves["vote"].sizes == [1, 2, 4, 8]
    # at N = max, re-aggregated vote equals the stored vote prediction on the sampled clips
    ids = _sampled_ids(vote, 25, 1)
    keep = np.isin(vote.clip_ids, ids)
    stored = float(js_divergence(vote.P[keep], vote.Q[keep]).mean())
    assert abs(curves["vote"].js[-1] - stored) < 1e-6
    # at N = 1, vote is the first valid answer (= single) as long as it is valid
    keep_single = np.isin(single.clip_ids, ids)
    first = float(js_divergence(single.P[keep_single], single.Q[keep_single]).mean())
    assert abs(curves["single"].js[0] - first) < 1e-6
    assert curves["vote"].js[-1] < curves["vote"].js[0]  # more candidates help this model
    with pytest.raises(ValueError, match="likelihood"):
        scaling_curves(inputs, ["likelihood"])


def _sampled_ids(member, max_clips: int, seed: int) -> np.ndarray:
    rows = np.sort(np.random.default_rng(seed).choice(member.rows, size=max_clips, replace=False))
    return member.data.human.clip_ids[rows]


def test_reliability_bins_and_confusion() -> None:
    P = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    Q = np.array([[0.9, 0.1], [0.7, 0.3], [0.55, 0.45], [0.2, 0.8]])
    conf, acc, count = reliability_bins(P, Q)
    assert count.sum() == 4
    assert acc[8] == 1.0 and conf[8] == pytest.approx(0.9)  # 0.9 sits in (0.8, 0.9]
    weighted_gap = np.nansum(count * np.abs(acc - conf)) / count.sum()
    assert weighted_gap == pytest.approx(ece(P, Q))
    cm = confusion(P, Q)
    assert cm.tolist() == [[2 / 3, 1 / 3], [1.0, 0.0]]


def test_missing_matplotlib_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name)
    )
    with pytest.raises(ExportError) as info:
        require_matplotlib()
    assert str(info.value) == INSTALL_HINT
    assert "ambiscope[report]" in INSTALL_HINT


def test_report_has_every_section_and_readable_figures(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    pytest.importorskip("matplotlib", reason="matplotlib is the optional `report` extra")
    out = tmp_path / "report"
    with Workspace.open(demo_db) as ws:
        result = build_report(
            ws, out, ReportOptions(table=TableOptions(bootstrap=50), scaling_clips=20)
        )
    text = (out / "report.md").read_text()
    for heading in (
        "## Benchmark table",
        "## JS and BC by ambiguity level",
        "## Model entropy vs human entropy",
        "## Reliability (ECE)",
        "## Confusion matrices",
        "## Invalid outputs",
        "## N-scaling",
    ):
        assert heading in text
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(linked) == sorted(result.figures)
    assert len(linked) == 11  # 5 per run x 2 runs + invalid rates
    for name in linked:
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
    assert "**" in text  # best values in bold
    assert len(list(csv.DictReader((out / "metrics.csv").open()))) == result.rows
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["export"] == "report"
    assert prov["options"]["scaling"] == {"max_clips": 20, "strategies": ["vote", "wbon"]}
    assert set(prov["files"]) >= {"report.md", "metrics.csv", *linked}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"] and metrics["provenance"]["export"] == "report"


def test_report_refuses_a_non_empty_directory(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    pytest.importorskip("matplotlib", reason="matplotlib is the optional `report` extra")
    out = tmp_path / "report"
    out.mkdir()
    (out / "x").write_text("x")
    with Workspace.open(demo_db) as ws, pytest.raises(ExportError, match="--force"):
        build_report(ws, out, ReportOptions(table=TableOptions(bootstrap=0)))
