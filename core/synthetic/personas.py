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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    `overall`).
    """
    path = Path(text)
    if path.is_file():
        return _personas_from_file(path)
    presets = {p.name: p for p in DEFAULT_PERSONAS}
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
) -> list[RaterPlan]:
    """K raters: personas and bands cycled by index, temperatures drawn (module docstring)."""
    if k < 1:
        raise ValueError(f"--raters must be >= 1, got {k}")
    if not personas:
        raise ValueError("at least one persona is needed")
    if not 0 <= jitter < 1:
        raise ValueError(f"--jitter must be in [0, 1), got {jitter}")
    bands = check_bands(bands)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(k):
        lo, hi = bands[i % len(bands)]
        t = rng.uniform(lo, hi) + rng.uniform(-jitter, jitter)
        t = float(np.clip(t, *limits))
        persona = personas[i % len(personas)]
        out.append(RaterPlan(i, persona.name, persona.instruction, (lo, hi), round(t, 4)))
    return out


def rater_seed(seed: int, rater: int, clip_id: int) -> int:
    """The generation seed of one rater on one clip (stable across resumes and processes)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, rater, clip_id]).generate_state(1)
    return int(state[0] % (2**31 - 1))


def persona_prompt(prompt: ChatPrompt, rater: RaterPlan) -> ChatPrompt:
    """The rendered label prompt with the rater's focus instruction in front of the question."""
    return replace(prompt, user=f"{rater.instruction}\n{prompt.user}")
