"""The shared import path: label mapping, vote folding, compatibility and atomicity."""

from __future__ import annotations

import pytest

from ambiscope.core.corpora.base import (
    ImportFormatError,
    ImportOptions,
    ParsedCorpus,
    RawVote,
    write_corpus,
)
from ambiscope.db import ClipIn, Workspace, WorkspaceError


@pytest.fixture
def ws(tmp_path):
    with Workspace.open(tmp_path / "w.db", create=True) as workspace:
        yield workspace


def corpus(votes, *, compat=None, corpus_name="iemocap"):
    return ParsedCorpus(
        format="test",
        corpus=corpus_name,
        root="/x",
        clips=[ClipIn("c1"), ClipIn("c2")],
        votes=list(votes),
        options={"compat": compat} if compat else {},
    )


def weights(ws, name="t"):
    ds = ws.get_dataset(name)
    return sorted(
        ws.conn.execute(
            "SELECT c.key, a.external_id, v.label, v.rank, v.weight FROM votes v "
            "JOIN clips c ON c.id = v.clip_id JOIN annotators a ON a.id = v.annotator_id "
            "WHERE c.dataset_id = ?",
            (ds.id,),
        ).fetchall()
    )


def test_merge_excited_sums_pool_counts_and_keeps_primary(ws):
    votes = [
        RawVote("c1", "pool", "hap", weight=2, pool=True),
        RawVote("c1", "pool", "exc", weight=1, pool=True),
        RawVote("c2", "E1", "Happiness", rank=0),
        RawVote("c2", "E1", "Excited", rank=1),
        RawVote("c2", "E2", "Excited", rank=0),  # one rater, two labels that merge
        RawVote("c2", "E2", "Happiness", rank=0),
    ]
    result = write_corpus(ws, corpus(votes), ImportOptions(merge_excited=True), default_name="t")
    assert "excited" not in result.dataset.label_set
    assert weights(ws) == [
        ("c1", "pool", "happy", 0, 3.0),
        ("c2", "E1", "happy", 0, 1.0),
        ("c2", "E2", "happy", 0, 1.0),
    ]


def test_unknown_labels_fail_atomically_then_map_explicitly(ws):
    votes = [RawVote("c1", "r1", "Bored"), RawVote("c2", "r1", "Bored"), RawVote("c2", "r2", "ang")]
    with pytest.raises(ImportFormatError, match="'Bored' x2"):
        write_corpus(ws, corpus(votes), ImportOptions(), default_name="t")
    assert ws.table_counts()["datasets"] == 0
    write_corpus(ws, corpus(votes), ImportOptions(label_map={"Bored": "neutral"}), default_name="t")
    assert [w[2] for w in weights(ws)] == ["neutral", "neutral", "angry"]
    other = write_corpus(
        ws, corpus(votes), ImportOptions(name="u", unknown="drop"), default_name="t"
    )
    assert other.votes_written == 1 and other.votes_dropped["unknown label"] == 2


def test_incompatible_reimport_is_refused(ws):
    votes = [RawVote("c1", "pool", "ang", weight=3)]
    write_corpus(ws, corpus(votes, compat={"modality": "voice"}), ImportOptions(), default_name="t")
    with pytest.raises(WorkspaceError, match="choose another --name or use --replace"):
        write_corpus(
            ws, corpus(votes, compat={"modality": "face"}), ImportOptions(), default_name="t"
        )
    replaced = write_corpus(
        ws,
        corpus(votes, compat={"modality": "face"}),
        ImportOptions(replace=True),
        default_name="t",
    )
    assert replaced.dataset.options["compat"] == {"modality": "face"}


def test_no_votes_needs_an_explicit_label_set(ws):
    with pytest.raises(ImportFormatError, match="pass --labels"):
        write_corpus(ws, corpus([]), ImportOptions(), default_name="t")
    result = write_corpus(
        ws, corpus([], corpus_name=None), ImportOptions(labels=("neutral", "sad")), default_name="t"
    )
    assert result.dataset.label_set == ("neutral", "sad") and result.clips_total == 2


def test_every_format_module_registers_itself() -> None:
    from ambiscope.core.corpora import FORMATS

    assert set(FORMATS.names()) == {"crema-d", "iemocap", "msp-podcast", "label-studio", "manifest"}
    assert FORMATS.meta("crema-d")["extra"] == ("modality",)
    assert all(FORMATS.meta(name)["summary"] for name in FORMATS)
    with pytest.raises(ValueError, match="unknown format 'ravdess'"):
        FORMATS.get("ravdess")
