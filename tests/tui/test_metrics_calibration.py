"""`t` on the metrics screen: raw <-> calibrated on `train` (rows on the other clips)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Static

from ambiscope.db import Workspace
from ambiscope.tui.keys import spec_for
from ambiscope.tui.screens.metrics import MetricsScreen
from tests.tui.helpers import make_app, open_screen, until


def _title(screen: MetricsScreen) -> str:
    return str(screen.query_one("#metrics-title", Static).render())


def _all_rows(screen: MetricsScreen) -> dict[str, int]:
    return {r["strategy"]: r["n"] for r in screen.rows if r["group"] == "all"}


async def test_t_toggles_between_raw_and_calibrated(workspace: Path) -> None:
    assert spec_for("metrics", "toggle_calibration").keys == "t"
    with Workspace.open(workspace) as ws:
        ds = ws.get_dataset("demo")
        train = {c.id for c in ws.clips(ds.id) if c.split == "train"}
    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(pilot, "m", MetricsScreen)
        await until(pilot, lambda: bool(screen.rows) and "point estimates" in _title(screen))
        raw = _all_rows(screen)
        assert set(raw) == {"vote", "wbon"} and "calibrated" not in _title(screen)
        await pilot.press("t")
        await until(pilot, lambda: "+cal" in "".join(_all_rows(screen)))
        assert "calibrated on train (other clips)" in _title(screen)
        calibrated = _all_rows(screen)
        assert set(calibrated) == {"vote", "vote+cal", "wbon", "wbon+cal"}
        assert calibrated["vote"] == calibrated["vote+cal"] < raw["vote"]  # train left out
        assert raw["vote"] - calibrated["vote"] <= len(train)
        assert screen.query_one(DataTable).row_count == len(screen.rows)
        assert "+cal: calibrated" in str(screen.query_one("#metrics-legend", Static).render())
        await pilot.press("t")
        await until(pilot, lambda: "+cal" not in "".join(_all_rows(screen)) and bool(screen.rows))
        assert _all_rows(screen) == raw and "calibrated" not in _title(screen)
