"""Prompt templates: defaults per mode, rendering, verifier prompts, files and round-trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ambiscope.core.alm.base import ChatPrompt
from ambiscope.core.alm.prompts import (
    DEFAULT_TEMPLATES,
    MODES,
    VERIFIER_TEMPLATE,
    PromptTemplate,
    label_scoring_prompt,
    load_template,
    parse_template,
    render,
    render_verifier,
    template_text,
)

LABELS = ("neutral", "happy", "sad", "angry")


def test_one_default_template_per_mode():
    assert MODES == ("label", "distribution", "cot")
    assert set(DEFAULT_TEMPLATES) == set(MODES)
    for mode, template in DEFAULT_TEMPLATES.items():
        assert template.mode == mode
        assert "{labels}" in template.user
        assert "{transcript_line}" in template.user


@pytest.mark.parametrize("mode", MODES)
def test_render_lists_labels_and_transcript(mode):
    prompt = render(DEFAULT_TEMPLATES[mode], LABELS, transcript="  I can't {believe} it ")
    assert isinstance(prompt, ChatPrompt)
    assert "neutral, happy, sad, angry" in prompt.user
    assert 'The speaker says: "I can\'t {believe} it"\n' in prompt.user
    assert prompt.system and prompt.assistant_prefix == ""
    assert "{labels}" not in prompt.user and "{transcript" not in prompt.user


@pytest.mark.parametrize("transcript", [None, "", "   "])
def test_render_without_transcript_drops_the_line(transcript):
    prompt = render(DEFAULT_TEMPLATES["label"], LABELS, transcript=transcript)
    assert "speaker says" not in prompt.user
    assert prompt.user.startswith("Listen to the audio clip.\nWhich emotion")


def test_mode_specific_answer_formats():
    assert "single emotion word" in DEFAULT_TEMPLATES["label"].user
    dist = render(DEFAULT_TEMPLATES["distribution"], LABELS).user
    assert "JSON" in dist and '{"<emotion>": 0.7' in dist
    assert "Final answer: <emotion>" in render(DEFAULT_TEMPLATES["cot"], LABELS).user


def test_bare_transcript_placeholder_lines_are_dropped_when_missing():
    template = PromptTemplate(
        "t", "label", None, "Transcript: {transcript}\nPick one of {labels}.\nOne word."
    )
    assert render(template, LABELS, transcript="hi").user.startswith("Transcript: hi\n")
    assert render(template, LABELS).user == "Pick one of neutral, happy, sad, angry.\nOne word."


def test_literal_braces_and_system_placeholders():
    template = PromptTemplate("t", "distribution", "Labels: {labels}", 'Reply {{"x": 1}}.')
    prompt = render(template, ["sad", "happy"])
    assert prompt.user == 'Reply {"x": 1}.'
    assert prompt.system == "Labels: sad, happy"


def test_render_rejects_wrong_template_kind_and_empty_labels():
    with pytest.raises(ValueError, match="verifier template"):
        render(VERIFIER_TEMPLATE, LABELS)
    with pytest.raises(ValueError, match="label template"):
        render_verifier(LABELS, "sad", template=DEFAULT_TEMPLATES["label"])
    with pytest.raises(ValueError, match="empty label set"):
        render(DEFAULT_TEMPLATES["label"], [])


def test_verifier_prompt_ends_on_a_yes_no_question():
    prompt = render_verifier(LABELS, "sad", transcript="fine")
    assert prompt.assistant_prefix == ""
    assert prompt.user.endswith("Answer with Yes or No only.")
    assert 'judged the emotion expressed by the speaker as "sad"' in prompt.user
    assert 'The speaker says: "fine"' in prompt.user
    assert "neutral, happy, sad, angry" in prompt.user


def test_label_scoring_prompt_is_the_label_prompt():
    assert label_scoring_prompt(LABELS, transcript="x") == render(
        DEFAULT_TEMPLATES["label"], LABELS, transcript="x"
    )
    with pytest.raises(ValueError, match="label-mode template"):
        label_scoring_prompt(LABELS, template=DEFAULT_TEMPLATES["cot"])


@pytest.mark.parametrize(
    ("mode", "user", "message"),
    [
        ("vibes", "{labels}", "unknown mode 'vibes'"),
        ("label", "Pick one.", r"needs the placeholder\(s\) \{labels\}"),
        ("label", "{labels} {speaker}", r"unknown placeholder\(s\) \{speaker\}"),
        ("label", "{labels} {}", "positional placeholder"),
        ("label", "{labels} {0}", "positional placeholder"),
        ("label", "{labels} {", "write literal braces"),
        ("label", "{labels} {labels.upper}", "unknown placeholder"),
        ("label", "{labels} {answer}", "unknown placeholder"),
        ("verifier", "{labels} correct?", r"\{answer\}"),
        ("cot", "   ", "empty user text"),
    ],
)
def test_template_validation(mode, user, message):
    with pytest.raises(ValueError, match=message):
        PromptTemplate("bad", mode, None, user)


def test_blank_system_is_none():
    assert PromptTemplate("t", "label", "  ", "{labels}").system is None


def test_template_text_is_verbatim_and_round_trips():
    text = template_text(DEFAULT_TEMPLATES["cot"])
    assert "mode = 'cot'" in text
    assert DEFAULT_TEMPLATES["cot"].user in text  # readable: no escaping in the usual case
    for template in (*DEFAULT_TEMPLATES.values(), VERIFIER_TEMPLATE):
        assert parse_template(template_text(template)) == template


_SAFE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="{}"), max_size=40)


@settings(max_examples=150, deadline=None)
@given(before=_SAFE, after=_SAFE, system=st.none() | _SAFE, name=_SAFE)
def test_template_text_round_trips_any_text(before, after, system, name):
    user = before + "{labels}" + after
    template = PromptTemplate(name or "x", "label", system, user)
    assert parse_template(template_text(template)) == template


def test_load_template_toml_and_json(tmp_path):
    toml_file = tmp_path / "mine.toml"
    toml_file.write_text(
        'mode = "Label"\nsystem = "Be brief."\nuser = \'\'\'\n{transcript_line}One of '
        "{labels}?'''\n",
        encoding="utf-8",
    )
    template = load_template(toml_file)
    assert template == PromptTemplate(
        "mine", "label", "Be brief.", "{transcript_line}One of {labels}?"
    )
    json_file = tmp_path / "d.json"
    json_file.write_text(
        json.dumps({"name": "dist", "mode": "distribution", "user": "JSON over {labels}"})
    )
    assert load_template(json_file) == PromptTemplate(
        "dist", "distribution", None, "JSON over {labels}"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("mode = 'label'\nuser = 'x\n", "invalid TOML"),
        ("mode = 'label'", "missing required key 'user'"),
        ("user = '{labels}'", "missing required key 'mode'"),
        ("mode = 'label'\nuser = '{labels}'\ntemperature = 0.7", "unknown key"),
        ("mode = 'label'\nuser = 3", "'user' must be a string"),
        ("mode = 'vibes'\nuser = '{labels}'", "unknown mode 'vibes'"),
        ("mode = 'label'\nuser = '{labels} {speaker}'", "unknown placeholder"),
        ("mode = 'cot'\nuser = 'think'", "needs the placeholder"),
        ("mode = 'label'\nuser = '{labels'", "write literal braces"),
        ("[1, 2]", "invalid TOML"),
        ('{"mode": "label",', "invalid JSON"),
    ],
)
def test_load_template_errors_are_one_line(tmp_path, content, message):
    path = tmp_path / "p.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        load_template(path)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"prompt file {path}")


def test_load_template_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_template(tmp_path / "nope.toml")
