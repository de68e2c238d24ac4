"""Workspace: creation, migrations, identity checks, typed writes and transactions."""

from __future__ import annotations

import os
import sqlite3
import threading

import numpy as np
import pytest

from ambiscope.db import ClipIn, Prediction, RunIn, Sample, VoteIn, Workspace, WorkspaceError
from ambiscope.db import workspace as workspace_module
from ambiscope.db.migrate import APPLICATION_ID, latest_version, split_statements


@pytest.fixture
def ws(tmp_path):
    with Workspace.open(tmp_path / "w.db", create=True) as workspace:
        yield workspace


@pytest.fixture
def dataset(ws):
    ds = ws.add_dataset("toy", "manifest", ["neutral", "happy", "sad"], root="/data")
    ws.add_clips(ds.id, [ClipIn("a", path="a.wav", split="train"), ClipIn("b"), ClipIn("c")])
    return ds


def test_create_sets_schema_wal_and_identity(tmp_path):
    path = tmp_path / "new.db"
    with Workspace.open(path, create=True) as ws:
        assert ws.schema_version == latest_version() >= 1
        assert ws.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ws.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert ws.conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    with Workspace.open(path) as again:  # reopening is a no-op migration
        assert again.schema_version == latest_version()


def test_missing_workspace_is_a_clear_error(tmp_path):
    with pytest.raises(WorkspaceError, match="no workspace here"):
        Workspace.open(tmp_path / "absent.db")
    assert not (tmp_path / "absent.db").exists()


def test_non_sqlite_file_is_rejected(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("this is not a database, just text that is long enough " * 20)
    with pytest.raises(WorkspaceError, match="not an SQLite database"):
        Workspace.open(path)


def test_foreign_sqlite_file_is_rejected_and_untouched(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(WorkspaceError, match="not an ambiscope workspace"):
        Workspace.open(path, create=True)
    assert path.read_bytes() == before


def test_newer_schema_is_rejected(tmp_path):
    path = tmp_path / "future.db"
    Workspace.open(path, create=True).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {latest_version() + 5}")
    conn.commit()
    conn.close()
    with pytest.raises(WorkspaceError, match="newer ambiscope"):
        Workspace.open(path)


def test_split_statements_keeps_trigger_bodies_whole():
    script = (
        "-- header\nCREATE TABLE t (x);\n"
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET x = 1;\n  SELECT 1;\nEND;\n"
    )
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")


def test_dataset_roundtrip_and_duplicates(ws):
    ds = ws.add_dataset("d", "crema-d", ["angry", "sad"], options={"modality": "voice"})
    assert ws.get_dataset("d") == ds == ws.get_dataset(ds.id)
    assert ds.label_set == ("angry", "sad") and ds.options == {"modality": "voice"}
    with pytest.raises(WorkspaceError, match="already exists"):
        ws.add_dataset("d", "crema-d", ["angry"])
    with pytest.raises(WorkspaceError, match="duplicates"):
        ws.add_dataset("e", "x", ["sad", "sad"])
    with pytest.raises(WorkspaceError, match="known: d"):
        ws.get_dataset("nope")


def test_clips_are_idempotent_and_replaceable(ws, dataset):
    assert ws.add_clips(dataset.id, [ClipIn("a", path="other.wav")]) == 0
    assert ws.find_clip(dataset.id, "a").path == "a.wav"
    ws.add_clips(dataset.id, [ClipIn("a", path="other.wav", meta={"x": 1})], replace=True)
    clip = ws.find_clip(dataset.id, "a")
    assert clip.path == "other.wav" and clip.meta == {"x": 1}
    assert ws.count_clips(dataset.id) == 3


def test_votes_validate_labels_and_weights_atomically(ws, dataset):
    ids = ws.clip_ids(dataset.id)
    ann = ws.ensure_annotators(dataset.id, [("r1", "human"), ("r2", "human")])
    good = VoteIn(ids["a"], ann["r1"], "happy")
    bad_label = VoteIn(ids["b"], ann["r1"], "joyous")
    with pytest.raises(WorkspaceError, match="'joyous' is not in the dataset's label set"):
        ws.add_votes(dataset.id, [good, bad_label])
    assert ws.count_votes(dataset.id) == 0  # the good vote was rolled back too
    for weight in (float("nan"), -1.0, float("inf")):
        with pytest.raises(WorkspaceError, match="weight"):
            ws.add_votes(dataset.id, [VoteIn(ids["a"], ann["r1"], "sad", weight=weight)])
    assert ws.count_votes(dataset.id) == 0
    version = ws.get_dataset(dataset.id).votes_version
    ws.add_votes(dataset.id, [good, VoteIn(ids["a"], ann["r2"], "sad", weight=2.0)])
    ws.add_votes(dataset.id, [good])  # re-import: no duplicate
    assert ws.count_votes(dataset.id) == 2
    assert ws.get_dataset(dataset.id).votes_version == version + 2


def test_vote_arrays_index_labels(ws, dataset):
    ids = ws.clip_ids(dataset.id)
    ann = ws.ensure_annotators(dataset.id, [("r1", "human"), ("me", "self")])
    ws.add_votes(
        dataset.id,
        [
            VoteIn(ids["a"], ann["r1"], "sad"),
            VoteIn(ids["a"], ann["r1"], "happy", rank=1, weight=0.5),
            VoteIn(ids["b"], ann["me"], "neutral"),
        ],
    )
    human = ws.vote_arrays(dataset.id, ("human",))
    order = np.argsort(human.label_idx)
    assert human.label_idx[order].tolist() == [1, 2]
    assert human.rank[order].tolist() == [1, 0]
    assert human.weight[order].tolist() == [0.5, 1.0]
    both = ws.vote_arrays(dataset.id, ("human", "self"))
    assert len(both) == 3
    assert len(ws.vote_arrays(dataset.id, ("synthetic",))) == 0


def test_annotator_kind_conflicts(ws, dataset):
    ws.ensure_annotators(dataset.id, [("r1", "human")])
    with pytest.raises(WorkspaceError, match="already exists as kind 'human'"):
        ws.ensure_annotators(dataset.id, [("r1", "self")])
    with pytest.raises(WorkspaceError, match="unknown kind"):
        ws.ensure_annotators(dataset.id, [("r9", "robot")])


def test_replace_clip_votes_returns_previous_for_undo(ws, dataset):
    ids = ws.clip_ids(dataset.id)
    me = ws.ensure_annotators(dataset.id, [("me", "self")])["me"]
    assert ws.replace_clip_votes(ids["a"], me, [VoteIn(ids["a"], me, "sad")]) == []
    previous = ws.replace_clip_votes(ids["a"], me, [VoteIn(ids["a"], me, "happy")])
    assert [v.label for v in previous] == ["sad"]
    assert [v.label for v in ws.clip_votes(ids["a"])] == ["happy"]


def test_transaction_rolls_back_nested_savepoint_only(ws, dataset):
    ids = ws.clip_ids(dataset.id)
    with ws.transaction():
        ws.set_flag(ids["a"], "ambiguous", True)
        with pytest.raises(RuntimeError), ws.transaction():
            ws.set_tag(ids["a"], "laughter", True)
            raise RuntimeError("boom")
    assert ws.flags(ids["a"]) == ["ambiguous"]
    assert ws.tags(ids["a"]) == []
    with pytest.raises(RuntimeError), ws.transaction():
        ws.set_flag(ids["b"], "ambiguous", True)
        raise RuntimeError("outer")
    assert ws.flags(ids["b"]) == []


def test_flags_tags_notes_report_previous_state(ws, dataset):
    cid = ws.clip_ids(dataset.id)["a"]
    assert ws.set_flag(cid, "ambiguous", True) is False
    assert ws.set_flag(cid, "ambiguous", True) is True
    assert ws.set_flag(cid, "ambiguous", False) is True
    assert ws.flags(cid) == []
    ws.set_tag(cid, " laughter ", True)
    assert ws.tags(cid) == ["laughter"] and ws.tag_names() == ["laughter"]
    with pytest.raises(WorkspaceError):
        ws.set_tag(cid, "  ", True)
    assert ws.set_note(cid, "sounds sarcastic") is None
    assert ws.set_note(cid, "") == "sounds sarcastic"
    assert ws.get_note(cid) is None
    all_ids = list(ws.clip_ids(dataset.id).values())
    assert ws.bulk_set("tags", all_ids, "review", True) == 3
    assert ws.bulk_set("tags", all_ids, "review", False) == 3


def test_runs_samples_predictions_roundtrip(ws, dataset):
    ids = ws.clip_ids(dataset.id)
    run = ws.add_run(
        RunIn(
            dataset.id,
            "tiny",
            "transformers",
            "label",
            2,
            temperature=0.8,
            config={"versions": {"torch": "x"}},
        )
    )
    assert ws.get_run(run.id).config == {"versions": {"torch": "x"}}
    ws.add_samples(
        [
            Sample(run.id, ids["a"], 0, "happy", "happy", logprob=-1.0, logprob_norm=-0.5),
            Sample(run.id, ids["a"], 1, "???", None, valid=False, error="unreadable"),
        ]
    )
    stored = ws.samples(run.id, ids["a"])
    assert [s.valid for s in stored] == [True, False] and stored[1].error == "unreadable"
    assert ws.sampled_clip_ids(run.id) == {ids["a"]}
    ws.add_predictions(
        [Prediction(run.id, "vote", ids["a"], np.array([0.0, 0.5, 0.5]), "happy", 1.0)]
    )
    clip_ids, dists = ws.prediction_arrays(run.id, "vote", 3)
    assert clip_ids.tolist() == [ids["a"]]
    np.testing.assert_allclose(dists[0], [0.0, 0.5, 0.5])
    assert ws.strategies(run.id) == ["vote"]


def test_delete_dataset_cascades(ws, dataset):
    ids = ws.clip_ids(dataset.id)
    ann = ws.ensure_annotators(dataset.id, [("r1", "human")])
    ws.add_votes(dataset.id, [VoteIn(ids["a"], ann["r1"], "sad")])
    ws.set_flag(ids["a"], "x", True)
    ws.delete_dataset("toy")
    counts = ws.table_counts()
    assert counts["clips"] == counts["votes"] == counts["flags"] == counts["annotators"] == 0


def test_second_connection_reads_consistent_snapshot(tmp_path, ws, dataset):
    reader = Workspace.open(ws.path, readonly=True)
    try:
        with reader.snapshot():
            before = reader.count_clips(dataset.id)

            def write() -> None:
                with Workspace.open(ws.path) as writer:
                    writer.add_clips(dataset.id, [ClipIn("z")])

            thread = threading.Thread(target=write)
            thread.start()
            thread.join()
            assert reader.count_clips(dataset.id) == before  # snapshot isolation (WAL)
        assert reader.count_clips(dataset.id) == before + 1
    finally:
        reader.close()


# ---------------------------------------------- full disk, read-only files (issue 12)
def test_disk_full_is_one_line_and_rolls_back(ws, dataset):
    """`database or disk is full` became a traceback; SQLite's page cap stands in for it."""
    before = list(ws.conn.iterdump())
    pages = ws.conn.execute("PRAGMA page_count").fetchone()[0]
    ws.conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(WorkspaceError) as info:
        ws.add_clips(dataset.id, [ClipIn(f"k{i}", transcript="x" * 500) for i in range(2000)])
    assert str(info.value) == f"disk full writing {ws.path}: nothing was written"
    assert not ws.conn.in_transaction
    assert list(ws.conn.iterdump()) == before


def test_read_only_workspace_reads_and_refuses_writes(tmp_path, ws, dataset):
    ws.close()
    with Workspace.open(ws.path, readonly=True) as reader:
        assert reader.readonly and reader.count_clips(dataset.id) == 3
        with pytest.raises(WorkspaceError) as info, reader.transaction():
            pass
        assert str(info.value) == f"read-only workspace: {ws.path}"


def test_unwritable_file_opens_read_only(tmp_path, ws, dataset, monkeypatch):
    """A file this process may not write opened with "unable to open database file"."""
    ws.close()
    ws.path.chmod(0o444)
    if os.geteuid() == 0:  # root may write anything: stand in for an ordinary user
        monkeypatch.setattr(workspace_module, "_writable", lambda path: False)
    before = ws.path.read_bytes()
    with Workspace.open(ws.path) as reader:
        assert reader.readonly and reader.count_clips(dataset.id) == 3
        with pytest.raises(WorkspaceError, match=r"^read-only workspace: "):
            reader.add_clips(dataset.id, [ClipIn("new")])
    assert ws.path.read_bytes() == before
