"""DiME-Aug on a small skewed toy corpus with real WAV files."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from ambiscope.core.audio import load_audio, write_wav
from ambiscope.core.conventions import preset
from ambiscope.core.export._common import ExportError
from ambiscope.core.reference.human import load_human
from ambiscope.core.synthetic.augment.dime import (
    DimeOptions,
    class_neighbours,
    class_targets,
    dime_augment,
    dominant_labels,
    is_held_out,
    mix_audio,
    mix_distribution,
    plan_mixes,
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
    opts = DimeOptions(**{"target_ratio": 0.5, "k": 3, "seed": 4, **kw})  # 2 real neighbours
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


# ------------------------------------------------------------------------ conventions


def test_floor_and_ceil_targets() -> None:
    counts = np.array([10, 3, 2, 1])
    target, need = class_targets(counts, 0.35, "ceil")  # 3.5 -> 4
    assert target == 4 and need.tolist() == [0, 1, 2, 3]
    target, need = class_targets(counts, 0.35, "floor")  # 3.5 -> 3, the official int()
    assert target == 3 and need.tolist() == [0, 0, 1, 2]
    # the official truncation keeps float artefacts: 100 * 0.29 = 28.999999999999996
    assert class_targets(np.array([100, 1]), 0.29, "floor")[0] == 28
    assert class_targets(np.array([100, 1]), 0.29, "ceil")[0] == 29


def test_argmax_versus_primary_majority() -> None:
    dists = np.array([[0.4, 0.6, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    majority = np.array([0, 1, 1])  # e.g. primary votes disagreeing with the weighted dist
    assert dominant_labels(dists, majority, "argmax").tolist() == [1, 0, 2]  # ties: first
    assert dominant_labels(dists, majority, "primary-majority").tolist() == [0, 1, 1]


def test_k_counts_the_clip_itself() -> None:
    X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [10.0], [20.0], [0.5], [0.7]])
    groups = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1])
    nn = class_neighbours(X, groups, 5, per_class=False)
    assert nn[0] == [1, 2, 3, 4]  # k = 5: the clip and its 4 nearest, never the other class
    assert nn[5] == [4, 3, 2, 1]  # 10 is 6, 7, 8, 9 from them and 10 from 20
    assert nn[7] == [8]  # a class of two: its one other clip
    official = preset("scaling-ambiguity")
    assert DimeOptions(conventions=official).neighbours == official.dime_k  # no --k
    assert DimeOptions(k=4, conventions=official).neighbours == 4  # --k wins
    with pytest.raises(ExportError, match=r"--k \(dime_k\) must be >= 2"):
        DimeOptions(k=1)


def test_per_class_scaling_changes_the_neighbour() -> None:
    # class 0: a=(0,0), b=(1,0), c=(0,1), d=(0,1.2); class 1 spreads column 0 by 1000.
    # Per class: SD(col 0) = 0.433, SD(col 1) = 0.555, so a-c (1.80) < a-b (2.31): c.
    # Pooled: SD(col 0) ~ 470 makes a-b ~ 0.002: b.
    X = np.array([[0, 0], [1, 0], [0, 1], [0, 1.2], [0, 0], [1000, 0]], dtype=float)
    groups = np.array([0, 0, 0, 0, 1, 1])
    assert class_neighbours(X, groups, 2, per_class=True)[0] == [2]
    assert class_neighbours(X, groups, 2, per_class=False)[0] == [1]


def test_random_source_is_seeded_and_with_replacement() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    need = np.array([6, 0])
    neighbours = [[1, 2], [0, 2], [0, 1], [], []]

    def firsts(seed: int, source: str) -> list[int]:
        mixes = plan_mixes(labels, need, neighbours, np.random.default_rng(seed), source)
        assert len(mixes) == 6 and all(m.second in neighbours[m.first] for m in mixes)
        return [m.first for m in mixes]

    assert firsts(3, "random") == firsts(3, "random")
    assert all(sorted(Counter(firsts(s, "cyclic")).values()) == [2, 2, 2] for s in range(10))
    uneven = [s for s in range(10) if sorted(Counter(firsts(s, "random")).values()) != [2, 2, 2]]
    assert uneven  # drawn with replacement: some seed uses a clip more often than another


def test_cli_preset_scaling_ambiguity(toy_db: Path, tmp_path: Path) -> None:
    pytest.importorskip("librosa")
    runner = CliRunner()
    base = ["--db", str(toy_db), "augment", "dime", "-d", "toy", "--target-ratio", "0.45"]
    out = runner.invoke(cli, [*base, "--preset", "scaling-ambiguity", str(tmp_path / "sa")])
    assert out.exit_code == 0, out.output
    # floor(0.45 x 10) = 4: happy 3 -> 4, sad 2 -> 4 (angry has a single clip)
    assert "3 augmented" in out.output and "target per class 4" in out.output
    prov = json.loads((tmp_path / "sa" / "provenance.json").read_text())
    options = prov["options"]
    assert prov["conventions"]["preset"] == "scaling-ambiguity"
    assert prov["conventions"]["dime_features"] == "librosa-lexical"
    assert options["k"] == prov["conventions"]["dime_k"] == 3
    assert options["target_rule"].startswith("floor")
    assert "72 librosa" in options["features"] and options["librosa"]
    # the default preset rounds up: ceil(4.5) = 5, so 2 + 3 clips
    out = runner.invoke(cli, [*base, str(tmp_path / "amb")])
    assert out.exit_code == 0 and "5 augmented" in out.output, out.output
    prov = json.loads((tmp_path / "amb" / "provenance.json").read_text())
    assert prov["conventions"]["preset"] == "ambiscope"
    out = runner.invoke(cli, [*base, "--set", "dime_target=round", str(tmp_path / "bad")])
    assert out.exit_code != 0 and "dime_target" in out.output


def test_librosa_features_without_librosa_fail_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "librosa", None)  # `import librosa` raises ImportError
    with pytest.raises(ValueError, match=r"needs librosa: pip install 'ambiscope\[librosa\]'"):
        DimeOptions(conventions=preset("scaling-ambiguity"))
    assert DimeOptions().neighbours == 4  # the default features never need it
