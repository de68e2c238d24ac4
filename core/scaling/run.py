"""Sampling runs: candidates per clip from a backend, stored, then aggregated by strategy.

A run is fixed by its spec (model, prompt, mode, N, temperature, search, seed, verifier):
re-running the same spec finds the same run row and skips clips already done, so a run
interrupted by Ctrl-C, a crash or a killed worker resumes where it stopped. Each clip's
candidates, predictions and status are written in one transaction: a clip is either
entirely there or not at all. A clip that fails (unreadable audio, backend error) is
recorded as failed with its reason and the run goes on; rerunning retries it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ambiscope.core.alm.base import AudioInput, Backend, BackendError, Candidate, GenerationParams
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
from ambiscope.core.audio import AudioError, load_audio
from ambiscope.core.reference.human import HumanData, load_human
from ambiscope.core.reference.prediction_scores import clip_scores
from ambiscope.core.scaling.strategies import CandidateSet, aggregate, applicable_strategies
from ambiscope.db import Clip, Dataset, Prediction, Run, RunIn, Sample, Workspace, codec

BACKENDS = ("transformers", "openai")


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
    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int = 4
    timeout: float = 120.0
    batch_size: int | None = None

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
                f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
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
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"run spec: unknown option(s) {', '.join(unknown)}")
        return cls(**data)

    def identity(self, template: PromptTemplate) -> dict[str, Any]:
        """The output-affecting settings; equal identity = the same run (resume)."""
        data = {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS}
        data.pop("prompt_file")
        data["prompt"] = template_text(template)
        return data


def identity_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(codec.dumps(identity).encode()).hexdigest()[:16]


def load_prompt(spec: RunSpec) -> PromptTemplate:
    return load_template(spec.prompt_file) if spec.prompt_file else DEFAULT_TEMPLATES[spec.mode]


def open_backend(spec: RunSpec, model: str | None = None) -> Backend:
    """Instantiate the spec's backend for `model` (default: the spec's model)."""
    model_id = model or spec.model
    if spec.backend == "transformers":
        from ambiscope.core.alm.transformers_backend import TransformersBackend

        return TransformersBackend(
            model_id,
            device=spec.device,
            dtype=spec.dtype,
            trust_remote_code=spec.trust_remote_code,
            revision=spec.revision,
            batch_size=spec.batch_size,
        )
    from ambiscope.core.alm.openai_backend import OpenAIBackend

    return OpenAIBackend(
        model_id,
        base_url=spec.base_url,
        api_key_env=spec.api_key_env,
        concurrency=spec.concurrency,
        timeout=spec.timeout,
    )


def _versions() -> dict[str, str]:
    out = {}
    for package in ("ambiscope", "torch", "transformers", "numpy", "scipy"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _git_describe() -> str | None:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def find_or_create_run(
    ws: Workspace, ds: Dataset, spec: RunSpec, template: PromptTemplate, backend: Backend
) -> tuple[Run, bool]:
    """The run matching the spec's identity (resume), or a new one with full provenance."""
    identity = spec.identity(template)
    digest = identity_hash(identity)
    for run in ws.runs(ds.id):
        if run.config.get("identity_hash") == digest:
            return run, False
    described = backend.describe()
    config = {
        "identity_hash": digest,
        "identity": identity,
        "spec": spec.to_dict(),
        "model": described,
        "labels": list(ds.label_set),
        "versions": _versions(),
        "git": _git_describe(),
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
class ClipOutcome:
    clip_id: int
    ok: bool
    seconds: float
    model_seconds: float
    n_valid: int = 0
    n_candidates: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


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
    human: HumanData
    human_index: dict[int, int]


def _audio_for(ctx: RunContext, clip: Clip) -> AudioInput:
    if not clip.path:
        raise AudioError(f"clip {clip.key}: no audio file")
    root = Path(ctx.ds.root) if ctx.ds.root else Path()
    loaded = load_audio(
        root / clip.path,
        ctx.backend.sample_rate,
        max_seconds=ctx.backend.max_audio_seconds,
    )
    return AudioInput(loaded.samples, loaded.sample_rate, tuple(loaded.warnings))


def _candidate_set(
    parsed: Sequence[Parsed],
    cands: Sequence[Candidate],
    verifier: np.ndarray,
    loglik: np.ndarray | None,
    k: int,
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
    )


def _entropy(dist: np.ndarray) -> float:
    nz = dist[dist > 0]
    return float(-(nz * np.log2(nz)).sum())


def process_clip(ctx: RunContext, clip: Clip) -> ClipOutcome:
    """Sample, parse, score and aggregate one clip, then write it in one transaction."""
    started = time.perf_counter()
    model_s = 0.0
    labels = list(ctx.ds.label_set)
    transcript = clip.transcript if ctx.spec.transcript else None
    try:
        audio = _audio_for(ctx, clip)
        prompt = render(ctx.template, labels, transcript=transcript)
        t0 = time.perf_counter()
        cands = ctx.backend.sample(audio, prompt, ctx.spec.params())
        model_s += time.perf_counter() - t0
        parsed = [parse_answer(c.text, labels, ctx.spec.mode) for c in cands]
        verifier_scores = np.full(len(cands), np.nan)
        if ctx.verifier is not None:
            # the verifier prompt depends only on the answer's label: score each label once
            answered = sorted({p.label for p in parsed if p.valid and p.label})
            if answered:
                prompts = [render_verifier(labels, a, transcript=transcript) for a in answered]
                t0 = time.perf_counter()
                scores = dict(zip(answered, ctx.verifier.verify(audio, prompts), strict=True))
                model_s += time.perf_counter() - t0
                for i, p in enumerate(parsed):
                    if p.valid and p.label:
                        verifier_scores[i] = scores[p.label]
        loglik = None
        if ctx.spec.likelihood:
            t0 = time.perf_counter()
            loglik = np.asarray(
                ctx.backend.score_labels(
                    audio, label_scoring_prompt(labels, transcript=transcript), labels
                ),
                dtype=float,
            )
            model_s += time.perf_counter() - t0
    except (AudioError, BackendError) as exc:
        _record_failure(ctx, clip, str(exc).splitlines()[0], time.perf_counter() - started, model_s)
        return ClipOutcome(clip.id, False, time.perf_counter() - started, model_s, error=str(exc))

    cs = _candidate_set(parsed, cands, verifier_scores, loglik, len(labels))
    strategies = applicable_strategies(
        ctx.spec.mode,
        has_logprobs=bool(np.isfinite(cs.logprob_norm).any()),
        has_verifier=ctx.verifier is not None,
        has_likelihood=loglik is not None,
    )
    results = aggregate(cs, strategies, tau=ctx.spec.tau)
    row = ctx.human_index.get(clip.id)
    human_dist = ctx.human.dist[row] if row is not None else None
    majority = int(ctx.human.majority[row]) if row is not None else -1
    predictions = []
    for name, dist in results.items():
        if dist is None:
            continue
        js, bc, agree = clip_scores(human_dist, majority, dist)
        predictions.append(
            Prediction(
                ctx.run.id,
                name,
                clip.id,
                dist,
                labels[int(np.argmax(dist))],
                _entropy(dist),
                js,
                bc,
                agree,
            )
        )
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
            None if math.isnan(verifier_scores[i]) else float(verifier_scores[i]),
            p.valid,
            p.error,
        )
        for i, (c, p) in enumerate(zip(cands, parsed, strict=True))
    ]
    seconds = time.perf_counter() - started
    warnings = list(audio.warnings)
    with ctx.ws.transaction():
        ctx.ws.conn.execute(
            "DELETE FROM samples WHERE run_id = ? AND clip_id = ?", (ctx.run.id, clip.id)
        )
        ctx.ws.conn.execute(
            "DELETE FROM predictions WHERE run_id = ? AND clip_id = ?", (ctx.run.id, clip.id)
        )
        ctx.ws.add_samples(samples)
        ctx.ws.add_predictions(predictions)
        ctx.ws.set_run_clip(
            ctx.run.id,
            clip.id,
            "done",
            warnings=warnings,
            label_loglik=None if loglik is None else codec.encode_dist(loglik),
            seconds=seconds,
            model_seconds=model_s,
        )
    n_valid = sum(p.valid for p in parsed)
    return ClipOutcome(clip.id, True, seconds, model_s, n_valid, len(parsed), warnings=warnings)


def _record_failure(
    ctx: RunContext, clip: Clip, error: str, seconds: float, model_seconds: float
) -> None:
    with ctx.ws.transaction():
        ctx.ws.set_run_clip(
            ctx.run.id,
            clip.id,
            "failed",
            error=error,
            seconds=seconds,
            model_seconds=model_seconds,
        )


@dataclass
class RunProgress:
    done: int
    total: int
    failed: int
    elapsed: float
    last: ClipOutcome | None


@dataclass
class RunResult:
    run: Run
    created: bool
    total: int
    skipped: int
    processed: int
    failed: int
    seconds: float
    model_seconds: float
    candidates: int
    invalid: int
    stopped: bool
    failures: list[tuple[str, str]]


def select_clips(
    ws: Workspace,
    ds: Dataset,
    where: str | None,
    limit: int | None,
    run_id: int | None = None,
    strategy: str | None = None,
) -> list[int]:
    from ambiscope.core.browse.filters import select_clip_ids

    return select_clip_ids(
        ws.conn, where, dataset_id=ds.id, run_id=run_id, strategy=strategy, limit=limit
    )


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
    template = load_prompt(spec)
    owns_backend = backend is None
    backend = backend or open_backend(spec)
    owns_verifier = False
    try:
        if spec.verifier and verifier is None:
            owns_verifier = spec.verifier != "self"
            verifier = backend if not owns_verifier else open_backend(spec, spec.verifier)
        run, created = find_or_create_run(ws, ds, spec, template, backend)
        selected = list(clip_ids) if clip_ids is not None else select_clips(ws, ds, where, limit)
        done = ws.run_clip_ids(run.id, status="done")
        todo = [cid for cid in selected if cid not in done]
        human = load_human(ws, ds)
        ctx = RunContext(
            ws,
            ds,
            run,
            spec,
            template,
            backend,
            verifier,
            human,
            {int(c): i for i, c in enumerate(human.clip_ids)},
        )
        return _loop(ctx, todo, len(selected), created, on_progress, should_stop)
    finally:
        if owns_backend:
            backend.close()
        if owns_verifier and verifier is not None:
            verifier.close()


def _loop(
    ctx: RunContext,
    todo: list[int],
    total: int,
    created: bool,
    on_progress: Callable[[RunProgress], None] | None,
    should_stop: Callable[[], bool] | None,
) -> RunResult:
    started = time.perf_counter()
    result = RunResult(ctx.run, created, total, total - len(todo), 0, 0, 0.0, 0.0, 0, 0, False, [])
    for clip_id in todo:
        if should_stop is not None and should_stop():
            result.stopped = True
            break
        clip = ctx.ws.get_clip(clip_id)
        outcome = process_clip(ctx, clip)
        result.processed += 1
        result.model_seconds += outcome.model_seconds
        if outcome.ok:
            result.candidates += outcome.n_candidates
            result.invalid += outcome.n_candidates - outcome.n_valid
        else:
            result.failed += 1
            result.failures.append((clip.key, outcome.error or "failed"))
        if on_progress is not None:
            on_progress(
                RunProgress(
                    result.skipped + result.processed,
                    total,
                    result.failed,
                    time.perf_counter() - started,
                    outcome,
                )
            )
    result.seconds = time.perf_counter() - started
    return result
