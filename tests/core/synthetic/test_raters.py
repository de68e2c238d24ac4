"""Synthetic annotators: rater plans, vote storage, resume, references, the job kind, and
one end-to-end run with the tiny random-weight ALM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from ambiscope.core.alm.base import (
    BackendError,
    Candidate,
    ChatPrompt,
)
from ambiscope.core.jobs.kinds import JOB_KINDS, JobContext
from ambiscope.core.synthetic.job import KIND, annotate_synthetic, enqueue_synthetic
from ambiscope.core.synthetic.personas import (
    DEFAULT_BANDS,
    DEFAULT_PERSONAS,
    Persona,
    parse_bands,
    parse_personas,
    plan_raters,
    rater_external_id,
    rater_seed,
)
from ambiscope.core.synthetic.raters import execute_synthetic
from ambiscope.core.synthetic.spec import (
    SYNTHETIC_TEMPLATE,
    SyntheticSpec,
    rater_labels,
    run_raters,
)
from ambiscope.db import Workspace
from ambiscope.tui.cli.main import main
from tests.core.synthetic.conftest import PromptAnswering

# ------------------------------------------------------------------------ fixtures


class FakeBackend(PromptAnswering):
    """Answers by persona: tone -> happy, words -> 'Sad.', FAIL -> BackendError, else gibberish."""

    def answer(self, prompt: ChatPrompt) -> str:
        if "FAIL" in prompt.user:
            raise BackendError("endpoint down")
        if "tone of voice" in prompt.user:
            return "happy"
        if "word choice" in prompt.user:
            return "Sad."
        return "zzz qqq"

    def score_labels(self, *a: Any) -> np.ndarray:  # pragma: no cover - unused
        raise NotImplementedError

    def verify(self, *a: Any) -> np.ndarray:  # pragma: no cover - unused
        raise NotImplementedError


def spec(**kw: Any) -> SyntheticSpec:
    values: dict[str, Any] = {"dataset": "demo", "model": "fake-alm", "raters": 3, "seed": 1}
    values.update(kw)
    return SyntheticSpec(**values)


def synthetic_votes(ws: Workspace, run_id: int) -> list[tuple[Any, ...]]:
    return ws.conn.execute(
        "SELECT v.clip_id, a.external_id, a.kind, a.run_id, v.label FROM votes v "
        "JOIN annotators a ON a.id = v.annotator_id WHERE a.kind = 'synthetic' "
        "AND a.run_id = ? ORDER BY v.clip_id, a.external_id",
        (run_id,),
    ).fetchall()


# ------------------------------------------------------------------------ rater plans


def test_plan_is_deterministic_per_seed_and_cycles_personas_and_bands() -> None:
    a = plan_raters(12, seed=3)
    assert a == plan_raters(12, seed=3)
    assert [r.temperature for r in a] != [r.temperature for r in plan_raters(12, seed=4)]
    names = [p.name for p in DEFAULT_PERSONAS]
    assert [r.persona for r in a] == [names[i % len(names)] for i in range(12)]
    assert [r.band for r in a] == [DEFAULT_BANDS[i % len(DEFAULT_BANDS)] for i in range(12)]
    # a larger pool with the same seed starts with the same raters
    assert plan_raters(5, seed=3) == a[:5]


@pytest.mark.parametrize("seed", range(20))
def test_temperatures_stay_in_their_band_after_jitter_and_clipping(seed: int) -> None:
    for r in plan_raters(25, seed=seed, jitter=0.05):
        lo, hi = r.band
        assert max(0.1, lo - 0.05) - 1e-9 <= r.temperature <= min(1.0, hi + 0.05) + 1e-9
        assert 0.1 <= r.temperature <= 1.0


def test_clipping_to_the_temperature_limits() -> None:
    plan = plan_raters(40, seed=0, bands=((0.0, 0.05), (1.05, 1.2)), jitter=0.0)
    assert {r.temperature for r in plan[::2]} == {0.1}
    assert {r.temperature for r in plan[1::2]} == {1.0}


def test_parse_bands_and_personas(tmp_path: Path) -> None:
    assert parse_bands("0.1-0.3, 0.5-0.5,0.7") == ((0.1, 0.3), (0.5, 0.5), (0.7, 0.7))
    for bad in ("", "0.5-0.1", "a-b", "0.1-3"):
        with pytest.raises(ValueError, match="--bands"):
            parse_bands(bad)
    assert [p.name for p in parse_personas("words,tone")] == ["words", "tone"]
    with pytest.raises(ValueError, match="presets"):
        parse_personas("tone,grumpy")
    f = tmp_path / "personas.txt"
    f.write_text("# mine\ncalm: Listen calmly.\n\nsharp: Listen sharply.\n")
    assert parse_personas(str(f)) == (
        Persona("calm", "Listen calmly."),
        Persona("sharp", "Listen sharply."),
    )
    f.write_text("no colon here\n")
    with pytest.raises(ValueError, match="name: instruction"):
        parse_personas(str(f))


def test_spec_round_trips_through_json_params() -> None:
    s = spec(bands=((0.2, 0.4),), personas=(Persona("x", "Do x."),), transcript=True)
    assert SyntheticSpec.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="unknown option"):
        SyntheticSpec.from_dict({**s.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="raters"):
        spec(raters=0)


def test_rater_seeds_differ_by_rater_and_clip_and_are_stable() -> None:
    seeds = {rater_seed(1, r, c) for r in range(5) for c in range(5)}
    assert len(seeds) == 25
    assert rater_seed(1, 2, 3) == rater_seed(1, 2, 3)
    assert rater_external_id(7, 2) == "syn-7-r03"


# ------------------------------------------------------------------------ storage


def test_votes_round_trip_with_kind_run_and_invalid_answers_kept(demo_db: Path) -> None:
    backend = FakeBackend()
    with Workspace.open(demo_db) as ws:
        result = execute_synthetic(ws, spec(), backend=backend)
        run = result.run
        assert result.created and result.processed == 4 and result.failed == 0
        assert (result.answers, result.votes, result.invalid) == (12, 8, 4)
        # annotators: kind synthetic, tied to the run, ids in rater order
        anns = [a for a in ws.annotators(run.dataset_id) if a.kind == "synthetic"]
        assert [a.external_id for a in anns] == [f"syn-{run.id}-r0{i}" for i in (1, 2, 3)]
        assert {a.run_id for a in anns} == {run.id}
        votes = synthetic_votes(ws, run.id)
        assert len(votes) == 8
        assert {v[4] for v in votes if v[1].endswith("r01")} == {"happy"}
        assert {v[4] for v in votes if v[1].endswith("r02")} == {"sad"}
        # the unparseable rater left no vote but every raw answer is a sample
        samples = ws.samples(run.id)
        assert len(samples) == 12
        bad = [s for s in samples if not s.valid]
        assert len(bad) == 4 and {s.idx for s in bad} == {2}
        assert all(s.raw_text == "zzz qqq" and s.error for s in bad)
        # the synthetic distribution is the run's `vote` prediction
        assert ws.strategies(run.id) == ["vote"]
        _, dists = ws.prediction_arrays(run.id, "vote", 6)
        labels = ws.get_dataset("demo").label_set
        expected = np.zeros(6)
        expected[[labels.index("happy"), labels.index("sad")]] = 0.5
        np.testing.assert_allclose(dists, np.tile(expected, (4, 1)), atol=1e-6)
        # config stores everything that made the raters
        cfg = run.config
        assert cfg["kind"] == "synthetic" and cfg["seed"] == 1
        assert cfg["temperatures"] == [r.temperature for r in spec().plan()]
        assert cfg["personas"][0][0] == "tone" and cfg["bands"][0] == [0.1, 0.3]
        assert run_raters(run) == spec().plan()
        assert run.n == 3 and run.mode == "label" and run.temperature is None


def test_prompts_carry_persona_temperature_and_seed(demo_db: Path) -> None:
    backend = FakeBackend()
    with Workspace.open(demo_db) as ws:
        execute_synthetic(ws, spec(raters=4), backend=backend, limit=1)
    plan = spec(raters=4).plan()
    assert len(backend.calls) == 4
    for rater, (prompt, params) in zip(plan, backend.calls, strict=True):
        assert prompt.user.startswith(rater.instruction)
        assert prompt.system == SYNTHETIC_TEMPLATE.system
        assert params.n == 1 and params.temperature == rater.temperature
    assert len({p.seed for _, p in backend.calls}) == 4


def test_rerun_adds_no_duplicates_and_resumes(demo_db: Path) -> None:
    with Workspace.open(demo_db) as ws:
        first = execute_synthetic(ws, spec(), backend=FakeBackend(), limit=2)
        assert first.processed == 2
        backend = FakeBackend()
        second = execute_synthetic(ws, spec(), backend=backend)
        assert not second.created and second.run.id == first.run.id
        assert (second.skipped, second.processed) == (2, 2)
        assert len(backend.calls) == 2 * 3  # only the two new clips were asked
        third = execute_synthetic(ws, spec(), backend=FakeBackend())
        assert third.processed == 0 and third.skipped == 4
        assert len(synthetic_votes(ws, first.run.id)) == 8
        assert len(ws.samples(first.run.id)) == 12
        # a different pool is a different run with its own annotators
        other = execute_synthetic(ws, spec(seed=2), backend=FakeBackend(), limit=1)
        assert other.run.id != first.run.id
        assert len([a for a in ws.annotators(1) if a.kind == "synthetic"]) == 6


def test_backend_failure_is_recorded_and_retried(demo_db: Path) -> None:
    fail_spec = spec(personas=(Persona("f", "FAIL"),))
    with Workspace.open(demo_db) as ws:
        result = execute_synthetic(ws, fail_spec, backend=FakeBackend(), limit=2)
        assert result.failed == 2 and result.failures[0][1] == "endpoint down"
        rows = ws.run_clip_rows(result.run.id)
        assert [r[1] for r in rows] == ["failed", "failed"]
        assert synthetic_votes(ws, result.run.id) == []
        backend = FakeBackend()
        backend.sample = lambda a, p, g: [Candidate("happy")]  # type: ignore[method-assign]
        again = execute_synthetic(ws, fail_spec, backend=backend, limit=2)
        assert again.processed == 2 and again.failed == 0  # failed clips are retried


# ------------------------------------------------------------------------ rater labels


def test_rater_labels_matrix(demo_db: Path) -> None:
    with Workspace.open(demo_db) as ws:
        run = execute_synthetic(ws, spec(), backend=FakeBackend()).run
        ids, labels = rater_labels(ws, run)
        lab = ws.get_dataset("demo").label_set
        assert len(ids) == 4
        assert labels.tolist() == [[lab.index("happy"), lab.index("sad"), -1]] * 4


# ------------------------------------------------------------------------ jobs and CLI


def test_job_kind_is_registered_and_runs(demo_db: Path) -> None:
    assert KIND in JOB_KINDS
    backend = FakeBackend()
    with Workspace.open(demo_db) as ws:
        job = enqueue_synthetic(ws, spec(), where="split:train")
        assert job.kind == "annotate-synthetic" and len(job.params["clip_ids"]) == 2
        assert "3 synthetic raters" in JOB_KINDS.meta(KIND)["describe"](job.params)
        ctx = JobContext(ws, job, "test-worker", backend_for=lambda s, m: backend)
        result = annotate_synthetic(ctx)
        assert result["processed"] == 2 and result["votes"] == 4 and result["invalid"] == 2
        assert len(synthetic_votes(ws, result["run_id"])) == 4


def test_cli_enqueue_and_errors(demo_db: Path) -> None:
    runner = CliRunner()
    base = ["--db", str(demo_db), "annotate-synthetic", "-d", "demo", "-m", "some/model"]
    out = runner.invoke(main, [*base, "--raters", "5", "--enqueue", "--limit", "3"])
    assert out.exit_code == 0, out.output
    queued = "queued job 1: 5 synthetic raters (some/model, ambiscope) on 3 clips of demo"
    assert queued in out.output
    out = runner.invoke(main, [*base, "--bands", "0.9-0.1", "--enqueue"])
    assert out.exit_code == 1 and "--bands" in out.output
    out = runner.invoke(main, [*base, "--personas", "nope", "--enqueue"])
    assert out.exit_code == 1 and "presets" in out.output


# ------------------------------------------------------------------------ tiny model


def test_tiny_model_end_to_end_records_every_answer(demo_db: Path, tiny_model_dir: Path) -> None:
    """A real (random-weight) ALM as 3 raters on 4 clips: mostly gibberish, all recorded."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    s = spec(model=str(tiny_model_dir), max_new_tokens=6, device="cpu")
    with Workspace.open(demo_db) as ws:
        result = execute_synthetic(ws, s)
        run = result.run
        assert result.processed == 4 and result.failed == 0
        samples = ws.samples(run.id)
        assert len(samples) == 12 and {s.idx for s in samples} == {0, 1, 2}
        assert all(s.raw_text is not None for s in samples)
        assert all(s.valid or s.error for s in samples)
        n_valid = sum(s.valid for s in samples)
        assert len(synthetic_votes(ws, run.id)) == n_valid == result.votes
        assert result.invalid == 12 - n_valid
        assert run.config["model"] and run.config["raters"][2]["index"] == 2
        assert ws.run_clip_ids(run.id, "done") == {c.id for c in ws.clips(run.dataset_id)}


def test_cli_module_stays_import_light() -> None:
    """The CLI imports it at start-up: no numpy, scipy or torch at import time."""
    import subprocess
    import sys

    code = (
        "import sys, ambiscope.tui.cli.synthetic, ambiscope.core.jobs.kinds as kinds; "
        "assert 'annotate-synthetic' in kinds.JOB_KINDS.names(); "
        "print(','.join(m for m in ('numpy', 'scipy', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_compare_against_each_reference_and_no_cache_churn(demo_db: Path) -> None:
    from ambiscope.core.evaluation import evaluate

    with Workspace.open(demo_db) as ws:
        version = ws.get_dataset("demo").votes_version
        run = execute_synthetic(ws, spec(), backend=FakeBackend()).run
        # synthetic votes leave the human cache's version alone
        assert ws.get_dataset("demo").votes_version == version
        own = evaluate(ws, "demo", runs=[run.id], by="none", reference="synthetic")
        human = evaluate(ws, "demo", runs=[run.id], by="none", reference="human")
    assert own[0]["js"] == pytest.approx(0.0, abs=1e-6)  # its own votes: identical
    assert human[0]["js"] > 0.01
    out = CliRunner().invoke(
        main, ["--db", str(demo_db), "compare", "--by", "none", "--reference", "combined"]
    )
    assert out.exit_code == 0, out.output
    assert "vote" in out.output
