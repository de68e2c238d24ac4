"""Migration 0005 rebuilds `annotators` to allow kind `review`: every row and every vote
that references one survives, and foreign keys still cascade afterwards."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ambiscope.db import VoteIn, Workspace
from ambiscope.db.migrate import (
    APPLICATION_ID,
    latest_version,
    load_migrations,
    split_statements,
)


def _at_version(path: Path, version: int) -> None:
    """A workspace file whose schema stopped at `version` (as an older ambiscope left it)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in load_migrations()[:version]:
        for statement in split_statements(migration.sql):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.executescript(
        "INSERT INTO datasets (id, name, format, label_set) VALUES (1, 'd', 'manifest', "
        '\'["happy","sad"]\');'
        "INSERT INTO clips (id, dataset_id, key) VALUES (1, 1, 'c1'), (2, 1, 'c2');"
        "INSERT INTO annotators (id, dataset_id, external_id, kind) VALUES "
        "(7, 1, 'r1', 'human'), (8, 1, 'r2', 'self');"
        "INSERT INTO votes (clip_id, annotator_id, label) VALUES (1, 7, 'happy'), "
        "(2, 7, 'sad'), (1, 8, 'sad');"
    )
    conn.close()


def test_rebuild_keeps_every_annotator_and_vote(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _at_version(path, 4)
    with Workspace.open(path) as ws:
        assert ws.schema_version == latest_version()
        rows = ws.conn.execute(
            "SELECT a.id, a.external_id, a.kind, v.clip_id, v.label FROM votes v "
            "JOIN annotators a ON a.id = v.annotator_id ORDER BY a.id, v.clip_id"
        ).fetchall()
        assert rows == [(7, "r1", "human", 1, "happy"), (7, "r1", "human", 2, "sad"),
                        (8, "r2", "self", 1, "sad")]  # fmt: skip
        review = ws.ensure_annotators(1, [("ls-3", "review")])
        ws.add_votes(1, [VoteIn(1, review["ls-3"], "happy")])
        with pytest.raises(Exception, match="kind"):
            ws.ensure_annotators(1, [("x", "robot")])
        assert ws.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        ws.delete_dataset(1)  # cascades through the rebuilt table into votes
        assert ws.conn.execute("SELECT count(*) FROM votes").fetchone() == (0,)
