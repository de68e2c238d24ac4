"""Generic manifest importer: both shapes in CSV and JSONL, errors, re-import, replace."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ambiscope.core.corpora import import_corpus, manifest
from ambiscope.core.corpora.base import ImportFormatError, ImportOptions
from ambiscope.db import Workspace

FIXTURES = Path(__file__).parent / "fixtures" / "manifest"
VOTE_FILES = ("votes.csv", "votes.jsonl")
COUNT_FILES = ("counts.csv", "counts.jsonl")


@pytest.fixture
def ws(tmp_path):
    with Workspace.open(tmp_path / "w.db", create=True) as workspace:
        yield workspace


def _votes(ws: Workspace, dataset_id: int, key: str) -> set[tuple[str, str, int, float]]:
    clip = ws.find_clip(dataset_id, key)
    assert clip is not None, key
    return {(v.annotator, v.label, v.rank, v.weight) for v in ws.clip_votes(clip.id)}


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("name", VOTE_FILES)
def test_vote_shape_imports_every_rater(ws, name):
    result = import_corpus(ws, "manifest", FIXTURES / name, ImportOptions())
    ds = result.dataset
    assert ds.name == "votes" and ds.format == "manifest"
    assert ds.label_set == ("neutral", "happy", "sad", "angry")
    assert result.clips_total == 3 and result.votes_written == 6
    assert _votes(ws, ds.id, "c1") == {
        ("r1", "happy", 0, 1.0),
        ("r2", "happy", 0, 1.0),
        ("r3", "neutral", 0, 1.0),
        ("r3", "sad", 1, 0.5),
    }
    assert _votes(ws, ds.id, "c2") == {("r1", "angry", 0, 1.0), ("r2", "angry", 0, 2.0)}
    assert _votes(ws, ds.id, "c3") == set()  # listed without votes
    c1 = ws.find_clip(ds.id, "c1")
    assert (c1.path, c1.sample_rate, c1.split, c1.speaker, c1.gender) == (
        "audio/c1.wav",
        8000,
        "train",
        "spk1",
        "F",
    )
    assert c1.duration == pytest.approx(0.1)
    assert c1.transcript == "Kids are talking by the door" and c1.meta == {"session": "s1"}
    c2 = ws.find_clip(ds.id, "c2")
    assert c2.path is None and c2.meta["source_path"] == "audio/missing.wav"
    assert ws.find_clip(ds.id, "c3").gender == "M"
    assert Path(ds.root) == FIXTURES.resolve()
    assert any("1 audio files not found" in w for w in result.warnings)
    raw = {v.raw_label for v in ws.clip_votes(c1.id)}
    assert "Happiness" in raw  # the spelling of the file is kept


@pytest.mark.parametrize("name", COUNT_FILES)
def test_count_shape_gives_weighted_pool_votes(ws, name):
    result = import_corpus(ws, "manifest", FIXTURES / name, ImportOptions())
    ds = result.dataset
    assert result.clips_total == 3 and result.votes_written == 4
    assert [a.external_id for a in ws.annotators(ds.id)] == ["crowd"]
    assert _votes(ws, ds.id, "c1") == {("crowd", "neutral", 0, 1.0), ("crowd", "happy", 0, 2.0)}
    assert _votes(ws, ds.id, "c2") == {("crowd", "sad", 0, 1.0), ("crowd", "angry", 0, 3.0)}
    assert _votes(ws, ds.id, "c3") == set()
    c1 = ws.find_clip(ds.id, "c1")
    assert c1.path == "audio/c1.wav" and c1.meta == {"recorded": "2023-01-02"}
    assert ds.options["manifest"]["shape"] == "counts"


def test_tsv_and_intended_label(ws, tmp_path):
    path = _write(
        tmp_path,
        "acted.tsv",
        [
            "Clip\tIntended_Label\tAnnotator\tLabel",
            "a\tAnger\tx\tsad",
            "a\t\ty\tangry",
        ],
    )
    result = import_corpus(ws, "manifest", path, ImportOptions())
    assert ws.find_clip(result.dataset.id, "a").intended_label == "angry"
    assert result.votes_written == 2


# ------------------------------------------------------------ re-import and replace
@pytest.mark.parametrize("name", VOTE_FILES + COUNT_FILES)
def test_reimport_is_idempotent(ws, name):
    import_corpus(ws, "manifest", FIXTURES / name, ImportOptions(name="m"))
    before = ws.table_counts()
    again = import_corpus(ws, "manifest", FIXTURES / name, ImportOptions(name="m"))
    assert again.clips_added == 0
    assert ws.table_counts() == before


def test_replace_drops_the_old_dataset(ws, tmp_path):
    import_corpus(ws, "manifest", FIXTURES / "votes.csv", ImportOptions(name="m"))
    smaller = _write(tmp_path, "v2.csv", ["clip,annotator,label", "c1,r9,sad"])
    kept = import_corpus(ws, "manifest", smaller, ImportOptions(name="m"))
    assert kept.clips_total == 3 and ws.count_votes(kept.dataset.id) == 7
    replaced = import_corpus(ws, "manifest", smaller, ImportOptions(name="m", replace=True))
    ds = replaced.dataset
    assert replaced.clips_total == 1 and ws.count_votes(ds.id) == 1
    assert _votes(ws, ds.id, "c1") == {("r9", "sad", 0, 1.0)}
    assert ws.find_clip(ds.id, "c1").path is None  # the new manifest has no path column


# -------------------------------------------------------------------------- paths
def test_audio_root_and_absolute_paths(ws, tmp_path):
    audio = tmp_path / "elsewhere"
    audio.mkdir()
    sf.write(audio / "x.wav", np.zeros(1600, dtype=np.float32), 16000)
    absolute = audio / "abs.wav"  # absolute paths are kept when inside the root
    sf.write(absolute, np.zeros(3200, dtype=np.float32), 16000)
    (tmp_path / "lists").mkdir()
    path = _write(
        tmp_path / "lists",
        "m.csv",
        [
            "clip,path,neutral",
            "x,x.wav,1",
            f"y,{absolute},2",
            "z,https://example.org/z.wav,1",
        ],
    )
    result = import_corpus(ws, "manifest", path, ImportOptions(audio_root=str(audio)))
    ds = result.dataset
    assert Path(ds.root) == audio.resolve()
    x, y, z = (ws.find_clip(ds.id, k) for k in "xyz")
    assert x.path == "x.wav" and x.duration == pytest.approx(0.1)
    assert y.path == str(absolute) and y.duration == pytest.approx(0.2)
    assert z.path is None and z.meta["source_path"] == "https://example.org/z.wav"
    assert any("remote audio" in w for w in result.warnings)


# ------------------------------------------------------------------------- errors
BAD_CSV = [
    ("clip,annotator,label,weight\n,r1,happy,1", 2, "clip", "empty clip id"),
    ("clip,annotator,label,weight\nc,r1,happy,lots", 2, "weight", "expected a number"),
    ("clip,annotator,label,weight\nc,r1,happy,-1", 2, "weight", ">= 0"),
    ("clip,annotator,label,rank\nc,r1,happy,0.5", 2, "rank", "whole number"),
    ("clip,annotator,label,kind\nc,r1,happy,robot", 2, "kind", "unknown kind"),
    ("clip,annotator,label\nc,,happy", 2, "annotator", "empty annotator"),
    ("clip,annotator,label\nc,r1,", 2, "label", "empty label"),
    ("clip,annotator,label\nc,r1,happy\nc,r1,Happiness", 3, "label", "first at line 2"),
    ("clip,path,annotator,label\nc,a.wav,r1,happy\nc,b.wav,r2,sad", 3, "path", "'a.wav'"),
    ("clip,annotator,label\nc,r1,happy,extra", 2, None, "4 fields but the header has 3"),
    ("id,annotator,label\nc,r1,happy", 1, "clip", "missing required column"),
    ("clip,annotator\nc,r1", 1, "label", "needs a label column"),
    ("clip,path,mood\nc,a.wav,glum", 1, "header", "cannot tell the shape"),
    ("clip,path,key,happy\nc,a.wav,k,1", 1, "header", "clip and key both"),
    ("clip,happy,sad\nc,1,x", 2, "sad", "expected a number"),
    ("clip,happy,sad\nc,1,2\nc,1,2", 3, "clip", "duplicate clip 'c'"),
    ("clip,happy,happiness\nc,1,2", 2, "happiness", "both count 'happy'"),
    ("clip,intended_label,happy\nc,glum,1", 2, "intended_label", "unknown emotion"),
]


@pytest.mark.parametrize(("text", "line", "field", "message"), BAD_CSV)
def test_bad_csv_names_file_line_and_field(ws, tmp_path, text, line, field, message):
    path = tmp_path / "bad.csv"
    path.write_text(text + "\n")
    before = ws.table_counts()
    with pytest.raises(ImportFormatError) as info:
        import_corpus(ws, "manifest", path, ImportOptions())
    error = info.value
    assert (error.path, error.line, error.field) == (str(path), line, field)
    prefix = f"{path}:{line}: " + (f"{field}: " if field else "")
    assert str(error).startswith(prefix) and message in str(error)
    assert ws.table_counts() == before  # nothing written


BAD_JSONL = [
    (
        '{"clip": "c", "annotator": "r", "label": "sad"}\n{"clip": "d", "annotator"',
        2,
        None,
        "bad JSON line",
    ),
    (
        '{"clip": "c", "annotator": "r", "label": "sad"}\n["c", "r", "sad"]',
        2,
        None,
        "expected a JSON object",
    ),
    (
        '{"clip": "c", "annotator": "r", "label": "sad"}\n{"annotator": "r", "label": "sad"}',
        2,
        "clip",
        "empty clip id",
    ),
    (
        '{"clip": "c", "annotator": "r", "label": "sad", "weight": "heavy"}',
        1,
        "weight",
        "expected a number",
    ),
    (
        '{"clip": "c", "annotator": "r", "label": "sad", "weight": true}',
        1,
        "weight",
        "expected a number",
    ),
    ('{"clip": "c", "counts": {"sad": -2}}', 1, "counts.sad", ">= 0"),
    ('{"clip": "c", "counts": ["sad"]}', 1, "counts", "expected an object"),
]


@pytest.mark.parametrize(("text", "line", "field", "message"), BAD_JSONL)
def test_bad_jsonl_names_file_line_and_field(ws, tmp_path, text, line, field, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(text + "\n")
    with pytest.raises(ImportFormatError) as info:
        import_corpus(ws, "manifest", path, ImportOptions())
    assert (info.value.line, info.value.field) == (line, field)
    assert str(info.value).startswith(f"{path}:{line}: ") and message in str(info.value)
    assert ws.count_clips() == 0


def test_skip_bad_keeps_the_good_rows(ws, tmp_path):
    rows = [
        {"clip": "a", "annotator": "r1", "label": "happy"},
        {"clip": "a", "annotator": "r2", "label": "sad", "weight": -1},
        {"clip": "", "annotator": "r2", "label": "sad"},
        {"clip": "b", "annotator": "r1", "label": "neutral", "path": "b.wav"},
        {"clip": "b", "annotator": "r2", "label": "neutral", "path": "other.wav"},
    ]
    lines = [json.dumps(r) for r in rows]
    lines.insert(2, "{not json")
    path = _write(tmp_path, "mixed.jsonl", lines)
    result = import_corpus(ws, "manifest", path, ImportOptions(skip_bad=True))
    assert result.bad_lines == 4
    assert result.clips_total == 2 and result.votes_written == 2
    assert [e.split(": ")[0].rsplit(":", 1)[1] for e in result.bad_examples] == [
        "3",
        "2",
        "4",
        "6",
    ]  # JSON errors are found while loading, row errors while reading
    assert _votes(ws, result.dataset.id, "a") == {("r1", "happy", 0, 1.0)}


def test_unknown_folder_and_extension(tmp_path):
    with pytest.raises(ImportFormatError, match="unknown manifest extension"):
        manifest.read(_write(tmp_path, "m.txt", ["clip"]), ImportOptions())
    with pytest.raises(ImportFormatError, match="is a folder"):
        manifest.read(tmp_path, ImportOptions())
    with pytest.raises(ImportFormatError, match="empty file"):
        manifest.read(_write(tmp_path, "e.csv", []), ImportOptions())


# ------------------------------------------------------------------ label mapping
def test_unknown_label_lists_counts_and_map_fixes_it(ws, tmp_path):
    path = _write(
        tmp_path,
        "odd.csv",
        [
            "clip,annotator,label",
            "a,r1,Annoyed",
            "a,r2,annoyed",
            "a,r3,glum",
            "b,r1,happy",
        ],
    )
    with pytest.raises(ImportFormatError) as info:
        import_corpus(ws, "manifest", path, ImportOptions())
    assert "'Annoyed' x1" in str(info.value) and "'glum' x1" in str(info.value)
    assert "'annoyed' x1" in str(info.value) and "--map" in str(info.value)
    assert ws.table_counts()["clips"] == 0
    result = import_corpus(
        ws, "manifest", path, ImportOptions(label_map={"annoyed": "angry", "glum": "sad"})
    )
    assert _votes(ws, result.dataset.id, "a") == {
        ("r1", "angry", 0, 1.0),
        ("r2", "angry", 0, 1.0),
        ("r3", "sad", 0, 1.0),
    }


def test_count_columns_need_a_mapping_for_new_words(ws, tmp_path):
    path = _write(tmp_path, "c.csv", ["clip,happy,annoyed,other_notes,Other", "a,1,2,hm,1"])
    plain = import_corpus(ws, "manifest", path, ImportOptions(name="plain"))
    clip = ws.find_clip(plain.dataset.id, "a")
    assert clip.meta == {"annoyed": "2", "other_notes": "hm"}  # not labels: metadata
    assert _votes(ws, plain.dataset.id, "a") == {
        ("crowd", "happy", 0, 1.0),
        ("crowd", "other", 0, 1.0),
    }
    mapped = import_corpus(
        ws, "manifest", path, ImportOptions(name="mapped", label_map={"annoyed": "angry"})
    )
    assert _votes(ws, mapped.dataset.id, "a") == {
        ("crowd", "happy", 0, 1.0),
        ("crowd", "angry", 0, 2.0),
        ("crowd", "other", 0, 1.0),
    }
    nested = _write(tmp_path, "n.jsonl", ['{"clip": "a", "counts": {"annoyed": 2}}'])
    with pytest.raises(ImportFormatError, match="'annoyed' x1"):
        import_corpus(ws, "manifest", nested, ImportOptions(name="nested"))


def test_fixture_copy_with_varying_extra_column_warns(ws, tmp_path):
    shutil.copy(FIXTURES / "votes.csv", tmp_path / "v.csv")
    text = (
        (tmp_path / "v.csv")
        .read_text()
        .replace("r2,happy,,,train,spk1,female,,s1", "r2,happy,,,train,spk1,female,,s9")
    )
    (tmp_path / "v.csv").write_text(text)
    result = import_corpus(ws, "manifest", tmp_path / "v.csv", ImportOptions())
    assert "session" not in ws.find_clip(result.dataset.id, "c1").meta
    assert ws.find_clip(result.dataset.id, "c2").meta["session"] == "s2"
    assert any("session differ between votes" in w for w in result.warnings)


def test_merge_excited_sums_counts_and_keeps_a_raters_primary(ws, tmp_path):
    counts = _write(tmp_path, "c.csv", ["clip,happy,excited,sad", "a,2,1,1"])
    result = import_corpus(ws, "manifest", counts, ImportOptions(merge_excited=True))
    assert _votes(ws, result.dataset.id, "a") == {
        ("crowd", "happy", 0, 3.0),
        ("crowd", "sad", 0, 1.0),
    }
    votes = _write(
        tmp_path,
        "v.csv",
        [
            "clip,annotator,label,rank",
            "a,r1,excited,1",
            "a,r1,happy,0",
            "a,r2,excited,0",
        ],
    )
    merged = import_corpus(ws, "manifest", votes, ImportOptions(merge_excited=True))
    assert _votes(ws, merged.dataset.id, "a") == {("r1", "happy", 0, 1.0), ("r2", "happy", 0, 1.0)}
    assert merged.dataset.label_set == ("happy",)
