"""Prompt templates for the three output modes and the ALM-as-verifier.

Output modes (Jia et al. 2026, "Decoding Ambiguous Emotions with Test-Time Scaling"):

- `label`: the model answers with ONE emotion word from the dataset's label set;
- `distribution`: the model answers with a JSON object of probabilities per label;
- `cot`: the model reasons step by step, then ends with `Final answer: <label>`.

A template's `user` text is a `str.format` template. Placeholders:

- `{labels}` (required in output-mode templates): the comma-separated label list;
- `{transcript_line}` (optional): `The speaker says: "<transcript>"` plus a newline, or
  the empty string when no transcript is given (so the prompt reads naturally either way);
- `{transcript}` (optional): the bare transcript; when no transcript is given every line
  containing this placeholder is dropped from the template;
- `{answer}` (verifier templates only, required there): the label being verified.

Literal braces are written `{{` and `}}`, as in `str.format`. Templates are stored with
each run verbatim (`template_text`, a TOML document that `parse_template` reads back), so a
run can be audited and re-verified without the file it was launched from.
"""

from __future__ import annotations

import json
import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ambiscope.core.alm.base import ChatPrompt
from ambiscope.core.text import one_line

MODES: tuple[str, ...] = ("label", "distribution", "cot")
"""The output modes, declared once: run specs, parsing, strategies and the CLI read them."""
VERIFIER_MODE = "verifier"
TEMPLATE_MODES: tuple[str, ...] = (*MODES, VERIFIER_MODE)

_PLACEHOLDERS: dict[str, frozenset[str]] = {
    **{mode: frozenset({"labels", "transcript", "transcript_line"}) for mode in MODES},
    VERIFIER_MODE: frozenset({"labels", "transcript", "transcript_line", "answer"}),
}
_REQUIRED: dict[str, frozenset[str]] = {
    **{mode: frozenset({"labels"}) for mode in MODES},
    VERIFIER_MODE: frozenset({"answer"}),
}
_FILE_KEYS = frozenset({"name", "mode", "system", "user"})


@dataclass(frozen=True)
class PromptTemplate:
    """A named prompt for one output mode (or the verifier); validated on construction.

    Validation at construction means a bad `--prompt FILE` fails before any model loads,
    not on the first clip of a long run.
    """

    name: str
    mode: str
    system: str | None
    user: str

    def __post_init__(self) -> None:
        if self.system is not None and not self.system.strip():
            object.__setattr__(self, "system", None)  # a blank system prompt is none
        if self.mode not in TEMPLATE_MODES:
            raise ValueError(
                f"prompt {self.name!r}: unknown mode {self.mode!r} "
                f"(expected one of {', '.join(TEMPLATE_MODES)})"
            )
        if not self.user.strip():
            raise ValueError(f"prompt {self.name!r}: empty user text")
        user_fields = _fields(self.user, f"prompt {self.name!r} user text")
        system_fields = (
            _fields(self.system, f"prompt {self.name!r} system text") if self.system else set()
        )
        allowed = _PLACEHOLDERS[self.mode]
        unknown = sorted((user_fields | system_fields) - allowed)
        if unknown:
            raise ValueError(
                f"prompt {self.name!r}: unknown placeholder(s) "
                f"{', '.join('{' + u + '}' for u in unknown)} "
                f"(allowed in {self.mode} mode: {', '.join(sorted(allowed))}; "
                "write literal braces as {{ and }})"
            )
        missing = sorted(_REQUIRED[self.mode] - (user_fields | system_fields))
        if missing:
            raise ValueError(
                f"prompt {self.name!r}: {self.mode} mode needs the placeholder(s) "
                f"{', '.join('{' + m + '}' for m in missing)}"
            )


def _fields(text: str, where: str) -> set[str]:
    """The placeholder names used in a format string (raises ValueError on bad braces)."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc} (write literal braces as {{{{ and }}}})") from None
    names: set[str] = set()
    for _, field_name, spec, _ in parsed:
        if field_name is None:
            continue
        if field_name == "" or field_name.isdigit():
            raise ValueError(f"{where}: positional placeholder {{{field_name}}} is not allowed")
        names.add(field_name)
        if spec:
            names |= _fields(spec, where)
    return names


DEFAULT_TEMPLATES: dict[str, PromptTemplate] = {
    "label": PromptTemplate(
        name="default-label",
        mode="label",
        system="You are an expert listener who recognises emotions in speech.",
        user=(
            "Listen to the audio clip.\n"
            "{transcript_line}"
            "Which emotion does the speaker express? Choose exactly one of: {labels}.\n"
            "Answer with the single emotion word only."
        ),
    ),
    "distribution": PromptTemplate(
        name="default-distribution",
        mode="distribution",
        system="You are an expert listener who recognises emotions in speech.",
        user=(
            "Listen to the audio clip.\n"
            "{transcript_line}"
            "Different listeners may perceive different emotions in this speech. "
            "Estimate the probability that a listener would choose each of these "
            "emotions: {labels}.\n"
            "Answer with a JSON object only, with every listed emotion as a key and its "
            'probability as the value, summing to 1, e.g. {{"<emotion>": 0.7, '
            '"<emotion>": 0.3, ...}}.'
        ),
    ),
    "cot": PromptTemplate(
        name="default-cot",
        mode="cot",
        system="You are an expert listener who recognises emotions in speech.",
        user=(
            "Listen to the audio clip.\n"
            "{transcript_line}"
            "Which emotion does the speaker express? The possible emotions are: {labels}.\n"
            "Think step by step about the tone of voice, pitch, energy, speaking rate and "
            "the words. Then write your answer on the last line as "
            '"Final answer: <emotion>", using exactly one of the listed emotions.'
        ),
    ),
}

VERIFIER_TEMPLATE = PromptTemplate(
    name="default-verifier",
    mode=VERIFIER_MODE,
    system="You are an expert listener who recognises emotions in speech.",
    user=(
        "Listen to the audio clip.\n"
        "{transcript_line}"
        "The possible emotions are: {labels}.\n"
        'A listener judged the emotion expressed by the speaker as "{answer}". '
        "Is that correct? Answer with Yes or No only."
    ),
)


def _transcript_line(transcript: str | None) -> str:
    return f'The speaker says: "{transcript}"\n' if transcript else ""


def _drop_transcript_lines(text: str) -> str:
    """Remove the lines that use `{transcript}` (for clips without a transcript)."""
    kept = [
        line
        for line in text.splitlines(keepends=True)
        if "transcript" not in {f for _, f, _, _ in string.Formatter().parse(line) if f}
    ]
    return "".join(kept)


def _fill(text: str, values: Mapping[str, str], transcript: str | None) -> str:
    if transcript is None:
        text = _drop_transcript_lines(text)
    return text.format(**values)


def _render(
    template: PromptTemplate, labels: Sequence[str], transcript: str | None, **extra: str
) -> ChatPrompt:
    if not labels:
        raise ValueError("cannot render a prompt for an empty label set")
    clean = transcript.strip() if transcript is not None else None
    clean = clean or None  # a blank transcript is no transcript
    values = {
        "labels": ", ".join(labels),
        "transcript": clean or "",
        "transcript_line": _transcript_line(clean),
        **extra,
    }
    system = _fill(template.system, values, clean) if template.system else None
    return ChatPrompt(user=_fill(template.user, values, clean), system=system or None)


def render(
    template: PromptTemplate, labels: Sequence[str], *, transcript: str | None = None
) -> ChatPrompt:
    """Fill an output-mode template with the label list (and the transcript, if any).

    The answer is free generation, so there is no assistant prefix.
    """
    if template.mode not in MODES:
        raise ValueError(f"render: {template.name!r} is a {template.mode} template")
    return _render(template, labels, transcript)


def render_verifier(
    labels: Sequence[str],
    answer_label: str,
    *,
    transcript: str | None = None,
    template: PromptTemplate = VERIFIER_TEMPLATE,
) -> ChatPrompt:
    """The ALM-as-verifier prompt: "a listener judged the emotion as X; is that correct?".

    P(Yes) is read from the logits of the first answer token, so the prompt ends the user
    turn with "Answer with Yes or No only" and the assistant prefix is empty: the very
    next token the model produces is Yes or No.
    """
    if template.mode != VERIFIER_MODE:
        raise ValueError(f"render_verifier: {template.name!r} is a {template.mode} template")
    return _render(template, labels, transcript, answer=answer_label)


def label_scoring_prompt(
    labels: Sequence[str],
    *,
    transcript: str | None = None,
    template: PromptTemplate | None = None,
) -> ChatPrompt:
    """The prompt for the `likelihood` strategy: the label-mode prompt.

    Each label string is then scored as the continuation of the (empty) assistant turn,
    which is exactly what label-mode sampling draws from.
    """
    template = template or DEFAULT_TEMPLATES["label"]
    if template.mode != "label":
        raise ValueError(f"label_scoring_prompt needs a label-mode template, got {template.mode!r}")
    return render(template, labels, transcript=transcript)


def _toml_string(text: str) -> str:
    """A TOML string that reads back verbatim: a literal string when possible."""
    printable = all(c in "\t\n" or (ord(c) >= 0x20 and ord(c) != 0x7F) for c in text)
    if printable and "\n" not in text and "'" not in text:
        return "'" + text + "'"
    if printable and "'''" not in text and not text.endswith("'"):
        return "'''\n" + text + "'''"
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
    escapes |= {"\f": "\\f", "\r": "\\r"}
    out = []
    for c in text:
        if c in escapes:
            out.append(escapes[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def template_text(template: PromptTemplate) -> str:
    """The template as a small TOML document, stored verbatim with each run.

    It is both human-readable (multi-line literal strings, no escaping in the usual case)
    and exact: `parse_template(template_text(t)) == t`.
    """
    lines = [f"name = {_toml_string(template.name)}", f"mode = {_toml_string(template.mode)}"]
    if template.system is not None:
        lines.append(f"system = {_toml_string(template.system)}")
    lines.append(f"user = {_toml_string(template.user)}")
    return "\n".join(lines) + "\n"


def _template_from_mapping(
    data: Mapping[str, Any], source: str, default_name: str
) -> PromptTemplate:
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {', '.join(unknown)} "
            f"(expected: {', '.join(sorted(_FILE_KEYS))})"
        )
    for key in ("mode", "user"):
        if key not in data:
            raise ValueError(f"{source}: missing required key {key!r}")
    for key in _FILE_KEYS & set(data):
        if not isinstance(data[key], str):
            raise ValueError(f"{source}: {key!r} must be a string")
    try:
        return PromptTemplate(
            name=data.get("name") or default_name,
            mode=data["mode"].strip().lower(),
            system=data.get("system") or None,
            user=data["user"],
        )
    except ValueError as exc:
        raise ValueError(f"{source}: {one_line(str(exc))}") from None


def parse_template(text: str, *, source: str = "prompt", name: str = "custom") -> PromptTemplate:
    """Read a template from TOML text (or JSON text, when it starts with `{`).

    Keys: `mode` and `user` (required), `system` and `name` (optional). Errors are
    one-line ValueErrors that start with `source`.
    """
    stripped = text.lstrip()
    try:
        data = json.loads(stripped) if stripped.startswith("{") else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if stripped.startswith("{") else "TOML"
        raise ValueError(f"{source}: invalid {kind}: {one_line(str(exc))}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a table/object with mode and user keys")
    return _template_from_mapping(data, source, name)


def load_template(path: str | Path) -> PromptTemplate:
    """Load a `--prompt FILE` (TOML, or JSON by `.json` suffix or content).

    Example file::

        mode = "label"
        system = "You are an expert listener."
        user = '''
        {transcript_line}Which emotion is expressed? Choose one of: {labels}.
        Answer with one word.'''
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"prompt file {path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"prompt file {path}: cannot read: {one_line(str(exc))}") from None
    if path.suffix.lower() == ".json" and not text.lstrip().startswith("{"):
        raise ValueError(f"prompt file {path}: invalid JSON: expected an object")
    return parse_template(text, source=f"prompt file {path}", name=path.stem)
