"""Simulated raters: personas, temperature bands and the deterministic rater plan.

Zhang et al. ("Scaling Ambiguity: Augmenting Human Annotation in SER with ALMs") make one
model play K raters that disagree the way a crowd does. `plan_raters` builds the pool,
deterministic per seed:

* persona: rater i gets persona `i mod len(personas)` (tone of voice, word choice, subtle
  cues, overall impression by default), prepended to the label-mode prompt;
* temperature: rater i gets band `i mod len(bands)` (0.1-0.3, 0.3-0.5, 0.5-0.7, 0.7-0.9,
  0.9-0.93 by default), t = U(band) + U(-jitter, +jitter), clipped to [0.1, 1.0]. Draws are
  made in rater order from `default_rng(seed)`, so rater i's temperature depends only on
  the seed and i: a pool of 10 starts with the same 5 raters as a pool of 5;
* generation seed: per (run seed, rater, clip), so a resumed run redraws nothing.

Conventions (`ambiscope.core.conventions`) change two of these rules:

* ``rater_personas="locked"`` (Zhang et al.'s official code): the five focus sentences of
  `FOCUS_PERSONAS` (their meaning, our wording) locked to the five bands: rater i gets
  persona i mod 5 AND band i mod 5, so a persona always answers in the same temperature
  range. With ``"rotate"`` (ambiscope's default) four personas cycle against five bands,
  so each persona meets every band across a pool of 20.
* ``rater_seed="per-rater"``: rater i's temperature comes from its own generator seeded by
  (seed, i) alone, the legacy `RandomState` the official code seeds with
  ``np.random.seed(i)`` (seed 0 gives their temperatures), and its generation seed is the
  same on every clip. With ``"per-run"`` the temperatures are drawn in rater order from one
  generator, which ALSO makes rater i's temperature depend only on (seed, i, its band,
  jitter), but the generation seed differs per clip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ambiscope.core.alm.base import ChatPrompt


@dataclass(frozen=True)
class Persona:
    """A focus instruction given to a simulated rater (prepended to the prompt)."""

    name: str
    instruction: str


DEFAULT_PERSONAS: tuple[Persona, ...] = (
    Persona(
        "tone",
        "Focus on the tone of voice: pitch, loudness, speaking rate and voice quality.",
    ),
    Persona("words", "Focus on the word choice: what the speaker says and how it is phrased."),
    Persona(
        "subtle",
        "Pay attention to subtle cues: hesitations, sighs, tension, trembling or small "
        "changes in the voice.",
    ),
    Persona("overall", "Go with your overall impression, as an everyday listener would."),
)
FOCUS_PERSONAS: tuple[Persona, ...] = (
    Persona("tone-and-content", "Weigh both the sound of the voice and what is being said."),
    Persona("voice", "Listen above all to the speaker's tone of voice."),
    Persona("phrasing", "Take into account which words are chosen and how they are phrased."),
    Persona("cues", "Listen for small emotional cues in how the voice sounds."),
    Persona("said-and-how", "Consider what is said as well as the way it is expressed."),
)
"""The official code's five focus variations (rater i gets i mod 5), reworded."""
DEFAULT_BANDS: tuple[tuple[float, float], ...] = (
    (0.1, 0.3),
    (0.3, 0.5),
    (0.5, 0.7),
    (0.7, 0.9),
    (0.9, 0.93),
)
DEFAULT_JITTER = 0.05
TEMPERATURE_LIMITS: tuple[float, float] = (0.1, 1.0)


def parse_bands(text: str) -> tuple[tuple[float, float], ...]:
    """`"0.1-0.3,0.3-0.5"` -> ((0.1, 0.3), (0.3, 0.5)); each band lo <= hi, both in [0, 2]."""
    bands = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo_text, sep, hi_text = part.partition("-")
        try:
            lo, hi = float(lo_text), float(hi_text if sep else lo_text)
        except ValueError:
            raise ValueError(f"--bands: {part!r} is not LO-HI (e.g. 0.1-0.3)") from None
        bands.append((lo, hi))
    return check_bands(bands)


def check_bands(bands: Sequence[Sequence[float]]) -> tuple[tuple[float, float], ...]:
    out = tuple((float(b[0]), float(b[1])) for b in bands)
    if not out:
        raise ValueError("--bands: give at least one temperature band")
    for lo, hi in out:
        if not (0 <= lo <= hi <= 2) or not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"--bands: band {lo}-{hi} must satisfy 0 <= lo <= hi <= 2")
    return out


def parse_personas(text: str) -> tuple[Persona, ...]:
    """Personas from preset names (`tone,words`) or a file of `name: instruction` lines.

    A value naming an existing file is read (blank lines and `#` comments skipped);
    otherwise it is a comma-separated list of preset names (`tone`, `words`, `subtle`,
    `overall`, and the five of `FOCUS_PERSONAS`).
    """
    path = Path(text)
    if path.is_file():
        return _personas_from_file(path)
    presets = {p.name: p for p in (*DEFAULT_PERSONAS, *FOCUS_PERSONAS)}
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in presets]
    if unknown or not names:
        raise ValueError(
            f"--personas: unknown persona(s) {', '.join(unknown) or '(none given)'} "
            f"(presets: {', '.join(presets)}; or a file of 'name: instruction' lines)"
        )
    return tuple(presets[n] for n in names)


def _personas_from_file(path: Path) -> tuple[Persona, ...]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, instruction = line.partition(":")
        if not sep or not name.strip() or not instruction.strip():
            raise ValueError(f"{path}:{number}: expected 'name: instruction'")
        out.append(Persona(name.strip(), instruction.strip()))
    if not out:
        raise ValueError(f"{path}: no personas found")
    return tuple(out)


@dataclass(frozen=True)
class RaterPlan:
    """One simulated rater: its persona, temperature band and drawn temperature."""

    index: int
    persona: str
    instruction: str
    band: tuple[float, float]
    temperature: float

    def external_id(self, run_id: int) -> str:
        return rater_external_id(run_id, self.index)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["band"] = list(self.band)
        return data


def rater_external_id(run_id: int, index: int) -> str:
    """`syn-<run>-r03` for rater index 2 (1-based, zero-padded so ids sort in rater order)."""
    return f"syn-{run_id}-r{index + 1:02d}"


def plan_raters(
    k: int,
    *,
    seed: int,
    personas: Sequence[Persona] = DEFAULT_PERSONAS,
    bands: Sequence[tuple[float, float]] = DEFAULT_BANDS,
    jitter: float = DEFAULT_JITTER,
    limits: tuple[float, float] = TEMPERATURE_LIMITS,
    personas_rule: str = "rotate",
    seed_rule: str = "per-run",
) -> list[RaterPlan]:
    """K raters: personas and bands cycled by index, temperatures drawn (module docstring).

    `personas_rule` and `seed_rule` are the `rater_personas` and `rater_seed` conventions.
    """
    if k < 1:
        raise ValueError(f"--raters must be >= 1, got {k}")
    if not personas:
        raise ValueError("at least one persona is needed")
    if not 0 <= jitter < 1:
        raise ValueError(f"--jitter must be in [0, 1), got {jitter}")
    bands = check_bands(bands)
    if personas_rule == "locked" and len(personas) != len(bands):
        raise ValueError(
            f"rater_personas=locked pairs persona i with band i: needs as many personas "
            f"({len(personas)}) as temperature bands ({len(bands)})"
        )
    draw = _per_rater_temperature if seed_rule == "per-rater" else _run_temperatures(seed)
    out = []
    for i in range(k):
        lo, hi = bands[i % len(bands)]
        t = float(np.clip(draw(seed, i, lo, hi, jitter), *limits))
        persona = personas[i % len(personas)]
        out.append(RaterPlan(i, persona.name, persona.instruction, (lo, hi), round(t, 4)))
    return out


def _run_temperatures(seed: int) -> Callable[[int, int, float, float, float], float]:
    """Draws in rater order from one generator per run (two draws per rater)."""
    rng = np.random.default_rng(seed)

    def draw(_seed: int, _i: int, lo: float, hi: float, jitter: float) -> float:
        return float(rng.uniform(lo, hi) + rng.uniform(-jitter, jitter))

    return draw


_SEED_STRIDE = 1_000_003  # a prime > any pool: raters of seeds s and s + 1 never share a stream


def _per_rater_temperature(seed: int, i: int, lo: float, hi: float, jitter: float) -> float:
    """Rater i's own legacy generator, seeded ``seed * _SEED_STRIDE + i`` (seed 0: the official
    code's ``np.random.seed(i)``), drawing the band offset then the jitter as they do."""
    rng = np.random.RandomState((int(seed) * _SEED_STRIDE + i) % 2**32)
    return lo + float(rng.uniform(0, hi - lo)) + float(rng.uniform(-jitter, jitter))


def rater_seed(seed: int, rater: int, clip_id: int | None) -> int:
    """The generation seed of one rater on one clip (stable across resumes and processes);
    ``clip_id=None`` (`rater_seed="per-rater"`) gives the rater one seed for every clip."""
    parts = [int(seed) & 0xFFFFFFFF, rater] + ([] if clip_id is None else [clip_id])
    state = np.random.SeedSequence(parts).generate_state(1)
    return int(state[0] % (2**31 - 1))


def persona_prompt(prompt: ChatPrompt, rater: RaterPlan) -> ChatPrompt:
    """The rendered label prompt with the rater's focus instruction in front of the question."""
    return replace(prompt, user=f"{rater.instruction}\n{prompt.user}")
