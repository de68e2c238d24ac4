"""Rater conventions (issue 15): locked personas and bands, per-rater seeds, the transcript
and speaker in every prompt, the official parser, and their place in a run's identity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ambiscope.core.alm.base import ChatPrompt, GenerationParams
from ambiscope.core.conventions import preset
from ambiscope.core.synthetic.job import describe_annotate
from ambiscope.core.synthetic.personas import (
    DEFAULT_BANDS,
    FOCUS_PERSONAS,
    Persona,
    plan_raters,
)
from ambiscope.core.synthetic.raters import execute_synthetic
from ambiscope.core.synthetic.spec import SyntheticSpec
from ambiscope.db import Workspace
from ambiscope.tui.cli.main import main
from tests.core.synthetic.conftest import PromptAnswering

SCALING = preset("scaling-ambiguity")


class ScriptedBackend(PromptAnswering):
    """Answers with the text after `SAY:` in the persona instruction."""

    def answer(self, prompt: ChatPrompt) -> str:
        marker = prompt.user.find("SAY:")
        return prompt.user[marker + 4 :].split("\n")[0] if marker >= 0 else "x"


def spec(**kw: Any) -> SyntheticSpec:
    values: dict[str, Any] = {"dataset": "demo", "model": "fake-alm", "raters": 3, "seed": 1}
    values.update(kw)
    return SyntheticSpec(**values)


# ------------------------------------------------------------------------ plans


def test_locked_personas_follow_the_bands_for_ten_raters() -> None:
    plan = plan_raters(10, seed=0, personas=FOCUS_PERSONAS, personas_rule="locked")
    foci = ["tone-and-content", "voice", "phrasing", "cues", "said-and-how"]
    bands = [(0.1, 0.3), (0.3, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 0.93)]
    assert [r.persona for r in plan] == foci + foci
    assert [r.band for r in plan] == bands + bands
    # rotate (ambiscope): four personas against five bands, rater 4 is "tone" at 0.9-0.93
    rotated = plan_raters(10, seed=0)
    assert [r.persona for r in rotated[:6]] == [
        "tone",
        "words",
        "subtle",
        "overall",
        "tone",
        "words",
    ]
    assert rotated[4].band == (0.9, 0.93)


def test_locked_needs_as_many_personas_as_bands() -> None:
    with pytest.raises(ValueError, match="rater_personas=locked"):
        plan_raters(5, seed=0, personas=FOCUS_PERSONAS[:4], personas_rule="locked")
    # a locked spec with the default personas takes the five focus sentences
    assert spec(rater_personas="locked").personas == FOCUS_PERSONAS
    with pytest.raises(ValueError, match="rater_personas=locked"):
        spec(rater_personas="locked", personas=(Persona("a", "A."),))


def test_per_rater_temperatures_are_the_official_codes() -> None:
    # np.random.seed(i); band base + U(0, width); jitter U(-0.05, 0.05); clipped; 4 decimals
    # (rater 0: 0.1 + 0.2 * 0.548814 - 0.05 + 0.1 * 0.715189 = 0.2313)
    official = [0.2313, 0.4054, 0.5398, 0.831, 0.9337, 0.1815, 0.4618, 0.5433, 0.9215, 0.9005]
    plan = plan_raters(10, seed=0, seed_rule="per-rater")
    assert [r.temperature for r in plan] == official
    # rater i's temperature depends on (seed, i) only: not on the pool size
    assert plan_raters(4, seed=0, seed_rule="per-rater")[3].temperature == 0.831
    other = plan_raters(10, seed=1, seed_rule="per-rater")
    assert [r.temperature for r in other] != official
    for r in other:
        lo, hi = r.band
        assert lo - 0.05 <= r.temperature <= hi + 0.05


def test_spec_rejects_an_unknown_rater_convention() -> None:
    with pytest.raises(ValueError, match="rater_parse"):
        spec(rater_parse="fuzzy")
    with pytest.raises(ValueError, match="rater_seed"):
        spec(rater_seed="per-clip")


# ------------------------------------------------------------------------ identity


def test_default_conventions_keep_the_old_identity_and_others_make_a_new_run() -> None:
    base = spec()
    template = base.template()
    identity = base.identity(template)
    assert not {k for k in identity if k.startswith("rater_") or k == "conventions"}
    # recording the ambiscope conventions changes nothing that identifies the run
    assert spec().under(preset("ambiscope")).identity(template) == identity
    scaling = spec().under(SCALING).identity(template)
    assert scaling["rater_personas"] == "locked" and scaling["rater_parse"] == (
        "exact-then-substring"
    )
    assert scaling["rater_seed"] == "per-rater" and scaling["rater_transcript"] is True
    # a field that does not touch the raters does not split runs
    tweaked = SCALING.with_overrides({"ece_bins": "right-closed"})
    assert spec().under(tweaked).identity(template) == scaling


def test_spec_round_trips_with_its_conventions() -> None:
    s = spec().under(SCALING)
    back = SyntheticSpec.from_dict(s.to_dict())
    assert back == s and back.conventions == SCALING.to_dict()
    assert back.plan() == s.plan()


# ------------------------------------------------------------------------ runs


def _by_rater(backend: ScriptedBackend, k: int) -> list[list[GenerationParams]]:
    """Each rater's generation params over the clips, in call order (k calls per clip)."""
    return [[p for j, (_, p) in enumerate(backend.calls) if j % k == i] for i in range(k)]


def test_per_rater_seed_is_the_same_across_runs_and_clips(demo_db: Path) -> None:
    with Workspace.open(demo_db) as ws:
        ids = sorted(ws.clip_ids(ws.get_dataset("demo").id).values())
        a, b = ScriptedBackend(), ScriptedBackend()
        first = spec(raters=3, rater_seed="per-rater")
        second = spec(raters=5, rater_seed="per-rater")
        execute_synthetic(ws, first, backend=a, clip_ids=ids[:2])
        execute_synthetic(ws, second, backend=b, clip_ids=ids[2:])
        runs_a, runs_b = _by_rater(a, 3), _by_rater(b, 5)
        for i in range(3):
            params = runs_a[i] + runs_b[i]  # rater i on four different clips, two runs
            assert len({p.temperature for p in params}) == 1
            assert len({p.seed for p in params}) == 1
        assert len({runs_a[i][0].seed for i in range(3)}) == 3  # but differ by rater
        # per-run (ambiscope): the same rater gets another generation seed on each clip
        c = ScriptedBackend()
        execute_synthetic(ws, spec(raters=3), backend=c, clip_ids=ids[:2])
        assert len({p.seed for p in _by_rater(c, 3)[0]}) == 2


def test_transcript_and_speaker_are_always_in_the_prompt(demo_db: Path) -> None:
    with Workspace.open(demo_db) as ws:
        clip = ws.clips(ws.get_dataset("demo").id)[0]
        assert clip.transcript and clip.speaker
        on, off = ScriptedBackend(), ScriptedBackend()
        execute_synthetic(ws, spec(raters=1, rater_transcript=True), backend=on, limit=1)
        execute_synthetic(ws, spec(raters=1), backend=off, limit=1)
    prompt = on.calls[0][0].user
    assert f'The speaker says: "{clip.transcript}"' in prompt
    assert f"Speaker: {clip.speaker}\n" in prompt
    assert "speaker says" not in off.calls[0][0].user and "Speaker:" not in off.calls[0][0].user


def test_the_official_parser_decides_votes_and_invalid_answers(demo_db: Path) -> None:
    personas = (
        Persona("neg", "SAY:not happy"),
        Persona("syn", "SAY:Anger"),
        Persona("dot", "SAY:Sad."),
    )
    votes: dict[str, list[str | None]] = {}
    with Workspace.open(demo_db) as ws:
        for rule in ("lenient", "exact-then-substring"):
            s = spec(personas=personas, rater_parse=rule)
            run = execute_synthetic(ws, s, backend=ScriptedBackend(), limit=1).run
            votes[rule] = [x.label for x in sorted(ws.samples(run.id), key=lambda x: x.idx)]
            if rule == "exact-then-substring":
                bad = [x for x in ws.samples(run.id) if not x.valid]
                assert [x.raw_text for x in bad] == ["Anger"] and bad[0].error
                assert run.config["conventions"]["rater_parse"] == rule
    assert votes["lenient"] == [None, "angry", "sad"]
    assert votes["exact-then-substring"] == ["happy", None, "sad"]


def test_run_config_records_the_conventions(demo_db: Path) -> None:
    with Workspace.open(demo_db) as ws:
        run = execute_synthetic(
            ws, spec(raters=5).under(SCALING), backend=ScriptedBackend(), limit=1
        ).run
        assert run.config["conventions"] == SCALING.to_dict()
        assert [r["persona"] for r in run.config["raters"]] == [p.name for p in FOCUS_PERSONAS]
        assert [tuple(r["band"]) for r in run.config["raters"]] == list(DEFAULT_BANDS)
        # the same spec under the ambiscope preset is another run
        other = execute_synthetic(ws, spec(raters=5), backend=ScriptedBackend(), limit=1).run
        assert other.id != run.id


def test_cli_takes_the_preset_and_the_job_keeps_it(demo_db: Path) -> None:
    runner = CliRunner()
    base = ["--db", str(demo_db), "annotate-synthetic", "-d", "demo", "-m", "m", "--enqueue"]
    out = runner.invoke(main, [*base, "--preset", "scaling-ambiguity", "-k", "5"])
    assert out.exit_code == 0, out.output
    assert "(m, scaling-ambiguity)" in out.output
    with Workspace.open(demo_db) as ws:
        params = ws.conn.execute("SELECT params FROM jobs").fetchone()[0]
    queued = SyntheticSpec.from_dict(json.loads(params)["spec"])
    assert queued.rater_conventions() == {
        "rater_personas": "locked",
        "rater_seed": "per-rater",
        "rater_transcript": True,
        "rater_parse": "exact-then-substring",
    }
    assert queued.personas == FOCUS_PERSONAS
    assert describe_annotate({"spec": queued.to_dict(), "clip_ids": [1]}).startswith(
        "5 synthetic raters (m, scaling-ambiguity)"
    )
    out = runner.invoke(main, [*base, "--set", "rater_parse=fuzzy"])
    assert out.exit_code == 2 and "rater_parse" in out.output  # a usage error
    out = runner.invoke(main, [*base, "--set", "rater_personas=locked", "--personas", "tone"])
    assert out.exit_code == 1 and "rater_personas=locked" in out.output
