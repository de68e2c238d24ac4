"""Fixtures for the TUI tests: a small demo workspace with stored model predictions.

The demo builder synthesises real 16 kHz WAVs with eSpeak NG and simulated votes (fixed
seed), which takes a few seconds, so it is built once per session; each test module gets
its own copy of the database file (the audio is shared read-only) so edits in one module
never leak into another module's snapshots.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ambiscope.core.demo import DemoSpec, build_demo
from ambiscope.core.reference.human import read_human
from ambiscope.core.reference.prediction_scores import clip_scores
from ambiscope.db import Prediction, RunIn, Sample, Workspace

N_CLIPS = 24
STRATEGIES = ("vote", "wbon")


def add_stored_run(path: Path, seed: int = 3) -> int:
    """A run with 4 candidates per clip and two strategies, written without any model.

    Clip 3 fails (no candidates), clip 4 has no predictions, one candidate per clip is
    invalid on every fifth clip, so the detail pane's edge cases all occur.
    """
    rng = np.random.default_rng(seed)
    with Workspace.open(path) as ws:
        ds = ws.get_dataset("demo")
        human = read_human(ws, ds)
        index = {int(c): i for i, c in enumerate(human.clip_ids)}
        labels = list(ds.label_set)
        run = ws.add_run(
            RunIn(ds.id, "tiny-alm", "transformers", "label", 4, name="stored", temperature=0.8)
        )
        clips = ws.clips(ds.id)
        with ws.transaction():
            for n, clip in enumerate(clips):
                if n == 3:
                    ws.set_run_clip(run.id, clip.id, "failed", error="audio too short")
                    continue
                if n == 4:
                    continue
                samples, picks = [], []
                for i in range(4):
                    invalid = n % 5 == 0 and i == 3
                    label = labels[int(rng.integers(len(labels)))]
                    text = "hmm, not sure" if invalid else f"The speaker sounds {label}."
                    samples.append(
                        Sample(
                            run.id,
                            clip.id,
                            i,
                            text,
                            None if invalid else label,
                            None,
                            float(-rng.uniform(1, 5)),
                            float(-rng.uniform(0.1, 1.5)),
                            6,
                            float(rng.uniform(0, 1)),
                            not invalid,
                            "no emotion label found" if invalid else None,
                        )
                    )
                    if not invalid:
                        picks.append(labels.index(label))
                ws.add_samples(samples)
                row = index[clip.id]
                preds = []
                for s, strategy in enumerate(STRATEGIES):
                    counts = np.bincount(picks, minlength=len(labels)).astype(float) + 0.2 * s
                    dist = counts / counts.sum()
                    js, bc, agree = clip_scores(
                        human.dist[row] if human.valid[row] else None,
                        int(human.majority[row]),
                        dist,
                    )
                    ent = float(-(dist[dist > 0] * np.log2(dist[dist > 0])).sum())
                    preds.append(
                        Prediction(
                            run.id,
                            strategy,
                            clip.id,
                            dist,
                            labels[int(np.argmax(dist))],
                            ent,
                            js,
                            bc,
                            agree,
                        )
                    )
                ws.add_predictions(preds)
                ws.set_run_clip(run.id, clip.id, "done")
        return run.id


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tui-demo") / "demo.db"
    build_demo(path, DemoSpec(n_clips=N_CLIPS, seed=11))
    add_stored_run(path)
    return path


@pytest.fixture(scope="module")
def workspace(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the demo workspace for one test module."""
    target = tmp_path_factory.mktemp("tui-ws") / "demo.db"
    with Workspace.open(demo_template) as ws:
        ws.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(demo_template, target)
    return target


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the developer's real settings file."""
    monkeypatch.setenv("AMBISCOPE_CONFIG", str(tmp_path / "settings.json"))
    monkeypatch.setenv("USER", "tester")
    monkeypatch.setenv("LOGNAME", "tester")
