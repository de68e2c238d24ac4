"""IEMOCAP importer on a hand-written mini release (2 sessions, 3 dialogs, 8 utterances).

The fixture under fixtures/iemocap/ is text only; tests that need audio or broken files
copy it to tmp_path first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ambiscope.core.corpora import import_corpus
from ambiscope.core.corpora.base import ImportFormatError, ImportOptions
from ambiscope.core.labels import FOUR_CLASS
from ambiscope.core.reference.human import HumanOptions, load_human
from ambiscope.db import Workspace

FIXTURE = Path(__file__).parent / "fixtures" / "iemocap" / "IEMOCAP_full_release"
EVAL = Path("Session1/dialog/EmoEvaluation/Ses01F_impro01.txt")


@pytest.fixture
def ws(tmp_path):
    with Workspace.open(tmp_path / "w.db", create=True) as workspace:
        yield workspace


@pytest.fixture
def release(tmp_path) -> Path:
    """A writable copy of the fixture release."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "IEMOCAP_full_release"))


def votes_of(ws, ds, key):
    clip = ws.find_clip(ds.id, key)
    return {(v.annotator, v.kind, v.label, v.rank) for v in ws.clip_votes(clip.id)}


def human_dist(ws, ds, key):
    human = load_human(ws, ds.name)
    idx = int(np.flatnonzero(human.clip_ids == ws.find_clip(ds.id, key).id)[0])
    pairs = zip(ds.label_set, human.dist[idx], strict=True)
    return {lbl: round(float(p), 4) for lbl, p in pairs if p > 0}


def test_imports_clips_votes_and_actor_self_reports(ws):
    result = import_corpus(ws, "iemocap", FIXTURE, ImportOptions())
    ds = result.dataset
    assert (ds.name, ds.format, result.clips_total) == ("iemocap", "iemocap", 8)
    assert ds.label_set == (
        "neutral",
        "happy",
        "sad",
        "angry",
        "fear",
        "disgust",
        "surprise",
        "frustrated",
        "excited",
        "other",
    )
    # Multi-label lines rank in the order written; the M1 actor is kind "actor";
    # E2 comes from the Categorical file because the main file has no C-E2 line here.
    assert votes_of(ws, ds, "Ses01F_impro01_M000") == {
        ("Ses01-E1", "human", "frustrated", 0),
        ("Ses01-E1", "human", "angry", 1),
        ("Ses01-E3", "human", "frustrated", 0),
        ("Ses01-E4", "human", "angry", 0),
        ("Ses01-E4", "human", "frustrated", 1),
        ("Ses01-E2", "human", "frustrated", 0),
        ("Ses01-M1-self", "actor", "angry", 0),
    }
    # Session 2 evaluators are other annotators (ids are per session).
    assert ("Ses02-E3", "human", "fear", 1) in votes_of(ws, ds, "Ses02F_impro02_M000")
    kinds = {a.external_id: a.kind for a in ws.annotators(ds.id)}
    assert kinds["Ses01-F1-self"] == kinds["Ses02-M1-self"] == "actor"
    assert kinds["Ses01-E2"] == "human" and "E2" not in kinds


def test_categorical_file_never_double_counts(ws):
    ds = import_corpus(ws, "iemocap", FIXTURE, ImportOptions()).dataset
    # F000 has C-E2 in the main file and the same answer in the Categorical file.
    e2 = [v for v in votes_of(ws, ds, "Ses01F_impro01_F000") if v[0] == "Ses01-E2"]
    assert e2 == [("Ses01-E2", "human", "neutral", 0)]
    assert ds.options["iemocap"]["categorical_votes_added"] == 2
    assert ws.count_votes(ds.id) == 39


def test_human_distribution_excludes_actors_and_splits_label_lists(ws):
    ds = import_corpus(ws, "iemocap", FIXTURE, ImportOptions()).dataset
    assert ds.options["label_lists"] is True
    # E1 and E4 split their two labels 1/2 each; E2 and E3 frustrated: 3/4 vs 1/4.
    assert human_dist(ws, ds, "Ses01F_impro01_M000") == {"angry": 0.25, "frustrated": 0.75}
    # The actor's "Sadness" is not pooled: E2 neutral, E3 sad, E4 "Frustration; Other".
    assert human_dist(ws, ds, "Ses01F_impro01_F001") == {
        "neutral": 0.3333,
        "sad": 0.3333,
        "frustrated": 0.1667,
        "other": 0.1667,
    }
    with_actors = load_human(ws, ds.name, HumanOptions(kinds=("human", "actor")))
    idx = int(
        np.flatnonzero(with_actors.clip_ids == ws.find_clip(ds.id, "Ses01F_impro01_F001").id)[0]
    )
    assert with_actors.n_votes[idx] == 4


def test_clip_fields_meta_splits_and_transcripts(ws):
    result = import_corpus(ws, "iemocap", FIXTURE, ImportOptions())
    ds = result.dataset
    clip = ws.find_clip(ds.id, "Ses01F_impro01_M000")
    assert (clip.speaker, clip.gender, clip.split) == ("Ses01M", "M", "Session1")
    assert clip.transcript == "Do you have your forms?"
    assert clip.intended_label == "frustrated"
    assert clip.meta["start"] == 10.01 and clip.meta["end"] == 11.3925
    assert clip.meta["vad"] == [2.0, 3.5, 3.5]
    assert clip.meta["rater_vad"] == {"Ses01-E1": [2.0, 4.0, 4.0], "Ses01-E3": [2.0, 3.0, 3.0]}
    assert clip.meta["type"] == "improvised" and clip.meta["comments"] == {
        "Ses01-E4": "annoyed; tense (a bit)"
    }
    scripted = ws.find_clip(ds.id, "Ses01M_script01_1_F000")
    assert (scripted.speaker, scripted.meta["type"]) == ("Ses01F", "scripted")
    no_agreement = ws.find_clip(ds.id, "Ses01F_impro01_F001")
    assert no_agreement.intended_label is None and no_agreement.meta["consensus"] == "xxx"
    splits = {c.key: c.split for c in ws.clips(ds.id)}
    assert sorted(set(splits.values())) == ["Session1", "Session2"]
    assert splits["Ses02F_impro02_M000"] == "Session2"
    assert all(c.path is None for c in ws.clips(ds.id))  # the fixture has no audio
    assert result.warnings[0].startswith("no audio under ")


def test_audio_path_and_duration_when_the_wav_exists(ws, release):
    wav = release / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"
    wav.parent.mkdir(parents=True)
    sf.write(wav, np.zeros(8000, dtype=np.float32), 16000)
    result = import_corpus(ws, "iemocap", release, ImportOptions())
    clip = ws.find_clip(result.dataset.id, "Ses01F_impro01_F000")
    assert clip.path == "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"
    assert (clip.duration, clip.sample_rate) == (0.5, 16000)
    assert Path(result.dataset.root, clip.path) == wav.resolve()
    assert "clips without audio: 7" in result.warnings


def test_single_session_folder_keeps_release_relative_paths(ws, release):
    wav = release / "Session2/sentences/wav/Ses02F_impro02/Ses02F_impro02_M000.wav"
    wav.parent.mkdir(parents=True)
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    first = import_corpus(ws, "iemocap", release / "Session2", ImportOptions())
    assert first.clips_total == 2 and first.dataset.root == str(release.resolve())
    clip = ws.find_clip(first.dataset.id, "Ses02F_impro02_M000")
    assert clip.path == "Session2/sentences/wav/Ses02F_impro02/Ses02F_impro02_M000.wav"
    second = import_corpus(ws, "iemocap", release / "Session1", ImportOptions())
    assert (second.clips_added, second.clips_total) == (6, 8)


def test_merge_excited_folds_excited_into_happy(ws):
    ds = import_corpus(ws, "iemocap", FIXTURE, ImportOptions(merge_excited=True)).dataset
    assert "excited" not in ds.label_set and "happy" in ds.label_set
    # E1 said "Happiness; Excited;": one happy vote at rank 0, not overwritten by rank 1.
    assert votes_of(ws, ds, "Ses01F_impro01_M001") == {
        ("Ses01-E1", "human", "happy", 0),
        ("Ses01-E2", "human", "happy", 0),
        ("Ses01-E3", "human", "happy", 0),
        ("Ses01-M1-self", "actor", "happy", 0),
    }
    assert human_dist(ws, ds, "Ses01F_impro01_M001") == {"happy": 1.0}
    assert ws.find_clip(ds.id, "Ses01M_script01_1_F000").intended_label == "happy"


def test_four_class_drops_other_labels(ws):
    result = import_corpus(ws, "iemocap", FIXTURE, ImportOptions(labels=FOUR_CLASS))
    ds = result.dataset
    assert ds.label_set == ("neutral", "happy", "sad", "angry")
    assert result.votes_dropped["outside label set (frustrated)"] == 5
    assert human_dist(ws, ds, "Ses01F_impro01_M000") == {"angry": 1.0}
    assert ws.find_clip(ds.id, "Ses01F_impro01_M000").intended_label is None


def test_reimport_is_idempotent(ws):
    first = import_corpus(ws, "iemocap", FIXTURE, ImportOptions())
    again = import_corpus(ws, "iemocap", FIXTURE, ImportOptions())
    assert (again.clips_added, again.clips_total) == (0, 8)
    assert ws.count_votes(first.dataset.id) == 39
    assert len(ws.annotators(first.dataset.id)) == len(
        {a.external_id for a in ws.annotators(first.dataset.id)}
    )


def test_global_evaluator_ids_option(ws):
    options = ImportOptions(extra={"evaluators": "global"})
    ds = import_corpus(ws, "iemocap", FIXTURE, options).dataset
    ids = {a.external_id for a in ws.annotators(ds.id)}
    assert {"E1", "E2", "E3", "Ses01-F1-self", "Ses02-M1-self"} <= ids
    assert not any(i.startswith("Ses01-E") for i in ids)


def break_line(release: Path, old: str, new: str) -> Path:
    path = release / EVAL
    path.write_text(path.read_text().replace(old, new, 1))
    return path


def test_malformed_header_names_file_and_line(ws, release):
    path = break_line(release, "[10.0100 - 11.3925]", "[10.0100 - ]")
    with pytest.raises(ImportFormatError) as err:
        import_corpus(ws, "iemocap", release, ImportOptions())
    assert str(err.value).startswith(f"{path}:12: header: expected '[START - END]")
    assert ws.datasets() == []  # nothing written


def test_skip_bad_drops_the_whole_bad_block(ws, release):
    break_line(release, "[10.0100 - 11.3925]", "[10.0100 - ]")
    result = import_corpus(ws, "iemocap", release, ImportOptions(skip_bad=True))
    assert result.bad_lines == 1 and result.clips_total == 7
    assert ws.find_clip(result.dataset.id, "Ses01F_impro01_M000") is None


def test_evaluator_line_before_any_utterance(ws, release):
    path = break_line(release, "% [START_TIME", "C-E1:\tAnger;\t()\n% [START_TIME")
    with pytest.raises(ImportFormatError, match=r":1: C-E1: evaluator line before any") as err:
        import_corpus(ws, "iemocap", release, ImportOptions())
    assert err.value.path == str(path) and err.value.line == 1


def test_not_a_release_is_a_clear_error(ws, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportFormatError, match=r"expected Session1\.\.Session5"):
        import_corpus(ws, "iemocap", tmp_path / "empty", ImportOptions())
