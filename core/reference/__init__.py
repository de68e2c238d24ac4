"""What models are compared with: the reference distributions of a dataset.

Three references pool annotator votes into one distribution per clip: `human` (the
dataset's configured human kinds, cached by `reference.human`), `synthetic` (the ALM
raters' votes) and `combined` (both pooled, each synthetic rater one vote like each
human). Two more weigh the human raters by their estimated reliability: `human-ds` and
`human-mace`, the stored Dawid-Skene / MACE posteriors (`reference.reliability`).
`REFERENCES` maps each name to its loader (`reference.pooled`, `reference.reliability`);
the command line and the TUI list `REFERENCES.names()`, so a new reference is one registration.

Data flows downward only: front ends -> evaluation/export -> reference -> metrics -> db.
Nothing here imports numpy until a reference is loaded, so listing the names is free.
"""

from __future__ import annotations

from ambiscope.core.registry import Registry

REFERENCES: Registry = Registry("reference")
REFERENCES.add(
    "human",
    "ambiscope.core.reference.pooled:HUMAN",
    description="the dataset's configured human votes",
)
REFERENCES.add(
    "synthetic",
    "ambiscope.core.reference.pooled:SYNTHETIC",
    description="the synthetic (ALM) raters' votes",
)
REFERENCES.add(
    "combined",
    "ambiscope.core.reference.pooled:COMBINED",
    description="human and synthetic votes pooled",
)
REFERENCES.add(
    "human-ds",
    "ambiscope.core.reference.reliability:HUMAN_DS",
    description="Dawid-Skene posterior of the human raters (`ambiscope reliability fit`)",
)
REFERENCES.add(
    "human-mace",
    "ambiscope.core.reference.reliability:HUMAN_MACE",
    description="MACE posterior of the human raters (`ambiscope reliability fit`)",
)


def reference_name(text: str | None) -> str:
    """The registered reference `text` names (default `human`), or a one-line ValueError."""
    name = (text or "human").strip().lower()
    if name not in REFERENCES:
        raise ValueError(
            f"--reference must be one of {', '.join(REFERENCES.names())}, got {text!r}"
        )
    return name
