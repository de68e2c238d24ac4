"""Label Studio importer: JSON and JSON-MIN exports of an audio classification project."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from ambiscope.core.corpora import import_corpus, label_studio
from ambiscope.core.corpora.base import ImportFormatError, ImportOptions
from ambiscope.db import Workspace

FIXTURES = Path(__file__).parent / "fixtures" / "label_studio"
EXPORT = FIXTURES / "export.json"


@pytest.fixture
def ws(tmp_path):
    with Workspace.open(tmp_path / "w.db", create=True) as workspace:
        yield workspace


def _tasks() -> list[dict[str, Any]]:
    return json.loads(EXPORT.read_text())


def _dump(tmp_path: Path, tasks: Any, name: str = "export.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(tasks))
    return path


def _votes(ws: Workspace, dataset_id: int, key: str) -> set[tuple[str, str, int]]:
    clip = ws.find_clip(dataset_id, key)
    assert clip is not None, key
    return {(v.annotator, v.label, v.rank) for v in ws.clip_votes(clip.id)}


def _wav(path: Path, frames: int = 800, rate: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(frames, dtype=np.float32), rate)


# ------------------------------------------------------------------------ JSON export
def test_export_imports_raters_choices_and_empty_tasks(ws):
    result = import_corpus(ws, "label-studio", EXPORT, ImportOptions())
    ds = result.dataset
    assert ds.name == "export" and ds.format == "label-studio"
    assert ds.label_set == ("neutral", "happy", "sad", "angry", "surprise")
    assert result.clips_total == 5 and result.votes_written == 7
    # two raters, one with two choices (rank 0 then 1); the cancelled one (ls-3) skipped
    assert _votes(ws, ds.id, "ses01_happy") == {
        ("ls-1", "happy", 0),
        ("ls-2", "happy", 0),
        ("ls-2", "surprise", 1),
    }
    assert _votes(ws, ds.id, "ses02_sad") == {
        ("ls-1", "sad", 0),
        ("ls-2", "neutral", 0),
        ("ls-3", "sad", 0),
    }
    assert _votes(ws, ds.id, "ses03-custom") == set()  # data.key, empty annotations
    assert _votes(ws, ds.id, "ses05") == set()  # no annotations key at all
    assert _votes(ws, ds.id, "ses04_angry") == {("ls-2", "angry", 0)}
    assert sorted(a.external_id for a in ws.annotators(ds.id)) == ["ls-1", "ls-2", "ls-3"]
    assert any("skipped 1 cancelled" in w for w in result.warnings)


def test_clip_fields_meta_and_audio_without_root(ws):
    result = import_corpus(ws, "label-studio", EXPORT, ImportOptions())
    ds = result.dataset
    ses01 = ws.find_clip(ds.id, "ses01_happy")
    assert (ses01.speaker, ses01.gender, ses01.path) == ("spk1", "F", None)
    assert ses01.meta == {
        "session": "ses01",
        "ls_task_id": 101,
        "audio_url": "/data/upload/1/3f2a9c1e-ses01_happy.wav",
    }
    ses02 = ws.find_clip(ds.id, "ses02_sad")  # relative path next to the export
    assert (ses02.path, ses02.sample_rate, ses02.split) == ("audio/ses02_sad.wav", 8000, "test")
    assert ses02.duration == pytest.approx(0.1)
    assert Path(ds.root) == FIXTURES.resolve()
    remote = ws.find_clip(ds.id, "ses03-custom")
    assert remote.path is None and remote.meta["audio_url"].startswith("s3://")
    assert any("audio not found for 4 clips" in w and "--audio-root" in w for w in result.warnings)


def test_predictions_are_kept_not_voted(ws):
    parsed = label_studio.read(EXPORT, ImportOptions())
    assert parsed.predictions == [
        {
            "clip_key": "ses01_happy",
            "task_id": 101,
            "model_version": "alm-v1",
            "labels": ["Happy"],
            "label": "Happy",
            "score": 0.8,
        },
        {
            "clip_key": "ses02_sad",
            "task_id": 102,
            "model_version": "alm-v2",
            "labels": ["Neutral"],
            "label": "Neutral",
            "score": 0.55,
        },
    ]
    assert parsed.options["label_studio"]["predictions"] == 2
    result = import_corpus(ws, "label-studio", EXPORT, ImportOptions())
    assert "kept 2 model predictions (alm-v1 x1, alm-v2 x1)" in result.summary()
    assert all(a.kind == "human" for a in ws.annotators(result.dataset.id))


def test_reimport_is_idempotent(ws):
    import_corpus(ws, "label-studio", EXPORT, ImportOptions())
    before = ws.table_counts()
    again = import_corpus(ws, "label-studio", EXPORT, ImportOptions())
    assert again.clips_added == 0 and ws.table_counts() == before


def test_audio_root_resolves_upload_and_local_files_urls(ws, tmp_path):
    media = tmp_path / "media"
    _wav(media / "upload" / "1" / "3f2a9c1e-ses01_happy.wav", frames=1600)
    _wav(media / "corpus" / "ses04_angry.wav", frames=2400)
    result = import_corpus(ws, "label-studio", EXPORT, ImportOptions(audio_root=str(media)))
    ds = result.dataset
    assert Path(ds.root) == media.resolve()
    ses01 = ws.find_clip(ds.id, "ses01_happy")
    assert ses01.path == "upload/1/3f2a9c1e-ses01_happy.wav"
    assert ses01.duration == pytest.approx(0.2) and "audio_url" not in ses01.meta
    assert ws.find_clip(ds.id, "ses04_angry").path == "corpus/ses04_angry.wav"
    # relative data.audio now resolves against --audio-root, where it is absent
    assert ws.find_clip(ds.id, "ses02_sad").path is None


def test_upload_url_found_under_its_original_name(tmp_path):
    originals = tmp_path / "originals"
    _wav(originals / "ses01_happy.wav")
    parsed = label_studio.read(EXPORT, ImportOptions(audio_root=str(originals)))
    assert parsed.clips[0].path == "ses01_happy.wav"


def test_absolute_local_path_and_local_files_default_root(tmp_path):
    audio = tmp_path / "a b" / "clip7.wav"
    _wav(audio)
    tasks = [
        {"id": 1, "data": {"audio": str(audio)}, "annotations": []},
        {
            "id": 2,
            "data": {
                "audio": f"/data/local-files/?d={str(audio)[1:].replace(' ', '%20')}",
                "clip": "c2",
            },
            "annotations": [],
        },
        {"id": 3, "data": {"audio": "https://host/stream?id=3"}, "annotations": []},
    ]
    parsed = label_studio.read(_dump(tmp_path / "a b", tasks), ImportOptions())
    assert [c.key for c in parsed.clips] == ["clip7", "c2", "task-3"]
    assert parsed.clips[0].path == "clip7.wav"  # inside the export's folder: relative
    assert parsed.clips[1].path == "clip7.wav" and parsed.clips[1].duration == pytest.approx(0.1)
    assert parsed.clips[2].path is None


def test_hash_prefix_only_stripped_from_upload_urls(tmp_path):
    tasks = [
        {"id": 1, "data": {"audio": "http://ls:8080/data/upload/4/0badcafe-a.wav"}},
        {"id": 2, "data": {"audio": "recordings/0badcafe-b.wav"}},
        {"id": 3, "data": {"audio": "/data/upload/4/notahash-c.wav"}},
    ]
    parsed = label_studio.read(_dump(tmp_path, tasks), ImportOptions())
    assert [c.key for c in parsed.clips] == ["a", "0badcafe-b", "notahash-c"]


# ------------------------------------------------------------------------ raters
def test_rater_ids_and_repeated_annotations(tmp_path):
    result = [
        {
            "type": "choices",
            "from_name": "emotion",
            "to_name": "audio",
            "value": {"choices": ["Sad"]},
        }
    ]
    later = copy.deepcopy(result)
    later[0]["value"]["choices"] = ["Angry"]
    tasks = [
        {
            "id": 1,
            "data": {"audio": "x.wav"},
            "annotations": [
                {"id": 11, "completed_by": 5, "result": result},
                {"id": 12, "completed_by": 5, "result": later},
                {"id": 13, "result": result},
                {"id": 14, "completed_by": {"email": "a@b.org"}, "result": result},
                {"id": 15, "completed_by": 6, "result": []},
            ],
        }
    ]
    parsed = label_studio.read(_dump(tmp_path, tasks), ImportOptions())
    assert {(v.annotator, v.label) for v in parsed.votes} == {
        ("ls-5", "Angry"),
        ("ls-annotation-13", "Sad"),
        ("ls-a@b.org", "Sad"),
    }
    assert any("1 annotations replaced by a later one" in w for w in parsed.warnings)
    assert any("1 annotations chose nothing" in w for w in parsed.warnings)


def test_merge_excited_keeps_the_first_choice(ws, tmp_path):
    result = [
        {
            "type": "choices",
            "from_name": "emotion",
            "to_name": "audio",
            "value": {"choices": ["Excited", "Happy", "Sad"]},
        }
    ]
    tasks = [
        {
            "id": 1,
            "data": {"audio": "x.wav"},
            "annotations": [{"id": 2, "completed_by": 1, "result": result}],
        }
    ]
    imported = import_corpus(
        ws, "label-studio", _dump(tmp_path, tasks), ImportOptions(merge_excited=True)
    )
    assert _votes(ws, imported.dataset.id, "x") == {("ls-1", "happy", 0), ("ls-1", "sad", 2)}


def test_several_controls_need_from_name(tmp_path):
    tasks = _tasks()
    for task in tasks:
        for ann in task.get("annotations", []):
            for res in ann["result"]:
                if res["from_name"] == "emotion":
                    res["from_name"] = "feeling"
    path = _dump(tmp_path, tasks)
    with pytest.raises(ImportFormatError) as info:
        label_studio.read(path, ImportOptions())
    assert info.value.field == "from_name" and "feeling, quality" in str(info.value)
    parsed = label_studio.read(path, ImportOptions(extra={"from_name": "feeling"}))
    assert len(parsed.votes) == 7
    assert parsed.predictions == []  # predictions still name "emotion"


# ------------------------------------------------------------------------ errors
def test_bad_json_names_the_file_and_line(ws, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"id": 1, "data": {"audio": "a.wav"}},\n  {"id": 2,, }\n]')
    with pytest.raises(ImportFormatError) as info:
        import_corpus(ws, "label-studio", path, ImportOptions())
    assert str(info.value).startswith(f"{path}:3: invalid JSON")
    assert ws.count_clips() == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"tasks": []}, "expected a JSON list"),
        ([], "no tasks"),
        ([1, 2], "not a Label Studio export"),
    ],
)
def test_not_an_export(tmp_path, payload, message):
    with pytest.raises(ImportFormatError, match=message):
        label_studio.read(_dump(tmp_path, payload), ImportOptions())


def test_task_without_audio_names_task_and_field(ws, tmp_path):
    tasks = _tasks()
    del tasks[1]["data"]["audio"]
    path = _dump(tmp_path, tasks)
    before = ws.table_counts()
    with pytest.raises(ImportFormatError) as info:
        import_corpus(ws, "label-studio", path, ImportOptions())
    assert info.value.field == "data.audio"
    assert str(info.value) == f"{path}: data.audio: task id 102 (index 1): no audio"
    assert ws.table_counts() == before


def test_skip_bad_skips_broken_tasks(ws, tmp_path):
    tasks = _tasks()
    del tasks[1]["data"]["audio"]
    tasks.append({"id": 106, "data": {"audio": "/elsewhere/ses05.mp3"}})  # key ses05 again
    tasks.append({"id": 107, "data": "not an object"})
    tasks.append({"id": 108, "data": {"audio": "z.wav"}, "annotations": {"oops": 1}})
    tasks.append("not a task")
    result = import_corpus(ws, "label-studio", _dump(tmp_path, tasks), ImportOptions(skip_bad=True))
    assert result.bad_lines == 5 and result.clips_total == 4
    examples = "\n".join(result.bad_examples)
    assert (
        "data.key: task id 106 (index 5): clip key 'ses05' already used by task id 105" in examples
    )
    assert "data: task id 107 (index 6): expected an object" in examples
    assert "annotations: task id 108 (index 7)" in examples
    assert ws.find_clip(result.dataset.id, "ses02_sad") is None


# ------------------------------------------------------------------------ JSON-MIN
def test_json_min_export(ws):
    result = import_corpus(ws, "label-studio", FIXTURES / "export-min.json", ImportOptions())
    ds = result.dataset
    assert result.clips_total == 2 and result.votes_written == 5
    assert _votes(ws, ds.id, "ses01_happy") == {
        ("ls-1", "happy", 0),
        ("ls-rater2@example.org", "happy", 0),
        ("ls-rater2@example.org", "surprise", 1),
    }
    assert ws.find_clip(ds.id, "ses02_sad").path == "audio/ses02_sad.wav"
    assert ds.options["label_studio"]["export"] == "json-min"
    assert any("JSON-MIN export" in w for w in result.warnings)


def test_json_min_needs_the_choices_field_named(tmp_path):
    shutil.copy(FIXTURES / "export-min.json", tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text().replace('"emotion"', '"feeling"')
    records = [r for r in json.loads(text) if isinstance(r["feeling"], str)]
    path = _dump(tmp_path, records, "plain.json")
    with pytest.raises(ImportFormatError, match="from_name option") as info:
        label_studio.read(path, ImportOptions())
    assert "feeling" in str(info.value)
    parsed = label_studio.read(path, ImportOptions(extra={"from_name": "feeling"}))
    assert [v.label for v in parsed.votes] == ["Happy", "Sad", "Neutral"]
