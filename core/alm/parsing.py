"""Tolerant parsing of ALM answers into labels and distributions; never silently drops.

Models rarely answer exactly as asked: they capitalise ("Anger"), use synonyms
("happiness"), wrap answers in markdown (`**Sad**`), explain themselves ("The emotion is
sad."), put JSON inside prose or code fences, or write percentages. The parser accepts all
of that, but an answer it cannot read with confidence is returned *invalid with a reason*
(stored with the candidate), never guessed and never dropped: the invalid rate is a metric.

Label rule (label mode, and the final-answer line of CoT), first step that applies wins:

1. the whole answer, stripped of whitespace, quotes, markdown and punctuation, is one
   label word or synonym -> that label;
2. explicit answer patterns ("Answer: X", "Emotion: X", "the emotion is (probably) X",
   "Final answer - X") -> the LAST such pattern (a model that corrects itself restates the
   answer later); a warning is added when explicit patterns disagree. A pattern followed by
   a list ("labels: happy, sad, ...") is an echo of the prompt, not an answer;
3. label words mentioned in the text, ignoring negated mentions ("not happy", "rather
   than sad", "neither ... nor ...") -> if exactly one distinct label remains, it;
4. otherwise invalid: "ambiguous: mentions happy and sad", "only negated labels
   mentioned: ...", or "no emotion label found ...".

Words map to labels through the dataset's label set plus `ambiscope.core.labels.SYNONYMS` (one
auditable vocabulary, nothing guessed); callers may pass `extra` word -> label mappings
(e.g. {"excited": "happy"} for 4-class IEMOCAP). A word whose canonical label is outside
the dataset's label set makes the answer invalid with an error naming it. The word
"other" is only read in steps 1-2, because in prose it is usually ordinary English
("on the other hand").
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ambiscope.core.alm.prompts import MODES
from ambiscope.core.labels import SYNONYMS

_WEAK_TERMS = frozenset({"other"})
_STRIP_CHARS = " \t\r\n\"'`*_#.,;:!?()[]{}<>-–—=|~"
_SPACES = re.compile(r"[\s_]+")
_NEGATIONS = frozenset({"not", "no", "never", "neither", "nor", "without", "hardly", "nothing"})
_NEG_BIGRAMS = frozenset(
    {("rather", "than"), ("other", "than"), ("instead", "of"), ("opposed", "to")}
)
_CLAUSE_BREAKS = frozenset(
    {"but", "and", "or", "so", "yet", "although", "though", "however", "because", "while"}
)
_CLAUSE_PUNCT = re.compile(r"[.;:!?,\n]")
_WORD = re.compile(r"[a-z']+")

_KEY = (
    r"(?<![A-Za-z])(?:final\s+answer|answer|predicted\s+emotion|emotional\s+state|emotion"
    r"|label|prediction|classification|category)s?"
)
_SEP = (
    r"(?:[^\S\n]*[*_]*[^\S\n]*(?::|=>|->|=|-|–|—)"
    r"|[^.;:!?\n]{0,40}?\b(?:is|was|would\s+be|seems\s+to\s+be)\b)"
)
_HEDGE = (
    r"(?:[\s\"'*_`(\[]|\b(?:a|an|the|probably|likely|most\s+likely|clearly|definitely"
    r"|mostly|mainly|primarily|predominantly|best\s+described\s+as|described\s+as"
    r"|classified\s+as)\b)*"
)
_COT_FINAL = re.compile(r"(?<![A-Za-z])final[\s*_]+answer", re.IGNORECASE)
_COT_ANSWER = re.compile(r"(?<![A-Za-z])answer[^\S\n]*[*_]*[^\S\n]*[:：]", re.IGNORECASE)
_OTHER_THAN = re.compile(r"\s+than\b", re.IGNORECASE)
_MAX_JSON_ATTEMPTS = 64
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


@dataclass(frozen=True, eq=False)
class Parsed:
    """One candidate answer, read.

    `distribution` is a length-K float64 vector over the label set summing to 1 (one-hot
    for a label answer); `label` is its answer (argmax for distributions, first on ties).
    Invalid answers carry `error` (one line) and no label or distribution. `warnings`
    record every liberty the parser took (renormalised, ignored keys, fallbacks).
    """

    valid: bool
    label: str | None
    distribution: np.ndarray | None
    error: str | None
    warnings: tuple[str, ...] = ()


def _norm(text: str) -> str:
    return _SPACES.sub(" ", text.strip().lower())


class _Vocab:
    """Words -> dataset labels for one label set (cached: built once per label set)."""

    def __init__(self, labels: tuple[str, ...], extra: tuple[tuple[str, str], ...]):
        self.labels = labels
        self.index = {label.lower(): i for i, label in enumerate(labels)}
        terms: dict[str, str] = dict(SYNONYMS)
        terms.update({label.lower(): label.lower() for label in labels})
        terms.update({_norm(word): target.lower() for word, target in extra})
        self.terms = {_norm(k): v for k, v in terms.items() if _norm(k)}
        ordered = sorted(self.terms, key=len, reverse=True)
        alternation = "|".join(r"[\s_]+".join(map(re.escape, t.split(" "))) for t in ordered)
        self.term_group = f"(?<![A-Za-z])(?P<term>{alternation})(?![A-Za-z])"
        self.mention = re.compile(self.term_group, re.IGNORECASE)
        self.explicit = re.compile(_KEY + _SEP + _HEDGE + self.term_group, re.IGNORECASE)
        self.list_after = re.compile(
            r"[\s\"'*_`]*(?:,|/|\||\bor\b|\band\b)[\s\"'*_`]*" + self.term_group, re.IGNORECASE
        )
        self.kv = re.compile(
            self.term_group
            + r"[\s\"'*_`]*[:=][^\S\n]*[\"'*_`]*(?P<num>"
            + _NUMBER
            + r")[^\S\n]*(?P<pct>%)?",
            re.IGNORECASE,
        )

    def canonical(self, word: str) -> str | None:
        return self.terms.get(_norm(word))

    def label_list(self) -> str:
        return ", ".join(self.labels)

    def one_hot(self, canonical: str) -> np.ndarray:
        out = np.zeros(len(self.labels), dtype=np.float64)
        out[self.index[canonical]] = 1.0
        return out


@functools.lru_cache(maxsize=64)
def _vocab(labels: tuple[str, ...], extra: tuple[tuple[str, str], ...]) -> _Vocab:
    return _Vocab(labels, extra)


def _invalid(error: str, warnings: Sequence[str] = ()) -> Parsed:
    return Parsed(False, None, None, " ".join(error.split()), tuple(warnings))


def _snippet(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")


def _resolve(word: str, canonical: str, vocab: _Vocab, warnings: Sequence[str]) -> Parsed:
    """A found label word -> a valid one-hot answer, or invalid when outside the set."""
    if canonical not in vocab.index:
        shown = (
            repr(word.strip()) if _norm(word) == canonical else f"{word.strip()!r} ({canonical})"
        )
        return _invalid(f"{shown} is not in the label set ({vocab.label_list()})", warnings)
    label = vocab.labels[vocab.index[canonical]]
    return Parsed(True, label, vocab.one_hot(canonical), None, tuple(warnings))


def _is_negated(text: str, start: int) -> bool:
    """Whether the mention starting at `start` is negated within its clause.

    Looks at up to three words before it, stopping at clause punctuation or a conjunction
    ("not happy but sad": "sad" is not negated, "happy" is).
    """
    before = text[max(0, start - 60) : start].lower()
    cut = [m.end() for m in _CLAUSE_PUNCT.finditer(before)]
    if cut:
        before = before[cut[-1] :]
    words = _WORD.findall(before)[-3:]
    for i in range(len(words) - 1, -1, -1):
        word = words[i]
        if word in _CLAUSE_BREAKS:
            return False
        if word in _NEGATIONS or word.endswith("n't"):
            return True
        if i > 0 and (words[i - 1], word) in _NEG_BIGRAMS:
            return True
    return False


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _explicit_answer(text: str, vocab: _Vocab) -> tuple[str, str, list[str]] | None:
    """The last explicit "answer/emotion is X" pattern (word, canonical, warnings)."""
    found: list[tuple[str, str]] = []
    for match in vocab.explicit.finditer(text):
        if vocab.list_after.match(text, match.end()):
            continue  # "labels: happy, sad, ..." echoes the prompt
        word = match.group("term")
        if _norm(word) in _WEAK_TERMS and _OTHER_THAN.match(text, match.end()):
            continue  # "the emotion is other than sad"
        canonical = vocab.canonical(word)
        if canonical is not None:
            found.append((word, canonical))
    if not found:
        return None
    warnings = []
    distinct = list(dict.fromkeys(c for _, c in found))
    if len(distinct) > 1:
        warnings.append(f"explicit answers disagree ({_join(distinct)}); took the last")
    word, canonical = found[-1]
    return word, canonical, warnings


def _parse_label(text: str, vocab: _Vocab, warnings: Sequence[str] = ()) -> Parsed:
    """The label rule of the module docstring."""
    if not text.strip():
        return _invalid("empty answer", warnings)
    core = text.strip(_STRIP_CHARS)
    canonical = vocab.canonical(core)
    if canonical is not None:
        return _resolve(core, canonical, vocab, warnings)
    explicit = _explicit_answer(text, vocab)
    if explicit is not None:
        word, canonical, more = explicit
        return _resolve(word, canonical, vocab, [*warnings, *more])
    kept: dict[str, str] = {}
    negated: dict[str, str] = {}
    for match in vocab.mention.finditer(text):
        word = match.group("term")
        canonical = vocab.canonical(word)
        if canonical is None or _norm(word) in _WEAK_TERMS:
            continue
        target = negated if _is_negated(text, match.start()) else kept
        target.setdefault(canonical, word)
    if len(kept) == 1:
        canonical, word = next(iter(kept.items()))
        return _resolve(word, canonical, vocab, warnings)
    if kept:
        return _invalid(f"ambiguous: mentions {_join(list(kept))}", warnings)
    if negated:
        return _invalid(f"only negated labels mentioned: {_join(list(negated))}", warnings)
    if core and len(core.split()) <= 3:
        return _invalid(
            f"unknown emotion {_snippet(core, 40)} (expected one of: {vocab.label_list()})",
            warnings,
        )
    return _invalid(f"no emotion label found in {_snippet(text)}", warnings)


class _Pairs(list):
    """A JSON object as its (key, value) pairs, so duplicate keys are not lost."""


def _json_objects(text: str) -> list[_Pairs]:
    """Top-level JSON objects found anywhere in the text (prose, code fences), in order."""
    decoder = json.JSONDecoder(object_pairs_hook=_Pairs)
    found: list[_Pairs] = []
    pos = text.find("{")
    attempts = 0
    while pos != -1 and attempts < _MAX_JSON_ATTEMPTS:
        attempts += 1
        try:
            obj, end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            pos = text.find("{", pos + 1)
            continue
        if isinstance(obj, _Pairs) and obj:
            found.append(obj)
        pos = text.find("{", max(end, pos + 1))
    return found


def _number(value: Any) -> tuple[float | None, bool]:
    """(value, was a percentage) from a JSON number or a "0.4" / "40%" string."""
    if isinstance(value, bool) or value is None:
        return None, False
    try:
        if isinstance(value, int | float):
            return float(value), False
        if isinstance(value, str):
            raw = value.strip()
            return float(raw.removesuffix("%").strip()), raw.endswith("%")
    except (ValueError, OverflowError):
        return None, False
    return None, False


def _key_label(key: str, vocab: _Vocab) -> str | None:
    """A JSON key -> canonical label: exact word, or the one label word it contains."""
    canonical = vocab.canonical(key.strip(_STRIP_CHARS))
    if canonical is not None:
        return canonical
    words = {vocab.canonical(m.group("term")) for m in vocab.mention.finditer(key)}
    words.discard(None)
    return words.pop() if len(words) == 1 else None


def _unwrap(pairs: _Pairs, vocab: _Vocab) -> _Pairs:
    """Descend {"probabilities": {...}} wrappers that hold the real distribution."""
    for _ in range(3):
        if any(_key_label(str(k), vocab) for k, _ in pairs):
            return pairs
        nested = [v for _, v in pairs if isinstance(v, _Pairs)]
        if len(nested) != 1:
            return pairs
        pairs = nested[0]
    return pairs


def _distribution(pairs: Sequence[tuple[str, Any]], vocab: _Vocab, warnings: list[str]) -> Parsed:
    """(key, value) pairs -> a validated, renormalised distribution over the label set."""
    mass = np.zeros(len(vocab.labels), dtype=np.float64)
    seen: dict[str, list[str]] = {}
    ignored: list[str] = []
    pct_flags: list[bool] = []
    for key, value in pairs:
        key = str(key)
        number, pct = _number(value)
        if number is None:
            return _invalid(
                f"value for {_snippet(key, 30)} is not a number ({_snippet(str(value), 30)})"
            )
        if not math.isfinite(number):
            return _invalid(f"non-finite probability for {_snippet(key, 30)} ({number})")
        if number < 0:
            return _invalid(f"negative probability for {_snippet(key, 30)} ({number:g})")
        pct_flags.append(pct)
        canonical = _key_label(key, vocab)
        if canonical is None or canonical not in vocab.index:
            why = "unknown key" if canonical is None else f"{canonical} not in the label set"
            ignored.append(f"{_snippet(key, 30)} ({why}, value {number:g})")
            continue
        seen.setdefault(canonical, []).append(key)
        mass[vocab.index[canonical]] += number
    if not seen:
        return _invalid(f"no key is a label in the set ({vocab.label_list()})")
    if ignored:
        warnings.append(f"ignored {_join(ignored)}")
    for canonical, keys in seen.items():
        if len(keys) > 1:
            warnings.append(f"summed duplicate keys for {canonical}: {', '.join(keys)}")
    total = float(mass.sum())
    if total <= 0:
        return _invalid("all probabilities are zero")
    if not math.isfinite(total):
        return _invalid("probabilities overflow")
    if any(pct_flags) and not all(pct_flags):
        warnings.append("mixed percentages and plain numbers; read all on one scale")
    as_percent = abs(total - 100.0) <= 1.0
    as_unit = abs(total - 1.0) <= 0.015 and not all(pct_flags)
    if not (as_percent or as_unit):
        warnings.append(f"probabilities sum to {total:.4g}; renormalised")
    dist = mass / total
    dist = dist / dist.sum()
    return Parsed(True, vocab.labels[int(np.argmax(dist))], dist, None, tuple(warnings))


def _parse_distribution(text: str, vocab: _Vocab) -> Parsed:
    """JSON object (last readable one), else "label: p" lines, else a single label."""
    if not text.strip():
        return _invalid("empty answer")
    objects = [_unwrap(obj, vocab) for obj in _json_objects(text)]
    for obj in reversed(objects):
        if any(_key_label(str(k), vocab) for k, _ in obj):
            return _distribution(obj, vocab, [])
    if objects:
        keys = [str(k) for k, _ in objects[-1]]
        return _invalid(f"no key is a label in the set: {_snippet(', '.join(keys))}")
    pairs = [
        (m.group("term"), m.group("num") + (m.group("pct") or "")) for m in vocab.kv.finditer(text)
    ]
    if pairs:
        return _distribution(pairs, vocab, ["no JSON object; read 'label: value' pairs"])
    single = _parse_label(text, vocab)
    if single.valid:
        warning = "no probabilities found; read the answer as a single label"
        return Parsed(True, single.label, single.distribution, None, (warning,))
    return _invalid(f"no JSON object or 'label: probability' pairs found ({single.error})")


def _answer_segment(tail: str) -> str:
    """The answer after a "Final answer" marker: the rest of its line, or the next line."""
    lines = tail.splitlines()
    for line in lines[:3]:
        if line.strip(_STRIP_CHARS):
            return line
    return tail


def _parse_cot(text: str, vocab: _Vocab) -> Parsed:
    """Read the label after the last "Final answer" (or "Answer:") marker.

    When the last marker is unreadable but an earlier one parses ("Final answer: sad ...
    hope this final answer helps"), the latest readable one is used, with a warning.
    Without any marker the last non-empty line is read, with a warning.
    """
    if not text.strip():
        return _invalid("empty answer")
    markers = list(_COT_FINAL.finditer(text)) or list(_COT_ANSWER.finditer(text))
    if not markers:
        lines = [line for line in text.splitlines() if line.strip()]
        return _parse_label(lines[-1], vocab, ["no 'Final answer:' line; read the last line"])
    first_error: Parsed | None = None
    for i, marker in enumerate(reversed(markers)):
        parsed = _parse_label(_answer_segment(text[marker.end() :]), vocab)
        if parsed.valid:
            if i == 0:
                return parsed
            note = f"the last {i} 'Final answer' marker(s) unreadable; used an earlier one"
            return Parsed(True, parsed.label, parsed.distribution, None, (*parsed.warnings, note))
        first_error = first_error or parsed
    assert first_error is not None
    return _invalid(f"final answer: {first_error.error}", first_error.warnings)


def parse_answer(
    text: str,
    labels: Sequence[str],
    mode: str,
    *,
    extra: Mapping[str, str] | None = None,
) -> Parsed:
    """Read one candidate answer for a dataset's label set in an output mode.

    Never raises on any string: an unexpected internal failure is returned invalid with
    an "internal parser error" message (tests assert it does not happen). Raises
    ValueError only for caller errors (unknown mode, empty label set).
    """
    if mode not in MODES:
        raise ValueError(f"unknown output mode {mode!r} (expected {', '.join(MODES)})")
    if not labels:
        raise ValueError("parse_answer needs a non-empty label set")
    vocab = _vocab(tuple(labels), tuple(sorted((extra or {}).items())))
    if not isinstance(text, str):
        return _invalid(f"answer is not text ({type(text).__name__})")
    try:
        if mode == "label":
            return _parse_label(text, vocab)
        if mode == "distribution":
            return _parse_distribution(text, vocab)
        return _parse_cot(text, vocab)
    except Exception as exc:  # the contract: a bad answer is data, not a crash
        return _invalid(f"internal parser error: {type(exc).__name__}: {exc}")


def parse_exact_then_substring(text: str, labels: Sequence[str]) -> Parsed:
    """The official code's rater parser (Zhang et al., `rater_parse="exact-then-substring"`).

    The answer, stripped of surrounding whitespace and lower-cased, equal to a label
    (case-insensitive) -> that label; else the FIRST label, in label-set order, that occurs
    anywhere in it as a plain substring -> that label (so "Angry." is angry, "happy or sad"
    is whichever of the two comes first in the label set, and "unhappy" is happy: no word
    boundaries, no synonyms, no negation); else invalid (no vote). Unlike `parse_answer` it
    never reads synonyms ("Anger" is not angry), which is the point: it reproduces their
    invalid rate and votes, not the best reading of the answer.
    """
    if not labels:
        raise ValueError("parse_exact_then_substring needs a non-empty label set")
    if not isinstance(text, str) or not text.strip():
        return _invalid("empty answer")
    cleaned = text.strip().lower()
    for i, label in enumerate(labels):
        if cleaned == label.lower():
            return Parsed(True, label, _one_hot(len(labels), i), None)
    for i, label in enumerate(labels):
        if label.lower() in cleaned:
            note = f"read {label!r} as a substring of the answer"
            return Parsed(True, label, _one_hot(len(labels), i), None, (note,))
    return _invalid(f"no label of the set ({', '.join(labels)}) in {_snippet(text)}")


def _one_hot(k: int, index: int) -> np.ndarray:
    out = np.zeros(k, dtype=np.float64)
    out[index] = 1.0
    return out
