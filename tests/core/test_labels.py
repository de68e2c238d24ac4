"""Label taxonomy: corpus codes, synonyms, explicit mappings and projections."""

from __future__ import annotations

import numpy as np
import pytest

from ambiscope.core.labels import (
    CANONICAL_LABELS,
    CORPUS_LABEL_SETS,
    FOUR_CLASS,
    LabelError,
    LabelMapper,
    canonical_order,
    parse_label_list,
    parse_mapping,
    project_counts,
    projection_matrix,
    to_canonical,
)


@pytest.mark.parametrize(
    ("text", "corpus", "expected"),
    [
        ("ang", "iemocap", "angry"),
        ("fru", "iemocap", "frustrated"),
        ("xxx", "iemocap", None),
        ("Neutral state", "iemocap", "neutral"),
        ("Happiness;", "iemocap", "happy"),
        ("U", "msp-podcast", "surprise"),
        ("C", "msp-podcast", "contempt"),
        ("X", "msp-podcast", None),
        ("Other-Amused", "msp-podcast", "other"),
        ("A", "crema-d", "angry"),
        ("DIS", "crema-d", "disgust"),
        ("  SADNESS ", None, "sad"),
    ],
)
def test_codes_and_synonyms(text, corpus, expected):
    assert to_canonical(text, corpus=corpus) == expected


def test_unknown_label_needs_explicit_mapping():
    with pytest.raises(LabelError, match="unknown emotion label 'Annoyed'"):
        to_canonical("Annoyed", corpus="msp-podcast")
    assert to_canonical("Annoyed", extra={"annoyed": "angry"}) == "angry"
    with pytest.raises(LabelError, match="not a canonical label"):
        to_canonical("Annoyed", extra={"Annoyed": "grumpy"})
    with pytest.raises(LabelError, match="unknown corpus"):
        to_canonical("a", corpus="ravdess-typo")


def test_mapper_counts_unknown_labels():
    mapper = LabelMapper(corpus="msp-podcast")
    out = [mapper.map(x) for x in ["A", "Annoyed", "Annoyed", "Bored", "N"]]
    assert out == ["angry", None, None, None, "neutral"]
    assert mapper.unknown == {"Annoyed": 2, "Bored": 1}
    assert "'Annoyed' x2" in mapper.unknown_summary()


def test_parse_mapping_and_label_lists():
    assert parse_mapping(["Annoyed=angry", "Amused = happy"]) == {
        "Annoyed": "angry",
        "Amused": "happy",
    }
    for bad in ("Annoyed", "=angry", "Annoyed=grumpy"):
        with pytest.raises(LabelError):
            parse_mapping([bad])
    assert parse_label_list("4class") == FOUR_CLASS
    assert parse_label_list("sad, anger ,neutral") == ("neutral", "sad", "angry")
    with pytest.raises(LabelError):
        parse_label_list(" , ")


def test_corpus_label_sets_are_canonical_and_ordered():
    for labels in CORPUS_LABEL_SETS.values():
        assert set(labels) <= set(CANONICAL_LABELS)
        assert canonical_order(labels) == labels


def test_four_class_projection_with_excited_merge():
    source = CORPUS_LABEL_SETS["iemocap"]
    counts = np.zeros((1, len(source)))
    counts[0, source.index("excited")] = 2
    counts[0, source.index("happy")] = 1
    counts[0, source.index("frustrated")] = 3
    counts[0, source.index("sad")] = 1
    merged = project_counts(counts, source, FOUR_CLASS, merge_excited=True)
    assert merged.tolist() == [[0, 3, 1, 0]]  # frustrated dropped, excited -> happy
    plain = project_counts(counts, source, FOUR_CLASS)
    assert plain.tolist() == [[0, 1, 1, 0]]
    assert projection_matrix(["sad"], ["happy"]).sum() == 0
