"""CREMA-D importer against the real vote tables in ../shared (skipped when absent)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ambiscope.core.corpora import crema_d, import_corpus
from ambiscope.core.corpora.base import ImportFormatError, ImportOptions
from ambiscope.db import Workspace


def _find_crema() -> Path | None:
    """`shared/datasets/crema-d` beside the repository (or any folder above it)."""
    here = Path(__file__).resolve()
    for folder in here.parents:
        candidate = folder / "shared" / "datasets" / "crema-d"
        if (candidate / "processedResults" / "tabulatedVotes.csv").is_file():
            return candidate
    return None


CREMA = _find_crema()
needs_crema = pytest.mark.skipif(
    CREMA is None,
    reason="real CREMA-D tables not found (expected shared/datasets/crema-d beside the repo)",
)
VOICE_ROWS = 7442  # queryType 1 rows of tabulatedVotes.csv


@pytest.fixture
def ws(tmp_path):
    with Workspace.open(tmp_path / "w.db", create=True) as workspace:
        yield workspace


def _distribution(ws: Workspace, dataset_id: int, key: str) -> dict[str, float]:
    clip = ws.find_clip(dataset_id, key)
    assert clip is not None
    votes = ws.clip_votes(clip.id)
    total = sum(v.weight for v in votes)
    return {v.label: v.weight / total for v in votes}


@pytest.fixture(scope="module")
def voice_ws(tmp_path_factory):
    """One real voice import shared by the read-only tests of this module."""
    if CREMA is None:
        pytest.skip("real CREMA-D tables not found")
    path = tmp_path_factory.mktemp("crema") / "w.db"
    with Workspace.open(path, create=True) as workspace:
        result = import_corpus(workspace, "crema-d", CREMA, ImportOptions())
        yield workspace, result


# ------------------------------------------------------------------- real tables
@needs_crema
def test_voice_import_counts_clips_and_labels(voice_ws):
    ws, result = voice_ws
    assert result.clips_total == result.clips_added == VOICE_ROWS
    assert result.dataset.name == "crema-d" and result.dataset.format == "crema-d"
    assert set(result.dataset.label_set) == {"neutral", "happy", "sad", "angry", "fear", "disgust"}
    assert result.bad_lines == 0
    assert [a.external_id for a in ws.annotators(result.dataset.id)] == ["crowd-voice"]


@needs_crema
def test_distribution_of_first_rows_matches_the_table(voice_ws):
    ws, result = voice_ws
    dist = _distribution(ws, result.dataset.id, "1001_IEO_HAP_HI")
    assert dist == pytest.approx({"angry": 0.2, "happy": 0.6, "neutral": 0.2})
    clip = ws.find_clip(result.dataset.id, "1001_IEO_HAP_HI")
    assert clip.speaker == "1001" and clip.gender == "M"
    assert clip.intended_label == "happy" and clip.transcript == "It's eleven o'clock"
    assert clip.meta["intensity"] == "HI" and clip.meta["sentence"] == "IEO"
    assert clip.meta["num_responses"] == 10 and clip.meta["emo_vote"] == "H"
    assert clip.meta["agreement"] == pytest.approx(0.6)
    assert clip.meta["actor_age"] == 51 and clip.meta["actor_race"] == "Caucasian"
    assert clip.path is None and clip.duration is None  # no audio in the shared folder


@needs_crema
def test_votes_sum_to_num_responses_for_sample_clips(voice_ws):
    ws, result = voice_ws
    clips = ws.clips(result.dataset.id)
    for clip in clips[:: len(clips) // 25]:
        total = sum(v.weight for v in ws.clip_votes(clip.id))
        assert total == clip.meta["num_responses"], clip.key
    assert result.votes_written == ws.count_votes(result.dataset.id)


@needs_crema
def test_gender_comes_from_demographics(voice_ws):
    ws, result = voice_ws
    with (CREMA / "VideoDemographics.csv").open(newline="") as handle:
        sex = {r["ActorID"]: r["Sex"] for r in csv.DictReader(handle)}
    genders = {c.speaker: c.gender for c in ws.clips(result.dataset.id)}
    assert len(genders) == 91
    for actor, gender in genders.items():
        assert gender == {"Male": "M", "Female": "F"}[sex[actor]]


@needs_crema
def test_reimport_adds_nothing(voice_ws):
    ws, _ = voice_ws
    before = ws.table_counts()
    again = import_corpus(ws, "crema-d", CREMA, ImportOptions())
    assert again.clips_added == 0 and again.clips_total == VOICE_ROWS
    assert ws.table_counts() == before


@needs_crema
def test_modality_switch_reads_other_counts(ws):
    table = CREMA / "processedResults" / "tabulatedVotes.csv"
    face = import_corpus(
        ws, "crema-d", table, ImportOptions(name="face", extra={"modality": "face"})
    )
    voice = import_corpus(ws, "crema-d", table, ImportOptions(name="voice"))
    assert face.clips_total == voice.clips_total == VOICE_ROWS
    assert [a.external_id for a in ws.annotators(face.dataset.id)] == ["crowd-face"]
    differing = sum(
        _distribution(ws, face.dataset.id, key) != _distribution(ws, voice.dataset.id, key)
        for key in ("1001_IEO_NEU_XX", "1001_IEO_HAP_LO", "1001_IEO_HAP_MD", "1001_IEO_HAP_HI")
    )
    assert differing >= 3
    assert ws.find_clip(face.dataset.id, "1001_IEO_HAP_HI").meta["modality"] == "face"
    with pytest.raises(ValueError, match="unknown modality"):
        crema_d.read(CREMA, ImportOptions(extra={"modality": "smell"}))


# ------------------------------------------------------------ small copies in tmp_path
def _copy_crema(tmp_path: Path, n_rows: int = 6) -> Path:
    """A CREMA-D root with the first `n_rows` voice rows and the side files."""
    root = tmp_path / "crema"
    (root / "processedResults").mkdir(parents=True)
    lines = (CREMA / "processedResults" / "tabulatedVotes.csv").read_text().splitlines()
    (root / "processedResults" / "tabulatedVotes.csv").write_text(
        "\n".join(lines[: n_rows + 1]) + "\n"
    )
    shutil.copy(CREMA / "VideoDemographics.csv", root)
    shutil.copy(CREMA / "SentenceFilenames.csv", root)
    return root


@needs_crema
def test_audio_folder_gives_path_and_duration(ws, tmp_path):
    root = _copy_crema(tmp_path)
    (root / "AudioWAV").mkdir()
    sf.write(root / "AudioWAV" / "1001_IEO_HAP_HI.wav", np.zeros(8000, dtype=np.float32), 16000)
    result = import_corpus(ws, "crema-d", root, ImportOptions())
    assert result.clips_total == 6
    with_audio = ws.find_clip(result.dataset.id, "1001_IEO_HAP_HI")
    assert with_audio.path == "AudioWAV/1001_IEO_HAP_HI.wav"
    assert with_audio.duration == pytest.approx(0.5) and with_audio.sample_rate == 16000
    others = [c for c in ws.clips(result.dataset.id) if c.key != "1001_IEO_HAP_HI"]
    assert len(others) == 5 and all(c.path is None and c.duration is None for c in others)
    assert Path(result.dataset.root) == root.resolve()
    assert any("5 of 6 clips have no audio" in w for w in result.warnings)
    assert any("stimuli in SentenceFilenames.csv have no voice votes" in w for w in result.warnings)


@needs_crema
def test_audio_root_option_points_at_a_flat_folder(ws, tmp_path):
    root = _copy_crema(tmp_path)
    flat = tmp_path / "wavs"
    flat.mkdir()
    sf.write(flat / "1001_IEO_NEU_XX.wav", np.zeros(1600, dtype=np.float32), 16000)
    result = import_corpus(
        ws,
        "crema-d",
        root / "processedResults" / "tabulatedVotes.csv",
        ImportOptions(audio_root=str(flat)),
    )
    clip = ws.find_clip(result.dataset.id, "1001_IEO_NEU_XX")
    assert clip.path == "1001_IEO_NEU_XX.wav" and clip.duration == pytest.approx(0.1)
    assert Path(result.dataset.root) == flat.resolve()


# ---------------------------------------------------------------- malformed tables
HEADER = '"","A","D","F","H","N","S","fileName","numResponses","agreement","emoVote"'
GOOD = [
    '"100001",0,0,0,1,10,0,"1001_IEO_NEU_XX",11,0.9,"N"',
    '"100002",0,0,0,3,6,0,"1001_IEO_HAP_LO",9,0.66,"N"',
    '"200001",1,0,0,1,9,0,"1001_IEO_NEU_XX",11,0.8,"N"',
]


def _write_table(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "tabulatedVotes.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_small_table_without_side_files_imports_with_warnings(ws, tmp_path):
    result = import_corpus(ws, "crema-d", _write_table(tmp_path, GOOD), ImportOptions())
    assert result.clips_total == 2 and result.votes_written == 4
    assert _distribution(ws, result.dataset.id, "1001_IEO_NEU_XX") == pytest.approx(
        {"happy": 1 / 11, "neutral": 10 / 11}
    )
    assert ws.find_clip(result.dataset.id, "1001_IEO_NEU_XX").gender is None
    assert any("VideoDemographics.csv not found" in w for w in result.warnings)


def test_missing_column_is_a_header_error(ws, tmp_path):
    path = _write_table(tmp_path, GOOD, header=HEADER.replace('"numResponses",', ""))
    with pytest.raises(ImportFormatError) as info:
        import_corpus(ws, "crema-d", path, ImportOptions(skip_bad=True))
    assert info.value.line == 1 and "numResponses" in str(info.value)
    assert str(info.value).startswith(f"{path.resolve()}:1: header: missing columns")


@pytest.mark.parametrize(
    ("row", "field", "text"),
    [
        ('"100003",0,x,0,1,10,0,"1001_IEO_NEU_XX",11,0.9,"N"', "D", "non-negative integer"),
        ('"100003",0,-1,0,1,11,0,"1001_TIE_NEU_XX",11,0.9,"N"', "D", "negative"),
        ('"100003",0,0,0,1,9,0,"1001_TIE_NEU_XX",11,0.9,"N"', "numResponses", "add up to 10"),
        ('"100003",0,0,0,1,10,0,"1001-TIE-NEU",11,0.9,"N"', "fileName", "ActorID_Sentence"),
        ('"100003",0,0,0,1,10,0,"1001_TIE_BOR_XX",11,0.9,"N"', "fileName", "emotion code"),
        ('"100003",0,0,0,1,10,0,"1001_IEO_NEU_XX",11,0.9,"N"', "fileName", "duplicate"),
        ('"x3",0,0,0,1,10,0,"1001_TIE_NEU_XX",11,0.9,"N"', "query id (first column)", "integer"),
    ],
)
def test_bad_row_names_file_line_and_field(ws, tmp_path, row, field, text):
    path = _write_table(tmp_path, [*GOOD[:2], row, GOOD[2]])
    before = ws.table_counts()
    with pytest.raises(ImportFormatError) as info:
        import_corpus(ws, "crema-d", path, ImportOptions())
    error = info.value
    assert (error.line, error.field) == (4, field)
    assert str(error).startswith(f"{path.resolve()}:4: {field}: ") and text in str(error)
    assert ws.table_counts() == before  # nothing written


def test_skip_bad_imports_the_rest_and_counts_bad_lines(ws, tmp_path):
    rows = [
        *GOOD,
        '"100003",0,x,0,1,10,0,"1001_TIE_NEU_XX",11,0.9,"N"',
        '"100004",0,0,0,1,9,0,"1001_TIE_HAP_XX",11,0.9,"N"',
        '"100005",0,0,0,0,5,0,"1001_TIE_SAD_XX",5,0.0,"N"',
        '"200009",x,0,0,0,5,0,"broken",5,0.0,"N"',  # face row: not read for voice
    ]
    result = import_corpus(
        ws, "crema-d", _write_table(tmp_path, rows), ImportOptions(skip_bad=True)
    )
    assert result.bad_lines == 2 and result.clips_total == 3
    assert ":5: D:" in result.bad_examples[0] and ":6: numResponses:" in result.bad_examples[1]
    assert "skipped 2 bad lines" in result.summary()


def test_empty_table_and_missing_root_are_clear_errors(ws, tmp_path):
    empty = tmp_path / "tabulatedVotes.csv"
    empty.write_text("")
    with pytest.raises(ImportFormatError, match="empty file"):
        crema_d.read(empty, ImportOptions())
    with pytest.raises(ImportFormatError, match=r"no processedResults/tabulatedVotes\.csv"):
        (tmp_path / "nothing").mkdir()
        crema_d.read(tmp_path / "nothing", ImportOptions())


# ------------------------------------------------ unreadable bytes (issue 12, 5 and 6)
def test_huge_field_is_one_line_naming_file_and_line(ws, tmp_path):
    path = _write_table(tmp_path, [*GOOD[:2], '"100003",0,0,0,1,10,0,"' + "x" * 200_000 + '"'])
    with pytest.raises(ImportFormatError) as info:
        import_corpus(ws, "crema-d", path, ImportOptions(skip_bad=True))
    assert str(info.value).startswith(f"{path.resolve()}:4: a CSV field is longer than ")
    assert ws.datasets() == []


def test_non_utf8_byte_names_line_and_column(ws, tmp_path):
    path = _write_table(tmp_path, GOOD)
    data = path.read_bytes().replace(b"1001_IEO_HAP_LO", b"1001_IEO_HAP_L\xff")
    path.write_bytes(data)
    with pytest.raises(ImportFormatError) as info:
        import_corpus(ws, "crema-d", path, ImportOptions())
    assert str(info.value) == f"{path.resolve()}:3: not UTF-8 (byte 0xff at column 37)"
