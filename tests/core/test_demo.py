"""The demo workspace: real audio files, simulated raters, every ambiguity level."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ambiscope.core.demo import (
    DEMO_DATASET,
    DemoSpec,
    audio_dir_for,
    build_demo,
    perceived_distribution,
)
from ambiscope.core.reference.human import load_human
from ambiscope.db import Workspace


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "ambiscope.db"
    return build_demo(path, DemoSpec(n_clips=30, seed=3))


def test_demo_has_audio_votes_and_all_levels(demo):
    with Workspace.open(demo.workspace) as ws:
        ds = ws.get_dataset(DEMO_DATASET)
        clips = ws.clips(ds.id)
        assert len(clips) == 30
        for clip in clips[:5]:
            info = sf.info(audio_dir_for(demo.workspace) / clip.path)
            assert info.samplerate == 16000 and info.channels == 1
            assert 0.5 < info.duration < 8
            assert clip.duration == pytest.approx(info.duration, abs=1e-3)
        human = load_human(ws, ds)
        assert human.valid.all()
        assert set(human.ambiguity) == {"low", "medium", "high"}
        assert human.n_votes.min() >= 3 and human.n_votes.max() <= 12
        assert {c.split for c in clips} == {"train", "validation", "test"}
        assert np.isfinite(demo.stats["agreement"]["fleiss_kappa"])


def test_demo_audio_is_speech_not_silence(demo):
    with Workspace.open(demo.workspace) as ws:
        clip = ws.clips(ws.get_dataset(DEMO_DATASET).id)[0]
    audio, _ = sf.read(audio_dir_for(demo.workspace) / clip.path)
    assert np.sqrt(np.mean(audio**2)) > 0.01


def test_demo_is_deterministic_per_seed(tmp_path, demo):
    again = build_demo(tmp_path / "again.db", DemoSpec(n_clips=30, seed=3))
    assert again.stats["vote_histogram"] == demo.stats["vote_histogram"]
    other = build_demo(tmp_path / "other.db", DemoSpec(n_clips=30, seed=4))
    assert other.stats["vote_histogram"] != demo.stats["vote_histogram"]


def test_force_rebuilds_without_duplicates(tmp_path):
    path = tmp_path / "w.db"
    build_demo(path, DemoSpec(n_clips=6, seed=1))
    rebuilt = build_demo(path, DemoSpec(n_clips=6, seed=1), force=True)
    assert rebuilt.built and rebuilt.stats["clips"] == 6


def test_perceived_distribution_profiles():
    rng = np.random.default_rng(0)
    clear = perceived_distribution("angry", "clear", rng)
    mixed = perceived_distribution("angry", "mixed", rng)
    split = perceived_distribution("angry", "split", rng)
    for p in (clear, mixed, split):
        assert p.sum() == pytest.approx(1.0)

    def entropy(p):
        return -(p * np.log2(p)).sum()

    assert entropy(clear) < entropy(mixed) < entropy(split)
