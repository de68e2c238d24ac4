"""Synthetic annotators: an ALM plays K raters whose votes form a Synthetic Perceptual Proxy.

Zhang et al. ("Scaling Ambiguity: Augmenting Human Annotation in SER with ALMs") simulate
a rater pool with one model: each simulated rater answers ONE dominant emotion per clip,
with its own persona hint (what to listen for) and its own sampling temperature, so the
pool disagrees the way a crowd does. Their votes form the *synthetic* distribution; pooled
with the human votes they form the *combined* distribution.

How raters are built (`plan_raters`), deterministic per seed:

* persona: rater i gets persona `i mod len(personas)` (tone of voice, word choice, subtle
  cues, overall impression by default), prepended to the label-mode prompt;
* temperature: rater i gets band `i mod len(bands)` (0.1-0.3, 0.3-0.5, 0.5-0.7, 0.7-0.9,
  0.9-0.93 by default), t = U(band) + U(-jitter, +jitter), clipped to [0.1, 1.0]. Draws are
  made in rater order from `default_rng(seed)`, so rater i's temperature depends only on
  the seed and i: a pool of 10 starts with the same 5 raters as a pool of 5;
* generation seed: per (run seed, rater, clip), so a resumed run redraws nothing.

Storage: one `runs` row (mode `label`, n = K, temperature NULL because it varies; the
full rater plan, personas, bands, jitter and seed in `config`), one annotator of kind
`synthetic` per rater tied to the run (`annotators.run_id`, external id `syn-<run>-r03`),
one vote per valid answer, and every raw answer as a `samples` row with idx = rater index
(unparseable answers are stored invalid with the parser's reason: no vote, nothing
dropped). The synthetic distribution is also stored as the run's `vote` prediction, so
`ambiscope compare`, `metrics`, exports and the TUI show the proxy against the human
reference with no special case. Each clip is written in one transaction; a rerun of the
same spec resumes (clips done are skipped, failed clips retried).

References (`reference_distributions`): `human` (the dataset's configured reference,
cached by ambiscope.core.reference.human), `synthetic` (synthetic votes only) and `combined` (human +
synthetic votes pooled, each synthetic rater one vote like each human). The latter two
are computed in memory from the votes with ambiscope.core.reference.distributions, so asking for them never
rewrites the human cache (which holds one option set per dataset).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ambiscope.core.alm.base import AudioInput, Backend, BackendError, ChatPrompt, GenerationParams
from ambiscope.core.alm.parsing import Parsed, parse_answer
from ambiscope.core.alm.prompts import PromptTemplate, load_template, render, template_text
from ambiscope.core.audio import AudioError, load_audio
from ambiscope.core.reference.distributions import (
    entropy_bits,
    human_distribution,
    majority_labels,
    normalized_entropy,
    vote_counts,
)
from ambiscope.core.reference.human import HumanData, dataset_options, load_human
from ambiscope.core.reference.prediction_scores import clip_scores
from ambiscope.core.scaling.run import (
    BACKENDS,
    EXECUTION_FIELDS,
    ExecutionOptions,
    RunProgress,
    RunSpec,
    _versions,
    identity_hash,
    open_backend,
)
from ambiscope.db import Clip, Dataset, Prediction, Run, RunIn, Sample, Workspace

if TYPE_CHECKING:
    from ambiscope.core.jobs.queue import JobContext
    from ambiscope.db import Job
JOB_KIND = "annotate-synthetic"
REFERENCES: tuple[str, ...] = ("human", "synthetic", "combined")
STRATEGY = "vote"  # the synthetic distribution is the histogram of the raters' votes


# ------------------------------------------------------------------ personas, bands
@dataclass(frozen=True)
class Persona:
    """A focus instruction given to a simulated rater (prepended to the prompt)."""

    name: str
    instruction: str


DEFAULT_PERSONAS: tuple[Persona, ...] = (
    Persona(
        "tone",
        "Focus on the tone of voice: pitch, loudness, speaking rate and voice quality.",
    ),
    Persona("words", "Focus on the word choice: what the speaker says and how it is phrased."),
    Persona(
        "subtle",
        "Pay attention to subtle cues: hesitations, sighs, tension, trembling or small "
        "changes in the voice.",
    ),
    Persona("overall", "Go with your overall impression, as an everyday listener would."),
)
DEFAULT_BANDS: tuple[tuple[float, float], ...] = (
    (0.1, 0.3),
    (0.3, 0.5),
    (0.5, 0.7),
    (0.7, 0.9),
    (0.9, 0.93),
)
DEFAULT_JITTER = 0.05
TEMPERATURE_LIMITS: tuple[float, float] = (0.1, 1.0)

SYNTHETIC_TEMPLATE = PromptTemplate(
    name="synthetic-rater",
    mode="label",
    system=(
        "You are one of several independent listeners in a study of how people perceive "
        "emotions in speech. Give your own judgement."
    ),
    user=(
        "Listen to the audio clip.\n"
        "{transcript_line}"
        "Which emotion does the speaker express? Choose exactly one of: {labels}.\n"
        "Answer with the single emotion word only."
    ),
)


def parse_bands(text: str) -> tuple[tuple[float, float], ...]:
    """`"0.1-0.3,0.3-0.5"` -> ((0.1, 0.3), (0.3, 0.5)); each band lo <= hi, both in [0, 2]."""
    bands = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo_text, sep, hi_text = part.partition("-")
        try:
            lo, hi = float(lo_text), float(hi_text if sep else lo_text)
        except ValueError:
            raise ValueError(f"--bands: {part!r} is not LO-HI (e.g. 0.1-0.3)") from None
        bands.append((lo, hi))
    return check_bands(bands)


def check_bands(bands: Sequence[Sequence[float]]) -> tuple[tuple[float, float], ...]:
    out = tuple((float(b[0]), float(b[1])) for b in bands)
    if not out:
        raise ValueError("--bands: give at least one temperature band")
    for lo, hi in out:
        if not (0 <= lo <= hi <= 2) or not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"--bands: band {lo}-{hi} must satisfy 0 <= lo <= hi <= 2")
    return out


def parse_personas(text: str) -> tuple[Persona, ...]:
    """Personas from preset names (`tone,words`) or a file of `name: instruction` lines.

    A value naming an existing file is read (blank lines and `#` comments skipped);
    otherwise it is a comma-separated list of preset names (`tone`, `words`, `subtle`,
    `overall`).
    """
    path = Path(text)
    if path.is_file():
        return _personas_from_file(path)
    presets = {p.name: p for p in DEFAULT_PERSONAS}
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in presets]
    if unknown or not names:
        raise ValueError(
            f"--personas: unknown persona(s) {', '.join(unknown) or '(none given)'} "
            f"(presets: {', '.join(presets)}; or a file of 'name: instruction' lines)"
        )
    return tuple(presets[n] for n in names)


def _personas_from_file(path: Path) -> tuple[Persona, ...]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, instruction = line.partition(":")
        if not sep or not name.strip() or not instruction.strip():
            raise ValueError(f"{path}:{number}: expected 'name: instruction'")
        out.append(Persona(name.strip(), instruction.strip()))
    if not out:
        raise ValueError(f"{path}: no personas found")
    return tuple(out)


@dataclass(frozen=True)
class RaterPlan:
    """One simulated rater: its persona, temperature band and drawn temperature."""

    index: int
    persona: str
    instruction: str
    band: tuple[float, float]
    temperature: float

    def external_id(self, run_id: int) -> str:
        return rater_external_id(run_id, self.index)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["band"] = list(self.band)
        return data


def rater_external_id(run_id: int, index: int) -> str:
    """`syn-<run>-r03` for rater index 2 (1-based, zero-padded so ids sort in rater order)."""
    return f"syn-{run_id}-r{index + 1:02d}"


def plan_raters(
    k: int,
    *,
    seed: int,
    personas: Sequence[Persona] = DEFAULT_PERSONAS,
    bands: Sequence[tuple[float, float]] = DEFAULT_BANDS,
    jitter: float = DEFAULT_JITTER,
    limits: tuple[float, float] = TEMPERATURE_LIMITS,
) -> list[RaterPlan]:
    """K raters: personas and bands cycled by index, temperatures drawn (module docstring)."""
    if k < 1:
        raise ValueError(f"--raters must be >= 1, got {k}")
    if not personas:
        raise ValueError("at least one persona is needed")
    if not 0 <= jitter < 1:
        raise ValueError(f"--jitter must be in [0, 1), got {jitter}")
    bands = check_bands(bands)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(k):
        lo, hi = bands[i % len(bands)]
        t = rng.uniform(lo, hi) + rng.uniform(-jitter, jitter)
        t = float(np.clip(t, *limits))
        persona = personas[i % len(personas)]
        out.append(RaterPlan(i, persona.name, persona.instruction, (lo, hi), round(t, 4)))
    return out


def rater_seed(seed: int, rater: int, clip_id: int) -> int:
    """The generation seed of one rater on one clip (stable across resumes and processes)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, rater, clip_id]).generate_state(1)
    return int(state[0] % (2**31 - 1))


def persona_prompt(prompt: ChatPrompt, rater: RaterPlan) -> ChatPrompt:
    """The rendered label prompt with the rater's focus instruction in front of the question."""
    return replace(prompt, user=f"{rater.instruction}\n{prompt.user}")


# ---------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class SyntheticSpec(ExecutionOptions):
    """Everything that defines a synthetic-annotation run (identity part resumes a run)."""

    dataset: str
    model: str
    raters: int = 10
    backend: str = "transformers"
    seed: int = 0
    bands: tuple[tuple[float, float], ...] = DEFAULT_BANDS
    personas: tuple[Persona, ...] = DEFAULT_PERSONAS
    jitter: float = DEFAULT_JITTER
    transcript: bool = False
    max_new_tokens: int = 16
    prompt_file: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}")
        object.__setattr__(self, "bands", check_bands(self.bands))
        personas = tuple(
            p if isinstance(p, Persona) else Persona(*p)  # type: ignore[misc]
            for p in self.personas
        )
        object.__setattr__(self, "personas", personas)
        if self.max_new_tokens < 1:
            raise ValueError("--max-new-tokens must be >= 1")
        self.plan()  # validates raters, personas and jitter

    def plan(self) -> list[RaterPlan]:
        return plan_raters(
            self.raters,
            seed=self.seed,
            personas=self.personas,
            bands=self.bands,
            jitter=self.jitter,
        )

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["bands"] = [list(b) for b in self.bands]
        data["personas"] = [[p.name, p.instruction] for p in self.personas]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyntheticSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"synthetic spec: unknown option(s) {', '.join(unknown)}")
        values = dict(data)
        if "bands" in values:
            values["bands"] = tuple(tuple(b) for b in values["bands"])
        if "personas" in values:
            values["personas"] = tuple(Persona(*p) for p in values["personas"])
        return cls(**values)

    def identity(self, template: PromptTemplate) -> dict[str, Any]:
        """Output-affecting settings; equal identity = the same run (resume)."""
        execution = EXECUTION_FIELDS | {"prompt_file"}
        data = {k: v for k, v in self.to_dict().items() if k not in execution}
        data["kind"] = "synthetic"
        data["prompt"] = template_text(template)
        return data

    def run_spec(self) -> RunSpec:
        """A RunSpec carrying this spec's backend settings (to open or reuse a backend)."""
        return RunSpec(
            dataset=self.dataset,
            model=self.model,
            backend=self.backend,
            n=1,
            seed=self.seed,
            max_new_tokens=self.max_new_tokens,
            likelihood=False,
            **self.execution_options(),
        )

    def template(self) -> PromptTemplate:
        if not self.prompt_file:
            return SYNTHETIC_TEMPLATE
        template = load_template(self.prompt_file)
        if template.mode != "label":
            raise ValueError(
                f"prompt file {self.prompt_file}: synthetic raters need a label-mode prompt "
                f"(one emotion per answer), got mode {template.mode!r}"
            )
        return template


# ------------------------------------------------------------------------ the run row
def is_synthetic_run(run: Run) -> bool:
    return run.config.get("kind") == "synthetic"


def run_raters(run: Run) -> list[RaterPlan]:
    """The rater plan stored with a synthetic run."""
    if not is_synthetic_run(run):
        raise ValueError(f"run {run.id} is not a synthetic-annotator run")
    return [
        RaterPlan(
            r["index"], r["persona"], r["instruction"], tuple(r["band"]), float(r["temperature"])
        )
        for r in run.config["raters"]
    ]


def find_or_create_run(
    ws: Workspace, ds: Dataset, spec: SyntheticSpec, backend: Backend
) -> tuple[Run, bool]:
    """The run with this spec's identity (resume) or a new one, with its K annotators."""
    template = spec.template()
    identity = spec.identity(template)
    digest = identity_hash(identity)
    found = next((r for r in ws.runs(ds.id) if r.config.get("identity_hash") == digest), None)
    with ws.transaction():
        run, created = found, False
        if run is None:
            run, created = ws.add_run(_run_row(ds, spec, template, identity, digest, backend)), True
        plan = spec.plan()
        ws.ensure_annotators(
            ds.id, [(r.external_id(run.id), "synthetic") for r in plan], run_id=run.id
        )
    return run, created


def _run_row(
    ds: Dataset,
    spec: SyntheticSpec,
    template: PromptTemplate,
    identity: dict[str, Any],
    digest: str,
    backend: Backend,
) -> RunIn:
    described = backend.describe()
    plan = spec.plan()
    config = {
        "kind": "synthetic",
        "identity_hash": digest,
        "identity": identity,
        "spec": spec.to_dict(),
        "raters": [r.to_dict() for r in plan],
        "temperatures": [r.temperature for r in plan],
        "personas": [[p.name, p.instruction] for p in spec.personas],
        "bands": [list(b) for b in spec.bands],
        "jitter": spec.jitter,
        "temperature_limits": list(TEMPERATURE_LIMITS),
        "seed": spec.seed,
        "model": described,
        "labels": list(ds.label_set),
        "versions": _versions(),
    }
    return RunIn(
        dataset_id=ds.id,
        name=spec.name or f"synthetic x{spec.raters}",
        model=spec.model,
        revision=described.get("revision") or spec.revision,
        backend=spec.backend,
        mode="label",
        n=spec.raters,
        prompt_template=template.name,
        prompt_text=template_text(template),
        temperature=None,
        search="sample",
        seed=spec.seed,
        config=config,
    )


# -------------------------------------------------------------------------- per clip
@dataclass
class ClipOutcome:
    clip_id: int
    ok: bool
    seconds: float
    model_seconds: float
    votes: int = 0
    answers: int = 0
    error: str | None = None


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
    human: HumanData
    human_index: dict[int, int]


def _load_clip_audio(ctx: _Context, clip: Clip) -> AudioInput:
    if not clip.path:
        raise AudioError(f"clip {clip.key}: no audio file")
    root = Path(ctx.ds.root) if ctx.ds.root else Path()
    loaded = load_audio(
        root / clip.path, ctx.backend.sample_rate, max_seconds=ctx.backend.max_audio_seconds
    )
    return AudioInput(loaded.samples, loaded.sample_rate, tuple(loaded.warnings))


def _ask_raters(
    ctx: _Context, clip: Clip, audio: AudioInput
) -> tuple[list[str], list[Parsed], float]:
    """One ALM call per rater; returns raw answers, parses and seconds spent in the model."""
    labels = list(ctx.ds.label_set)
    transcript = clip.transcript if ctx.spec.transcript else None
    base = render(ctx.template, labels, transcript=transcript)
    texts: list[str] = []
    model_s = 0.0
    for rater in ctx.plan:
        params = GenerationParams(
            n=1,
            temperature=rater.temperature,
            max_new_tokens=ctx.spec.max_new_tokens,
            seed=rater_seed(ctx.spec.seed, rater.index, clip.id),
        )
        t0 = time.perf_counter()
        cands = ctx.backend.sample(audio, persona_prompt(base, rater), params)
        model_s += time.perf_counter() - t0
        texts.append(cands[0].text if cands else "")
    parsed = [parse_answer(t, labels, "label") for t in texts]
    return texts, parsed, model_s


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
    seconds: float,
    model_s: float,
) -> int:
    """Samples, votes and the `vote` prediction of one clip in one transaction."""
    labels = ctx.ds.label_set
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
    dist = _synthetic_distribution(parsed, len(labels))
    predictions = []
    if dist is not None:
        row = ctx.human_index.get(clip.id)
        human = ctx.human.dist[row] if row is not None else None
        majority = int(ctx.human.majority[row]) if row is not None else -1
        js, bc, agree = clip_scores(human, majority, dist)
        label = labels[int(np.argmax(dist))]
        entropy = float(entropy_bits(dist[None, :])[0])
        predictions.append(
            Prediction(ctx.run.id, STRATEGY, clip.id, dist, label, entropy, js, bc, agree)
        )
    with ctx.ws.transaction():
        for table in ("samples", "predictions"):
            ctx.ws.conn.execute(
                f"DELETE FROM {table} WHERE run_id = ? AND clip_id = ?", (ctx.run.id, clip.id)
            )
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
        ctx.ws.set_run_clip(ctx.run.id, clip.id, "done", seconds=seconds, model_seconds=model_s)
    return len(votes)


def annotate_clip(ctx: _Context, clip: Clip) -> ClipOutcome:
    """Ask every rater about one clip and store the outcome (failure: recorded, retried)."""
    started = time.perf_counter()
    model_s = 0.0
    try:
        audio = _load_clip_audio(ctx, clip)
        texts, parsed, model_s = _ask_raters(ctx, clip, audio)
    except (AudioError, BackendError) as exc:
        error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        seconds = time.perf_counter() - started
        with ctx.ws.transaction():
            ctx.ws.set_run_clip(
                ctx.run.id, clip.id, "failed", error=error, seconds=seconds, model_seconds=model_s
            )
        return ClipOutcome(clip.id, False, seconds, model_s, error=error)
    seconds = time.perf_counter() - started
    n_votes = _write_clip(ctx, clip, texts, parsed, seconds, model_s)
    return ClipOutcome(clip.id, True, seconds, model_s, n_votes, len(texts))


# ----------------------------------------------------------------------------- runs
@dataclass
class SyntheticResult:
    run: Run
    created: bool
    total: int
    skipped: int
    processed: int = 0
    failed: int = 0
    answers: int = 0
    votes: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    stopped: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return self.answers - self.votes

    def summary(self) -> str:
        verb = "created" if self.created else "resumed"
        return (
            f"synthetic run {self.run.id} {verb} ({self.run.n} raters): {self.processed} clips "
            f"annotated, {self.skipped} already done, {self.failed} failed; {self.votes} votes "
            f"from {self.answers} answers ({self.invalid} unparseable, kept as invalid "
            f"samples); {self.seconds:.1f} s ({self.model_seconds:.1f} s in model calls)"
        )


def select_clips(ws: Workspace, ds: Dataset, where: str | None, limit: int | None) -> list[int]:
    from ambiscope.core.browse.filters import select_clip_ids

    return select_clip_ids(ws.conn, where, dataset_id=ds.id, limit=limit)


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
    owns_backend = backend is None
    backend = backend or open_backend(spec.run_spec())
    try:
        run, created = find_or_create_run(ws, ds, spec, backend)
        selected = list(clip_ids) if clip_ids is not None else select_clips(ws, ds, where, limit)
        done = ws.run_clip_ids(run.id, status="done")
        todo = [c for c in selected if c not in done]
        plan = spec.plan()
        ids = ws.ensure_annotators(
            ds.id, [(r.external_id(run.id), "synthetic") for r in plan], run_id=run.id
        )
        human = load_human(ws, ds)
        ctx = _Context(
            ws,
            ds,
            run,
            spec,
            template,
            backend,
            plan,
            [ids[r.external_id(run.id)] for r in plan],
            human,
            {int(c): i for i, c in enumerate(human.clip_ids)},
        )
        result = SyntheticResult(run, created, len(selected), len(selected) - len(todo))
        _loop(ctx, todo, result, on_progress, should_stop)
        return result
    finally:
        if owns_backend:
            backend.close()


def _loop(
    ctx: _Context,
    todo: list[int],
    result: SyntheticResult,
    on_progress: Callable[[RunProgress], None] | None,
    should_stop: Callable[[], bool] | None,
) -> None:
    started = time.perf_counter()
    for clip_id in todo:
        if should_stop is not None and should_stop():
            result.stopped = True
            break
        clip = ctx.ws.get_clip(clip_id)
        outcome = annotate_clip(ctx, clip)
        result.processed += 1
        result.model_seconds += outcome.model_seconds
        if outcome.ok:
            result.answers += outcome.answers
            result.votes += outcome.votes
        else:
            result.failed += 1
            result.failures.append((clip.key, outcome.error or "failed"))
        if on_progress is not None:
            elapsed = time.perf_counter() - started
            done = result.skipped + result.processed
            on_progress(RunProgress(done, result.total, result.failed, elapsed, None))
    result.seconds = time.perf_counter() - started


# -------------------------------------------------------------------------- jobs
def enqueue_synthetic(
    ws: Workspace,
    spec: SyntheticSpec,
    *,
    clip_ids: Sequence[int] | None = None,
    where: str | None = None,
    limit: int | None = None,
) -> Job:
    """Queue an `annotate-synthetic` job (selection resolved and frozen now, as for resample)."""
    import ambiscope.tui.cli.synthetic  # noqa: F401  (registers the job kind in this process)
    from ambiscope.core.jobs.queue import _resolve_selection, enqueue
    from ambiscope.db.errors import WorkspaceError

    ds = ws.get_dataset(spec.dataset)
    spec.template()  # a bad prompt file fails now, not in the worker
    ids = _resolve_selection(ws, ds.id, clip_ids, where, limit)
    if not ids:
        raise WorkspaceError(f"the selection matches no clips of dataset {ds.name!r}")
    params = {"spec": spec.to_dict(), "clip_ids": ids, "where": where, "limit": limit}
    return enqueue(ws, JOB_KIND, params, total=len(ids))


def run_job(ctx: JobContext) -> dict[str, Any]:
    """The `annotate-synthetic` job: run (or resume) the spec with the worker's backend."""
    spec = SyntheticSpec.from_dict(ctx.params["spec"])
    if ctx.device:
        spec = replace(spec, device=ctx.device)
    backend = ctx.backend(spec.run_spec())

    def on_progress(p: RunProgress) -> None:
        ctx.progress(p.done, p.total)

    result = execute_synthetic(
        ctx.ws,
        spec,
        clip_ids=ctx.params["clip_ids"],
        backend=backend,
        on_progress=on_progress,
        should_stop=ctx.should_stop,
    )
    for key, error in result.failures[:20]:
        ctx.log(f"clip {key} failed: {error}", "warning")
    if result.processed and result.failed == result.processed and not result.stopped:
        raise RuntimeError(f"all {result.failed} clips failed: {result.failures[0][1]}")
    ctx.log(result.summary())
    return {
        "run_id": result.run.id,
        "created": result.created,
        "processed": result.processed,
        "skipped": result.skipped,
        "failed": result.failed,
        "answers": result.answers,
        "votes": result.votes,
        "invalid": result.invalid,
        "seconds": round(result.seconds, 3),
        "stopped": result.stopped,
    }


# --------------------------------------------------------------------- references
def reference_kinds(
    ds: Dataset, reference: str, human_kinds: Sequence[str] | None = None
) -> tuple[str, ...]:
    """Annotator kinds pooled by a reference name.

    `human` stands for `human_kinds` (default: the dataset's configured reference kinds,
    e.g. ("human",), or ("human", "self") when the TUI pools the researcher's own votes).
    """
    base = tuple(human_kinds) if human_kinds is not None else dataset_options(ds).kinds
    if reference == "human":
        return base
    if reference == "synthetic":
        return ("synthetic",)
    if reference == "combined":
        return tuple(dict.fromkeys((*base, "synthetic")))
    raise ValueError(f"--reference must be one of {', '.join(REFERENCES)}, got {reference!r}")


def _other_runs_annotators(ws: Workspace, ds: Dataset, run: int | Run | None) -> set[int]:
    """Synthetic annotator ids NOT to pool when restricted to one run (empty: keep all)."""
    if run is None:
        return set()
    run_id = run.id if isinstance(run, Run) else int(run)
    return {a.id for a in ws.annotators(ds.id) if a.kind == "synthetic" and a.run_id != run_id}


def reference_counts(
    ws: Workspace,
    ds: Dataset,
    reference: str,
    *,
    run: int | Run | None = None,
    human_kinds: Sequence[str] | None = None,
    primary_only: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """((n, K) weighted vote counts, clip ids by id) of a reference's annotator kinds.

    Counts follow the dataset's distribution options (secondary-vote weight) unless
    `primary_only`; pseudo-counts (smoothing, prior) are not included.
    """
    from ambiscope.core.reference.distributions import DistributionOptions

    kinds = reference_kinds(ds, reference, human_kinds)
    rows = ws.conn.execute("SELECT id FROM clips WHERE dataset_id = ? ORDER BY id", (ds.id,))
    clip_ids = np.array([r[0] for r in rows], dtype=np.int64)
    votes = ws.vote_arrays(ds.id, kinds)
    keep = np.ones(len(votes), dtype=bool)
    excluded = _other_runs_annotators(ws, ds, run)
    if excluded:
        keep = ~np.isin(votes.annotator_id, np.fromiter(excluded, dtype=np.int64))
    options = DistributionOptions() if primary_only else dataset_options(ds).distribution
    counts = vote_counts(
        np.searchsorted(clip_ids, votes.clip_id[keep]),
        votes.label_idx[keep],
        votes.weight[keep],
        votes.rank[keep],
        len(clip_ids),
        ds.k,
        options,
    )
    return counts, clip_ids


def reference_distributions(
    ws: Workspace,
    dataset: Dataset | str | int,
    reference: str,
    *,
    run: int | Run | None = None,
    human_kinds: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clip_ids, (n, K) distributions, valid) of a reference, over every clip by id.

    `human` (without `human_kinds`) is the dataset's cached human reference (load_human:
    refreshed if stale, with the dataset's own options, so the cache never flips between
    option sets). `synthetic`, `combined` (and `human` with explicit `human_kinds`) are
    computed in memory from the votes with the dataset's distribution options; `run`
    restricts the synthetic votes to that synthetic run's raters. Rows without votes are
    NaN with valid False.
    """
    ds = dataset if isinstance(dataset, Dataset) else ws.get_dataset(dataset)
    if reference == "human" and human_kinds is None:
        human = load_human(ws, ds)
        return human.clip_ids, human.dist, human.valid
    counts, clip_ids = reference_counts(ws, ds, reference, run=run, human_kinds=human_kinds)
    dist, valid = human_distribution(counts, dataset_options(ds).distribution)
    return clip_ids, dist, valid


def reference_human_data(
    ws: Workspace,
    dataset: Dataset | str | int,
    reference: str,
    *,
    run: int | Run | None = None,
    human: HumanData | None = None,
    human_kinds: Sequence[str] | None = None,
) -> HumanData:
    """A HumanData whose distributions are the reference's: what evaluate() and the TUI use.

    `human` is the human reference already loaded by the caller (the TUI's, own votes in
    or out); given, nothing is read from or written to the human cache (safe inside a read
    snapshot). Distributions, validity, entropies and majority labels (primary votes,
    ties to the first label) come from the reference; ambiguity levels stay those of the
    HUMAN reference, so "high ambiguity" names the same clips whichever reference the
    metrics use. Aligned with `human.clip_ids`.
    """
    ds = dataset if isinstance(dataset, Dataset) else ws.get_dataset(dataset)
    human = human if human is not None else load_human(ws, ds)
    if reference == "human":
        return human
    reference_kinds(ds, reference)  # validate the name before reading anything
    counts, count_ids = reference_counts(ws, ds, reference, run=run, human_kinds=human_kinds)
    primary, _ = reference_counts(
        ws, ds, reference, run=run, human_kinds=human_kinds, primary_only=True
    )
    rows = rows_of(count_ids, human.clip_ids)
    found = rows >= 0
    n = len(human.clip_ids)
    aligned = np.zeros((n, ds.k))
    aligned[found] = counts[rows[found]]
    aligned_primary = np.zeros((n, ds.k))
    aligned_primary[found] = primary[rows[found]]
    dist, valid = human_distribution(aligned, dataset_options(ds).distribution)
    majority, _ = majority_labels(aligned_primary)
    clean = np.nan_to_num(dist)
    return HumanData(
        dataset=human.dataset,
        clip_ids=human.clip_ids,
        dist=dist,
        valid=valid,
        n_votes=aligned_primary.sum(axis=1),
        entropy=np.where(valid, entropy_bits(clean), np.nan),
        norm_entropy=np.where(valid, normalized_entropy(clean), np.nan),
        ambiguity=human.ambiguity,
        majority=np.where(valid, majority, -1),
    )


def rows_of(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each id in sorted_ids, -1 where absent."""
    if not len(sorted_ids):
        return np.full(len(ids), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1)


def rater_labels(ws: Workspace, run: Run) -> tuple[np.ndarray, np.ndarray]:
    """(clip_ids, (n, K) label index per rater, -1 = no vote) over the run's finished clips.

    A clip where every rater's answer was unparseable is kept (all -1): it was annotated,
    the raters just gave nothing usable.
    """
    ds = ws.get_dataset(run.dataset_id)
    plan = run_raters(run)
    clip_ids = np.array(sorted(ws.run_clip_ids(run.id, status="done")), dtype=np.int64)
    out = np.full((len(clip_ids), len(plan)), -1, dtype=np.int64)
    rater_of = {rater_external_id(run.id, r.index): r.index for r in plan}
    label_of = {label: i for i, label in enumerate(ds.label_set)}
    rows = ws.conn.execute(
        "SELECT v.clip_id, a.external_id, v.label FROM votes v "
        "JOIN annotators a ON a.id = v.annotator_id WHERE a.run_id = ? AND v.rank = 0",
        (run.id,),
    ).fetchall()
    for clip_id, external_id, label in rows:
        i = int(np.searchsorted(clip_ids, clip_id))
        if i < len(clip_ids) and clip_ids[i] == clip_id and external_id in rater_of:
            out[i, rater_of[external_id]] = label_of.get(label, -1)
    return clip_ids, out
