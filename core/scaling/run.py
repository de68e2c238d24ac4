"""Sampling runs: candidates per clip from a backend, stored, then aggregated by strategy.

A run is fixed by its spec (model, prompt, mode, N, temperature, search, seed, verifier):
re-running the same spec finds the same run row and skips clips already done, so a run
interrupted by Ctrl-C, a crash or a killed worker resumes where it stopped. Each clip's
candidates, predictions and status are written in one transaction: a clip is either
entirely there or not at all. A clip that fails (unreadable audio, backend error) is
recorded as failed with its reason and the run goes on; rerunning retries it. That clip
loop is shared with synthetic-annotation runs (`scaling.loop`); this module is the spec and
the per-clip sampling.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, fields, replace
from functools import cached_property, partial
from typing import Any

import numpy as np

from ambiscope.core.alm import BACKENDS, clips_in_flight, open_backend, preflight
from ambiscope.core.alm.base import (
    AudioInput,
    Backend,
    BackendError,
    Candidate,
    GenerationParams,
    derive_seed,
)
from ambiscope.core.alm.parsing import Parsed, parse_answer
from ambiscope.core.alm.prompts import (
    DEFAULT_TEMPLATES,
    PromptTemplate,
    label_scoring_prompt,
    load_template,
    render,
    render_verifier,
    template_text,
)
from ambiscope.core.audio import AudioError
from ambiscope.core.browse.query import checked_filter
from ambiscope.core.conventions import resolve
from ambiscope.core.reference.human import load_human
from ambiscope.core.reference.prediction_scores import ReferenceScorer
from ambiscope.core.scaling.loop import (
    ClipOutcome,
    Commit,
    LoopResult,
    ModelClock,
    RemoteFailure,
    RunProgress,
    SplitWork,
    attempt_clip,
    attempt_compute,
    clear_clip,
    clip_audio,
    failure_of,
    find_run,
    prediction,
    record_failure,
    record_remote_failure,
    run_selected,
)
from ambiscope.core.scaling.strategies import CandidateSet, aggregate, applicable_strategies
from ambiscope.core.versions import package_versions
from ambiscope.db import Clip, Dataset, Run, RunIn, Sample, Workspace, codec


@dataclass(frozen=True, kw_only=True)
class ExecutionOptions:
    """How a model is run: device, precision, endpoint, batching.

    Shared by sampling and synthetic-annotation specs. Apart from `revision` (a different
    checkpoint), none of these change the answers, so they stay out of a run's identity.
    """

    device: str = "auto"
    dtype: str = "auto"
    trust_remote_code: bool = False
    revision: str | None = None
    base_url: str | tuple[str, ...] | None = None  # several: replicas of one model
    api_key_env: str | None = None
    concurrency: int = 4
    timeout: float = 120.0
    batch_size: int | None = None
    batch_clips: int | None = None
    logprobs: bool = True
    ray: str | None = None  # run on Ray actors: an address, or "local" (scaling.ray_pool)
    ray_actors: int | None = None
    ray_gpus: float | None = None
    ray_cpus: float = 1.0

    def execution_options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(ExecutionOptions)}


# execution options that do not change the answers, plus the run's display name
EXECUTION_FIELDS = frozenset({f.name for f in fields(ExecutionOptions)} - {"revision"} | {"name"})


@dataclass(frozen=True)
class RunSpec(ExecutionOptions):
    """Everything that defines a run; the output-affecting part identifies it for resume."""

    dataset: str
    model: str
    backend: str = "transformers"
    mode: str = "label"
    n: int = 16
    temperature: float = 0.8
    top_p: float | None = None
    search: str = "sample"
    beams: int = 4
    seed: int | None = 0
    max_new_tokens: int = 48
    verifier: str | None = None  # None, "self" (same model) or another model id
    likelihood: bool = True
    prompt_file: str | None = None
    transcript: bool = False
    tau: float = 1.0
    name: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(
                f"--backend must be one of {', '.join(BACKENDS.names())}, got {self.backend!r}"
            )
        if self.mode not in DEFAULT_TEMPLATES:
            raise ValueError(f"--mode must be one of {', '.join(DEFAULT_TEMPLATES)}")
        self.params()  # validates n, temperature, top_p, search

    def params(self) -> GenerationParams:
        return GenerationParams(
            n=self.beams if self.search == "beam" else self.n,
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            search=self.search,  # type: ignore[arg-type]
            beams=self.beams,
            seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        check_spec_keys(cls, data, "run spec")
        return cls(**data)

    def identity(self, template: PromptTemplate) -> dict[str, Any]:
        """The output-affecting settings; equal identity = the same run (resume)."""
        data = {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS}
        data.pop("prompt_file")
        data["prompt"] = template_text(template)
        return data


def check_spec_keys(cls: type, data: dict[str, Any], what: str) -> None:
    """Refuse keys that are not fields of the spec class (stored params with a typo or
    from a newer version fail loudly instead of being dropped)."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"{what}: unknown option(s) {', '.join(unknown)}")


def identity_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(codec.dumps(identity).encode()).hexdigest()[:16]


def load_prompt(spec: RunSpec) -> PromptTemplate:
    return load_template(spec.prompt_file) if spec.prompt_file else DEFAULT_TEMPLATES[spec.mode]


@contextmanager
def using_backend(
    given: Backend | None, spec: RunSpec, model: str | None = None
) -> Iterator[Backend]:
    """The caller's backend (a worker's cached one, left open), or one opened for this
    run and closed when it ends."""
    if given is not None:
        yield given
        return
    backend = open_backend(spec, model)
    try:
        yield backend
    finally:
        backend.close()


def find_or_create_run(
    ws: Workspace,
    ds: Dataset,
    spec: RunSpec,
    template: PromptTemplate,
    backend: Backend,
    clips_per_batch: int = 1,
) -> tuple[Run, bool]:
    """The run matching the spec's identity (resume), or a new one with full provenance
    (``clips_per_batch``, how the run began decoding, included)."""
    identity = spec.identity(template)
    digest = identity_hash(identity)
    found = find_run(ws, ds, digest)
    if found is not None:
        return found, False
    described = backend.describe()
    config = {
        "identity_hash": digest,
        "identity": identity,
        "spec": spec.to_dict(),
        "model": described,
        "labels": list(ds.label_set),
        "clips_per_batch": clips_per_batch,
        # a named convention: which random stream each candidate draws from
        "seeding": "candidate i of clip k: derive_seed(derive_seed(run seed, k), i)",
        # the workspace's conventions when the run began (how its clips are scored/grouped)
        "conventions": resolve(ws.get_meta).to_dict(),
        "versions": package_versions(),  # ambiscope's names its git commit in a checkout
    }
    run = ws.add_run(
        RunIn(
            dataset_id=ds.id,
            name=spec.name,
            model=spec.model,
            revision=described.get("revision") or spec.revision,
            backend=spec.backend,
            prompt_template=template.name,
            prompt_text=template_text(template),
            mode=spec.mode,
            n=spec.params().n,
            temperature=spec.temperature,
            top_p=spec.top_p,
            search=spec.search,
            seed=spec.seed,
            verifier=spec.verifier,
            config=config,
        )
    )
    return run, True


@dataclass
class RunContext:
    """What processing a clip needs, built once per run."""

    ws: Workspace
    ds: Dataset
    run: Run
    spec: RunSpec
    template: PromptTemplate
    backend: Backend
    verifier: Backend | None
    scorer: ReferenceScorer
    likelihood_exact: bool = True  # False: the label scores feed `likelihood~`
    # candidates decoded ahead in a batch of clips: clip id -> (audio, candidates, seconds)
    presampled: dict[int, tuple[AudioInput, list[Candidate], float]] = field(default_factory=dict)

    @cached_property
    def phase(self) -> SamplingPhase:
        """The run's model calls per clip (what a remote engine runs)."""
        return SamplingPhase(
            tuple(self.ds.label_set),
            self.template,
            self.spec.mode,
            self.spec.likelihood,
            self.verifier is not None,
            self.likelihood_exact,
            self.spec.tau,
        )


def _candidate_set(
    parsed: Sequence[Parsed],
    cands: Sequence[Candidate],
    verifier: np.ndarray,
    loglik: np.ndarray | None,
    k: int,
    exact: bool = True,
) -> CandidateSet:
    dists = np.zeros((len(parsed), k))
    for i, p in enumerate(parsed):
        if p.valid and p.distribution is not None:
            dists[i] = p.distribution
    lp = np.array(
        [np.nan if c.logprob_norm is None else c.logprob_norm for c in cands], dtype=float
    )
    return CandidateSet(
        dists=dists,
        valid=np.array([p.valid for p in parsed], dtype=bool),
        logprob_norm=lp,
        verifier=verifier,
        label_loglik=loglik,
        likelihood_exact=exact,
    )


def clips_per_batch(backend: Backend, spec: RunSpec) -> int:
    """Clips decoded together: a backend that batches clips says how many (the spec's
    ``batch_clips``, else what fits in free memory; 1 where its model cannot batch
    clips); others (an endpoint batches on its own side) take one at a time."""
    per_batch = getattr(backend, "clips_per_batch", None)
    return 1 if per_batch is None else int(per_batch(spec.params(), spec.batch_clips))


def clip_params(spec: RunSpec, clip: Clip) -> GenerationParams:
    """The clip's decoding parameters: its seed derives from the run's seed and the clip's
    key (stable across workspaces and engines); backends derive each candidate's from it."""
    params = spec.params()
    if spec.seed is None:
        return params
    return replace(params, seed=derive_seed(spec.seed, clip.key))


def presample(ctx: RunContext, clips: list[Clip]) -> None:
    """Decode the candidates of several clips in one batch (`Backend.sample_batch`).

    Clips whose audio cannot be read are left out (their own processing records the
    failure); if the batch fails, every clip falls back to sampling on its own.
    """
    items, ready = [], []
    for clip in clips:
        transcript = clip.transcript if ctx.spec.transcript else None
        try:
            audio = clip_audio(ctx.ds, clip, ctx.backend)
        except AudioError:
            continue
        items.append((audio, transcript))
        ready.append(clip)
    if len(items) < 2:
        return
    seeds = [clip_params(ctx.spec, clip).seed for clip in ready]
    batches, share = sample_together(
        ctx.backend, ctx.template, ctx.ds.label_set, items, ctx.spec.params(), seeds
    )
    if batches is None:
        return
    for clip, (audio, _), cands in zip(ready, items, batches, strict=True):
        ctx.presampled[clip.id] = (audio, cands, share)


def sample_together(
    backend: Backend,
    template: PromptTemplate,
    labels: Sequence[str],
    items: Sequence[tuple[AudioInput, str | None]],
    params: GenerationParams,
    seeds: Sequence[int | None],
) -> tuple[list[list[Candidate]] | None, float]:
    """(candidates of each (audio, transcript) decoded in one `Backend.sample_batch`, each
    clip's share of its time); None when the batch fails, so each clip samples alone.

    The one place local runs (`presample`) and remote batches (`SamplingPhase.run`) batch
    clips, so both render the same prompts with the same per-clip seeds.
    """
    started = time.perf_counter()
    prompts = [(audio, render(template, list(labels), transcript=text)) for audio, text in items]
    try:
        batches = list(backend.sample_batch(prompts, params, seeds=list(seeds)))  # type: ignore[attr-defined]
    except BackendError:
        return None, 0.0
    return batches, (time.perf_counter() - started) / len(items)


@dataclass(frozen=True)
class ClipTask:
    """What the model phase needs about one clip; picklable (travels to Ray actors)."""

    clip_id: int
    audio: AudioInput
    transcript: str | None
    params: GenerationParams  # the clip's seed included (`clip_params`)


@dataclass
class ModelOutput:
    """One clip's model phase: candidates, their parses and scores, and every applicable
    strategy's distribution (picklable)."""

    cands: list[Candidate]
    parsed: list[Parsed]
    verifier_scores: np.ndarray
    loglik: np.ndarray | None
    results: dict[str, np.ndarray | None]
    seconds: float
    model_seconds: float


@dataclass(frozen=True)
class SamplingPhase:
    """The model calls of a sampling run and the aggregation of their answers, per clip:
    the same code runs locally, on the pipeline's threads and in Ray actors (frozen and
    picklable; no workspace access, so the writer only scores and writes)."""

    labels: tuple[str, ...]
    template: PromptTemplate
    mode: str
    likelihood: bool
    verify: bool
    likelihood_exact: bool = True  # False: the label scores feed `likelihood~`
    tau: float = 1.0

    def one(
        self,
        backend: Backend,
        verifier: Backend | None,
        task: ClipTask,
        clock: ModelClock,
        cands: list[Candidate] | None = None,
    ) -> ModelOutput:
        """Sample (unless `cands` were decoded ahead in a batch), parse, verify, score,
        aggregate."""
        labels = list(self.labels)
        if cands is None:
            prompt = render(self.template, labels, transcript=task.transcript)
            with clock.timing():
                cands = backend.sample(task.audio, prompt, task.params)
        parsed = [parse_answer(c.text, labels, self.mode) for c in cands]
        scores = self._verifier_scores(verifier if self.verify else None, task, parsed, clock)
        loglik = None
        if self.likelihood:
            prompt = label_scoring_prompt(labels, transcript=task.transcript)
            with clock.timing():
                loglik = np.asarray(backend.score_labels(task.audio, prompt, labels), dtype=float)
        exact = self.likelihood_exact
        cs = _candidate_set(parsed, cands, scores, loglik, len(labels), exact)
        strategies = applicable_strategies(
            self.mode,
            has_logprobs=bool(np.isfinite(cs.logprob_norm).any()),
            has_verifier=verifier is not None and self.verify,
            has_likelihood=loglik is not None and exact,
            has_likelihood_approx=loglik is not None and not exact,
        )
        results = aggregate(cs, strategies, tau=self.tau)
        return ModelOutput(
            cands, parsed, scores, loglik, results, clock.elapsed(), clock.model_seconds
        )

    def _verifier_scores(
        self,
        verifier: Backend | None,
        task: ClipTask,
        parsed: Sequence[Parsed],
        clock: ModelClock,
    ) -> np.ndarray:
        """The verifier's score of each valid answer (NaN elsewhere, or without a verifier)."""
        scores = np.full(len(parsed), np.nan)
        # the verifier prompt depends only on the answer's label: score each label once
        answered = sorted({p.label for p in parsed if p.valid and p.label})
        if verifier is None or not answered:
            return scores
        labels = list(self.labels)
        prompts = [render_verifier(labels, a, transcript=task.transcript) for a in answered]
        with clock.timing():
            by_label = dict(zip(answered, verifier.verify(task.audio, prompts), strict=True))
        for i, p in enumerate(parsed):
            if p.valid and p.label:
                scores[i] = by_label[p.label]
        return scores

    def run(
        self, backend: Backend, verifier: Backend | None, tasks: Sequence[ClipTask]
    ) -> list[ModelOutput | RemoteFailure]:
        """A batch of clips (a Ray actor's call): candidates decoded in one batch where
        the backend batches clips, then each clip on its own; a clip whose backend call
        fails comes back as a `RemoteFailure`, the others are unaffected."""
        ahead: list[list[Candidate] | None] = [None] * len(tasks)
        share = 0.0
        if len(tasks) > 1 and hasattr(backend, "sample_batch"):
            batches, share = sample_together(
                backend,
                self.template,
                self.labels,
                [(t.audio, t.transcript) for t in tasks],
                tasks[0].params,
                [t.params.seed for t in tasks],
            )
            if batches is not None:
                ahead = list(batches)

        def one(i: int) -> ModelOutput | RemoteFailure:
            clock = ModelClock()
            if ahead[i] is not None:
                clock.add(share)
            try:
                return self.one(backend, verifier, tasks[i], clock, ahead[i])
            except (AudioError, BackendError) as exc:
                return failure_of(exc, clock)

        width = min(len(tasks), clips_in_flight(backend, verifier if self.verify else None))
        if width <= 1:
            return [one(i) for i in range(len(tasks))]
        with ThreadPoolExecutor(max_workers=width) as pool:  # an endpoint serves many at once
            return list(pool.map(one, range(len(tasks))))


def clip_task(ctx: RunContext, clip: Clip, audio: AudioInput | None = None) -> ClipTask:
    """The clip's task (its audio read here, on the driver, unless given)."""
    if audio is None:
        audio = clip_audio(ctx.ds, clip, ctx.backend)
    transcript = clip.transcript if ctx.spec.transcript else None
    return ClipTask(clip.id, audio, transcript, clip_params(ctx.spec, clip))


def process_clip(ctx: RunContext, clip: Clip) -> ClipOutcome:
    """Sample, parse, score and aggregate one clip, then write it in one transaction."""
    return attempt_clip(ctx.ws, ctx.run, clip, lambda clock: _compute_clip(ctx, clip, clock)())


def compute_clip(ctx: RunContext, clip: Clip) -> Commit:
    """`process_clip` split for the pipeline: the model work now (any thread), the write
    later (the writer thread)."""
    return attempt_compute(ctx.ws, ctx.run, clip, partial(_compute_clip, ctx, clip))


def _compute_clip(ctx: RunContext, clip: Clip, clock: ModelClock) -> Commit:
    """Everything of one clip but the database write, which the returned commit does."""
    cands = None
    if clip.id in ctx.presampled:
        audio, cands, seconds = ctx.presampled.pop(clip.id)
        clock.add(seconds)
        task = clip_task(ctx, clip, audio)
    else:
        task = clip_task(ctx, clip)
    out = ctx.phase.one(ctx.backend, ctx.verifier, task, clock, cands)
    return partial(commit_output, ctx, clip, task.audio.warnings, out)


def commit_output(
    ctx: RunContext, clip: Clip, warnings: Sequence[str], out: ModelOutput | RemoteFailure
) -> ClipOutcome:
    """Aggregate one clip's model output and write it (or its failure) in one transaction."""
    if isinstance(out, RemoteFailure):
        return record_remote_failure(ctx.ws, ctx.run, clip, out)
    labels = list(ctx.ds.label_set)
    predictions = [
        prediction(ctx.run, name, clip, dist, labels, ctx.scorer)
        for name, dist in out.results.items()
        if dist is not None
    ]
    scores = out.verifier_scores
    samples = [
        Sample(
            ctx.run.id,
            clip.id,
            i,
            c.text,
            p.label,
            p.distribution,
            c.logprob,
            c.logprob_norm,
            c.n_tokens,
            None if math.isnan(scores[i]) else float(scores[i]),
            p.valid,
            p.error,
        )
        for i, (c, p) in enumerate(zip(out.cands, out.parsed, strict=True))
    ]
    with ctx.ws.transaction():
        clear_clip(ctx.ws, ctx.run, clip)
        ctx.ws.add_samples(samples)
        ctx.ws.add_predictions(predictions)
        ctx.ws.set_run_clip(
            ctx.run.id,
            clip.id,
            "done",
            warnings=list(warnings),
            label_loglik=None if out.loglik is None else codec.encode_dist(out.loglik),
            seconds=out.seconds,
            model_seconds=out.model_seconds,
        )
    n_valid = sum(p.valid for p in out.parsed)
    return ClipOutcome(
        clip.id,
        True,
        out.seconds,
        out.model_seconds,
        len(out.parsed),
        n_valid,
        warnings=list(warnings),
    )


def split_work(ctx: RunContext) -> SplitWork:
    """The run's work for a remote engine (`SplitWork`): tasks and commits here, the
    model phase wherever the engine runs it."""

    def commit(clip: Clip, task: ClipTask, out: ModelOutput | RemoteFailure) -> ClipOutcome:
        return commit_output(ctx, clip, task.audio.warnings, out)

    def fail(clip: Clip, exc: Exception) -> ClipOutcome:
        return record_failure(ctx.ws, ctx.run, clip, ModelClock(), exc)

    return SplitWork(ctx.phase, partial(clip_task, ctx), commit, fail)


@dataclass
class RunResult(LoopResult):
    """A sampling run's totals; every answer is a candidate."""

    @property
    def candidates(self) -> int:
        return self.answers


def execute_run(
    ws: Workspace,
    spec: RunSpec,
    *,
    where: str | None = None,
    clip_ids: Sequence[int] | None = None,
    limit: int | None = None,
    backend: Backend | None = None,
    verifier: Backend | None = None,
    on_progress: Callable[[RunProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Create or resume the run for `spec` and process the selected clips in order."""
    ds = ws.get_dataset(spec.dataset)
    if where:  # a typo in the filter fails before a model loads or a run is created
        checked_filter(ws.conn, where, ds.id)
    template = load_prompt(spec)
    with ExitStack() as stack:
        pool = None
        if spec.ray is not None and backend is None:
            from ambiscope.core.scaling.ray_pool import RayPool

            pool = stack.enter_context(RayPool(spec, spec.verifier))
            backend, verifier = pool.model, pool.verifier
        backend = stack.enter_context(using_backend(backend, spec))
        if spec.verifier and verifier is None:
            verifier = (
                backend
                if spec.verifier == "self"
                else stack.enter_context(using_backend(None, spec, spec.verifier))
            )
        preflight(backend, verifier)
        notes: list[str] = []
        run_spec = spec
        scoring = getattr(backend, "label_scoring", None) or "exact"
        if spec.likelihood and scoring == "none":
            run_spec = replace(spec, likelihood=False)
            notes.append("likelihood not computed: the backend gives no log-probabilities")
        elif spec.likelihood and scoring == "approximate":
            notes.append(
                "label likelihoods are approximate here (the endpoint has no prompt "
                "log-probs): stored as strategy likelihood~"
            )
        if verifier is not None and not getattr(verifier, "logprobs", True):
            verifier = None
            notes.append("verifier strategies skipped: the verifier needs log-probabilities")
        batch = clips_per_batch(backend, spec)
        run, created = find_or_create_run(ws, ds, spec, template, backend, batch)
        scorer = ReferenceScorer(load_human(ws, ds))
        ctx = RunContext(
            ws, ds, run, run_spec, template, backend, verifier, scorer, scoring != "approximate"
        )
        result = run_selected(
            ws,
            ds,
            RunResult(run, created, notes=notes),
            partial(process_clip, ctx),
            clip_ids=clip_ids,
            where=where,
            limit=limit,
            on_progress=on_progress,
            should_stop=should_stop,
            batch=batch,
            prepare=partial(presample, ctx),
            pipeline=partial(compute_clip, ctx),
            in_flight=clips_in_flight(backend, verifier),
            drive=None if pool is None else pool.drive(ws, split_work(ctx)),
        )
        reporters = [pool] if pool is not None else [backend, verifier]
        for used in dict.fromkeys(b for b in reporters if b is not None):
            result.notes += getattr(used, "report", list)()
        return result
