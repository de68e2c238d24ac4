"""Conventions: every choice around the formulas that changes a published number, in one object.

Two studies can use the same JS divergence and still print different tables: which clips
are "high" ambiguity, whether a label nobody used counts in R², which ECE bin a confidence
of exactly 0.3 falls in, how synthetic raters are seeded. `Conventions` owns each such
choice as a named field; presets are registered (`PRESETS`, one decorated definition each,
like every other plug-in point), a workspace may set its default (`ambiscope config preset
NAME`, stored in the workspace's `meta` table) and single fields can be overridden
(`--set ambiguity=rank-thirds`). Every run, metric table, report and export records the
conventions it used (`to_dict()`: the preset name, the overrides and every field).

Presets:

* ``ambiscope`` (the default) keeps what ambiscope computed before presets existed, except
  where that was an accident of implementation (see the README's Conventions section):
  entropy normalised by log K of the dataset (a 50/50 two-label clip is not "maximally
  ambiguous" among ten labels), ambiguity tertiles by quantile with ties to the lower level
  (clips with the same vote split always share a level), R² skipping labels that are
  constant in the reference (R² is undefined there, not 0), ECE bins right-closed, Fleiss'
  kappa over clips with at least two raters (one rater has no pair to agree with), every
  label an IEMOCAP evaluator lists counting with weight 1/len(list) (an evaluator is one
  voice however many labels they list).
* ``scaling-ambiguity`` re-implements the official code of Zhang et al. ("Scaling
  Ambiguity", WendaZhang08/scaling-ambiguity-SER): natural-log entropy normalised by the
  log of the number of labels PRESENT in the clip, exact thirds by rank (stable sort, file
  order on ties), sklearn's R², ECE bins ``min(int(conf * 10), 9)``, single-rater items as
  perfect agreement, one vote per listed label, raters with persona and temperature band
  locked together and seeded per rater, 4-class projections for IEMOCAP and MSP-Podcast,
  and DiME-Aug with k = 3 neighbours (the clip and two others, as its train.py calls it)
  over librosa + lexical features.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from ambiscope.core.registry import Registry

META_KEY = "conventions"
"""The workspace `meta` key holding its default preset and overrides (JSON)."""

DEFAULT_PRESET = "ambiscope"


@dataclass(frozen=True)
class Conventions:
    """Every number-changing convention; one preset's values (see the module docstring).

    Field values are plain strings, numbers and booleans so they print, store and parse
    as ``--set NAME=VALUE`` without special cases; `CHOICES` lists the allowed strings.
    """

    preset: str = DEFAULT_PRESET
    overrides: tuple[tuple[str, str], ...] = ()
    # ---- human reference
    multi_label: str = "split"  # an evaluator's label list: primary / split (1/len) / each (1)
    secondary_weight: float = 0.0  # rank >= 1 votes of corpora with secondary labels (MSP)
    smoothing: float = 0.0
    label_projection: str = "none"  # none / 4class (IEMOCAP, MSP-Podcast: neu hap sad ang)
    secondary_only: str = "drop"  # projected clips whose only in-set votes are secondary
    entropy_base: str = "2"  # 2 (bits) or e; raw entropies shown and stored in this base
    entropy_norm: str = "log-k"  # log-k (dataset's K) / log-present (labels voted in clip)
    ambiguity: str = "tertile"  # tertile (quantiles, ties low) / rank-thirds / fixed
    thresholds: tuple[float, float] = (1 / 3, 2 / 3)  # cut points of `fixed`
    # ---- metrics
    r2_constant: str = "skip"  # a label constant in the reference: skip / sklearn (scores 0)
    r2_uniform: str = "skip"  # clips with a uniform prediction: skip / keep
    ece_bins: str = "right-closed"  # right-closed / left-closed: min(int(conf * n), n - 1)
    ece_n_bins: int = 10
    kappa_single: str = "drop"  # single-rater items: drop / perfect (agreement 1)
    # ---- synthetic raters
    rater_personas: str = "rotate"  # rotate (persona i mod P, band i mod B) / locked (i mod 5)
    rater_seed: str = "per-run"  # per-run / per-rater (a rater's temperature fixed across runs)
    rater_transcript: bool = False  # transcript (and speaker) always in the rater prompt
    rater_parse: str = "lenient"  # lenient (negation-aware) / exact-then-substring
    # ---- saturation
    saturation: str = "nested-fit"  # nested-fit / sampled-grid (k raters sampled per k)
    saturation_repeats: int = 5
    # ---- DiME-Aug
    dime_k: int = 4  # neighbours, the clip itself included (4: three other clips)
    dime_features: str = "ambiscope"  # ambiscope (audio) / librosa-lexical (72 + 10)
    dime_target: str = "ceil"  # ceil / floor of max class size x ratio
    dime_source: str = "cyclic"  # cyclic / random (with replacement)
    dime_dominant: str = "primary-majority"  # primary-majority / argmax (of the distribution)

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "multi_label": ("primary", "split", "each"),
        "label_projection": ("none", "4class"),
        "secondary_only": ("drop", "keep"),
        "entropy_base": ("2", "e"),
        "entropy_norm": ("log-k", "log-present"),
        "ambiguity": ("tertile", "rank-thirds", "fixed"),
        "r2_constant": ("skip", "sklearn"),
        "r2_uniform": ("skip", "keep"),
        "ece_bins": ("right-closed", "left-closed"),
        "kappa_single": ("drop", "perfect"),
        "rater_personas": ("rotate", "locked"),
        "rater_seed": ("per-run", "per-rater"),
        "rater_parse": ("lenient", "exact-then-substring"),
        "saturation": ("nested-fit", "sampled-grid"),
        "dime_features": ("ambiscope", "librosa-lexical"),
        "dime_target": ("ceil", "floor"),
        "dime_source": ("cyclic", "random"),
        "dime_dominant": ("primary-majority", "argmax"),
    }

    def __post_init__(self) -> None:
        for name, allowed in self.CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(
                    f"conventions: {name} must be one of {', '.join(allowed)}, got {value!r}"
                )
        for name in ("secondary_weight", "smoothing"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"conventions: {name} must be >= 0")
        for name in ("ece_n_bins", "saturation_repeats", "dime_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"conventions: {name} must be >= 1")
        low, high = self.thresholds
        if not 0 <= low <= high <= 1:
            raise ValueError("conventions: thresholds must be 0 <= t1 <= t2 <= 1")

    # ------------------------------------------------------------------ overrides
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name not in ("preset", "overrides"))

    def with_overrides(self, pairs: Mapping[str, str] | None) -> Conventions:
        """These conventions with ``NAME=VALUE`` overrides applied (values parsed from text
        to the field's type); an unknown name or a bad value raises ValueError naming it."""
        if not pairs:
            return self
        changes: dict[str, Any] = {}
        overrides = dict(self.overrides)
        known = self.field_names()
        for name, text in pairs.items():
            key = name.strip().replace("-", "_")
            if key not in known:
                raise ValueError(f"--set {name}: no such convention (known: {', '.join(known)})")
            changes[key] = _parse(key, str(text), getattr(self, key))
            overrides[key] = str(text).strip()
        return replace(self, **changes, overrides=tuple(sorted(overrides.items())))

    # ------------------------------------------------------------------ provenance
    def to_dict(self) -> dict[str, Any]:
        """Name, overrides and every field (what provenance records)."""
        data = asdict(self)
        data["overrides"] = dict(self.overrides)
        data["thresholds"] = list(self.thresholds)
        return data

    def label(self) -> str:
        """How tables name the active conventions: ``preset`` or ``preset + a=b, c=d``."""
        if not self.overrides:
            return self.preset
        return f"{self.preset} + " + ", ".join(f"{k}={v}" for k, v in self.overrides)


def _parse(name: str, text: str, current: Any) -> Any:
    """A field's value from ``--set`` text, typed like the field's current value."""
    try:
        if isinstance(current, bool):
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(text)
            return lowered in ("true", "1", "yes", "on")
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, tuple):
            parts = tuple(float(x) for x in text.replace(":", ",").split(","))
            if len(parts) != len(current):
                raise ValueError(text)
            return parts
    except ValueError:
        raise ValueError(
            f"--set {name}={text}: expected {type(current).__name__} like {current!r}"
        ) from None
    return text.strip()


PRESETS: Registry[Conventions] = Registry("preset")
"""Preset name -> Conventions (a new preset is one `PRESETS.add` call)."""


def register_preset(conventions: Conventions, description: str = "") -> Conventions:
    PRESETS.add(conventions.preset, conventions, description=description)
    return conventions


register_preset(
    Conventions(),
    "ambiscope's defaults: entropy over log K, tertiles with ties low, R² skipping "
    "constant labels (README, Conventions)",
)
register_preset(
    Conventions(
        preset="scaling-ambiguity",
        multi_label="each",
        label_projection="4class",
        entropy_base="e",
        entropy_norm="log-present",
        ambiguity="rank-thirds",
        r2_constant="sklearn",
        r2_uniform="keep",
        ece_bins="left-closed",
        kappa_single="perfect",
        rater_personas="locked",
        rater_seed="per-rater",
        rater_transcript=True,
        rater_parse="exact-then-substring",
        saturation="sampled-grid",
        dime_k=3,  # train.py: DiME(k_neighbors=3), the clip itself first: two others
        dime_features="librosa-lexical",
        dime_target="floor",
        dime_source="random",
        dime_dominant="argmax",
    ),
    "the official code of Zhang et al., Scaling Ambiguity (WendaZhang08/scaling-ambiguity-SER)",
)


def preset(name: str) -> Conventions:
    """A registered preset (RegistryError, a ValueError, for an unknown name)."""
    return PRESETS.get(name)


@dataclass(frozen=True)
class StoredDefault:
    """A workspace's default conventions as stored in its `meta` table."""

    preset: str = DEFAULT_PRESET
    overrides: dict[str, str] = field(default_factory=dict)

    def conventions(self) -> Conventions:
        return preset(self.preset).with_overrides(self.overrides)


def read_default(get_meta: Any) -> StoredDefault:
    """The stored default (``get_meta`` is the workspace's `get_meta`); the ambiscope
    preset when none was set. A stored value that is not a known preset raises."""
    raw = get_meta(META_KEY)
    if not raw:
        return StoredDefault()
    data = json.loads(raw)
    stored = StoredDefault(str(data.get("preset", DEFAULT_PRESET)), dict(data.get("set") or {}))
    stored.conventions()  # validate now: a bad stored value fails here, in one line
    return stored


def write_default(set_meta: Any, conventions: Conventions) -> None:
    """Store ``conventions`` (its preset name and overrides) as the workspace default."""
    set_meta(
        META_KEY,
        json.dumps({"preset": conventions.preset, "set": dict(conventions.overrides)}),
    )


def resolve(
    get_meta: Any, preset_name: str | None = None, overrides: Mapping[str, str] | None = None
) -> Conventions:
    """The conventions a command uses: ``--preset`` (else the workspace default) with the
    default's overrides only when no preset was named, then ``--set`` overrides."""
    base = read_default(get_meta).conventions() if preset_name is None else preset(preset_name)
    return base.with_overrides(overrides)
