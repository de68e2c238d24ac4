"""Synthetic annotators: an ALM plays K raters whose votes form a Synthetic Perceptual Proxy.

Zhang et al. ("Scaling Ambiguity: Augmenting Human Annotation in SER with ALMs") simulate
a rater pool with one model: each simulated rater (`synthetic.personas`) answers ONE
dominant emotion per clip, with its own persona hint and sampling temperature. Their votes
form the *synthetic* distribution; pooled with the human votes they form the *combined*
distribution (both are references in `ambiscope.core.reference`).

This module is the per-clip annotation. Every raw answer is stored as a `samples` row with
idx = rater index (unparseable answers are stored invalid with the parser's reason: no
vote, nothing dropped), one vote per valid answer, and the synthetic distribution as the
run's `vote` prediction, so `ambiscope compare`, `metrics`, exports and the TUI show the
proxy against the human reference with no special case. The clip loop around it (resume,
progress, failures, stopping between clips) is the one sampling runs use (`scaling.loop`).

The spec's rater conventions reach the model calls through `RaterPhase`: the parser
(`rater_parse`: ambiscope's lenient reader, or the official exact-then-substring rule),
the generation seed (`rater_seed`: per clip, or one per rater) and, with
`rater_transcript`, the clip's transcript and a ``Speaker: ID`` line in every prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import cached_property, partial

import numpy as np

from ambiscope.core.alm.base import AudioInput, Backend, BackendError, GenerationParams
from ambiscope.core.alm.parsing import Parsed, parse_answer, parse_exact_then_substring
from ambiscope.core.alm.prompts import PromptTemplate, render
from ambiscope.core.audio import AudioError
from ambiscope.core.reference.human import load_human
from ambiscope.core.reference.prediction_scores import ReferenceScorer
from ambiscope.core.scaling.loop import (
    ClipOutcome,
    LoopResult,
    ModelClock,
    RemoteFailure,
    RunProgress,
    SplitWork,
    attempt_clip,
    clear_clip,
    clip_audio,
    failure_of,
    prediction,
    record_failure,
    record_remote_failure,
    run_selected,
)
from ambiscope.core.scaling.run import using_backend
from ambiscope.core.synthetic.personas import RaterPlan, persona_prompt, rater_seed
from ambiscope.core.synthetic.spec import SyntheticSpec, find_or_create_run
from ambiscope.db import Clip, Dataset, Run, Sample, Workspace

STRATEGY = "vote"  # the synthetic distribution is the histogram of the raters' votes


@dataclass
class _Context:
    ws: Workspace
    ds: Dataset
    run: Run
    spec: SyntheticSpec
    template: PromptTemplate
    backend: Backend
    plan: list[RaterPlan]
    annotator_ids: list[int]
    scorer: ReferenceScorer

    @cached_property
    def phase(self) -> RaterPhase:
        return RaterPhase(
            tuple(self.ds.label_set),
            self.template,
            tuple(self.plan),
            self.spec.max_new_tokens,
            self.spec.seed,
            self.spec.rater_seed,
            self.spec.rater_parse,
        )


@dataclass(frozen=True)
class RaterTask:
    """What the raters need about one clip; picklable (travels to Ray actors)."""

    clip_id: int
    audio: AudioInput
    transcript: str | None
    speaker: str | None = None  # given: a "Speaker: ID" line opens the prompt


@dataclass
class RaterAnswers:
    """Every rater's raw answer to one clip and its parse (picklable)."""

    texts: list[str]
    parsed: list[Parsed]
    seconds: float
    model_seconds: float


@dataclass(frozen=True)
class RaterPhase:
    """The model calls of a synthetic run, per clip: one ALM call per rater (frozen and
    picklable: the same code runs here and in Ray actors)."""

    labels: tuple[str, ...]
    template: PromptTemplate
    plan: tuple[RaterPlan, ...]
    max_new_tokens: int
    seed: int
    seed_rule: str = "per-run"  # the `rater_seed` convention
    parse_rule: str = "lenient"  # the `rater_parse` convention

    def one(self, backend: Backend, task: RaterTask, clock: ModelClock) -> RaterAnswers:
        labels = list(self.labels)
        base = render(self.template, labels, transcript=task.transcript)
        if task.speaker:
            base = replace(base, user=f"Speaker: {task.speaker}\n{base.user}")
        clip = None if self.seed_rule == "per-rater" else task.clip_id
        texts: list[str] = []
        for rater in self.plan:
            params = GenerationParams(
                n=1,
                temperature=rater.temperature,
                max_new_tokens=self.max_new_tokens,
                seed=rater_seed(self.seed, rater.index, clip),
            )
            with clock.timing():
                cands = backend.sample(task.audio, persona_prompt(base, rater), params)
            texts.append(cands[0].text if cands else "")
        parsed = [self.parse(t) for t in texts]
        return RaterAnswers(texts, parsed, clock.elapsed(), clock.model_seconds)

    def parse(self, text: str) -> Parsed:
        """One rater's answer read by the run's `rater_parse` rule."""
        if self.parse_rule == "exact-then-substring":
            return parse_exact_then_substring(text, self.labels)
        return parse_answer(text, self.labels, "label")

    def run(
        self, backend: Backend, verifier: Backend | None, tasks: Sequence[RaterTask]
    ) -> list[RaterAnswers | RemoteFailure]:
        """A batch of clips (a Ray actor's call); a clip whose calls fail comes back as a
        `RemoteFailure`, the others are unaffected."""
        out: list[RaterAnswers | RemoteFailure] = []
        for task in tasks:
            clock = ModelClock()
            try:
                out.append(self.one(backend, task, clock))
            except (AudioError, BackendError) as exc:
                out.append(failure_of(exc, clock))
        return out


def _synthetic_distribution(parsed: Sequence[Parsed], k: int) -> np.ndarray | None:
    counts = np.zeros(k)
    for p in parsed:
        if p.valid and p.distribution is not None:
            counts += p.distribution
    return counts / counts.sum() if counts.sum() > 0 else None


def _write_clip(ctx: _Context, clip: Clip, answers: RaterAnswers | RemoteFailure) -> ClipOutcome:
    """Samples, votes and the `vote` prediction of one clip in one transaction."""
    if isinstance(answers, RemoteFailure):
        return record_remote_failure(ctx.ws, ctx.run, clip, answers)
    texts, parsed = answers.texts, answers.parsed
    samples = [
        Sample(
            ctx.run.id,
            clip.id,
            r.index,
            text,
            p.label,
            p.distribution,
            valid=p.valid,
            error=p.error,
        )
        for r, text, p in zip(ctx.plan, texts, parsed, strict=True)
    ]
    votes = [
        (clip.id, ctx.annotator_ids[r.index], p.label, 0, 1.0, text[:200])
        for r, text, p in zip(ctx.plan, texts, parsed, strict=True)
        if p.valid and p.label
    ]
    dist = _synthetic_distribution(parsed, ctx.ds.k)
    labels = ctx.ds.label_set
    predictions = (
        [] if dist is None else [prediction(ctx.run, STRATEGY, clip, dist, labels, ctx.scorer)]
    )
    seconds, model_seconds = answers.seconds, answers.model_seconds
    with ctx.ws.transaction():
        clear_clip(ctx.ws, ctx.run, clip)
        ctx.ws.conn.execute(
            "DELETE FROM votes WHERE clip_id = ? AND annotator_id IN "
            "(SELECT id FROM annotators WHERE run_id = ?)",
            (clip.id, ctx.run.id),
        )
        ctx.ws.add_samples(samples)
        if votes:
            ctx.ws.add_vote_rows(ctx.ds.id, votes, bump=False)  # see add_vote_rows
        if predictions:
            ctx.ws.add_predictions(predictions)
        ctx.ws.set_run_clip(
            ctx.run.id, clip.id, "done", seconds=seconds, model_seconds=model_seconds
        )
    return ClipOutcome(clip.id, True, seconds, model_seconds, len(texts), len(votes))


def _task(ctx: _Context, clip: Clip) -> RaterTask:
    """The clip's task (its audio read here, on the driver)."""
    always = ctx.spec.rater_transcript
    transcript = clip.transcript if ctx.spec.transcript or always else None
    speaker = clip.speaker if always else None
    return RaterTask(clip.id, clip_audio(ctx.ds, clip, ctx.backend), transcript, speaker)


def _annotate(ctx: _Context, clip: Clip, clock: ModelClock) -> ClipOutcome:
    return _write_clip(ctx, clip, ctx.phase.one(ctx.backend, _task(ctx, clip), clock))


def split_work(ctx: _Context) -> SplitWork:
    """The run's work for a remote engine: tasks and commits here, rater calls there."""
    return SplitWork(
        ctx.phase,
        partial(_task, ctx),
        lambda clip, _task, answers: _write_clip(ctx, clip, answers),
        lambda clip, exc: record_failure(ctx.ws, ctx.run, clip, ModelClock(), exc),
    )


def annotate_clip(ctx: _Context, clip: Clip) -> ClipOutcome:
    """Ask every rater about one clip and store the outcome (failure: recorded, retried)."""
    return attempt_clip(ctx.ws, ctx.run, clip, partial(_annotate, ctx, clip))


@dataclass
class SyntheticResult(LoopResult):
    """A synthetic run's totals: every rater's answer is one answer, each valid one a vote."""

    @property
    def votes(self) -> int:
        return self.valid

    def summary(self) -> str:
        verb = "created" if self.created else "resumed"
        return (
            f"synthetic run {self.run.id} {verb} ({self.run.n} raters): {self.processed} clips "
            f"annotated, {self.skipped} already done, {self.failed} failed; {self.votes} votes "
            f"from {self.answers} answers ({self.invalid} unparseable, kept as invalid "
            f"samples); {self.seconds:.1f} s ({self.model_seconds:.1f} s in model calls)"
        )


def execute_synthetic(
    ws: Workspace,
    spec: SyntheticSpec,
    *,
    where: str | None = None,
    clip_ids: Sequence[int] | None = None,
    limit: int | None = None,
    backend: Backend | None = None,
    on_progress: Callable[[RunProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SyntheticResult:
    """Create or resume the synthetic run for `spec` and annotate the selected clips."""
    ds = ws.get_dataset(spec.dataset)
    template = spec.template()
    with ExitStack() as stack:
        pool = None
        if spec.ray is not None and backend is None:
            from ambiscope.core.scaling.ray_pool import RayPool

            pool = stack.enter_context(RayPool(spec.run_spec()))
            backend = pool.model
        backend = stack.enter_context(using_backend(backend, spec.run_spec()))
        run, created = find_or_create_run(ws, ds, spec, backend)
        plan = spec.plan()
        ids = ws.ensure_annotators(
            ds.id, [(r.external_id(run.id), "synthetic") for r in plan], run_id=run.id
        )
        annotators = [ids[r.external_id(run.id)] for r in plan]
        scorer = ReferenceScorer(load_human(ws, ds))
        ctx = _Context(ws, ds, run, spec, template, backend, plan, annotators, scorer)
        result = run_selected(
            ws,
            ds,
            SyntheticResult(run, created),
            partial(annotate_clip, ctx),
            clip_ids=clip_ids,
            where=where,
            limit=limit,
            on_progress=on_progress,
            should_stop=should_stop,
            drive=None if pool is None else pool.drive(ws, split_work(ctx)),
        )
        if pool is not None:
            result.notes += pool.report()
        return result
