"""Emotion taxonomy: canonical labels, per-corpus codes, synonyms and label projections.

Every corpus spells emotions its own way (IEMOCAP `fru`, MSP-Podcast `U`, CREMA-D `ANG`,
evaluator free text "Neutral state"). Storing one canonical vocabulary lets distributions
from different corpora and models share a column order, and keeps the mapping auditable
in one place. Anything that is not a known code or synonym is *reported*, never guessed:
mapping a new word needs an explicit `extra` mapping from the user.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

CANONICAL_LABELS: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "angry",
    "fear",
    "disgust",
    "surprise",
    "contempt",
    "frustrated",
    "excited",
    "other",
)

# The four classes most IEMOCAP/MSP papers report on.
FOUR_CLASS: tuple[str, ...] = ("neutral", "happy", "sad", "angry")

PROJECTIONS: dict[str, tuple[str, ...]] = {"4class": FOUR_CLASS}
"""Label projections a convention can name (`label_projection`) -> the label set kept.

A projection only restricts the label set, exactly like `--labels`: votes outside it are
dropped and nothing is folded (the official 4-class IEMOCAP lists of Zhang et al. hold
only Anger / Happiness / Neutral state / Sadness, so `excited` is not merged into `happy`
unless `--merge-excited` asks for it)."""

SYNONYMS: dict[str, str] = {
    "neutral": "neutral",
    "neutral state": "neutral",
    "neutrality": "neutral",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "joyful": "happy",
    "sad": "sad",
    "sadness": "sad",
    "angry": "angry",
    "anger": "angry",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "disgust": "disgust",
    "disgusted": "disgust",
    "surprise": "surprise",
    "surprised": "surprise",
    "contempt": "contempt",
    "contemptuous": "contempt",
    "frustrated": "frustrated",
    "frustration": "frustrated",
    "excited": "excited",
    "excitement": "excited",
    "other": "other",
}

# Corpus codes. None means "no label" (e.g. IEMOCAP xxx, MSP-Podcast X: no agreement).
CORPUS_CODES: dict[str, dict[str, str | None]] = {
    "iemocap": {
        "ang": "angry",
        "hap": "happy",
        "sad": "sad",
        "neu": "neutral",
        "fru": "frustrated",
        "exc": "excited",
        "fea": "fear",
        "sur": "surprise",
        "dis": "disgust",
        "oth": "other",
        "xxx": None,
    },
    "msp-podcast": {
        "a": "angry",
        "s": "sad",
        "h": "happy",
        "u": "surprise",
        "f": "fear",
        "d": "disgust",
        "c": "contempt",
        "n": "neutral",
        "o": "other",
        "x": None,
    },
    "crema-d": {
        "a": "angry",
        "d": "disgust",
        "f": "fear",
        "h": "happy",
        "n": "neutral",
        "s": "sad",
        "ang": "angry",
        "dis": "disgust",
        "fea": "fear",
        "hap": "happy",
        "neu": "neutral",
        "sad": "sad",
    },
}

CORPUS_LABEL_SETS: dict[str, tuple[str, ...]] = {
    "iemocap": (
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
    ),
    "msp-podcast": (
        "neutral",
        "happy",
        "sad",
        "angry",
        "fear",
        "disgust",
        "surprise",
        "contempt",
        "other",
    ),
    "crema-d": ("neutral", "happy", "sad", "angry", "fear", "disgust"),
}

_SPACES = re.compile(r"[\s_]+")


class LabelError(ValueError):
    """A label that no code, synonym or explicit mapping explains."""


def _norm(text: str) -> str:
    return _SPACES.sub(" ", text.strip().strip(".;,:").lower())


def canonical_order(labels: Iterable[str]) -> tuple[str, ...]:
    """Sort labels into canonical order (unknown extras last, alphabetically)."""
    rank = {name: i for i, name in enumerate(CANONICAL_LABELS)}
    return tuple(sorted(set(labels), key=lambda x: (rank.get(x, len(rank)), x)))


def to_canonical(
    text: str, *, corpus: str | None = None, extra: Mapping[str, str] | None = None
) -> str | None:
    """Map a corpus code, canonical name or synonym to a canonical label.

    Returns None for explicit no-label codes (IEMOCAP `xxx`, MSP-Podcast `X`). Free-text
    "Other-..." answers (MSP-Podcast) map to `other`. Raises LabelError otherwise.
    """
    key = _norm(text)
    if extra:
        mapped = {_norm(k): v for k, v in extra.items()}.get(key)
        if mapped is not None:
            if mapped not in CANONICAL_LABELS:
                raise LabelError(f"mapping {text!r} -> {mapped!r}: not a canonical label")
            return mapped
    if corpus is not None:
        codes = CORPUS_CODES.get(corpus.lower())
        if codes is None:
            raise LabelError(f"unknown corpus {corpus!r} (known: {', '.join(CORPUS_CODES)})")
        if key in codes:
            return codes[key]
    if key in SYNONYMS:
        return SYNONYMS[key]
    if key.startswith("other"):
        return "other"
    raise LabelError(f"unknown emotion label {text!r}")


@dataclass
class LabelMapper:
    """Maps labels while counting the unknown ones, so an import can report them all.

    Importers call `map()` per vote; at the end `unknown` holds every unexplained label
    with its count, and the importer fails (or skips with --skip-bad) naming them.
    """

    corpus: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    unknown: Counter[str] = field(default_factory=Counter)
    _memo: dict[str, tuple[str | None, bool]] = field(default_factory=dict, repr=False)

    def map(self, text: str) -> str | None:
        """Canonical label, or None for a no-label code or an unknown word (then counted).

        Memoised per spelling: importers call this once per vote, a million times for
        MSP-Podcast, over a few dozen distinct strings.
        """
        hit = self._memo.get(text)
        if hit is None:
            try:
                hit = (to_canonical(text, corpus=self.corpus, extra=self.extra), False)
            except LabelError:
                hit = (None, True)
            self._memo[text] = hit
        label, unknown = hit
        if unknown:
            self.unknown[text.strip()] += 1
        return label

    def is_unknown(self, text: str) -> bool:
        """Whether `text` was an unknown word (as opposed to a no-label code)."""
        return self._memo.get(text, (None, False))[1]

    def unknown_summary(self, limit: int = 10) -> str:
        items = ", ".join(f"{k!r} x{v}" for k, v in self.unknown.most_common(limit))
        more = len(self.unknown) - limit
        return items + (f" and {more} more" if more > 0 else "")


def parse_mapping(specs: Sequence[str]) -> dict[str, str]:
    """Parse `WORD=label` options (e.g. `--map Annoyed=angry`) into a mapping."""
    out: dict[str, str] = {}
    for spec in specs:
        word, sep, label = spec.partition("=")
        if not sep or not word.strip() or not label.strip():
            raise LabelError(f"label mapping {spec!r}: expected WORD=label")
        label = label.strip().lower()
        if label not in CANONICAL_LABELS:
            raise LabelError(
                f"label mapping {spec!r}: {label!r} is not one of {', '.join(CANONICAL_LABELS)}"
            )
        out[word.strip()] = label
    return out


def projection_matrix(
    source: Sequence[str],
    target: Sequence[str],
    *,
    merge_excited: bool = False,
) -> np.ndarray:
    """A (len(source), len(target)) 0/1 matrix that maps vote counts between label sets.

    `counts @ M` keeps each source label that exists in the target, optionally folds
    `excited` into `happy` (the IEMOCAP 4-class convention), and drops everything else
    (those votes vanish; renormalise afterwards). Used for 4-class projections.
    """
    index = {name: j for j, name in enumerate(target)}
    matrix = np.zeros((len(source), len(target)), dtype=np.float64)
    for i, name in enumerate(source):
        if merge_excited and name == "excited" and "happy" in index:
            matrix[i, index["happy"]] = 1.0
        elif name in index:
            matrix[i, index[name]] = 1.0
    return matrix


def project_counts(
    counts: np.ndarray,
    source: Sequence[str],
    target: Sequence[str],
    *,
    merge_excited: bool = False,
) -> np.ndarray:
    """Project (n, len(source)) vote counts onto `target` labels (see projection_matrix)."""
    return counts @ projection_matrix(source, target, merge_excited=merge_excited)


def parse_label_list(text: str) -> tuple[str, ...]:
    """Parse a `--labels` option: a comma list of labels or the name `4class`."""
    if text.strip().lower() in ("4class", "four", "4"):
        return FOUR_CLASS
    labels = [to_canonical(part) for part in text.split(",") if part.strip()]
    clean = [label for label in labels if label is not None]
    if not clean:
        raise LabelError(f"--labels {text!r}: no labels given")
    return canonical_order(clean)
