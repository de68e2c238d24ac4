"""Runs end to end with the tiny real model: provenance, strategies, resume, failures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ambiscope.core.demo import DemoSpec, build_demo
from ambiscope.core.scaling.run import RunSpec, execute_run
from ambiscope.db import Workspace
from ambiscope.tui.cli.main import main


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "ws.db"
    build_demo(path, DemoSpec(n_clips=6, seed=2))
    return path


@pytest.fixture
def ws(demo_db, tmp_path):
    copy = tmp_path / "ws.db"
    shutil.copy(demo_db, copy)
    with Workspace.open(copy) as workspace:
        yield workspace


def spec(model, **kw):
    base = dict(dataset="demo", model=str(model), n=3, max_new_tokens=6, seed=1)
    base.update(kw)
    return RunSpec(**base)


def test_run_writes_candidates_predictions_and_provenance(ws, tiny_model_dir):
    result = execute_run(ws, spec(tiny_model_dir, verifier="self"), limit=3)
    assert result.created and result.processed == 3 and result.failed == 0
    run = result.run
    assert run.config["model"]["model_type"] == "qwen2_audio"
    assert run.config["versions"]["transformers"]
    assert "Which emotion" in run.prompt_text
    samples = ws.samples(run.id)
    assert len(samples) == 9
    assert {s.idx for s in samples} == {0, 1, 2}
    for s in samples:
        assert s.logprob is not None and np.isfinite(s.logprob)
        assert s.valid == (s.label is not None)
        assert s.valid or s.error
    # likelihood needs no readable answer; the candidate-based strategies exist exactly
    # for clips with at least one valid candidate (the random model rarely gives one)
    strategies = set(ws.strategies(run.id))
    assert "likelihood" in strategies
    valid_clips = {s.clip_id for s in samples if s.valid}
    for name in ("single", "vote", "bon", "wbon"):
        ids, _ = ws.prediction_arrays(run.id, name, 6)
        assert set(ids.tolist()) == valid_clips
    ids, dists = ws.prediction_arrays(run.id, "likelihood", 6)
    assert len(ids) == 3
    np.testing.assert_allclose(dists.sum(axis=1), 1.0, atol=1e-5)
    js = ws.conn.execute(
        "SELECT js FROM predictions WHERE run_id = ? AND strategy = 'likelihood'", (run.id,)
    ).fetchall()
    assert all(0 <= v[0] <= 1 for v in js)


def test_rerun_resumes_and_never_duplicates(ws, tiny_model_dir):
    first = execute_run(ws, spec(tiny_model_dir), limit=2)
    second = execute_run(ws, spec(tiny_model_dir), limit=4)
    assert second.run.id == first.run.id and not second.created
    assert second.skipped == 2 and second.processed == 2
    dupes = ws.conn.execute(
        "SELECT count(*) FROM (SELECT run_id, clip_id, idx FROM samples "
        "GROUP BY 1, 2, 3 HAVING count(*) > 1)"
    ).fetchone()[0]
    assert dupes == 0
    other = execute_run(ws, spec(tiny_model_dir, temperature=0.5), limit=1)
    assert other.run.id != first.run.id  # a different spec is a different run


def test_stop_between_clips_leaves_whole_clips(ws, tiny_model_dir):
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    result = execute_run(ws, spec(tiny_model_dir), should_stop=stop)
    assert result.stopped and result.processed == 2
    done = ws.run_clip_ids(result.run.id, status="done")
    sampled = ws.sampled_clip_ids(result.run.id)
    assert done == sampled and len(done) == 2


def test_missing_audio_marks_clip_failed_and_run_continues(ws, tiny_model_dir):
    ds = ws.get_dataset("demo")
    victim = ws.clips(ds.id)[0]
    (Path(ds.root) / victim.path).rename(Path(ds.root) / (victim.path + ".moved"))
    try:
        result = execute_run(ws, spec(tiny_model_dir), limit=2)
    finally:
        (Path(ds.root) / (victim.path + ".moved")).rename(Path(ds.root) / victim.path)
    assert result.failed == 1 and result.processed == 2
    rows = {r[0]: r for r in ws.run_clip_rows(result.run.id)}
    assert rows[victim.id][1] == "failed" and "not found" in rows[victim.id][2]
    assert ws.samples(result.run.id, victim.id) == []
    retry = execute_run(ws, spec(tiny_model_dir), limit=2)
    assert retry.processed == 1 and retry.failed == 0  # the failed clip is retried


def test_bad_model_is_a_clear_error(ws, tmp_path):
    from ambiscope.core.alm.base import ModelLoadError

    with pytest.raises(ModelLoadError):
        execute_run(ws, spec(tmp_path / "no-such-model"), limit=1)
    assert ws.runs() == []


def test_sample_and_compare_cli(ws, tiny_model_dir):
    runner = CliRunner()
    args = [
        "--db",
        str(ws.path),
        "sample",
        "-d",
        "demo",
        "-m",
        str(tiny_model_dir),
        "--n",
        "2",
        "--max-new-tokens",
        "4",
        "--limit",
        "2",
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "run 1 created: 2 clips sampled" in result.output
    assert "likelihood" in result.output
    again = runner.invoke(main, args)
    assert "resumed: 0 clips sampled, 2 already done" in again.output
    table = runner.invoke(main, ["--db", str(ws.path), "compare", "--by", "none"])
    assert table.exit_code == 0 and "likelihood" in table.output
    bad = runner.invoke(main, ["--db", str(ws.path), "sample", "-d", "demo", "-m", "x", "--n", "0"])
    assert bad.exit_code != 0 and "n must be >= 1" in bad.output


def test_batched_clips_store_what_one_clip_at_a_time_stores(
    demo_db, tmp_path, tiny_model_dir, monkeypatch
):
    """--batch-clips: greedy answers, likelihoods and verifier scores equal B = 1's."""
    from ambiscope.core.alm.backends.transformers.backend import TransformersBackend

    batches: list[int] = []
    real = TransformersBackend.sample_batch

    def spy(self, items, params, seeds=None):
        batches.append(len(items))
        return real(self, items, params, seeds)

    monkeypatch.setattr(TransformersBackend, "sample_batch", spy)
    stored = []
    for batch in (1, 3):
        copy = tmp_path / f"ws{batch}.db"
        shutil.copy(demo_db, copy)
        with Workspace.open(copy) as workspace:
            run_spec = spec(tiny_model_dir, temperature=0.0, verifier="self", batch_clips=batch)
            result = execute_run(workspace, run_spec, limit=5)
            assert result.processed == 5 and result.failed == 0
            stored.append(
                (
                    [
                        (s.clip_id, s.idx, s.raw_text, s.verifier_score)
                        for s in workspace.samples(result.run.id)
                    ],
                    workspace.prediction_arrays(result.run.id, "likelihood", 6)[1],
                )
            )
    assert batches == [3, 2]  # B = 1 never batches; B = 3 took clips 1-3, then 4-5
    (one_samples, one_lik), (many_samples, many_lik) = stored
    assert [s[:3] for s in many_samples] == [s[:3] for s in one_samples]
    np.testing.assert_allclose(
        [s[3] or 0.0 for s in many_samples], [s[3] or 0.0 for s in one_samples], atol=1e-5
    )
    np.testing.assert_allclose(many_lik, one_lik, atol=1e-6)


def test_each_clip_is_processed_and_encoded_once_per_run(ws, tiny_model_dir, monkeypatch):
    """sample + --verifier self + likelihood: one feature extraction and one audio-encoder
    pass per clip (the verifier and likelihood prompts share the sampling prompt's audio
    prefix), whatever the output mode."""
    from ambiscope.core.alm.backends.transformers.backend import TransformersBackend

    backend = TransformersBackend(str(tiny_model_dir), device="cpu")
    encoder: list[int] = []
    features: list[int] = []
    verified: list[int] = []
    extractor = type(backend.processor.feature_extractor)
    real_features, real_verify = extractor.__call__, backend.verify

    def count_features(self, *args, **kwargs):
        features.append(1)
        return real_features(self, *args, **kwargs)

    def count_verify(audio, prompts):
        verified.append(len(prompts))
        return real_verify(audio, prompts)

    monkeypatch.setattr(extractor, "__call__", count_features)
    monkeypatch.setattr(backend, "verify", count_verify)
    backend.lm.model.audio_tower.register_forward_hook(lambda *a: encoder.append(1))
    for mode in ("label", "cot"):
        encoder.clear()
        features.clear()
        backend._heads.clear()  # each mode's run starts from unseen clips
        run_spec = spec(tiny_model_dir, mode=mode, n=8, verifier="self", batch_clips=1)
        result = execute_run(ws, run_spec, limit=4, backend=backend, verifier=backend)
        assert result.processed == 4 and result.failed == 0
        assert len(encoder) == 4 and len(features) == 4, mode
    assert verified  # the verifier ran on some clips' answers


def test_seeded_candidates_do_not_depend_on_batching_or_order(demo_db, tmp_path, tiny_model_dir):
    """Each candidate draws from (run seed, clip key, index): batched with other clips,
    or the clips taken in another order, a clip gets the same candidates."""
    stored = []
    for batch, order in ((1, slice(None)), (3, slice(None, None, -1))):
        copy = tmp_path / f"seeded{batch}.db"
        shutil.copy(demo_db, copy)
        with Workspace.open(copy) as workspace:
            ids = sorted(c.id for c in workspace.clips(workspace.get_dataset("demo").id))[:5]
            result = execute_run(
                workspace,
                spec(tiny_model_dir, temperature=1.0, batch_clips=batch),
                clip_ids=ids[order],
            )
            assert result.run.config["seeding"].startswith("candidate i of clip k")
            stored.append(
                sorted((s.clip_id, s.idx, s.raw_text) for s in workspace.samples(result.run.id))
            )
    assert stored[0] == stored[1] and len(stored[0]) == 15
