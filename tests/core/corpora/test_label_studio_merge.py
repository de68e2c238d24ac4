"""Label Studio round trip: ambiscope's label-studio export, re-annotated and exported by
Label Studio 1.23, merges back onto the same clips of the same workspace.

The exports below are built field by field as Label Studio writes them. Checked against
HumanSignal/label-studio `label_studio/data_export/serializers.py` (the task export:
`annotations`, `predictions`, `drafts`, `file_upload`, ...; `SerializationOptionsSerializer`
has `predictions.only_id`, which is why an export may list predictions as bare ids) and
the docs' "Label Studio JSON format of annotated tasks" (annotation fields `id`,
`completed_by`, `result`, `was_cancelled`, `ground_truth`, `lead_time`, `result_count`,
`task`, ...), and for JSON-MIN against the converter's `convert_to_json_min` (label-studio-sdk
`converter.py`: the task data flattened, `id`, one key per control with a single choice as
a string and several as `{"choices": [...]}`, `annotator` as the user id, `annotation_id`,
`created_at`, `updated_at`, `lead_time`; cancelled annotations are not exported).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ambiscope.core.corpora import import_corpus
from ambiscope.core.corpora.base import ImportFormatError, ImportOptions
from ambiscope.core.corpora.ls_merge import MergeResult
from ambiscope.core.export.subset import SubsetOptions, export_subset
from ambiscope.db import Workspace
from ambiscope.tui.cli.main import main
from tests.core.test_export_data import demo_db, demo_template  # noqa: F401

STAMP = "2026-12-01T09:00:00.000000Z"
PROJECT = 7
# task index in tasks.json -> [(user id, choices, was_cancelled)]; index 3's first entry is
# a skip (Label Studio stores it as a cancelled annotation without result)
ANSWERS: dict[int, list[tuple[int, list[str], bool]]] = {
    0: [(1, ["happy"], False), (2, ["sad", "angry"], False)],
    1: [(1, ["neutral"], False), (2, ["neutral"], False)],
    2: [(1, ["fear"], False), (2, ["sad"], True)],
    3: [(1, [], True), (2, ["disgust"], False)],
}


# ------------------------------------------------------------------ Label Studio's side
def _annotation(task_id: int, n: int, user: int, choices: list[str], cancelled: bool) -> dict:
    result = [
        {
            "value": {"choices": choices},
            "id": f"res{task_id}{n}",
            "from_name": "emotion",
            "to_name": "audio",
            "type": "choices",
            "origin": "manual",
        }
    ]
    return {
        "id": task_id * 10 + n,
        "completed_by": user,
        "result": result if choices else [],
        "was_cancelled": cancelled,
        "ground_truth": False,
        "created_at": STAMP,
        "updated_at": STAMP,
        "draft_created_at": None,
        "lead_time": 6.5,
        "prediction": {},
        "result_count": 0 if cancelled else 1,
        "unique_id": f"00000000-0000-4000-8000-{task_id:06d}{n:06d}",
        "import_id": None,
        "last_action": None,
        "bulk_created": False,
        "task": task_id,
        "project": PROJECT,
        "updated_by": user,
        "parent_prediction": None,
        "parent_annotation": None,
        "last_created_by": None,
    }


def _prediction(task_id: int, n: int, imported: dict) -> dict:
    return {
        "id": task_id * 10 + n,
        "result": imported["result"],
        "model_version": imported["model_version"],
        "created_ago": "2 hours",
        "score": imported["score"],
        "cluster": None,
        "neighbors": None,
        "mislabeling": 0.0,
        "created_at": STAMP,
        "updated_at": STAMP,
        "model": None,
        "model_run": None,
        "task": task_id,
        "project": PROJECT,
    }


def ls_json(tasks: list[dict], answers: dict, *, prediction_ids: bool = False) -> list[dict]:
    """The project's JSON export after annotating `tasks` (ambiscope's tasks.json)."""
    out = []
    for index, imported in enumerate(tasks):
        task_id = 1000 + index
        anns = [_annotation(task_id, n, *a) for n, a in enumerate(answers.get(index, []))]
        preds = [_prediction(task_id, n, p) for n, p in enumerate(imported["predictions"])]
        out.append(
            {
                "id": task_id,
                "data": imported["data"],
                "annotations": anns,
                "drafts": [],
                "predictions": [p["id"] for p in preds] if prediction_ids else preds,
                "meta": {},
                "created_at": STAMP,
                "updated_at": STAMP,
                "inner_id": index + 1,
                "total_annotations": sum(not a["was_cancelled"] for a in anns),
                "cancelled_annotations": sum(a["was_cancelled"] for a in anns),
                "total_predictions": len(preds),
                "comment_count": 0,
                "unresolved_comment_count": 0,
                "last_comment_updated_at": None,
                "project": PROJECT,
                "updated_by": None,
                "file_upload": None,
                "comment_authors": [],
            }
        )
    return out


def ls_json_min(tasks: list[dict], answers: dict) -> list[dict]:
    """The same project's JSON-MIN export: one record per (not cancelled) annotation."""
    out = []
    for index, imported in enumerate(tasks):
        for n, (user, choices, cancelled) in enumerate(answers.get(index, [])):
            if cancelled:
                continue
            emotion: Any = choices[0] if len(choices) == 1 else {"choices": choices}
            out.append(
                {
                    **imported["data"],
                    "id": 1000 + index,
                    "emotion": emotion,
                    "annotator": user,
                    "annotation_id": (1000 + index) * 10 + n,
                    "created_at": STAMP,
                    "updated_at": STAMP,
                    "lead_time": 6.5,
                }
            )
    return out


# --------------------------------------------------------------------------- helpers
@pytest.fixture
def exported(demo_db: Path, tmp_path: Path) -> tuple[Path, list[dict]]:  # noqa: F811
    """(ambiscope's label-studio export folder, its tasks) of 15 test-split clips."""
    out = tmp_path / "ls"
    with Workspace.open(demo_db) as ws:
        export_subset(
            ws, out, SubsetOptions(where="split:test", format="label-studio", strategies=("vote",))
        )
    return out, json.loads((out / "tasks.json").read_text())


def _write(path: Path, items: list[dict]) -> Path:
    path.write_text(json.dumps(items, indent=1))
    return path


def _import(db: Path, export: Path, **options: Any) -> Any:
    with Workspace.open(db, create=True) as ws:
        return import_corpus(ws, "label-studio", export, ImportOptions(**options))


def _cli(db: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", str(db), "import", "label-studio", *args])


def _dump(db: Path) -> list[str]:
    with Workspace.open(db) as ws:
        return list(ws.conn.iterdump())


def _votes(db: Path, clip_id: int, prefix: str = "ls-") -> set[tuple[str, str, int, str]]:
    with Workspace.open(db) as ws:
        return {
            (v.annotator, v.label, v.rank, v.kind)
            for v in ws.clip_votes(clip_id)
            if v.annotator.startswith(prefix)
        }


def _original(db: Path) -> tuple[set[tuple[Any, ...]], dict[str, int]]:
    """Every vote that is not from Label Studio, and the run tables' sizes."""
    with Workspace.open(db) as ws:
        votes = ws.conn.execute(
            "SELECT v.clip_id, a.external_id, v.label, v.rank, v.weight FROM votes v "
            "JOIN annotators a ON a.id = v.annotator_id WHERE a.external_id NOT LIKE 'ls-%'"
        ).fetchall()
        counts = ws.table_counts()
    return set(votes), {k: counts[k] for k in ("datasets", "clips", "runs", "predictions")}


def _clip_ids(tasks: list[dict]) -> list[int]:
    return [t["data"]["clip_id"] for t in tasks]


# ----------------------------------------------------------------------------- tests
def test_round_trip_merges_votes_onto_the_original_clips(demo_db, exported, tmp_path):  # noqa: F811
    _, tasks = exported
    ids = _clip_ids(tasks)
    before = _original(demo_db)
    export = _write(tmp_path / "project-7-at-2026-12-01.json", ls_json(tasks, ANSWERS))
    result = _import(demo_db, export)
    assert isinstance(result, MergeResult)
    assert result.summary().splitlines()[:2] == [
        "merged 6 annotations from 2 annotators onto 4 clips of dataset demo "
        "(7 new vote rows, 0 replaced)",
        "  2 cancelled or skipped annotations, 0 annotations choosing nothing, "
        "11 tasks nobody annotated",
    ]
    assert _votes(demo_db, ids[0]) == {
        ("ls-1", "happy", 0, "human"),
        ("ls-2", "sad", 0, "human"),  # Label Studio keeps config order: rank 1 = "also"
        ("ls-2", "angry", 1, "human"),
    }
    assert _votes(demo_db, ids[2]) == {("ls-1", "fear", 0, "human")}  # ls-2 cancelled
    assert _votes(demo_db, ids[3]) == {("ls-2", "disgust", 0, "human")}  # ls-1 skipped
    assert _votes(demo_db, ids[4]) == set()
    assert _original(demo_db) == before  # no clip, dataset, run or earlier vote touched
    assert "model predictions not merged" in result.summary()

    dump = _dump(demo_db)
    again = _import(demo_db, export)
    assert "(0 new vote rows, 0 replaced)" in again.summary()
    assert _dump(demo_db) == dump


def test_json_min_and_id_only_predictions_are_the_same_merge(demo_db, exported, tmp_path):  # noqa: F811
    _, tasks = exported
    mini = _import(demo_db, _write(tmp_path / "min.json", ls_json_min(tasks, ANSWERS)))
    assert "onto 4 clips of dataset demo (7 new vote rows, 0 replaced)" in mini.summary()
    assert "JSON-MIN export" in mini.summary()
    dump = _dump(demo_db)
    full = _write(tmp_path / "ids.json", ls_json(tasks, ANSWERS, prediction_ids=True))
    again = _import(demo_db, full)
    assert "(0 new vote rows, 0 replaced)" in again.summary()
    assert "30 predictions are exported as ids only and were not read" in again.summary()
    assert _dump(demo_db) == dump


def test_changed_answer_replaces_the_annotators_votes(demo_db, exported, tmp_path):  # noqa: F811
    _, tasks = exported
    _import(demo_db, _write(tmp_path / "a.json", ls_json(tasks, ANSWERS)))
    changed = {**ANSWERS, 0: [(1, ["happy"], False), (2, ["neutral"], False)]}
    result = _import(demo_db, _write(tmp_path / "b.json", ls_json(tasks, changed)))
    assert "(0 new vote rows, 1 replaced)" in result.summary()
    assert _votes(demo_db, _clip_ids(tasks)[0]) == {
        ("ls-1", "happy", 0, "human"),
        ("ls-2", "neutral", 0, "human"),
    }


def test_cli_refreshes_the_reference_and_kind_review_stays_out_of_it(demo_db, exported, tmp_path):  # noqa: F811
    _, tasks = exported
    export = _write(tmp_path / "e.json", ls_json(tasks, ANSWERS))
    human = tmp_path / "human.db"
    shutil.copyfile(demo_db, human)  # a twin workspace for the default kind
    with Workspace.open(demo_db) as ws:
        reference = ws.human_rows(1)
    review = _cli(demo_db, str(export), "--kind", "review")
    assert review.exit_code == 0, review.output
    assert "merged 6 annotations" in review.output
    assert _votes(demo_db, _clip_ids(tasks)[0]) == {
        ("ls-1", "happy", 0, "review"),
        ("ls-2", "sad", 0, "review"),
        ("ls-2", "angry", 1, "review"),
    }
    with Workspace.open(demo_db) as ws:
        assert ws.human_rows(1) == reference  # review votes are not the human reference
    refused = _cli(demo_db, str(export), "--kind", "robot")
    assert refused.exit_code == 2 and "'robot' is not an annotator kind" in refused.output
    with pytest.raises(ImportFormatError, match=r"kind: unknown annotator kind 'robot'"):
        _import(demo_db, export, extra={"kind": "robot"})  # the API refuses it as well

    ok = _cli(human, str(export))
    assert ok.exit_code == 0, ok.output
    with Workspace.open(human) as ws:
        ds = ws.get_dataset("demo")
        assert ws.human_state(ds.id)["votes_version"] == ds.votes_version  # refreshed
        after = {row[0]: row[2] for row in ws.human_rows(ds.id)}
    first = _clip_ids(tasks)[0]
    assert after[first] == {row[0]: row[2] for row in reference}[first] + 2  # ls-1, ls-2


def test_a_label_outside_the_dataset_refuses_everything(demo_db, exported, tmp_path):  # noqa: F811
    _, tasks = exported
    answers = {**ANSWERS, 5: [(3, ["surprise"], False)]}
    export = _write(tmp_path / "e.json", ls_json(tasks, answers))
    dump = _dump(demo_db)
    result = _cli(demo_db, str(export))
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert (
        "dataset 'demo' (neutral, happy, sad, angry, fear, disgust) has no label surprise (1 vote)"
        in result.output
    )
    assert (
        "task id 1005 (index 5): ls-3 chose 'surprise'" in result.output
        and "--map WORD=label" in result.output
    )
    assert _dump(demo_db) == dump
    mapped = _cli(demo_db, str(export), "--map", "surprise=happy")
    assert mapped.exit_code == 0 and "merged 7 annotations from 3 annotators" in mapped.output


def test_into_matches_an_id_less_export_by_key_or_file_name(demo_db, exported, tmp_path):  # noqa: F811
    _, tasks = exported
    bare = []
    for index, task in enumerate(tasks):
        data = {"audio": task["data"]["audio"]}  # re-created by hand: audio only...
        if index == 1:
            data["clip"] = task["data"]["key"]  # ...or a clip column
        bare.append({"data": data, "predictions": []})
    export = _write(tmp_path / "bare.json", ls_json(bare, ANSWERS))
    assert _import(demo_db, export, name="bare").dataset.name == "bare"  # not ours: new
    with Workspace.open(demo_db) as ws:
        ws.delete_dataset("bare")
    result = _import(demo_db, export, extra={"into": "demo"})
    assert "onto 4 clips of dataset demo (7 new vote rows" in result.summary()
    assert _votes(demo_db, _clip_ids(tasks)[1]) == {
        ("ls-1", "neutral", 0, "human"),
        ("ls-2", "neutral", 0, "human"),
    }

    stray = [*bare, {"data": {"audio": "/data/upload/3/1a2b3c4d-street.wav"}, "predictions": []}]
    stray_export = _write(tmp_path / "stray.json", ls_json(stray, ANSWERS))
    with pytest.raises(
        ImportFormatError,
        match=r"data.key: task id 1015 \(index 15\): no clip of dataset 'demo' matches 'street'",
    ):
        _import(demo_db, stray_export, extra={"into": "demo"})
    skipped = _import(demo_db, stray_export, extra={"into": "demo"}, skip_bad=True)
    assert "(0 new vote rows, 0 replaced)" in skipped.summary()
    assert "skipped 1 bad tasks" in skipped.summary()


def test_mixed_export_is_refused_unless_the_rest_is_skipped(demo_db, exported, tmp_path):  # noqa: F811
    _, tasks = exported
    foreign = {"data": {"audio": "/data/upload/3/1a2b3c4d-street.wav"}, "predictions": []}
    export = _write(tmp_path / "mixed.json", ls_json([*tasks, foreign], ANSWERS))
    dump = _dump(demo_db)
    result = _cli(demo_db, str(export))
    assert result.exit_code == 1
    assert "1 of 16 tasks are not clips of this workspace (e.g. task id 1015" in result.output
    assert "--into DATASET" in result.output and "--name NAME" in result.output
    assert _dump(demo_db) == dump
    skipped = _cli(demo_db, str(export), "--skip-bad")
    assert skipped.exit_code == 0 and "skipped 1 bad tasks" in skipped.output
    assert "onto 4 clips of dataset demo" in skipped.output


def test_ids_from_another_workspace_never_land_on_other_clips(demo_db, exported, tmp_path):  # noqa: F811
    _, tasks = exported
    elsewhere = [{**t, "data": {**t["data"], "key": f"x-{t['data']['key']}"}} for t in tasks]
    before = _original(demo_db)[0]
    result = _import(demo_db, _write(tmp_path / "elsewhere.json", ls_json(elsewhere, ANSWERS)))
    assert not isinstance(result, MergeResult) and result.dataset.name == "elsewhere"
    assert _original(demo_db)[0] == before
    with Workspace.open(demo_db) as ws:
        assert not any(v.annotator.startswith("ls-") for v in ws.clip_votes(_clip_ids(tasks)[0]))
    # an export spanning datasets that share keys writes `dataset/key`: still ours
    spanning = [{**t, "data": {**t["data"], "key": f"demo/{t['data']['key']}"}} for t in tasks]
    merged = _import(demo_db, _write(tmp_path / "spanning.json", ls_json(spanning, ANSWERS)))
    assert "onto 4 clips of dataset demo (7 new vote rows" in merged.summary()


def test_foreign_export_takes_every_choice_of_the_labeling_config(exported, tmp_path):
    out, tasks = exported
    few = {0: [(1, ["happy"], False)], 1: [(2, ["sad"], False)]}
    export = _write(out / "project-9.json", ls_json(tasks, few))  # next to labeling_config.xml
    fresh = tmp_path / "fresh.db"
    result = _cli(fresh, str(export), "--audio-root", str(out))
    assert result.exit_code == 0, result.output
    with Workspace.open(fresh) as ws:
        ds = ws.get_dataset("project-9")
        assert ds.label_set == ("neutral", "happy", "sad", "angry", "fear", "disgust")
        assert ws.count_clips(ds.id) == 15 and ws.count_votes(ds.id) == 2
    elsewhere = _write(tmp_path / "alone.json", ls_json(tasks, few))
    alone = _import(fresh, elsewhere)
    assert alone.dataset.label_set == ("happy", "sad")  # only what was chosen
    config = _import(
        fresh, elsewhere, name="configured", extra={"ls_config": str(out / "labeling_config.xml")}
    )
    assert len(config.dataset.label_set) == 6


def test_bad_labeling_config_is_one_line(exported, tmp_path):
    _, tasks = exported
    export = _write(tmp_path / "e.json", ls_json(tasks, ANSWERS))
    (tmp_path / "labeling_config.xml").write_text('<View><Choices name="mood" toName="a">')
    with pytest.raises(ImportFormatError, match=r"labeling_config.xml:1: invalid XML"):
        _import(tmp_path / "w.db", export)
    (tmp_path / "labeling_config.xml").write_text(
        '<View><Choices name="mood" toName="a"><Choice value="x"/></Choices>'
        '<Choices name="topic" toName="a"/></View>'
    )
    with pytest.raises(ImportFormatError, match=r"no <Choices name='emotion'> control"):
        _import(tmp_path / "w.db", export)
