"""The official rater parser (`rater_parse="exact-then-substring"`), on hand-worked answers.

Zhang et al.'s rule: the stripped, lower-cased answer equal to a label, else the FIRST label
in label-set order that is a substring of it, else no vote. No synonyms, no negation, no word
boundaries: these cases pin exactly that (several differ from the lenient `parse_answer`).
"""

from __future__ import annotations

import numpy as np
import pytest

from ambiscope.core.alm.parsing import parse_answer, parse_exact_then_substring

LABELS = ("neutral", "happy", "sad", "angry")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("angry", "angry"),  # exact
        ("  Angry \n", "angry"),  # exact after strip + lower-case
        ("Angry.", "angry"),  # not exact ("angry."), but "angry" is a substring
        ("**Sad**", "sad"),
        ("happy or sad", "happy"),  # both occur: happy comes first in the label set
        ("sad or happy", "happy"),  # the answer's order does not matter, the set's does
        ("I am not happy, I am sad", "happy"),  # no negation handling
        ("unhappy", "happy"),  # no word boundaries
        ("The emotion is Neutral", "neutral"),
    ],
)
def test_valid_answers(text: str, label: str) -> None:
    parsed = parse_exact_then_substring(text, LABELS)
    assert parsed.valid and parsed.label == label and parsed.error is None
    expected = np.zeros(4)
    expected[LABELS.index(label)] = 1.0
    np.testing.assert_array_equal(parsed.distribution, expected)


@pytest.mark.parametrize("text", ["not sure", "Anger", "joyful", "", "   ", "zzz qqq"])
def test_unparsed_answers_are_invalid_with_a_reason(text: str) -> None:
    parsed = parse_exact_then_substring(text, LABELS)
    assert not parsed.valid and parsed.label is None and parsed.distribution is None
    assert parsed.error


def test_exact_match_wins_over_an_earlier_substring() -> None:
    # "sad" is a substring of "sadness" but the answer equals the later label exactly
    labels = ("sad", "sadness")
    assert parse_exact_then_substring("Sadness", labels).label == "sadness"
    assert parse_exact_then_substring("sadness!", labels).label == "sad"


def test_only_a_substring_match_carries_a_warning() -> None:
    assert parse_exact_then_substring("happy", LABELS).warnings == ()
    assert parse_exact_then_substring("Happy.", LABELS).warnings


def test_differs_from_the_lenient_parser_where_the_rules_differ() -> None:
    # synonyms: lenient reads "Anger" as angry, the official rule gives no vote
    assert parse_answer("Anger", LABELS, "label").label == "angry"
    assert not parse_exact_then_substring("Anger", LABELS).valid
    # negation: lenient refuses "not happy", the official rule reads happy
    assert not parse_answer("not happy", LABELS, "label").valid
    assert parse_exact_then_substring("not happy", LABELS).label == "happy"


def test_an_empty_label_set_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="label set"):
        parse_exact_then_substring("happy", ())
