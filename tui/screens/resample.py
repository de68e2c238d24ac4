"""The re-sample dialog: edit a copy of the selected run's spec and choose the clips.

The TUI never loads a model: this dialog only produces a `RunSpec` and a scope; the
browser turns them into a `resample` job that a background worker process runs.

The spec starts as a copy of the selected run's full stored spec (prompt file,
transcript, top_p, max_new_tokens, beams, tau, endpoint and API-key variable, device,
dtype, revision: everything `ambiscope sample` was given), and only the fields edited
here change, so re-sampling a clip of a run resumes that run. The worker finds a run by
its identity (`RunSpec.identity`: the output-affecting settings and the prompt text);
when the edited spec's identity differs from the run's, the dialog says so before the
job is queued, and which settings make the difference. Values are validated by
constructing the RunSpec, so a typo in N or the temperature is reported in the dialog
instead of failing later in the worker; on Queue the model (a local checkpoint that
exists, a known backend) and the clip's audio are checked too, and a problem keeps the
dialog open with one line (ambiscope.tui.jobs_bridge checks every clip of a wider scope
before queueing).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, get_args

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Input, Label, Select, Static

from ambiscope.core.alm import BACKENDS
from ambiscope.core.alm.base import SearchMode
from ambiscope.core.alm.prompts import MODES
from ambiscope.db import Run
from ambiscope.tui import jobs_bridge
from ambiscope.tui.screens.modals import FormDialog
from ambiscope.tui.workspace_app import WorkspaceApp

if TYPE_CHECKING:  # imported when the dialog opens: it pulls in the audio stack
    from ambiscope.core.scaling.run import RunSpec

SEARCHES: tuple[str, ...] = get_args(SearchMode)
NEW_SPEC_N = 8  # N offered when the clip's dataset has no run to start from
FORM_FIELDS = ("model", "backend", "mode", "n", "temperature", "search", "verifier")


@dataclass(frozen=True)
class ResampleRequest:
    spec: dict[str, Any]  # RunSpec.to_dict()
    scope: str  # clip | flagged | filter


def spec_of_run(dataset: str, run: Run | None) -> RunSpec:
    """A copy of the run's full spec (as stored by `ambiscope sample`) for `dataset`.

    A run without a stored sampling spec (made before specs were stored, or a
    synthetic-annotator run, whose spec describes raters) starts from its columns:
    model, backend, mode, N, temperature, top_p, search, seed and verifier.
    """
    from ambiscope.core.scaling.run import RunSpec

    if run is None:
        return RunSpec(dataset=dataset, model="", n=NEW_SPEC_N)
    stored = run.config.get("spec")
    if isinstance(stored, dict) and not _is_synthetic(run):
        try:
            return RunSpec.from_dict({**stored, "dataset": dataset})
        except (TypeError, ValueError):  # a spec of an older version: use the columns
            pass
    search = run.search if run.search in SEARCHES else "sample"
    return RunSpec(
        dataset=dataset,
        model=run.model,
        backend=run.backend if run.backend in BACKENDS else "transformers",
        mode=run.mode if run.mode in MODES else "label",
        n=run.n,
        beams=run.n if search == "beam" else RunSpec.beams,
        temperature=run.temperature if run.temperature is not None else RunSpec.temperature,
        top_p=run.top_p,
        search=search,
        seed=run.seed,
        verifier=run.verifier,
        revision=run.revision,
    )


def _is_synthetic(run: Run) -> bool:
    from ambiscope.core.synthetic.spec import is_synthetic_run

    return is_synthetic_run(run)


def identity_notice(spec: RunSpec, run: Run | None) -> str:
    """Why queueing `spec` creates a new run instead of resuming `run` ("" if it resumes).

    Raises ValueError when the spec's prompt file cannot be read (the job would fail).
    """
    from ambiscope.core.scaling.run import identity_hash, load_prompt

    identity = spec.identity(load_prompt(spec))
    if run is None:
        return "a new run will be created (this dataset has no run yet)"
    if identity_hash(identity) == run.config.get("identity_hash"):
        return ""
    stored = run.config.get("identity")
    if not isinstance(stored, dict) or _is_synthetic(run):
        return f"a new run will be created: run {run.label} has no sampling spec to resume"
    changed = [k for k in identity if identity.get(k) != stored.get(k)]
    changed += [k for k in stored if k not in identity]
    if not changed:  # the same settings, identified another way by an older version
        return f"a new run will be created: run {run.label}'s stored identity differs"
    return f"a new run will be created (changed: {', '.join(changed)})"


def kept_settings(spec: RunSpec) -> str:
    """The settings the form does not show that the copy keeps (those not at defaults).

    The run's display name is left out: it never reaches a resumed run, and a new run
    does not take it (`ResampleModal._check`).
    """
    from ambiscope.core.scaling.run import RunSpec

    defaults = RunSpec(dataset=spec.dataset, model=spec.model)
    kept = [
        f"{f.name} unset" if getattr(spec, f.name) is None else f"{f.name}={getattr(spec, f.name)}"
        for f in fields(RunSpec)
        if f.name not in (*FORM_FIELDS, "dataset", "name")
        and getattr(spec, f.name) != getattr(defaults, f.name)
    ]
    return "keeps " + " · ".join(kept) if kept else ""


class ResampleModal(FormDialog):
    def __init__(
        self,
        dataset: str,
        run: Run | None,
        scope_counts: dict[str, int | None],
        clip_key: str | None,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.run = run
        self.base = spec_of_run(dataset, run)
        self.scope_counts = scope_counts
        self.clip_key = clip_key

    def compose(self) -> ComposeResult:
        d = self.base

        def count(scope: str) -> str:
            n = self.scope_counts.get(scope)
            return "" if n is None else f" ({n:,})"

        def choice(widget_id: str, names: tuple[str, ...], value: str) -> Select[str]:
            return Select([(n, n) for n in names], value=value, allow_blank=False, id=widget_id)

        scopes = []
        if self.clip_key:
            scopes.append((f"this clip · {self.clip_key}", "clip"))
        scopes += [(f"flagged clips{count('flagged')}", "flagged")]
        scopes += [(f"current filter{count('filter')}", "filter")]
        source = f" · from run {self.run.label}" if self.run is not None else ""
        with Vertical(classes="dialog dialog-wide"):
            yield Label(f"Re-sample · dataset {self.dataset}{source}", classes="dialog-title")
            with Grid(classes="form"):
                yield Label("model")
                yield Input(d.model, placeholder="HF id or local path", id="model")
                yield Label("backend")
                yield choice("backend", BACKENDS.names(), d.backend)
                yield Label("mode")
                yield choice("mode", tuple(MODES), d.mode)
                yield Label("N")
                yield Input(str(d.n), type="integer", id="n")
                yield Label("temperature")
                yield Input(str(d.temperature), type="number", id="temperature")
                yield Label("search")
                yield choice("search", SEARCHES, d.search)
                yield Label("verifier")
                yield Input(d.verifier or "", placeholder="blank, self or a model", id="verifier")
                yield Label("scope")
                yield Select(scopes, value=scopes[0][1], allow_blank=False, id="scope")
            yield Static(kept_settings(d), id="kept", classes="dialog-hint")
            yield Static("", id="identity", classes="dialog-notice")
            yield Static("", id="error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Queue job", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        for widget in self.query(".form Input").results(Input):
            widget.compact = True
        for select in self.query(".form Select").results(Select):
            select.compact = True
        self.query_one("#model", Input).focus()
        self._check()

    def _value(self, widget_id: str) -> str:
        widget = self.query_one(f"#{widget_id}")
        if isinstance(widget, Input):
            return widget.value.strip()
        return str(self.query_one(f"#{widget_id}", Select).value)

    def edited_spec(self) -> RunSpec:
        """The run's spec with the form's values; raises ValueError for a bad value."""
        return replace(
            self.base,
            model=self._value("model"),
            backend=self._value("backend"),
            mode=self._value("mode"),
            n=int(self._value("n") or 0),
            temperature=float(self._value("temperature") or 0),
            search=self._value("search"),
            verifier=self._value("verifier") or None,
        )

    @on(Input.Changed)
    @on(Select.Changed)
    def _check(self) -> RunSpec | None:
        """Validate the form and say whether the job resumes the run (on every edit).

        The spec to queue, or None after showing what is wrong. A new run does not
        take the resumed run's display name: it would label two different runs.
        """
        error = self.query_one("#error", Static)
        notice = self.query_one("#identity", Static)
        try:
            spec = self.edited_spec()
            new_run = identity_notice(spec, self.run)
        except (ValueError, TypeError) as exc:
            error.update(str(exc).splitlines()[0])
            notice.update("")
            return None
        error.update("")
        notice.update(new_run)
        return replace(spec, name=None) if new_run else spec

    def _result(self) -> ResampleRequest | None:
        spec = self._check()
        if spec is None:
            return None
        scope = self._value("scope")
        problem = jobs_bridge.model_problem(spec) or self._clip_audio_problem(scope)
        if problem:
            self.query_one("#error", Static).update(problem)
            return None
        return ResampleRequest(spec.to_dict(), scope)

    def _clip_audio_problem(self, scope: str) -> str:
        """Why this clip's audio cannot be sampled ("" when it can, or for a wider scope,
        whose clips the bridge checks when the job is queued)."""
        app = self.app
        if scope != "clip" or self.clip_key is None or not isinstance(app, WorkspaceApp):
            return ""
        with app.access.reader() as ws:
            clip = ws.find_clip(ws.get_dataset(self.dataset).id, self.clip_key)
            return jobs_bridge.audio_problem(ws, [clip.id]) if clip is not None else ""
