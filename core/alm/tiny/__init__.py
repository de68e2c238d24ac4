"""Tiny random-weight checkpoints of every ALM family, built offline in seconds.

Real ALM weights cannot be downloaded in tests, CI or a fresh demo, yet the transformers
backend (encode-once sampling, label scoring, verifier scores) must be exercised end to end
through exactly the code paths a real checkpoint takes: the family's processor (chat
template + feature extractor + tokenizer), its auto model class and ``generate``. Each
family's module here writes such a checkpoint with random weights: a tiny config, a
trained byte-level BPE (or the family's own tokenizer type), the family's real feature
extractor and chat template. Answers are gibberish; the plumbing is real.

``build_tiny_model(out, family=...)`` dispatches through the family table
(:data:`ambiscope.core.alm.families.FAMILIES`, field ``tiny``), so a family's builder is
registered in one place with the rest of its knowledge.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ambiscope.core.alm.families import FAMILIES, tiny_families

__all__ = ["TinyUnavailable", "build_tiny_model", "tiny_families"]


class TinyUnavailable(RuntimeError):
    """This machine cannot build the family's tiny checkpoint; the message says exactly why."""


def build_tiny_model(out_dir: Path, *, family: str = "qwen2_audio", seed: int = 0) -> Path:
    """Write a random-weight checkpoint of ``family`` to ``out_dir`` and return the folder.

    Deterministic for a seed; the caller's global torch RNG state is left untouched.
    Raises :class:`TinyUnavailable` when a dependency the family needs is missing here.
    """
    entry = FAMILIES.get(family)
    if not entry.tiny:
        known = ", ".join(tiny_families())
        raise ValueError(f"family {family!r} has no tiny checkpoint builder (have: {known})")
    module, _, attr = entry.tiny.partition(":")
    builder = getattr(importlib.import_module(module), attr)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return builder(out, seed)
