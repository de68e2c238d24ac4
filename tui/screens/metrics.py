"""The metrics screen: dataset x run x strategy x ambiguity level, with bootstrap CIs.

Point estimates come first (fast), then the same table with bootstrap 95% CIs replaces
them; both are computed in a thread worker (ambiscope.tui.data.evaluate_rows). Escape cancels a
running computation: the worker checks for cancellation between strategies and its
late answer is dropped. A bar chart under the table compares JS by ambiguity level.
The title names the workspace's conventions preset (`ambiscope config preset`), which
the numbers follow, so a table read off the screen is never silently on other terms.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, LoadingIndicator, Static
from textual.worker import Worker, get_current_worker

from ambiscope.core.text import one_line
from ambiscope.tui import data
from ambiscope.tui.keys import bindings
from ambiscope.tui.messages import MetricsFailed, MetricsReady
from ambiscope.tui.screens.base import AppScreen
from ambiscope.tui.widgets.detail import bar

COLUMNS = (
    ("js", "JS"),
    ("bc", "BC"),
    ("r2_pearson", "R²"),
    ("accuracy", "acc"),
    ("macro_f1", "F1"),
    ("ece", "ECE"),
    ("invalid_rate", "inv"),
)
LEVEL_STYLE = {"low": "green", "medium": "yellow", "high": "red", "all": "bold"}


def cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    text = f"{value:.3f}"
    lo, hi = row.get(f"{key}_lo"), row.get(f"{key}_hi")
    if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi):
        text += f" [{lo:.2f},{hi:.2f}]"
    return text


def js_chart(rows: list[dict[str, Any]], width: int) -> Text:
    """JS per (run, strategy) and ambiguity level as bars on a common scale."""
    text = Text()
    rows = [r for r in rows if r.get("js") is not None and np.isfinite(r["js"])]
    if not rows:
        return text
    top = max(r["js"] for r in rows) or 1.0
    name_w = min(max(len(f"{r['run_label']} {r['strategy']}") for r in rows), 28)
    bar_w = max(width - name_w - 16, 10)
    text.append(f"JS divergence to human (lower is better; bar = JS / {top:.3f})\n", style="bold")
    last = None
    for r in rows:
        name = f"{r['run_label']} {r['strategy']}"
        shown = name[:name_w].ljust(name_w) if name != last else " " * name_w
        last = name
        level = str(r["group"])
        text.append(f"{shown} {level[:6]:<6} ")
        text.append(bar(r["js"] / top, bar_w), style=LEVEL_STYLE.get(level, ""))
        text.append(f" {r['js']:.3f}\n")
    return text


class MetricsScreen(AppScreen):
    BINDINGS = bindings("metrics")

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self._worker: Worker[None] | None = None
        self.reference = "human"
        self.conventions = ""

    def compose(self) -> ComposeResult:
        yield Static("Metrics", id="metrics-title", classes="screen-title")
        yield LoadingIndicator(id="metrics-loading")
        with VerticalScroll(id="metrics-body"):
            yield DataTable(id="metrics-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="metrics-chart")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("dataset", "run", "strategy", "level", "n", *(h for _, h in COLUMNS))
        self.action_recompute()

    def action_recompute(self) -> None:
        if self._worker is not None and not self._worker.is_finished:
            return
        settings = self.app.settings
        try:
            self.conventions = self._conventions_label()
        except ValueError as exc:  # a stored default naming no known preset or field
            self.post_message(MetricsFailed(one_line(exc)))
            return
        self.query_one("#metrics-loading").display = True
        self._set_title("computing point estimates…")
        self._worker = self.compute(settings.include_own_votes, settings.bootstrap, self.reference)

    def _conventions_label(self) -> str:
        """The workspace's default conventions, as tables name them."""
        from ambiscope.core.conventions import resolve

        with self.app.access.reader() as ws:
            return resolve(ws.get_meta).label()

    def action_cycle_reference(self) -> None:
        """human -> synthetic -> combined: what the model distributions are compared with."""
        from ambiscope.core.reference import REFERENCES

        if self._worker is not None and not self._worker.is_finished:
            self._worker.cancel()
            self._worker = None
        names = REFERENCES.names()
        self.reference = names[(names.index(self.reference) + 1) % len(names)]
        self.action_recompute()

    def action_cancel_or_back(self) -> None:
        if self._worker is not None and not self._worker.is_finished:
            self._worker.cancel()
            self._worker = None
            self.query_one("#metrics-loading").display = False
            self._set_title("cancelled (r recomputes)")
            return
        self.app.switch_mode("browser")

    @work(thread=True, exclusive=True, group="metrics")
    def compute(self, include_own: bool, bootstrap: int, reference: str = "human") -> None:
        worker = get_current_worker()
        access = self.app.access
        try:
            for n_boot in (0, bootstrap) if bootstrap else (0,):
                t0 = time.perf_counter()
                rows = data.evaluate_rows(
                    access,
                    include_own,
                    n_boot,
                    should_stop=lambda: worker.is_cancelled,
                    reference=reference,
                )
                if worker.is_cancelled:
                    return
                self.post_message(MetricsReady(rows, n_boot, time.perf_counter() - t0))
        except Exception as exc:
            if not worker.is_cancelled:
                self.post_message(MetricsFailed(one_line(exc)))

    def _set_title(self, status: str) -> None:
        versus = "" if self.reference == "human" else f" vs {self.reference} votes"
        title = f"Metrics{versus} · conventions: {self.conventions} · {status}"
        self.query_one("#metrics-title", Static).update(Text(title))

    @on(MetricsReady)
    def _ready(self, message: MetricsReady) -> None:
        if self._worker is None:
            return  # cancelled
        self.rows = message.rows
        settings = self.app.settings
        done = message.bootstrap == settings.bootstrap or not settings.bootstrap
        self.query_one("#metrics-loading").display = not done
        if message.bootstrap:
            self._set_title(f"95% CIs from {message.bootstrap} bootstrap resamples")
        elif done:
            self._set_title("point estimates")
        else:
            self._set_title(f"point estimates · bootstrap ×{settings.bootstrap} running (esc)")
        self._fill()

    @on(MetricsFailed)
    def _failed(self, message: MetricsFailed) -> None:
        self.query_one("#metrics-loading").display = False
        self._set_title("failed")
        self.query_one("#metrics-chart", Static).update(
            Text(f"cannot compute metrics: {message.message}", style="red")
        )

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        chart = self.query_one("#metrics-chart", Static)
        if not self.rows:
            chart.update(
                "no predictions to compare yet: queue a re-sample with r in the browser, or "
                "run `ambiscope sample`"
            )
            return
        for r in self.rows:
            level = str(r["group"])
            table.add_row(
                r["dataset"],
                str(r["run_label"]),
                r["strategy"],
                Text(level, style=LEVEL_STYLE.get(level, "")),
                str(r.get("n", "")),
                *(cell(r, key) for key, _ in COLUMNS),
            )
        chart.update(js_chart(self.rows, self.size.width - 2))
