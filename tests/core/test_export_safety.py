"""Exports read audio only from inside dataset roots, and --force deletes only exports.

A workspace can come from someone else: a clip path edited to `/etc/passwd` must not be
copied into an export, and a mistyped `--force OUT` must not delete the workspace or the
corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ambiscope.core.audio import write_wav
from ambiscope.core.export._common import ExportError
from ambiscope.core.export.report import ReportOptions, build_report
from ambiscope.core.export.subset import SubsetOptions, export_subset
from ambiscope.db import ClipIn, VoteIn, Workspace
from tests.core.synthetic.test_augment import run_dime, toy_db  # noqa: F401

LABELS = ("happy", "sad")


def _dataset(ws: Workspace, root: Path, paths: dict[str, str], *, allow: bool = False) -> None:
    """One dataset whose clips point at `paths` (as a hand-edited workspace might)."""
    options = {"import": {"allow_outside_root": True}} if allow else {}
    ds = ws.add_dataset("hand", "manifest", LABELS, root=str(root), options=options)
    ws.add_clips(ds.id, [ClipIn(key=k, path=p) for k, p in paths.items()])
    ids = ws.clip_ids(ds.id)
    rater = ws.ensure_annotators(ds.id, [("r1", "human")])["r1"]
    ws.add_votes(ds.id, [VoteIn(ids[k], rater, "happy") for k in paths])


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    write_wav(root / "good.wav", np.zeros(800, dtype=np.float32), 8000)
    write_wav(tmp_path / "outside.wav", np.ones(800, dtype=np.float32) * 0.1, 8000)
    (root / "notes.wav").write_text("not audio at all\n")
    return root


HAND_EDITED = {
    "good": "good.wav",
    "passwd": "/etc/passwd",
    "climb": "../outside.wav",
    "text": "notes.wav",
}


def test_export_skips_outside_paths_and_non_audio(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "out"
    with Workspace.open(tmp_path / "ws.db", create=True) as ws:
        _dataset(ws, corpus, HAND_EDITED)
        result = export_subset(ws, out, SubsetOptions(format="audiofolder"))
    assert (result.exported, result.skipped_outside_root, result.skipped_not_audio) == (1, 2, 1)
    assert [p.name for p in (out / "train" / "audio").iterdir()] == ["good.wav"]
    assert "2 with audio outside the dataset root" in result.summary()
    assert "1 whose file is not readable audio" in result.summary()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["counts"]["skipped_outside_root"] == 2
    assert prov["counts"]["skipped_not_audio"] == 1
    assert any("outside their dataset root" in w for w in prov["warnings"])
    assert any("not readable audio" in w for w in prov["warnings"])


def test_csv_export_leaves_outside_paths_unnamed(tmp_path: Path, corpus: Path) -> None:
    with Workspace.open(tmp_path / "ws.db", create=True) as ws:
        _dataset(ws, corpus, HAND_EDITED)
        export_subset(ws, tmp_path / "j", SubsetOptions(format="jsonl"))
    lines = (tmp_path / "j" / "clips.jsonl").read_text().splitlines()
    sources = {r["key"]: r["source_path"] for r in map(json.loads, lines)}
    assert sources["passwd"] is None and sources["climb"] is None
    assert sources["good"] == str(corpus / "good.wav")


def test_allow_outside_root_in_the_dataset_options_is_honoured(
    tmp_path: Path, corpus: Path
) -> None:
    out = tmp_path / "out"
    with Workspace.open(tmp_path / "ws.db", create=True) as ws:
        _dataset(ws, corpus, HAND_EDITED, allow=True)
        result = export_subset(ws, out, SubsetOptions(format="audiofolder"))
    assert (result.exported, result.skipped_outside_root, result.skipped_not_audio) == (2, 0, 2)
    assert sorted(p.name for p in (out / "train" / "audio").iterdir()) == ["climb.wav", "good.wav"]
    assert (out / "train" / "audio" / "climb.wav").read_bytes() == (
        tmp_path / "outside.wav"
    ).read_bytes()


def test_dime_never_reads_outside_paths_or_non_audio(toy_db: Path, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "audio" / "train_happy_0.wav").write_text("not audio")
    with Workspace.open(toy_db) as ws:
        ws.conn.execute("UPDATE clips SET path = '/etc/passwd' WHERE key = 'train_happy_1'")
    records, result = run_dime(toy_db, tmp_path / "aug")
    assert result.skipped["with audio outside the dataset root"] == 1
    assert result.skipped["whose file is not readable audio"] == 1
    sources = {s for r in records for s in r["sources"]}
    assert not sources & {"train_happy_0", "train_happy_1"}


# ------------------------------------------------------------------------------ --force
@pytest.fixture
def ws(tmp_path: Path, corpus: Path):
    """A workspace in its own folder, tmp_path/w, with one dataset rooted at tmp_path/corpus."""
    (tmp_path / "w").mkdir()
    with Workspace.open(tmp_path / "w" / "ws.db", create=True) as workspace:
        _dataset(workspace, corpus, {"good": "good.wav"})
        yield workspace


def _export(ws: Workspace, out: Path) -> None:
    export_subset(ws, out, SubsetOptions(format="csv", force=True))


def test_force_never_removes_the_workspace_folder_or_a_parent(ws: Workspace) -> None:
    folder = ws.path.parent
    (folder / "provenance.json").write_text("{}")  # even if it looks like an export
    for out in (folder, folder.parent):
        with pytest.raises(ExportError, match="holds the workspace") as refused:
            _export(ws, out)
        assert len(str(refused.value).splitlines()) == 1 and str(out) in str(refused.value)
    assert ws.path.is_file()


def test_force_never_removes_a_dataset_root_or_a_folder_in_it(ws: Workspace, corpus: Path) -> None:
    inner = corpus / "inner"
    inner.mkdir()
    (inner / "provenance.json").write_text("{}")
    before = sorted(p.name for p in corpus.iterdir())
    (corpus / "provenance.json").write_text("{}")
    with pytest.raises(ExportError, match="holds the dataset root"):
        _export(ws, corpus)
    with pytest.raises(ExportError, match="is inside the dataset root"):
        _export(ws, inner)
    (corpus / "provenance.json").unlink()
    assert sorted(p.name for p in corpus.iterdir()) == before


def test_force_refuses_a_folder_ambiscope_did_not_write(ws: Workspace, tmp_path: Path) -> None:
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_text("precious")
    with pytest.raises(ExportError, match="not written by ambiscope"):
        _export(ws, mine)
    assert (mine / "holiday.jpg").read_text() == "precious"


def test_force_still_replaces_an_earlier_export(ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "exports" / "first"
    export_subset(ws, out, SubsetOptions(format="jsonl"))
    _export(ws, out)
    assert (out / "clips.csv").is_file() and not (out / "clips.jsonl").exists()


def test_report_force_shares_the_refusal(ws: Workspace) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is the optional `report` extra")
    (ws.path.parent / "provenance.json").write_text("{}")
    with pytest.raises(ExportError, match="holds the workspace"):
        build_report(ws, ws.path.parent, ReportOptions(force=True))
