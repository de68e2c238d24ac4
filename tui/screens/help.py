"""The help screen (`?`): every key, grouped, generated from ambiscope.tui.keys.KEYS."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ambiscope.tui.keys import KEYS

FILTER_HELP = (
    "Filter language: terms joined by AND, -term negates, quote values with spaces.\n"
    "dataset:NAME split:NAME speaker:ID gender:F label:LABEL intended:LABEL "
    "ambiguity:low|medium|high entropy>0.5 votes>=5 flag:NAME flagged tag:NAME tagged note "
    "voted rater:ID unreliable audio js>0.3 bc<0.5 disagree agree failed key:TEXT, or bare "
    "words (key/transcript)."
)


def keys_table() -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, expand=True)
    table.add_column("key", style="bold cyan", no_wrap=True, min_width=10)
    table.add_column("what", ratio=1)
    group = None
    for spec in KEYS:
        if spec.group != group:
            group = spec.group
            table.add_row("", "")
            table.add_row(f"[bold]{group}[/]", "")
        table.add_row(spec.display, spec.help)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog dialog-wide", id="help"):
            yield Static(
                "ambiscope · keys (esc closes; ctrl+p lists every action)", classes="dialog-title"
            )
            yield Static(keys_table())
            yield Static("")
            yield Static(FILTER_HELP, classes="dialog-hint")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
