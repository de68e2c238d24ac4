"""The metrics screen follows and names the workspace's conventions (`config preset`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Static

from ambiscope.core.conventions import META_KEY, Conventions, write_default
from ambiscope.core.evaluation import evaluate
from ambiscope.db import Workspace
from ambiscope.tui.screens.metrics import MetricsScreen
from tests.tui.helpers import make_app, open_screen, until

# The demo's 4-candidate votes have confidences 0.25, 0.5, 0.75 and 1: on edges of 4 bins.
LEFT = Conventions().with_overrides({"ece_bins": "left-closed", "ece_n_bins": "4"})


async def test_metrics_screen_shows_and_uses_the_workspace_conventions(workspace: Path) -> None:
    with Workspace.open(workspace) as ws:
        write_default(ws.set_meta, LEFT)
    app = make_app(workspace, bootstrap=0)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_screen(pilot, "m", MetricsScreen)
        await until(pilot, lambda: bool(screen.rows), timeout=30)
        title = str(screen.query_one("#metrics-title", Static).render())
        shown = {(r["strategy"], r["group"]): r["ece"] for r in screen.rows}
    assert "conventions: ambiscope + ece_bins=left-closed, ece_n_bins=4" in title
    with Workspace.open(workspace) as ws:
        left = evaluate(ws, "demo", conventions=LEFT)
        right = evaluate(ws, "demo", conventions=Conventions())
    assert shown == {(r["strategy"], r["group"]): pytest.approx(r["ece"]) for r in left}
    assert [r["ece"] for r in left] != [r["ece"] for r in right]


async def test_metrics_screen_reports_a_bad_stored_default(workspace: Path) -> None:
    with Workspace.open(workspace) as ws:
        ws.set_meta(META_KEY, json.dumps({"preset": "no-such-preset"}))
    app = make_app(workspace, bootstrap=0)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_screen(pilot, "m", MetricsScreen)
        chart = screen.query_one("#metrics-chart", Static)
        await until(pilot, lambda: "cannot compute metrics" in str(chart.render()), timeout=10)
        assert "no-such-preset" in str(chart.render())
        assert "failed" in str(screen.query_one("#metrics-title", Static).render())
