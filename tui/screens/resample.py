"""The re-sample dialog: describe a sampling run and which clips it covers.

The TUI never loads a model: this dialog only collects a `RunSpec` and a scope; the
browser turns it into a `resample` job (ambiscope.core.jobs.queue) that a background worker process runs.
Values are validated here by constructing the RunSpec, so a typo in N or the temperature
is reported in the dialog instead of failing later in the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Input, Label, Select, Static

from ambiscope.tui.screens.modals import Dialog


@dataclass(frozen=True)
class ResampleRequest:
    spec: dict[str, Any]  # RunSpec.to_dict()
    scope: str  # clip | flagged | filter


class ResampleModal(Dialog):
    def __init__(
        self,
        dataset: str,
        defaults: dict[str, Any],
        scope_counts: dict[str, int | None],
        clip_key: str | None,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.defaults = defaults
        self.scope_counts = scope_counts
        self.clip_key = clip_key

    def compose(self) -> ComposeResult:
        d = self.defaults

        def count(scope: str) -> str:
            n = self.scope_counts.get(scope)
            return "" if n is None else f" ({n:,})"

        scopes = []
        if self.clip_key:
            scopes.append((f"this clip · {self.clip_key}", "clip"))
        scopes += [(f"flagged clips{count('flagged')}", "flagged")]
        scopes += [(f"current filter{count('filter')}", "filter")]
        with Vertical(classes="dialog dialog-wide"):
            yield Label(f"Re-sample · dataset {self.dataset}", classes="dialog-title")
            with Grid(classes="form"):
                yield Label("model")
                yield Input(str(d.get("model", "")), placeholder="HF id or local path", id="model")
                yield Label("backend")
                yield Select(
                    [("transformers", "transformers"), ("openai", "openai")],
                    value=d.get("backend", "transformers"),
                    allow_blank=False,
                    id="backend",
                )
                yield Label("mode")
                yield Select(
                    [("label", "label"), ("distribution", "distribution"), ("cot", "cot")],
                    value=d.get("mode", "label"),
                    allow_blank=False,
                    id="mode",
                )
                yield Label("N")
                yield Input(str(d.get("n", 8)), type="integer", id="n")
                yield Label("temperature")
                yield Input(str(d.get("temperature", 0.8)), type="number", id="temperature")
                yield Label("search")
                yield Select(
                    [("sample", "sample"), ("beam", "beam")],
                    value=d.get("search", "sample"),
                    allow_blank=False,
                    id="search",
                )
                yield Label("verifier")
                yield Input(
                    str(d.get("verifier") or ""),
                    placeholder="blank, self or a model",
                    id="verifier",
                )
                yield Label("scope")
                yield Select(scopes, value=scopes[0][1], allow_blank=False, id="scope")
            yield Static("", id="error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Queue job", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        for widget in self.query(".form Input, .form Select"):
            widget.compact = True  # type: ignore[attr-defined]
        self.query_one("#model", Input).focus()

    def _value(self, widget_id: str) -> str:
        widget = self.query_one(f"#{widget_id}")
        if isinstance(widget, Input):
            return widget.value.strip()
        return str(widget.value)  # type: ignore[attr-defined]

    def _result(self) -> ResampleRequest | None:
        from ambiscope.core.scaling.run import RunSpec

        error = self.query_one("#error", Static)
        try:
            model = self._value("model")
            if not model:
                raise ValueError("model: enter a model id or a local checkpoint path")
            spec = RunSpec(
                dataset=self.dataset,
                model=model,
                backend=self._value("backend"),
                mode=self._value("mode"),
                n=int(self._value("n") or 0),
                temperature=float(self._value("temperature") or 0),
                search=self._value("search"),
                verifier=self._value("verifier") or None,
                seed=self.defaults.get("seed", 0),
                likelihood=bool(self.defaults.get("likelihood", True)),
            )
        except (ValueError, TypeError) as exc:
            error.update(str(exc).splitlines()[0])
            return None
        return ResampleRequest(spec.to_dict(), self._value("scope"))

    @on(Input.Submitted)
    def _submit(self) -> None:
        if (result := self._result()) is not None:
            self.dismiss(result)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "ok":
            self.dismiss(None)
        elif (result := self._result()) is not None:
            self.dismiss(result)
