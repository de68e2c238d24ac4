"""A synthetic-annotation run: its spec (what identifies it) and its stored run row.

Storage: one `runs` row (mode `label`, n = K, temperature NULL because it varies; the
full rater plan, personas, bands, jitter and seed in `config`), one annotator of kind
`synthetic` per rater tied to the run (`annotators.run_id`, external id `syn-<run>-r03`),
one vote per valid answer (`rater_labels` reads them back per rater). A rerun of the same
spec finds the same run (its identity hash) and resumes it.

The rater conventions (`rater_personas`, `rater_seed`, `rater_transcript`, `rater_parse`
of `ambiscope.core.conventions`) are spec fields: they change the answers, so a run under
other conventions is another run. They enter the identity only when they differ from
ambiscope's defaults, so runs made before conventions existed keep their identity (and
resume). The full conventions object of the command is recorded in the run's config
(`conventions`), not in the identity: fields that do not touch the raters (R², ECE, ...)
must not split runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from ambiscope.core.alm import BACKENDS
from ambiscope.core.alm.base import Backend
from ambiscope.core.alm.prompts import PromptTemplate, load_template, template_text
from ambiscope.core.conventions import Conventions
from ambiscope.core.scaling.loop import find_run
from ambiscope.core.scaling.run import (
    EXECUTION_FIELDS,
    ExecutionOptions,
    RunSpec,
    check_spec_keys,
    identity_hash,
)
from ambiscope.core.synthetic.personas import (
    DEFAULT_BANDS,
    DEFAULT_JITTER,
    DEFAULT_PERSONAS,
    FOCUS_PERSONAS,
    TEMPERATURE_LIMITS,
    Persona,
    RaterPlan,
    check_bands,
    plan_raters,
    rater_external_id,
)
from ambiscope.core.versions import package_versions
from ambiscope.db import Dataset, Run, RunIn, Workspace

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


RATER_CONVENTIONS: dict[str, Any] = {
    name: getattr(Conventions(), name)
    for name in ("rater_personas", "rater_seed", "rater_transcript", "rater_parse")
}
"""The conventions that change rater answers, with ambiscope's defaults."""


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
    rater_personas: str = "rotate"
    rater_seed: str = "per-run"
    rater_transcript: bool = False
    rater_parse: str = "lenient"
    conventions: dict[str, Any] | None = field(default=None, compare=False)
    """The command's full `Conventions.to_dict()` (provenance only, not identity)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"--backend must be one of {', '.join(BACKENDS.names())}")
        for name in RATER_CONVENTIONS:
            allowed = Conventions.CHOICES.get(name, (True, False))
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(map(str, allowed))}, "
                    f"got {getattr(self, name)!r}"
                )
        object.__setattr__(self, "bands", check_bands(self.bands))
        personas = tuple(
            p if isinstance(p, Persona) else Persona(*p)  # type: ignore[misc]
            for p in self.personas
        )
        if self.rater_personas == "locked" and personas == DEFAULT_PERSONAS:
            personas = FOCUS_PERSONAS  # locked means the five focus sentences unless given
        object.__setattr__(self, "personas", personas)
        if self.max_new_tokens < 1:
            raise ValueError("--max-new-tokens must be >= 1")
        self.plan()  # validates raters, personas and jitter

    def under(self, conventions: Conventions) -> SyntheticSpec:
        """This spec with the rater fields of ``conventions`` (and the object recorded)."""
        return replace(
            self,
            **{name: getattr(conventions, name) for name in RATER_CONVENTIONS},
            conventions=conventions.to_dict(),
        )

    def rater_conventions(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in RATER_CONVENTIONS}

    def plan(self) -> list[RaterPlan]:
        return plan_raters(
            self.raters,
            seed=self.seed,
            personas=self.personas,
            bands=self.bands,
            jitter=self.jitter,
            personas_rule=self.rater_personas,
            seed_rule=self.rater_seed,
        )

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["bands"] = [list(b) for b in self.bands]
        data["personas"] = [[p.name, p.instruction] for p in self.personas]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyntheticSpec:
        check_spec_keys(cls, data, "synthetic spec")
        values = dict(data)
        if "bands" in values:
            values["bands"] = tuple(tuple(b) for b in values["bands"])
        if "personas" in values:
            values["personas"] = tuple(Persona(*p) for p in values["personas"])
        return cls(**values)

    def identity(self, template: PromptTemplate) -> dict[str, Any]:
        """Output-affecting settings; equal identity = the same run (resume)."""
        execution = EXECUTION_FIELDS | {"prompt_file", "conventions"}
        data = {k: v for k, v in self.to_dict().items() if k not in execution}
        for name, default in RATER_CONVENTIONS.items():
            if data[name] == default:
                del data[name]  # today's identity for today's behaviour (module docstring)
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
    found = find_run(ws, ds, digest)
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
        "conventions": spec.conventions or spec.rater_conventions(),
        "model": described,
        "labels": list(ds.label_set),
        "versions": package_versions(),
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
