"""Curated subsets: formats, Label Studio round trip, safe names, atomicity, snapshots."""

from __future__ import annotations

import csv
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from ambiscope.core.audio import write_wav
from ambiscope.core.corpora import import_corpus
from ambiscope.core.corpora.base import ImportOptions
from ambiscope.core.export._common import ExportError, NameAllocator, safe_stem
from ambiscope.core.export.label_studio import labeling_config
from ambiscope.core.export.subset import SubsetOptions, export_subset
from ambiscope.db import ClipIn, Prediction, VoteIn, Workspace
from tests.core.test_export_data import demo_db, demo_template  # noqa: F401

LABELS = ("neutral", "happy", "sad", "angry")


def _metadata(out: Path) -> list[dict]:
    """Every row of an audiofolder export's per-split metadata.parquet files."""
    pq = pytest.importorskip("pyarrow.parquet")
    return [
        row
        for path in sorted(out.glob("*/metadata.parquet"))
        for row in pq.read_table(path).to_pylist()
    ]


def _manual_dataset(ws: Workspace, root: Path, keys: list[str], audio: list[bool]) -> int:
    """A small dataset with hostile clip keys; clips with audio get a real WAV file."""
    ds = ws.add_dataset("manual", "manifest", LABELS, root=str(root))
    clips = []
    for i, (key, has_audio) in enumerate(zip(keys, audio, strict=True)):
        path = None
        if has_audio:
            write_wav(root / f"f{i}.wav", np.zeros(1600, dtype=np.float32), 16000)
            path = f"f{i}.wav"
        clips.append(ClipIn(key=key, path=path, split="test", transcript=f"line {i}"))
    ws.add_clips(ds.id, clips)
    ids = ws.clip_ids(ds.id)
    raters = ws.ensure_annotators(ds.id, [("r1", "human"), ("r2", "human"), ("me", "self")])
    votes = []
    for key in keys:
        votes += [VoteIn(ids[key], raters["r1"], "happy"), VoteIn(ids[key], raters["r2"], "sad")]
    votes.append(VoteIn(ids[keys[0]], raters["me"], "angry"))
    ws.add_votes(ds.id, votes)
    return ds.id


# ------------------------------------------------------------------------------ formats
def test_audiofolder_copies_audio_and_writes_metadata(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "af"
    with Workspace.open(demo_db) as ws:
        clip = ws.clips(1)[0]
        ws.set_flag(clip.id, "odd-prosody", True)
        ws.set_tag(clip.id, "review", True)
        ws.set_note(clip.id, "sounds sad, not fearful", author="me")
        result = export_subset(
            ws, out, SubsetOptions(where="flagged", format="audiofolder", strategies=("vote",))
        )
    assert result.exported == 1 and result.selected == 1
    (record,) = _metadata(out)
    assert record["file_name"] == f"audio/{clip.key}.wav"
    audio = out / record["split"] / record["file_name"]
    assert audio.is_file() and not audio.is_symlink()
    assert audio.read_bytes() == Path(record["source_path"]).read_bytes()
    assert record["flags"] == ["odd-prosody"] and record["tags"] == ["review"]
    assert record["notes"] == [{"author": "me", "body": "sounds sad, not fearful"}]
    assert abs(sum(record["human"].values()) - 1) < 1e-5
    assert record["ambiguity"] in ("low", "medium", "high")
    assert list(record["human"])[record["majority"]] == max(
        record["human"], key=record["human"].get
    )
    assert {v["kind"] for v in record["votes"]} == {"human"}
    assert {(p["run_label"], p["strategy"]) for p in record["predictions"]} == {
        ("good", "vote"),
        ("poor", "vote"),
    }
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["filter"] == "flagged"
    assert prov["counts"]["exported"] == 1
    assert prov["workspace"]["schema_version"] >= 1
    assert [r["config"]["quality"] for r in prov["runs"]] == [0.8, 0.3]
    assert prov["ambiscope"]


def test_link_makes_symlinks(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    with Workspace.open(demo_db) as ws:
        export_subset(ws, tmp_path / "l", SubsetOptions(where="split:test", link=True))
    files = list((tmp_path / "l" / "test" / "audio").iterdir())
    assert len(files) == 15
    assert all(f.is_symlink() and f.resolve().is_file() for f in files)


def test_csv_and_jsonl_carry_the_same_fields(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    with Workspace.open(demo_db) as ws:
        export_subset(ws, tmp_path / "c", SubsetOptions(where="ambiguity:high", format="csv"))
        export_subset(ws, tmp_path / "j", SubsetOptions(where="ambiguity:high", format="jsonl"))
    rows = list(csv.DictReader((tmp_path / "c" / "clips.csv").open()))
    records = [json.loads(x) for x in (tmp_path / "j" / "clips.jsonl").read_text().splitlines()]
    assert len(rows) == len(records) == 20
    assert list(rows[0]) == list(records[0])
    assert json.loads(rows[0]["human"]) == records[0]["human"]
    assert len(json.loads(rows[0]["predictions"])) == 12  # 2 runs x 6 strategies
    assert not (tmp_path / "c" / "audio").exists()


def test_clips_without_audio_are_skipped_or_kept(tmp_path: Path) -> None:
    with Workspace.open(tmp_path / "ws.db", create=True) as ws:
        _manual_dataset(ws, tmp_path / "src", ["a", "b", "c"], [True, False, True])
        os.remove(tmp_path / "src" / "f2.wav")  # c's file went missing
        result = export_subset(ws, tmp_path / "af", SubsetOptions(format="audiofolder"))
        assert (result.exported, result.skipped_no_audio, result.skipped_missing_file) == (1, 1, 1)
        assert "without audio" in result.summary()
        kept = export_subset(ws, tmp_path / "j", SubsetOptions(format="jsonl"))
    assert kept.exported == 3
    records = [json.loads(x) for x in (tmp_path / "j" / "clips.jsonl").read_text().splitlines()]
    assert [r["source_path"] is None for r in records] == [False, True, False]
    assert records[0]["predictions"] == []
    assert {v["kind"] for v in records[0]["votes"]} == {"human", "self"}


# ------------------------------------------------------------------------------ safety
def test_hostile_clip_keys_become_safe_unique_names(tmp_path: Path) -> None:
    keys = ["../../etc/passwd", "a/b", "A/B", "/abs/path", "..", "con"]
    with Workspace.open(tmp_path / "ws.db", create=True) as ws:
        _manual_dataset(ws, tmp_path / "src", keys, [True] * len(keys))
        export_subset(ws, tmp_path / "out", SubsetOptions(format="audiofolder"))
    names = sorted(p.name for p in (tmp_path / "out" / "test" / "audio").iterdir())
    assert names == sorted(
        ["etc_passwd.wav", "a_b.wav", "A_B-2.wav", "abs_path.wav", "clip.wav", "con_.wav"]
    )
    assert {"out", "src"} <= set(os.listdir(tmp_path))
    assert not (tmp_path / "etc").exists() and not (tmp_path / "a").exists()
    for record in _metadata(tmp_path / "out"):
        name = record["file_name"]
        assert not os.path.isabs(name) and ".." not in Path(name).parts


def test_safe_names_unit() -> None:
    assert safe_stem("../../etc/passwd") == "etc_passwd"
    assert safe_stem("C:\\Windows\\x") == "C_Windows_x"
    assert safe_stem(".hidden") == "hidden"
    assert len(safe_stem("x" * 500)) == 100
    names = NameAllocator()
    assert [names.allocate(k, ".wav") for k in ("a", "A", "a")] == ["a.wav", "A-2.wav", "a-3.wav"]


def test_non_empty_output_needs_force(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"
    with Workspace.open(demo_db) as ws:
        export_subset(ws, out, SubsetOptions(where="split:test", format="csv"))
        (out / "keep.txt").write_text("mine")
        with pytest.raises(ExportError, match="--force"):
            export_subset(ws, out, SubsetOptions(where="split:test"))
        assert (out / "keep.txt").read_text() == "mine"
        export_subset(ws, out, SubsetOptions(where="split:test", force=True))
    assert not (out / "keep.txt").exists() and (out / "test" / "metadata.parquet").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temp/backup


def test_failure_leaves_nothing_half_written(
    demo_db: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shutil

    calls = {"n": 0}
    real = shutil.copyfile

    def flaky(src: str, dst: str) -> str:
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr("ambiscope.core.export.subset.shutil.copyfile", flaky)
    with Workspace.open(demo_db) as ws, pytest.raises(OSError, match="disk full"):
        export_subset(ws, tmp_path / "out", SubsetOptions(where="split:train"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".out", "out"))]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (SubsetOptions(where="flag:never"), "no clips match"),
        (SubsetOptions(where="bogus:1"), "unknown filter field"),
        (SubsetOptions(runs=(42,)), "no run"),
        (SubsetOptions(strategies=("nope",)), "nope"),
        (SubsetOptions(datasets=("nope",)), "no dataset"),
        (SubsetOptions(where="disagree", runs=(1,)), "needs a run and a strategy"),
    ],
)
def test_bad_input_fails_before_writing(demo_db: Path, tmp_path: Path, options, message) -> None:  # noqa: F811
    with Workspace.open(demo_db) as ws, pytest.raises(Exception, match=message) as info:
        export_subset(ws, tmp_path / "out", options)
    assert "\n" not in str(info.value)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".out", "out"))]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ExportError, match="--format"):
        SubsetOptions(format="xlsx")


# ------------------------------------------------------------------------------ Label Studio
def test_label_studio_config() -> None:
    config = labeling_config(["neutral", "happy"], transcript=True)
    assert '<Audio name="audio" value="$audio"/>' in config
    assert '<Choices name="emotion" toName="audio" choice="multiple"' in config
    assert '<Choice value="happy"/>' in config and "$transcript" in config
    import xml.dom.minidom

    xml.dom.minidom.parseString(config)  # well-formed


def test_label_studio_round_trip(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "ls"
    with Workspace.open(demo_db) as ws:
        result = export_subset(
            ws,
            out,
            SubsetOptions(where="ambiguity:high", format="label-studio", strategies=("wbon",)),
        )
        keys = {c.key for c in ws.clips(1)}
    tasks = json.loads((out / "tasks.json").read_text())
    assert len(tasks) == result.exported == 20
    first = tasks[0]
    assert first["data"]["audio"].startswith("/data/local-files/?d=audio/")
    assert {p["model_version"] for p in first["predictions"]} == {"good / wbon", "poor / wbon"}
    choice = first["predictions"][0]["result"][0]
    assert choice["from_name"] == "emotion" and choice["to_name"] == "audio"
    assert 0 < choice["score"] <= 1
    # three people re-annotate; the last one picks two emotions
    for task in tasks:
        task["annotations"] = [
            _annotation(1, ["happy"]),
            _annotation(2, ["sad"]),
            _annotation(3, ["angry", "disgust"]),
        ]
    export = tmp_path / "project-1-export.json"
    export.write_text(json.dumps(tasks))
    with Workspace.open(tmp_path / "ws2.db", create=True) as ws2:
        imported = import_corpus(
            ws2, "label-studio", export, ImportOptions(name="relabel", audio_root=str(out))
        )
        clips = ws2.clips(imported.dataset.id)
        assert imported.clips_total == 20
        assert {c.key for c in clips} <= keys
        assert all(c.path for c in clips)  # audio resolved inside the export folder
        assert imported.votes_written == 20 * 4
        votes = ws2.clip_votes(clips[0].id)
        assert {v.annotator for v in votes} == {"ls-1", "ls-2", "ls-3"}
        assert {(v.annotator, v.rank) for v in votes if v.label == "disgust"} == {("ls-3", 1)}
        assert clips[0].split and clips[0].transcript
    assert any("kept 40 model predictions" in w for w in imported.warnings)


def _annotation(rater: int, labels: list[str]) -> dict:
    return {
        "completed_by": rater,
        "result": [
            {
                "from_name": "emotion",
                "to_name": "audio",
                "type": "choices",
                "value": {"choices": labels},
            }
        ],
    }


# ------------------------------------------------------------------------------ snapshot
def test_export_reads_one_state_while_a_worker_writes(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    """A writer rewrites every prediction of a run and a marker flag in one transaction,
    over and over; each export must see all predictions and the flag from one version."""
    stop = threading.Event()
    versions: list[int] = []

    def writer() -> None:
        with Workspace.open(demo_db) as other:
            ids = [c.id for c in other.clips(1)]
            version = 0
            while not stop.is_set():
                version += 1
                label = version % 6
                dist = np.eye(6)[label]
                with other.transaction():
                    other.add_predictions(Prediction(1, "vote", cid, dist) for cid in ids)
                    other.conn.execute("DELETE FROM flags WHERE name LIKE 'v%'")
                    other.conn.execute(
                        "INSERT INTO flags (clip_id, name) VALUES (?, ?)", (ids[0], f"v{label}")
                    )
                versions.append(version)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(1000):  # let the writer commit once before the first export
            if versions:
                break
            threading.Event().wait(0.01)
        with Workspace.open(demo_db) as ws:
            for i in range(6):
                out = tmp_path / f"snap{i}"
                export_subset(
                    ws, out, SubsetOptions(format="jsonl", runs=(1,), strategies=("vote",))
                )
                records = [json.loads(x) for x in (out / "clips.jsonl").read_text().splitlines()]
                labels = {r["predictions"][0]["label"] for r in records}
                flags = [f for r in records for f in r["flags"] if f.startswith("v")]
                dists = {json.dumps(r["predictions"][0]["distribution"]) for r in records}
                if len(flags) == 1:
                    assert len(dists) == 1, f"export {i} mixed versions"
                    dist = records[0]["predictions"][0]["distribution"]
                    winner = list(dist).index(max(dist, key=dist.get))
                    assert flags[0] == f"v{winner}", f"export {i}: flag and predictions disagree"
                assert labels
                prov = json.loads((out / "provenance.json").read_text())
                assert prov["counts"]["exported"] == len(records) == 60
                assert prov["counts"]["predictions"] == 60
    finally:
        stop.set()
        thread.join()
    assert versions, "the writer never committed"
