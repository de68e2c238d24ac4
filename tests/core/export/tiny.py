"""A three-clip workspace whose numbers are worked by hand (shared by the export and CLI
tests of conventions).

Labels neutral, happy, sad, angry; one run, strategy `vote`, stored predictions only:

- clip a: votes neutral x3 -> P = (1, 0, 0, 0); Q = (0.3, 0.25, 0.25, 0.2): conf 0.3
  exactly on a bin edge, correct.
- clip b: votes happy x3 -> P = (0, 1, 0, 0); Q uniform: conf 0.25, argmax neutral, wrong.
- clip c: votes sad, sad, angry -> P = (0, 0, 2/3, 1/3); Q = (0, 0, 0.5, 0.5): conf 0.5
  on an edge, argmax sad (first of the tie), correct.

ECE with 10 bins: right-closed puts 0.3 and 0.25 in bin 2 and 0.5 in bin 4:
(|0.7 - 0.25| + 0.5) / 3 = 0.316667; left-closed puts 0.3 in bin 3 and 0.5 in bin 5:
(0.7 + 0.25 + 0.5) / 3 = 0.483333. Ambiguity: a and b are unanimous (entropy 0), c is
split. Tertiles by quantile with ties low give low, low, high; exact thirds by rank
(stable) give low, medium, high.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ambiscope.db import ClipIn, Prediction, RunIn, VoteIn, Workspace

LABELS = ("neutral", "happy", "sad", "angry")
ECE_RIGHT = (abs(0.7 - 0.25) + 0.5) / 3
ECE_LEFT = (0.7 + 0.25 + 0.5) / 3
VOTES = {
    "a": ("neutral", "neutral", "neutral"),
    "b": ("happy", "happy", "happy"),
    "c": ("sad", "sad", "angry"),
}
PREDICTIONS = {
    "a": (0.3, 0.25, 0.25, 0.2),
    "b": (0.25, 0.25, 0.25, 0.25),
    "c": (0.0, 0.0, 0.5, 0.5),
}


def tiny_workspace(path: Path) -> Path:
    """Create the workspace at `path` (see the module docstring) and return the path."""
    with Workspace.open(path, create=True) as ws:
        ds = ws.add_dataset("tiny", "manifest", LABELS)
        ws.add_clips(ds.id, [ClipIn(key) for key in VOTES])
        ids = ws.clip_ids(ds.id)
        raters = ws.ensure_annotators(ds.id, [(f"r{i}", "human") for i in range(3)])
        ws.add_votes(
            ds.id,
            [
                VoteIn(ids[key], raters[f"r{i}"], label)
                for key, labels in VOTES.items()
                for i, label in enumerate(labels)
            ],
        )
        run = ws.add_run(RunIn(ds.id, "fake/alm", "fake", "label", 1, name="stored"))
        ws.add_predictions(
            Prediction(run.id, "vote", ids[key], np.array(q)) for key, q in PREDICTIONS.items()
        )
    return path
