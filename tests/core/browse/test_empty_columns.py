"""`s` skips columns no clip has a value in; `empty_columns` says which."""

from __future__ import annotations

from pathlib import Path

from ambiscope.core.browse.query import empty_columns
from ambiscope.db import ClipIn, Workspace


def test_columns_become_non_empty_as_values_appear(tmp_path: Path) -> None:
    with Workspace.open(tmp_path / "ws.db", create=True) as ws:
        ds = ws.add_dataset("d", "manifest", ("a", "b"))
        ws.add_clips(ds.id, [ClipIn(key="c1"), ClipIn(key="c2", split="train")])
        assert empty_columns(ws.conn) == {"flags", "tags", "vote"}
        clip = ws.clip_ids(ds.id)["c1"]
        with ws.transaction():
            ws.set_flag(clip, "check", True)
        assert empty_columns(ws.conn) == {"tags", "vote"}
