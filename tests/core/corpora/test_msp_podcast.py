"""MSP-Podcast importer on one small corpus written in every supported label layout.

fixtures/msp_podcast/<variant>/Labels holds the same 7 consensus rows and 17 rater rows as
v2 CSV (`v2`), packed EmoDetail CSV with the old `labels_concensus.csv` name (`packed`),
JSON (`json`) and the v1 `labels.txt` text blocks (`text`).
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
from ambiscope.core.reference.distributions import DistributionOptions
from ambiscope.core.reference.human import HumanOptions, load_human
from ambiscope.db import Workspace

FIXTURES = Path(__file__).parent / "fixtures" / "msp_podcast"
VARIANTS = ("v2", "packed", "json", "text")
MSP = "MSP-PODCAST_"


@pytest.fixture
def ws(tmp_path):
    with Workspace.open(tmp_path / "w.db", create=True) as workspace:
        yield workspace


def run(ws, path, **options):
    return import_corpus(ws, "msp-podcast", path, ImportOptions(**options))


def all_votes(ws, ds):
    out = set()
    for clip in ws.clips(ds.id):
        out |= {
            (clip.key, v.annotator, v.label, v.rank, v.raw_label) for v in ws.clip_votes(clip.id)
        }
    return out


def votes_of(ws, ds, key):
    clip = ws.find_clip(ds.id, MSP + key)
    return {(v.annotator, v.label, v.rank) for v in ws.clip_votes(clip.id)}


def dist_of(human, ws, ds, key):
    idx = int(np.flatnonzero(human.clip_ids == ws.find_clip(ds.id, MSP + key).id)[0])
    pairs = zip(ds.label_set, human.dist[idx], strict=True)
    return {lbl: round(float(p), 4) for lbl, p in pairs if p > 0}


def copy_variant(tmp_path, variant="v2") -> Path:
    return Path(shutil.copytree(FIXTURES / variant, tmp_path / "release"))


@pytest.mark.parametrize("variant", VARIANTS[1:])
def test_every_layout_gives_the_same_votes_and_distributions(ws, variant):
    ref = run(ws, FIXTURES / "v2", name="ref").dataset
    other = run(ws, FIXTURES / variant, name=variant).dataset
    assert all_votes(ws, other) == all_votes(ws, ref)
    assert len(all_votes(ws, ref)) == ws.count_votes(ref.id) == 27
    for opts in (HumanOptions(), HumanOptions(DistributionOptions(secondary_weight=0.5))):
        a, b = load_human(ws, ref.name, opts), load_human(ws, other.name, opts)
        np.testing.assert_allclose(a.dist, b.dist)
    if variant != "text":  # labels.txt file lines also carry a consensus for 0007_0003
        fields = ("key", "speaker", "gender", "split", "intended_label")
        rows = [
            [tuple(getattr(c, f) for f in fields) for c in ws.clips(d.id)] for d in (ref, other)
        ]
        assert rows[0] == rows[1]


def test_major_is_rank_0_and_secondaries_follow_in_file_order(ws):
    ds = run(ws, FIXTURES / "v2").dataset
    # "Angry,Frustrated,Annoyed,Disgust" under major Angry: the repeat is no vote, the
    # non-labels go to meta, Disgust is the first secondary vote.
    assert votes_of(ws, ds, "0002_0033") == {
        ("WORKER00017", "angry", 0),
        ("WORKER00017", "disgust", 1),
        ("WORKER00021", "contempt", 0),
        ("WORKER00021", "angry", 1),
        ("WORKER00030", "angry", 0),
    }
    assert votes_of(ws, ds, "0001_0008") == {
        ("WORKER00014", "neutral", 0),
        ("WORKER00017", "neutral", 0),
        ("WORKER00021", "sad", 0),
    }
    clip = ws.find_clip(ds.id, MSP + "0002_0033")
    assert clip.meta["secondary_other"] == {"Frustrated": 1, "Annoyed": 1}
    primary = load_human(ws, ds.name)
    assert dist_of(primary, ws, ds, "0001_0019") == {"happy": 0.6667, "surprise": 0.3333}
    weighted = load_human(ws, ds.name, HumanOptions(DistributionOptions(secondary_weight=0.5)))
    assert dist_of(weighted, ws, ds, "0001_0019") == {"happy": 0.625, "surprise": 0.375}


def test_other_free_text_maps_to_other_and_keeps_its_spelling(ws):
    ds = run(ws, FIXTURES / "v2").dataset
    clip = ws.find_clip(ds.id, MSP + "0003_0011")
    raw = {(v.annotator, v.rank): (v.label, v.raw_label) for v in ws.clip_votes(clip.id)}
    assert raw[("WORKER00031", 0)] == ("other", "Other-Bored")
    assert raw[("WORKER00014", 1)] == ("other", "Other-Tired")
    assert ("WORKER00031", 1) in raw and raw[("WORKER00031", 1)][0] == "sad"


def test_clip_fields_splits_speakers_genders_and_x_consensus(ws):
    result = run(ws, FIXTURES / "v2")
    ds = result.dataset
    assert result.clips_total == 8 and ds.name == "msp-podcast"
    clips = {c.key: c for c in ws.clips(ds.id)}
    angry = clips[MSP + "0002_0033"]
    assert (angry.speaker, angry.gender, angry.split, angry.intended_label) == (
        "12",
        "M",
        "Development",
        "angry",
    )
    assert angry.meta["vad"] == [2.2, 5.8, 5.6]  # [val, act, dom]
    assert angry.meta["rater_vad"]["WORKER00017"] == [2.0, 6.0, 6.0]
    no_agreement = clips[MSP + "0003_0011"]
    assert no_agreement.intended_label is None and no_agreement.meta["consensus"] == "X"
    assert (no_agreement.speaker, no_agreement.gender, no_agreement.split) == (None, None, "Test1")
    assert clips[MSP + "0005_0007"].intended_label == "other"
    assert {c.split for c in clips.values()} == {
        "Train",
        "Development",
        "Test1",
        "Test2",
        "Test3",
        None,
    }
    assert clips[MSP + "0001_0008"].transcript == "and that's just how it goes"
    # Rated but not in the consensus table: a clip all the same, counted in a warning.
    assert clips[MSP + "0007_0003"].split is None
    assert "rated files missing from the consensus table: 1" in result.warnings
    # In the consensus table without ratings: a clip without votes.
    human = load_human(ws, ds.name)
    idx = int(np.flatnonzero(human.clip_ids == clips[MSP + "0006_0001"].id)[0])
    assert not human.valid[idx]


def test_misspelled_consensus_file_is_found(ws):
    ds = run(ws, FIXTURES / "packed").dataset
    assert ds.options["msp_podcast"]["consensus_file"] == "labels_concensus.csv"
    assert ws.find_clip(ds.id, MSP + "0004_0002").split == "Test2"


def test_secondary_words_outside_the_label_set_are_reported_once(ws):
    result = run(ws, FIXTURES / "v2")
    [warning] = [w for w in result.warnings if w.startswith("secondary labels outside")]
    assert "Concerned x1" in warning and "Excited x1" in warning
    assert result.unknown_labels == {}  # they never reach the unknown-label check


def test_mapping_a_secondary_word_makes_it_a_vote(ws):
    ds = run(ws, FIXTURES / "v2", label_map={"Concerned": "fear"}).dataset
    assert ("WORKER00014", "fear", 1) in votes_of(ws, ds, "0001_0008")
    meta = ws.find_clip(ds.id, MSP + "0001_0008").meta
    assert meta["secondary_other"] == {"Disappointed": 1}


def test_merge_excited_and_four_class(ws):
    merged = run(ws, FIXTURES / "v2", name="m", merge_excited=True).dataset
    # W14's "Happy,Amused,Excited": Excited becomes happy, a repeat of the major.
    assert votes_of(ws, merged, "0001_0019") == {
        ("WORKER00014", "happy", 0),
        ("WORKER00030", "happy", 0),
        ("WORKER00030", "surprise", 1),
        ("WORKER00031", "surprise", 0),
        ("WORKER00031", "happy", 1),
    }
    assert ws.find_clip(merged.id, MSP + "0001_0019").meta["secondary_other"] == {"Amused": 1}
    four = run(ws, FIXTURES / "v2", name="four", labels=FOUR_CLASS)
    assert four.dataset.label_set == FOUR_CLASS
    # The major Contempt is dropped by the label set; the secondary one never was a vote.
    assert four.votes_dropped["outside label set (contempt)"] == 1
    meta = ws.find_clip(four.dataset.id, MSP + "0005_0007").meta
    assert meta["secondary_other"] == {"Contempt": 1}
    assert votes_of(ws, four.dataset, "0004_0002") == {
        ("WORKER00021", "sad", 0),
        ("WORKER00030", "sad", 0),
    }


def test_unknown_major_label_goes_through_the_unknown_check(ws, tmp_path):
    release = copy_variant(tmp_path)
    detailed = release / "Labels" / "labels_detailed.csv"
    detailed.write_text(detailed.read_text().replace("Contempt,Angry", "Bored,Angry"))
    with pytest.raises(ImportFormatError, match="unknown labels 'Bored' x1"):
        run(ws, release)
    result = run(ws, release, unknown="other")
    assert ("WORKER00021", "other", 0) in votes_of(ws, result.dataset, "0002_0033")


def test_reimport_is_idempotent(ws):
    first = run(ws, FIXTURES / "json")
    again = run(ws, FIXTURES / "json")
    assert (again.clips_added, again.clips_total) == (0, 8)
    assert ws.count_votes(first.dataset.id) == 27


def test_audio_under_audios_and_with_audio_root(ws, tmp_path):
    release = copy_variant(tmp_path)
    (release / "Audios").mkdir()
    sf.write(release / "Audios" / f"{MSP}0001_0019.wav", np.zeros(4000, np.float32), 16000)
    ds = run(ws, release / "Labels").dataset  # the Labels folder works as PATH too
    clip = ws.find_clip(ds.id, MSP + "0001_0019")
    assert clip.path == f"Audios/{MSP}0001_0019.wav" and Path(ds.root, clip.path).is_file()
    assert (clip.duration, clip.sample_rate) == (0.25, 16000)
    assert ws.find_clip(ds.id, MSP + "0001_0008").path is None
    elsewhere = run(ws, release, name="moved", audio_root=str(release / "Audios")).dataset
    moved = ws.find_clip(elsewhere.id, MSP + "0001_0019")
    assert moved.path == f"{MSP}0001_0019.wav" and Path(elsewhere.root, moved.path).is_file()


def test_missing_column_names_file_line_and_field(ws, tmp_path):
    release = copy_variant(tmp_path)
    consensus = release / "Labels" / "labels_consensus.csv"
    consensus.write_text(consensus.read_text().replace("EmoClass,", "Emotion,", 1))
    with pytest.raises(ImportFormatError) as err:
        run(ws, release)
    assert str(err.value).startswith(f"{consensus}:1: EmoClass: missing column (found: ")
    assert ws.datasets() == []


def test_empty_file_name_names_file_line_and_field(ws, tmp_path):
    release = copy_variant(tmp_path)
    detailed = release / "Labels" / "labels_detailed.csv"
    lines = detailed.read_text().splitlines()
    lines[3] = "," + lines[3].split(",", 1)[1]
    detailed.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportFormatError) as err:
        run(ws, release)
    assert str(err.value) == f"{detailed}:4: FileName: empty"
    result = run(ws, release, skip_bad=True)
    assert result.bad_lines == 1 and ws.count_votes(result.dataset.id) == 26


def test_no_label_files_is_a_clear_error(ws, tmp_path):
    (tmp_path / "Labels").mkdir()
    with pytest.raises(ImportFormatError, match="no MSP-Podcast label files"):
        run(ws, tmp_path)


def test_huge_field_and_bad_byte_name_file_and_line(ws, tmp_path):
    """Issue 12 (5, 6): `_csv.Error` and a decoder offset became file:line messages."""
    release = copy_variant(tmp_path)
    detailed = release / "Labels" / "labels_detailed.csv"
    lines = detailed.read_text().splitlines()
    lines[2] = lines[2] + ',"' + "x" * 200_000 + '"'
    detailed.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportFormatError) as err:
        run(ws, release, skip_bad=True)
    assert str(err.value).startswith(f"{detailed}:3: a CSV field is longer than ")
    lines[2] = lines[2][:20]
    detailed.write_bytes("\n".join(lines).encode() + b"\n" + b"ab\xffcd\n")
    with pytest.raises(ImportFormatError) as err:
        run(ws, release, skip_bad=True)
    assert str(err.value) == f"{detailed}:{len(lines) + 1}: not UTF-8 (byte 0xff at column 3)"
    assert ws.datasets() == []
