"""Small modal dialogs: confirm, text prompt with completion, note, choices, bulk, export.

Each modal returns its answer through `dismiss` (None when cancelled with Escape), so
callers use `push_screen(modal, callback)` and never block the event loop. Layout and
colours live in the app stylesheet (`.dialog`), so every dialog looks the same and fits
an 80x24 terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import (
    Button,
    Checkbox,
    Input,
    Label,
    OptionList,
    Select,
    Static,
    TextArea,
)
from textual.widgets.option_list import Option

from ambiscope.core.text import one_line
from ambiscope.tui.data import BulkKind
from ambiscope.tui.export_bridge import ExportRequest, ExportResult, check_target


class Dialog(ModalScreen[Any]):
    """Base: Escape cancels (dismiss None)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def action_cancel(self) -> None:
        self.dismiss(None)


class FormDialog(Dialog):
    """A dialog answered from its fields: Enter in a field or the OK button submits.

    `_result` reads the fields; None keeps the dialog open (it has said what is wrong).
    """

    def _result(self) -> object | None:
        raise NotImplementedError

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


class ConfirmModal(Dialog):
    def __init__(self, title: str, body: str, ok: str = "Apply") -> None:
        super().__init__()
        self.title_text, self.body, self.ok = title, body, ok

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.body, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.ok, variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "ok")


class PromptModal(Dialog):
    """One line of text, with completion from `suggestions` (e.g. existing tag names)."""

    def __init__(
        self,
        title: str,
        *,
        value: str = "",
        placeholder: str = "",
        suggestions: Sequence[str] = (),
        hint: str = "",
    ) -> None:
        super().__init__()
        self.title_text, self.value, self.placeholder = title, value, placeholder
        self.suggestions, self.hint = list(suggestions), hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(
                self.value,
                placeholder=self.placeholder,
                suggester=SuggestFromList(self.suggestions, case_sensitive=False)
                if self.suggestions
                else None,
                id="prompt",
            )
            if self.hint:
                yield Static(self.hint, classes="dialog-hint")

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(value or None)


class NoteModal(Dialog):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+s", "save", "save", priority=True)]

    def __init__(self, key: str, text: str) -> None:
        super().__init__()
        self.key, self.text = key, text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Note on {self.key}", classes="dialog-title")
            yield TextArea(self.text, id="note")
            yield Static("ctrl+s save · esc cancel · empty note deletes it", classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_save(self) -> None:
        self.dismiss(self.query_one(TextArea).text)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)


class ChoiceModal(Dialog):
    """Pick one of several options (run/strategy, flag name, …)."""

    def __init__(
        self, title: str, choices: Sequence[tuple[str, str]], current: str | None = None
    ) -> None:
        super().__init__()
        self.title_text, self.choices, self.current = title, list(choices), current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield OptionList(*(Option(label, id=key) for key, label in self.choices))

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        for i, (key, _) in enumerate(self.choices):
            if key == self.current:
                options.highlighted = i
        options.focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class RunPickerModal(ChoiceModal):
    """Choices under group headings: a `(None, heading)` row names the group below it
    (the run picker: each run, by name, with its strategies under it) and cannot be
    picked; the cursor skips it."""

    def __init__(
        self, title: str, rows: Sequence[tuple[str | None, str]], current: str | None = None
    ) -> None:
        super().__init__(title, [(key or "", label) for key, label in rows], current)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield OptionList(
                *(Option(label, id=key or None, disabled=not key) for key, label in self.choices)
            )


@dataclass(frozen=True)
class BulkRequest:
    kind: BulkKind
    name: str
    on: bool


BULK_ACTIONS: dict[str, tuple[BulkKind, bool]] = {
    "add flag": ("bulk_flag", True),
    "remove flag": ("bulk_flag", False),
    "add tag": ("bulk_tag", True),
    "remove tag": ("bulk_tag", False),
}


class BulkModal(FormDialog):
    """Choose a flag or tag to add to (or remove from) every clip of the current filter."""

    def __init__(self, flag_names: Sequence[str], tag_names: Sequence[str], filter_text: str):
        super().__init__()
        self.flag_names, self.tag_names = list(flag_names), list(tag_names)
        self.filter_text = filter_text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Bulk flag / tag", classes="dialog-title")
            yield Static(
                f"applies to every clip matching: {self.filter_text or '(no filter: all clips)'}",
                classes="dialog-hint",
            )
            yield Select(
                [(action, action) for action in BULK_ACTIONS],
                value="add flag",
                allow_blank=False,
                id="what",
            )
            yield Input(
                self.flag_names[0] if self.flag_names else "",
                placeholder="flag or tag name",
                suggester=SuggestFromList(self.flag_names + self.tag_names, case_sensitive=False),
                id="name",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Count…", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def _result(self) -> BulkRequest | None:
        name = self.query_one("#name", Input).value.strip()
        if not name:
            self.notify("enter a flag or tag name", severity="warning")
            return None
        kind, on = BULK_ACTIONS[str(self.query_one("#what", Select).value)]
        return BulkRequest(kind, name, on)


class ExportModal(Dialog):
    """Choose a subset format (a folder, as `ambiscope export subset`) or a table format.

    An existing target is refused in the dialog unless overwrite is ticked, and replacing
    one asks first. With an `exporter` the dialog runs the export itself and stays open on
    an error (saying what is wrong), answering with the `ExportResult`; without one it
    answers with the checked `ExportRequest` for the caller to run.
    """

    TABLE_SUFFIXES: ClassVar[dict[str, str]] = {"table": ".txt", "latex": ".tex"}

    def __init__(
        self,
        subset_formats: Sequence[str],
        table_formats: Sequence[str],
        filter_text: str,
        count: int,
        default_dir: str = ".",
        exporter: Callable[[ExportRequest], ExportResult] | None = None,
    ) -> None:
        super().__init__()
        self.subset_formats, self.table_formats = list(subset_formats), list(table_formats)
        self.filter_text, self.count, self.default_dir = filter_text, count, default_dir
        self.exporter = exporter
        self.running = False

    def compose(self) -> ComposeResult:
        options = [(f"subset · {f}", f"subset:{f}") for f in self.subset_formats]
        options += [(f"metric table · {f}", f"metrics:{f}") for f in self.table_formats]
        with Vertical(classes="dialog"):
            yield Label("Export", classes="dialog-title")
            yield Static(self._scope(options[0][1]), id="export-scope", classes="dialog-hint")
            yield Select(options, value=options[0][1], allow_blank=False, id="what")
            yield Input(self._default_path(options[0][1]), placeholder="output path", id="path")
            yield Checkbox("overwrite an earlier export at this path", id="overwrite")
            yield Static("", id="export-status", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Export", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def _default_path(self, value: str) -> str:
        what, fmt = value.split(":")
        if what == "subset":  # a folder with the data and its provenance
            name = f"ambiscope-subset-{fmt}"
        else:
            name = "ambiscope-metrics" + self.TABLE_SUFFIXES.get(fmt, f".{fmt}")
        return f"{self.default_dir.rstrip('/')}/{name}"

    @on(Select.Changed, "#what")
    def _changed(self, event: Select.Changed) -> None:
        self.query_one("#path", Input).value = self._default_path(str(event.value))
        self.query_one("#export-scope", Static).update(self._scope(str(event.value)))

    def _scope(self, value: str) -> str:
        """What the chosen export covers, as `export_bridge.export` writes it."""
        matching = f"{self.count:,} clips match: {self.filter_text or '(no filter: all clips)'}"
        if value.startswith("subset:"):
            return matching
        return f"{matching}\nrun and strategy as shown (every run if none), intervals, * p<0.05"

    def _say(self, text: str, error: bool = True) -> None:
        status = self.query_one("#export-status", Static)
        status.set_class(error, "dialog-error")
        status.set_class(not error, "dialog-hint")
        status.update(text)

    def _request(self) -> ExportRequest | None:
        path = self.query_one("#path", Input).value.strip()
        if not path:
            self._say("enter an output path")
            return None
        what, fmt = str(self.query_one("#what", Select).value).split(":")
        return ExportRequest(what, fmt, path, self.query_one("#overwrite", Checkbox).value)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._submit()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        if self.running:
            self._say("exporting… wait for it to finish", error=False)
            return
        super().action_cancel()

    def _submit(self) -> None:
        """Check the target, ask before replacing one, then export (or answer)."""
        request = self._request()
        if request is None or self.running:
            return
        if (problem := check_target(request)) is not None:
            self._say(problem)
            return
        if not request.target.exists():
            self._go(request)
            return
        self.app.push_screen(
            ConfirmModal(
                "Replace the earlier export?",
                f"{request.target} will be deleted and written anew.",
                ok="Replace",
            ),
            lambda ok: self._go(request) if ok else self._say("not replaced", error=False),
        )

    def _go(self, request: ExportRequest) -> None:
        if self.exporter is None:
            self.dismiss(request)
            return
        self.running = True
        self.query_one("#ok", Button).disabled = True
        self._say(f"exporting to {request.target}…", error=False)
        self._run(self.exporter, request)

    @work(thread=True, exclusive=True, group="export-dialog")
    def _run(
        self, exporter: Callable[[ExportRequest], ExportResult], request: ExportRequest
    ) -> None:
        try:
            result = exporter(request)
        except Exception as exc:  # any failure is shown in the dialog, which stays open
            self.app.call_from_thread(self._failed, one_line(exc))
            return
        self.app.call_from_thread(self.dismiss, result)

    def _failed(self, message: str) -> None:
        self.running = False
        self.query_one("#ok", Button).disabled = False
        self._say(f"not exported: {message}")
