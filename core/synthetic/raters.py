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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from ambiscope.core.alm.base import AudioInput, Backend, GenerationParams
from ambiscope.core.alm.parsing import Parsed, parse_answer
from ambiscope.core.alm.prompts import PromptTemplate, render
from ambiscope.core.reference.human import load_human
from ambiscope.core.reference.prediction_scores import ReferenceScorer
from ambiscope.core.scaling.loop import (
    ClipOutcome,
    LoopResult,
    ModelClock,
    RunProgress,
    attempt_clip,
    clear_clip,
    clip_audio,
    prediction,
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


def _ask_raters(
    ctx: _Context, clip: Clip, audio: AudioInput, clock: ModelClock
) -> tuple[list[str], list[Parsed]]:
    """One ALM call per rater; returns the raw answers and their parses."""
    labels = list(ctx.ds.label_set)
    transcript = clip.transcript if ctx.spec.transcript else None
    base = render(ctx.template, labels, transcript=transcript)
    texts: list[str] = []
    for rater in ctx.plan:
        params = GenerationParams(
            n=1,
            temperature=rater.temperature,
            max_new_tokens=ctx.spec.max_new_tokens,
            seed=rater_seed(ctx.spec.seed, rater.index, clip.id),
        )
        with clock.timing():
            cands = ctx.backend.sample(audio, persona_prompt(base, rater), params)
        texts.append(cands[0].text if cands else "")
    parsed = [parse_answer(t, labels, "label") for t in texts]
    return texts, parsed


def _synthetic_distribution(parsed: Sequence[Parsed], k: int) -> np.ndarray | None:
    counts = np.zeros(k)
    for p in parsed:
        if p.valid and p.distribution is not None:
            counts += p.distribution
    return counts / counts.sum() if counts.sum() > 0 else None


def _write_clip(
    ctx: _Context,
    clip: Clip,
    texts: list[str],
    parsed: list[Parsed],
    clock: ModelClock,
) -> ClipOutcome:
    """Samples, votes and the `vote` prediction of one clip in one transaction."""
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
    seconds = clock.elapsed()
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
            ctx.run.id, clip.id, "done", seconds=seconds, model_seconds=clock.model_seconds
        )
    return ClipOutcome(clip.id, True, seconds, clock.model_seconds, len(texts), len(votes))


def _annotate(ctx: _Context, clip: Clip, clock: ModelClock) -> ClipOutcome:
    audio = clip_audio(ctx.ds, clip, ctx.backend)
    texts, parsed = _ask_raters(ctx, clip, audio, clock)
    return _write_clip(ctx, clip, texts, parsed, clock)


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
    with using_backend(backend, spec.run_spec()) as backend:
        run, created = find_or_create_run(ws, ds, spec, backend)
        plan = spec.plan()
        ids = ws.ensure_annotators(
            ds.id, [(r.external_id(run.id), "synthetic") for r in plan], run_id=run.id
        )
        annotators = [ids[r.external_id(run.id)] for r in plan]
        scorer = ReferenceScorer(load_human(ws, ds))
        ctx = _Context(ws, ds, run, spec, template, backend, plan, annotators, scorer)
        return run_selected(
            ws,
            ds,
            SyntheticResult(run, created),
            partial(annotate_clip, ctx),
            clip_ids=clip_ids,
            where=where,
            limit=limit,
            on_progress=on_progress,
            should_stop=should_stop,
        )
