"""`W` cycles how label lists and secondary labels count, as workspace conventions."""

from __future__ import annotations

from pathlib import Path

from ambiscope.core.conventions import read_default
from ambiscope.db import Workspace
from tests.tui.helpers import make_app, ready, until


def _stored(path: Path) -> tuple[str, float, float | None]:
    with Workspace.open(path, readonly=True) as ws:
        conv = read_default(ws.get_meta).conventions()
        state = ws.human_state(ws.get_dataset("demo").id) or {}
    weight = (state.get("options") or {}).get("distribution", {}).get("secondary_weight")
    return conv.multi_label, conv.secondary_weight, weight


async def test_w_cycles_the_label_rule_and_recomputes_the_reference(workspace: Path) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        seen = []
        for _ in range(4):
            await pilot.press("W")
            await pilot.pause()
            seen.append(_stored(workspace)[:2])
        assert seen == [("each", 0.0), ("primary", 0.0), ("primary", 0.5), ("split", 0.0)]
        await pilot.press("W", "W", "W")  # back to first label + secondary x0.5
        await until(pilot, lambda: _stored(workspace)[2] == 0.5, timeout=20)
    assert _stored(workspace) == ("primary", 0.5, 0.5)
