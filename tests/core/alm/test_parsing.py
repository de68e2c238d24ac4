"""Answer parsing: tolerant reading of labels, distributions and CoT answers; never raises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ambiscope.core.alm.parsing import Parsed, parse_answer

LABELS = ("neutral", "happy", "sad", "angry")
IEMOCAP = (
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


def _ok(parsed: Parsed, label: str) -> None:
    assert parsed.valid, parsed.error
    assert parsed.label == label
    assert parsed.error is None
    assert parsed.distribution is not None
    assert abs(parsed.distribution.sum() - 1) < 1e-12


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("sad", "sad"),
        ("Anger", "angry"),
        ("happiness", "happy"),
        ("Neutral state", "neutral"),
        ("neutral_state", "neutral"),
        ("**Sad**", "sad"),
        ('"Sad."', "sad"),
        ("  `ANGRY`!\n", "angry"),
        ("Emotion: sad", "sad"),
        ("The emotion is sad.", "sad"),
        ("Answer: sad", "sad"),
        ("**Answer:** Happy", "happy"),
        ("The emotion expressed by the speaker is most likely sadness.", "sad"),
        ("The speaker sounds sad to me.", "sad"),
        ("not happy but sad", "sad"),
        ("The speaker isn't angry, just sad.", "sad"),
        ("Sad rather than angry", "sad"),
        ("The emotion is not happy; it is sad.", "sad"),
        ("Labels: neutral, happy, sad, angry. Answer: sad", "sad"),
        ("On the other hand, the speaker is sad", "sad"),
        ("sad</s>", "sad"),
    ],
)
def test_label_answers(text, label):
    parsed = parse_answer(text, LABELS, "label")
    _ok(parsed, label)
    assert parsed.distribution.tolist() == [float(x == label) for x in LABELS]


def test_other_is_read_only_as_an_answer():
    _ok(parse_answer("Other", IEMOCAP, "label"), "other")
    _ok(parse_answer("Emotion: other", IEMOCAP, "label"), "other")
    _ok(parse_answer("The emotion is other than sad, it is angry", IEMOCAP, "label"), "angry")


def test_disagreeing_explicit_answers_take_the_last_with_a_warning():
    parsed = parse_answer("Answer: happy. Actually, the answer is sad.", LABELS, "label")
    _ok(parsed, "sad")
    assert any("disagree" in w for w in parsed.warnings)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "empty answer"),
        ("   \n ", "empty answer"),
        ("The speaker sounds happy and sad", "ambiguous: mentions happy and sad"),
        ("happy, sad or angry", "ambiguous: mentions happy, sad and angry"),
        ("neither happy nor sad", "only negated labels mentioned: happy and sad"),
        ("calm", "unknown emotion 'calm'"),
        ("I cannot tell from this recording what is going on here.", "no emotion label found"),
        ("frustrated", "'frustrated' is not in the label set (neutral, happy, sad, angry)"),
        ("Emotion: Frustration", "'Frustration' (frustrated) is not in the label set"),
    ],
)
def test_invalid_label_answers_say_why(text, error):
    parsed = parse_answer(text, LABELS, "label")
    assert not parsed.valid
    assert parsed.label is None and parsed.distribution is None
    assert error in parsed.error
    assert "\n" not in parsed.error


def test_extra_mapping_and_label_order():
    parsed = parse_answer("Excited!", LABELS, "label", extra={"excited": "happy"})
    _ok(parsed, "happy")
    _ok(parse_answer("joy", ("sad", "happy"), "label"), "happy")
    assert parse_answer("joy", ("sad", "happy"), "label").distribution.tolist() == [0.0, 1.0]


def test_caller_errors_raise():
    with pytest.raises(ValueError, match="unknown output mode"):
        parse_answer("sad", LABELS, "json")
    with pytest.raises(ValueError, match="non-empty label set"):
        parse_answer("sad", (), "label")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"neutral": 0.1, "happy": 0.2, "sad": 0.6, "angry": 0.1}', [0.1, 0.2, 0.6, 0.1]),
        ('```json\n{"Happiness": 0.6, "SAD": 0.4}\n```', [0, 0.6, 0.4, 0]),
        ('Sure! Here it is: {"happy": "40%", "sad": "60%"} Hope it helps.', [0, 0.4, 0.6, 0]),
        ('{"happy": 40, "sad": 60}', [0, 0.4, 0.6, 0]),
        ('{"happy": "0.25", "anger": 0.75}', [0, 0.25, 0, 0.75]),
        ('{"probabilities": {"happy": 0.3, "angry": 0.7}}', [0, 0.3, 0, 0.7]),
        ("{'happy': 0.5, 'sad': 0.5}", [0, 0.5, 0.5, 0]),
        ("happy: 0.6, sad: 0.4", [0, 0.6, 0.4, 0]),
        ("- Neutral: 20%\n- Angry: 80%", [0.2, 0, 0, 0.8]),
        ('{"emotion probs": {"neutral": 1}}', [1, 0, 0, 0]),
    ],
)
def test_distribution_answers(text, expected):
    parsed = parse_answer(text, LABELS, "distribution")
    assert parsed.valid, parsed.error
    np.testing.assert_allclose(parsed.distribution, expected, atol=1e-12)
    assert parsed.label == LABELS[int(np.argmax(expected))]


def test_distribution_warnings_never_silent():
    parsed = parse_answer('{"happy": 0.5, "calm": 0.2, "sad": 0.2}', LABELS, "distribution")
    np.testing.assert_allclose(parsed.distribution, [0, 5 / 7, 2 / 7, 0])
    assert any("'calm' (unknown key" in w for w in parsed.warnings)
    assert any("sum to 0.7; renormalised" in w for w in parsed.warnings)
    frus = parse_answer('{"sad": 0.8, "frustrated": 0.2}', LABELS, "distribution")
    assert any("frustrated not in the label set" in w for w in frus.warnings)
    dup = parse_answer('{"anger": 0.3, "angry": 0.3, "sad": 0.4}', LABELS, "distribution")
    np.testing.assert_allclose(dup.distribution, [0, 0, 0.4, 0.6])
    assert any("duplicate" in w for w in dup.warnings)
    thirds = parse_answer('{"happy": 0.33, "sad": 0.33, "angry": 0.33}', LABELS, "distribution")
    assert thirds.warnings == ()  # rounding is not worth a warning
    single = parse_answer("sad", LABELS, "distribution")
    _ok(single, "sad")
    assert any("single label" in w for w in single.warnings)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"calm": 0.6, "bored": 0.4}', "no key is a label in the set"),
        ('{"happy": -0.1, "sad": 1.1}', "negative probability for 'happy'"),
        ('{"happy": NaN, "sad": 1}', "non-finite probability"),
        ('{"happy": 1e999}', "non-finite probability"),
        ('{"happy": 0, "sad": 0}', "all probabilities are zero"),
        ('{"happy": true}', "is not a number"),
        ('{"happy": "lots"}', "is not a number"),
        ("I have no idea.", "no JSON object or 'label: probability' pairs found"),
        ("", "empty answer"),
    ],
)
def test_invalid_distributions(text, error):
    parsed = parse_answer(text, LABELS, "distribution")
    assert not parsed.valid and parsed.distribution is None
    assert error in parsed.error


def test_distribution_argmax_ties_take_the_first_label():
    parsed = parse_answer('{"sad": 0.5, "happy": 0.5}', LABELS, "distribution")
    assert parsed.label == "happy"


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("The pitch is low and slow.\nFinal answer: Sad", "sad"),
        ("I first thought happy.\n**Final Answer:** angry\n", "angry"),
        ("Final answer:\n\n**neutral**", "neutral"),
        ("Reasoning... Answer: sad", "sad"),
        ("Final answer: the speaker is not happy but sad.", "sad"),
    ],
)
def test_cot_answers(text, label):
    parsed = parse_answer(text, LABELS, "cot")
    _ok(parsed, label)
    assert parsed.warnings == ()


def test_cot_fallbacks_warn():
    last_line = parse_answer("low energy, slow\nsad", LABELS, "cot")
    _ok(last_line, "sad")
    assert any("no 'Final answer:' line" in w for w in last_line.warnings)
    trailing = parse_answer("Final answer: sad. I hope this final answer helps.", LABELS, "cot")
    _ok(trailing, "sad")
    assert any("unreadable" in w for w in trailing.warnings)
    bad = parse_answer("Happy or sad?\nFinal answer: calm", LABELS, "cot")
    assert not bad.valid and "final answer: unknown emotion 'calm'" in bad.error
    no_marker = parse_answer("It is sad.\nHard to say.", LABELS, "cot")
    assert not no_marker.valid


_FRAGMENTS = st.sampled_from(
    [
        "sad", "Happy", "anger", "neutral state", "frustrated", "other", "not ", "but ",
        "Final answer:", "Answer:", "Emotion is ", "**", "`", "```json", "{", "}", '"', "'",
        ":", ",", " ", "\n", "0.5", "40%", "-1", "NaN", "1e999", "[", "]", "null", "true",
        '{"happy": 0.5, "sad": 0.5}', "rather than ", "é", "\x00",
    ]
)  # fmt: skip


def _check_contract(parsed: Parsed, labels: tuple[str, ...]) -> None:
    assert isinstance(parsed, Parsed)
    if parsed.valid:
        assert parsed.label in labels
        assert parsed.error is None
        assert parsed.distribution.shape == (len(labels),)
        assert (parsed.distribution >= 0).all()
        assert abs(parsed.distribution.sum() - 1.0) <= 1e-9
        assert parsed.label == labels[int(np.argmax(parsed.distribution))]
    else:
        assert parsed.label is None and parsed.distribution is None
        assert parsed.error and not parsed.error.startswith("internal parser error")


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200), mode=st.sampled_from(["label", "distribution", "cot"]))
def test_arbitrary_text_never_raises(text, mode):
    _check_contract(parse_answer(text, LABELS, mode), LABELS)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(_FRAGMENTS, max_size=25),
    mode=st.sampled_from(["label", "distribution", "cot"]),
)
def test_answer_like_text_never_raises(parts, mode):
    _check_contract(parse_answer("".join(parts), IEMOCAP, mode), IEMOCAP)
