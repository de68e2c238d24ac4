"""DiME-Aug on a small skewed toy corpus with real WAV files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from ambiscope.core.audio import load_audio, write_wav
from ambiscope.core.export._common import ExportError
from ambiscope.core.reference.human import load_human
from ambiscope.core.synthetic.augment.dime import (
    DimeOptions,
    class_targets,
    dime_augment,
    is_held_out,
    mix_audio,
    mix_distribution,
)
from ambiscope.db import ClipIn, VoteIn, Workspace
from ambiscope.tui.cli.main import main as cli

LABELS = ("neutral", "happy", "sad", "angry")
# split -> [(label, n clips)]; train is skewed: 10 / 3 / 2 / 1
PLAN: dict[str, list[tuple[str, int]]] = {
    "train": [("neutral", 10), ("happy", 3), ("sad", 2), ("angry", 1)],
    "validation": [("happy", 1), ("sad", 1)],
    "test": [("happy", 2), ("sad", 2), ("angry", 2)],
}
SECOND = {"neutral": "sad", "happy": "neutral", "sad": "angry", "angry": "happy"}


def _audio(label: str, n: int, sr: int) -> np.ndarray:
    rng = np.random.default_rng(100 * LABELS.index(label) + n)
    freq = 150 + 120 * LABELS.index(label) + 7 * n
    seconds = 0.4 + 0.05 * (n % 4)
    t = np.arange(int(seconds * sr)) / sr
    return (0.4 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 0.05, len(t))).astype(np.float32)


@pytest.fixture()
def toy_db(tmp_path: Path) -> Path:
    """3 raters per clip: two vote the clip's class, one a neighbouring emotion."""
    root = tmp_path / "audio"
    clips, votes = [], []
    for split, groups in PLAN.items():
        for label, count in groups:
            for n in range(count):
                key = f"{split}_{label}_{n}"
                sr = 8000 if (split, label, n) == ("train", "happy", 2) else 16000
                write_wav(root / f"{key}.wav", _audio(label, n, sr), sr)
                clips.append(ClipIn(key, f"{key}.wav", split=split, transcript=f"text {key}"))
                votes += [(key, "r1", label), (key, "r2", label), (key, "r3", SECOND[label])]
    path = tmp_path / "toy.db"
    with Workspace.open(path, create=True) as ws:
        ds = ws.add_dataset("toy", "manifest", LABELS, root=str(root))
        ws.add_clips(ds.id, clips)
        ids = ws.clip_ids(ds.id)
        raters = ws.ensure_annotators(ds.id, [(r, "human") for r in ("r1", "r2", "r3")])
        ws.add_votes(ds.id, [VoteIn(ids[k], raters[r], lab) for k, r, lab in votes])
    return path


def run_dime(db: Path, out: Path, **kw: Any) -> tuple[list[dict[str, Any]], Any]:
    opts = DimeOptions(**{"target_ratio": 0.5, "k": 2, "seed": 4, **kw})
    with Workspace.open(db) as ws:
        result = dime_augment(ws, "toy", out, opts)
    records = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    return records, result


# ------------------------------------------------------------------------ pure parts


def test_class_targets() -> None:
    target, need = class_targets(np.array([10, 3, 2, 1, 0]), 0.5)
    assert target == 5 and need.tolist() == [0, 2, 3, 4, 0]
    target, need = class_targets(np.array([10, 3, 2]), 0.3)
    assert target == 3 and need.tolist() == [0, 0, 1]  # ceil(0.3 * 10) = 3 exactly
    assert class_targets(np.array([4, 4]), 1.0)[1].tolist() == [0, 0]


def test_mixing_formulas() -> None:
    a1, a2 = np.array([1.0, 1.0, 1.0, 1.0]), np.array([0.0, 2.0])
    np.testing.assert_allclose(mix_audio(a1, a2, 0.25), [0.75, 1.25])
    p = mix_distribution(np.array([1.0, 0.0]), np.array([0.2, 0.8]), 0.5)
    np.testing.assert_allclose(p, [0.6, 0.4])
    assert p.sum() == pytest.approx(1.0)


def test_held_out_split_names() -> None:
    assert is_held_out("test") and is_held_out("Test-clean") and is_held_out("test1")
    assert not is_held_out("train") and not is_held_out("validation") and not is_held_out(None)
    for split in ("test", "TEST", "test_other"):
        with pytest.raises(ExportError, match="refusing to augment a test split"):
            DimeOptions(split=split)
    with pytest.raises(ExportError, match="target-ratio"):
        DimeOptions(target_ratio=1.5)


# ------------------------------------------------------------------------ end to end


def test_balances_the_skewed_split_to_the_target(toy_db: Path, tmp_path: Path) -> None:
    records, result = run_dime(toy_db, tmp_path / "out")
    counts = Counter(r["label"] for r in records)
    # target = ceil(0.5 * 10) = 5; angry has a single clip, so nothing to mix it with
    assert dict(counts) == {"neutral": 10, "happy": 5, "sad": 5, "angry": 1}
    assert result.target == 5 and result.added == 5
    assert result.before == {"neutral": 10, "happy": 3, "sad": 2, "angry": 1}
    assert result.after == dict(counts)
    assert any("'angry' has 1 clip" in w for w in result.warnings)
    augmented = [r for r in records if r["augmented"]]
    assert len(augmented) == 5 and len(records) == 21
    for r in augmented:
        dist = r["distribution"]
        assert max(dist, key=dist.get) == r["label"]  # the mix keeps its class's argmax
        assert 0 <= r["alpha"] <= 1 and len(r["sources"]) == 2
    originals = [r for r in records if not r["augmented"]]
    assert all(r["alpha"] is None and r["sources"] == [r["key"]] for r in originals)
    assert {r["split"] for r in records} == {"train"}
    for r in records:
        assert (tmp_path / "out" / r["file_name"]).is_file()
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["export"] == "augment/dime" and prov["counts"]["augmented"] == 5
    assert prov["options"]["target_ratio"] == 0.5 and prov["filter"] == "split:train"


def test_mixes_audio_and_distribution_exactly(toy_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    records, _ = run_dime(toy_db, out)
    by_key = {r["key"]: r for r in records}
    with Workspace.open(toy_db) as ws:
        human = load_human(ws, "toy")
        ds = ws.get_dataset("toy")
        dist_of = {ws.get_clip(int(c)).key: human.dist[i] for i, c in enumerate(human.clip_ids)}
    root = Path(ds.root or "")
    for r in (r for r in records if r["augmented"]):
        k1, k2 = r["sources"]
        alpha = r["alpha"]
        a1 = load_audio(root / f"{k1}.wav")
        a2 = load_audio(root / f"{k2}.wav", a1.sample_rate)  # resampled when rates differ
        mixed, sr = sf.read(out / r["file_name"], dtype="float64")
        assert sr == a1.sample_rate
        n = min(len(a1.samples), len(a2.samples))
        expected = (1 - alpha) * a1.samples[:n].astype(float) + alpha * a2.samples[:n]
        assert len(mixed) == n
        np.testing.assert_allclose(mixed, expected, atol=3 / 32768)
        want = (1 - alpha) * dist_of[k1] + alpha * dist_of[k2]
        got = np.array([r["distribution"][lab] for lab in LABELS])
        np.testing.assert_allclose(got, want / want.sum(), atol=2e-6)
        assert r["transcript"] == (by_key[k1] if alpha < 0.5 else by_key[k2])["transcript"]
    # the 8 kHz clip was mixed with a 16 kHz one (resampled to the first source's rate)
    assert any("train_happy_2" in r["sources"] for r in records if r["augmented"])


def test_sources_are_same_class_training_clips_only(toy_db: Path, tmp_path: Path) -> None:
    records, _ = run_dime(toy_db, tmp_path / "out", k=5)
    label_of = {r["key"]: r["label"] for r in records if not r["augmented"]}
    for r in records:
        for source in r["sources"]:
            assert source.startswith("train_")  # never a test (or validation) clip
            assert label_of[source] == r["label"]
    assert not any("test_" in r["key"] or "validation_" in r["key"] for r in records)


def test_deterministic_and_refuses_to_clobber(toy_db: Path, tmp_path: Path) -> None:
    first, _ = run_dime(toy_db, tmp_path / "a", seed=1)
    second, _ = run_dime(toy_db, tmp_path / "b", seed=1)
    assert first == second
    with pytest.raises(ExportError, match="not empty"):
        run_dime(toy_db, tmp_path / "a", seed=2)
    third, _ = run_dime(toy_db, tmp_path / "a", seed=2, force=True)
    assert [r["alpha"] for r in third] != [r["alpha"] for r in first]


def test_cli_refuses_test_split_and_runs(toy_db: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--db", str(toy_db), "augment", "dime", "-d", "toy"]
    out = runner.invoke(cli, [*base, "--split", "test", str(tmp_path / "t")])
    assert out.exit_code == 1 and "refusing to augment a test split" in out.output
    assert not (tmp_path / "t").exists()
    out = runner.invoke(cli, [*base, "--split", "nope", str(tmp_path / "t")])
    assert out.exit_code == 1 and "splits you can augment: train, validation" in out.output
    out = runner.invoke(
        cli, [*base, "--target-ratio", "0.5", "--k", "2", "--seed", "3", str(tmp_path / "ok")]
    )
    assert out.exit_code == 0, out.output
    assert "5 augmented" in out.output and "happy" in out.output
