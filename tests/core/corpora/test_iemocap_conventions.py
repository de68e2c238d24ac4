"""Conventions at import: the 4-class projection, `secondary_only` and what is recorded.

The release is written by hand into tmp_path (one session, one dialog, four utterances),
each utterance chosen for one rule:

* F000 `Frustration; Anger` twice and `Frustration` once (the actor says `Anger`): under
  4 classes its only human votes are two rank-1 `angry` votes, so it is secondary-only.
* M000 has rank-0 `angry` votes (E1, E3) beside E2's rank-1 one: never secondary-only.
* F001 `Excited`, `Excited; Happiness`, `Neutral state`: excited is not folded into happy
  by the projection (only by --merge-excited).
* M001 only `Frustration`: no in-set vote at all, so it stays a clip without votes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ambiscope.core.conventions import Conventions, preset
from ambiscope.core.corpora import FORMATS, import_corpus
from ambiscope.core.corpora.base import ImportOptions, RawVote, secondary_only_clips
from ambiscope.core.labels import FOUR_CLASS
from ambiscope.core.reference.distributions import DistributionOptions
from ambiscope.core.reference.human import HumanOptions, load_human
from ambiscope.db import Workspace

EVALUATION = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[1.0000 - 2.0000]\tSes01F_impro01_F000\tfru\t[2.0000, 3.5000, 3.5000]
C-E1:\tFrustration; Anger;\t()
C-E2:\tFrustration; Anger;\t()
C-E3:\tFrustration;\t()
C-F1:\tAnger;\t()

[3.0000 - 4.0000]\tSes01F_impro01_M000\tang\t[2.0000, 4.0000, 4.0000]
C-E1:\tAnger;\t()
C-E2:\tFrustration; Anger;\t()
C-E3:\tAnger; Sadness;\t()

[5.0000 - 6.0000]\tSes01F_impro01_F001\texc\t[4.0000, 3.0000, 3.0000]
C-E1:\tExcited;\t()
C-E2:\tExcited; Happiness;\t()
C-E3:\tNeutral state;\t()

[7.0000 - 8.0000]\tSes01F_impro01_M001\tfru\t[2.0000, 3.0000, 3.0000]
C-E1:\tFrustration;\t()
C-E2:\tFrustration;\t()
"""

SCALING = preset("scaling-ambiguity")
KEEP = SCALING.with_overrides({"secondary_only": "keep"})


def write_release(root: Path) -> Path:
    """The hand-made release described in the module docstring; returns its folder."""
    release = root / "IEMOCAP_full_release"
    evaluation = release / "Session1" / "dialog" / "EmoEvaluation"
    evaluation.mkdir(parents=True)
    (evaluation / "Ses01F_impro01.txt").write_text(EVALUATION)
    return release


@pytest.fixture
def release(tmp_path) -> Path:
    return write_release(tmp_path)


@pytest.fixture
def ws(tmp_path):
    with Workspace.open(tmp_path / "w.db", create=True) as workspace:
        yield workspace


def votes_of(ws, ds, key):
    clip = ws.find_clip(ds.id, key)
    return {(v.annotator, v.label, v.rank) for v in ws.clip_votes(clip.id)}


def test_iemocap_declares_label_lists_and_the_4class_projection():
    meta = FORMATS.meta("iemocap")
    assert meta["label_lists"] is True and meta["projections"] == ("4class",)
    # MSP-Podcast's secondary emotions answer a separate question: not a label list.
    assert FORMATS.meta("msp-podcast")["label_lists"] is False
    assert FORMATS.meta("msp-podcast")["projections"] == ("4class",)
    assert FORMATS.meta("crema-d")["projections"] == ()


def test_secondary_only_clips_looks_at_human_votes_only():
    votes = [
        (RawVote("a", "E1", "Anger", 1), "angry"),
        (RawVote("a", "F1", "Anger", 0, kind="actor"), "angry"),  # no rescue by an actor
        (RawVote("b", "E1", "Anger", 1), "angry"),
        (RawVote("b", "E2", "Sadness", 0), "sad"),
        (RawVote("c", "E1", "Anger", 0), "angry"),
    ]
    assert secondary_only_clips(votes) == {"a"}


def test_scaling_preset_projects_to_four_classes_and_drops_secondary_only(ws, release):
    result = import_corpus(ws, "iemocap", release, ImportOptions(conventions=SCALING))
    ds = result.dataset
    assert ds.label_set == FOUR_CLASS
    assert result.clips_total == 3 and ws.find_clip(ds.id, "Ses01F_impro01_F000") is None
    # F000's E1 and E2 `angry` (rank 1) and the actor's `angry` went with the clip.
    assert result.votes_dropped["clip with only secondary in-set votes"] == 3
    assert result.votes_dropped["outside label set (frustrated)"] == 6
    assert result.votes_dropped["outside label set (excited)"] == 2
    assert votes_of(ws, ds, "Ses01F_impro01_F001") == {
        ("Ses01-E2", "happy", 1),
        ("Ses01-E3", "neutral", 0),
    }
    assert ws.clip_votes(ws.find_clip(ds.id, "Ses01F_impro01_M001").id) == []
    summary = result.summary()
    assert "labels neutral, happy, sad, angry; conventions: scaling-ambiguity" in summary
    assert "only in-set votes are secondary: 1 dropped (secondary_only=drop)" in summary
    assert ds.options["conventions"]["preset"] == "scaling-ambiguity"
    assert ds.options["conventions"]["multi_label"] == "each"
    assert ds.options["import"]["labels"] == list(FOUR_CLASS)
    assert ds.options["import"]["secondary_only"] == {"policy": "drop", "clips": 1}
    assert ds.options["label_lists"] is True


def test_keep_keeps_the_secondary_votes_and_never_one_hot_from_zero_weight(ws, release):
    result = import_corpus(ws, "iemocap", release, ImportOptions(conventions=KEEP))
    ds = result.dataset
    assert result.clips_total == 4
    assert votes_of(ws, ds, "Ses01F_impro01_F000") == {
        ("Ses01-E1", "angry", 1),
        ("Ses01-E2", "angry", 1),
        ("Ses01-F1-self", "angry", 0),
    }
    assert "secondary: 1 kept with those votes (secondary_only=keep)" in result.summary()
    clip_id = ws.find_clip(ds.id, "Ses01F_impro01_F000").id
    # Counting primaries only (secondary weight 0) the clip has no vote, so no reference.
    primary = HumanOptions(distribution=DistributionOptions(multi_label="primary"))
    human = load_human(ws, ds, primary)
    idx = int(np.flatnonzero(human.clip_ids == clip_id)[0])
    assert not human.valid[idx] and human.n_votes[idx] == 0
    # Counting every listed label (the official code), the two `angry` votes count.
    each = HumanOptions(distribution=DistributionOptions(multi_label="each"))
    human = load_human(ws, ds, each)
    idx = int(np.flatnonzero(human.clip_ids == clip_id)[0])
    assert human.valid[idx] and human.dist[idx].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_explicit_labels_win_over_the_projection(ws, release):
    labels = ("neutral", "happy", "sad", "angry", "frustrated")
    options = ImportOptions(labels=labels, conventions=SCALING)
    result = import_corpus(ws, "iemocap", release, options)
    assert result.dataset.label_set == labels
    # With frustrated in the set, F000 has rank-0 votes and nothing is secondary-only.
    assert result.clips_total == 4 and result.secondary_only.clips == 0
    assert "secondary" not in result.summary()


def test_merge_excited_still_folds_under_the_projection(ws, release):
    options = ImportOptions(merge_excited=True, conventions=SCALING)
    ds = import_corpus(ws, "iemocap", release, options).dataset
    assert ds.label_set == FOUR_CLASS
    # E2's "Excited; Happiness" folds to one happy vote at its lowest rank, 0.
    assert votes_of(ws, ds, "Ses01F_impro01_F001") == {
        ("Ses01-E1", "happy", 0),
        ("Ses01-E2", "happy", 0),
        ("Ses01-E3", "neutral", 0),
    }


def test_ambiscope_preset_keeps_every_label_and_records_itself(ws, release):
    result = import_corpus(ws, "iemocap", release, ImportOptions(conventions=Conventions()))
    ds = result.dataset
    assert "frustrated" in ds.label_set and "excited" in ds.label_set
    assert result.clips_total == 4 and result.secondary_only is None
    assert result.summary().splitlines()[0].endswith("; conventions: ambiscope")
    assert ds.options["conventions"]["multi_label"] == "split"


def test_projection_leaves_other_corpora_whole(ws, tmp_path):
    manifest = tmp_path / "votes.csv"
    manifest.write_text("clip,path,annotator,label\nc1,,r1,frustrated\nc1,,r2,happy\n")
    result = import_corpus(ws, "manifest", manifest, ImportOptions(conventions=SCALING))
    assert result.dataset.label_set == ("happy", "frustrated")
    assert result.dataset.options["conventions"]["label_projection"] == "4class"
    assert "label_lists" not in result.dataset.options
