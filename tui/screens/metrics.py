"""The metrics screen: dataset x run x strategy x ambiguity level, with bootstrap CIs.

Point estimates come first (fast), then the same table with bootstrap 95% CIs replaces
them; both are computed in a thread worker (ambiscope.tui.data.evaluate_rows). Escape cancels a
running computation: the worker checks for cancellation between strategies and its
late answer is dropped. A bar chart under the table compares JS by ambiguity level.
The title names the workspace's conventions preset (`ambiscope config preset`), which
the numbers follow, so a table read off the screen is never silently on other terms.

At 80 columns the identity columns (dataset, run, strategy, level) stay frozen while the
metric columns scroll, and `c` chooses which metric columns show. Markers follow
`ambiscope metrics --format md`: the best displayed value per column within a dataset
and level in bold, `*` where the paired bootstrap against the run's baseline strategy
gives p < 0.05. That test (`with_significance`, the CLI's own) runs with the bootstrap
pass when own votes are not pooled in, since the CLI tests on the stored reference.

`t` toggles a calibrated table: `ambiscope metrics --calibrate-on SPLIT` on every dataset
(`table_rows`: temperature scaling per run x strategy, raw and `+cal` rows on the clips
outside SPLIT, against the stored reference like the CLI, so own votes are not pooled in
there). SPLIT is `train`, or
when a dataset lacks it the first split (alphabetically) that every dataset has
(ambiscope.core.export.calibration.default_split); the title then says `calibrated on
SPLIT`, and without that phrase the numbers are the raw ones on every clip.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Footer, LoadingIndicator, SelectionList, Static
from textual.worker import Worker, get_current_worker

from ambiscope.core.export import ExportError
from ambiscope.core.metrics import METRICS
from ambiscope.core.text import one_line
from ambiscope.db.access import WorkspaceAccess
from ambiscope.tui import data
from ambiscope.tui.keys import bindings
from ambiscope.tui.messages import MetricsFailed, MetricsReady
from ambiscope.tui.screens.base import AppScreen
from ambiscope.tui.screens.modals import Dialog
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
IDENTITY = ("dataset", "run", "strategy", "level")  # frozen while the metrics scroll
SIGNIFICANCE = 0.05
LEVEL_STYLE = {"low": "green", "medium": "yellow", "high": "red", "all": "bold"}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and bool(np.isfinite(value))


def significant(row: dict[str, Any], key: str) -> bool:
    """p < 0.05 in the paired bootstrap against the run's baseline strategy."""
    p = row.get(f"{key}_p")
    return _finite(p) and p < SIGNIFICANCE


def best_cells(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> set[tuple[int, str]]:
    """(row index, metric) of the best displayed (rounded) value per metric within each
    dataset x level, in the metric's direction, as the Markdown table marks them."""
    blocks: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        blocks.setdefault((str(r["dataset"]), str(r["group"])), []).append(i)
    best: set[tuple[int, str]] = set()
    for indices in blocks.values():
        for key in keys:
            shown = {i: round(rows[i][key], 3) for i in indices if _finite(rows[i].get(key))}
            if len(shown) < 2:
                continue
            target = (max if METRICS.get(key).higher_is_better else min)(shown.values())
            best.update((i, key) for i, v in shown.items() if v == target)
    return best


def cell(row: dict[str, Any], key: str, best: bool = False) -> Text:
    """`0.123* [0.10,0.15]`: bold when best in its block, `*` when significant."""
    value = row.get(key)
    if not _finite(value):
        return Text("–")
    text = Text(f"{value:.3f}", style="bold" if best else "")
    if significant(row, key):
        text.append("*", style="bold")
    lo, hi = row.get(f"{key}_lo"), row.get(f"{key}_hi")
    if _finite(lo) and _finite(hi):
        text.append(f" [{lo:.2f},{hi:.2f}]")
    return text


def legend(rows: list[dict[str, Any]]) -> str:
    """What the markers mean, and when no significance test is in the rows."""
    from ambiscope.core.export.calibration import raw_name

    text = "bold: best per dataset and level"
    if any(k.endswith("_p") and _finite(v) for r in rows for k, v in r.items()):
        text += f" · * p < {SIGNIFICANCE:g} vs the run's baseline (paired bootstrap)"
    else:
        text += " · * needs `ambiscope metrics` (paired test)"
    if any(raw_name(str(r.get("strategy", ""))) for r in rows):
        text += " · +cal: calibrated, its baseline the raw strategy"
    return text


def table_rows(
    access: WorkspaceAccess,
    bootstrap: int,
    reference: str = "human",
    baseline: str = "single",
    calibrate_on: str | None = None,
) -> list[dict[str, Any]]:
    """The rows of `ambiscope metrics` over every dataset, with the screen's columns.

    The table's plan may refresh a stale human cache (one short write); the reading is
    done on a read-only snapshot and the bootstrap outside any connection.
    """
    from ambiscope.core.export.tables import (
        TableOptions,
        build_table,
        plan_metrics,
        read_metrics,
    )

    metrics = tuple(key for key, _ in COLUMNS)
    options = TableOptions(
        metrics,
        bootstrap=bootstrap,
        baseline=baseline,
        reference=reference,
        calibrate_on=calibrate_on,
    )
    with access.writer() as ws:
        plan = plan_metrics(ws, options=options)
    with access.reader() as ws, ws.snapshot():
        members, _ = read_metrics(ws, plan)
    return build_table(members, plan.options).rows


def calibration_split(access: WorkspaceAccess) -> str:
    """The split the `t` toggle fits on (see the module docstring)."""
    from ambiscope.core.export.calibration import default_split

    with access.reader() as ws:
        return default_split(ws, [ds for ds in ws.datasets() if ws.runs(ds.id)])


def with_significance(
    access: WorkspaceAccess,
    rows: list[dict[str, Any]],
    bootstrap: int,
    reference: str = "human",
    baseline: str = "single",
) -> list[dict[str, Any]]:
    """The rows with the `<metric>_p` of `ambiscope metrics`: a paired bootstrap of each
    strategy against its run's baseline on the same clips (the baseline's own are NaN).
    """
    metrics = tuple(key for key, _ in COLUMNS)
    rows_of_table = table_rows(access, bootstrap, reference, baseline)

    def key(row: dict[str, Any]) -> tuple[str, int, str, str]:
        return (str(row["dataset"]), int(row["run"]), str(row["strategy"]), str(row["group"]))

    p_values = {key(r): {f"{m}_p": r[f"{m}_p"] for m in metrics} for r in rows_of_table}
    return [{**r, **p_values.get(key(r), {})} for r in rows]


class MetricColumnsDialog(Dialog):
    """Choose the metric columns the table shows (space toggles, enter applies)."""

    # priority: the list itself would take enter as "toggle"; space toggles there
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "apply", "apply", show=False, priority=True)
    ]

    def __init__(self, shown: tuple[str, ...]) -> None:
        super().__init__()
        self.shown = shown

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Metric columns", classes="dialog-title")
            yield SelectionList[str](
                *((title, key, key in self.shown) for key, title in COLUMNS),
                id="metric-columns",
            )
            yield Static("space toggles · enter applies · esc cancels", classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Apply", variant="primary", id="apply")

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def on_button_pressed(self) -> None:
        self.action_apply()

    def action_apply(self) -> None:
        chosen = set(self.query_one(SelectionList).selected)
        self.dismiss(tuple(key for key, _ in COLUMNS if key in chosen))


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
    BINDINGS: ClassVar[list[BindingType]] = [
        *bindings("metrics"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.shown: tuple[str, ...] = tuple(key for key, _ in COLUMNS)
        self._worker: Worker[None] | None = None
        self.reference = "human"
        self.conventions = ""
        self.calibrate_on: str | None = None  # the fitting split while `t` is on

    def compose(self) -> ComposeResult:
        yield Static("Metrics", id="metrics-title", classes="screen-title")
        yield LoadingIndicator(id="metrics-loading")
        with VerticalScroll(id="metrics-body"):
            yield DataTable(
                id="metrics-table",
                cursor_type="row",
                zebra_stripes=True,
                fixed_columns=len(IDENTITY),
            )
            yield Static("", id="metrics-legend")
            yield Static("", id="metrics-chart")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.focus()  # arrows scroll the table at once, without a Tab first
        self._set_columns(table)
        self.action_recompute()

    def _set_columns(self, table: DataTable[Any]) -> None:
        titles = dict(COLUMNS)
        table.add_columns(*IDENTITY, "n", *(titles[key] for key in self.shown))

    def action_choose_columns(self) -> None:
        self.app.push_screen(MetricColumnsDialog(self.shown), self._columns_chosen)

    def _columns_chosen(self, shown: tuple[str, ...] | None) -> None:
        if shown is None:
            return
        self.shown = shown
        self._fill()

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
        self._worker = self.compute(
            settings.include_own_votes, settings.bootstrap, self.reference, self.calibrate_on
        )

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

    def action_toggle_calibration(self) -> None:
        """Raw <-> calibrated on the default split (see the module docstring)."""
        if self._worker is not None and not self._worker.is_finished:
            self._worker.cancel()
            self._worker = None
        if self.calibrate_on is not None:
            self.calibrate_on = None
        else:
            try:
                self.calibrate_on = calibration_split(self.app.access)
            except ExportError as exc:
                self.post_message(MetricsFailed(one_line(exc)))
                return
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
    def compute(
        self,
        include_own: bool,
        bootstrap: int,
        reference: str = "human",
        calibrate_on: str | None = None,
    ) -> None:
        worker = get_current_worker()
        access = self.app.access
        try:
            for n_boot in (0, bootstrap) if bootstrap else (0,):
                t0 = time.perf_counter()
                if calibrate_on is not None:  # the CLI's table, its p values included
                    rows = table_rows(access, n_boot, reference, calibrate_on=calibrate_on)
                else:
                    rows = self._raw_rows(access, include_own, n_boot, reference, worker)
                if worker.is_cancelled:
                    return
                self.post_message(MetricsReady(rows, n_boot, time.perf_counter() - t0))
        except Exception as exc:
            if not worker.is_cancelled:
                self.post_message(MetricsFailed(one_line(exc)))

    @staticmethod
    def _raw_rows(
        access: WorkspaceAccess,
        include_own: bool,
        bootstrap: int,
        reference: str,
        worker: Worker[None],
    ) -> list[dict[str, Any]]:
        """Rows on every clip against the reference the screen shows (own votes or not)."""
        rows = data.evaluate_rows(
            access,
            include_own,
            bootstrap,
            should_stop=lambda: worker.is_cancelled,
            reference=reference,
        )
        if bootstrap and not include_own:  # the CLI's test is on the stored reference
            with contextlib.suppress(ExportError):  # then no markers, as the legend says
                rows = with_significance(access, rows, bootstrap, reference)
        return rows

    def _set_title(self, status: str) -> None:
        versus = "" if self.reference == "human" else f" vs {self.reference} votes"
        if self.calibrate_on is not None:
            versus += f" · calibrated on {self.calibrate_on} (other clips)"
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
        table.clear(columns=True)
        self._set_columns(table)
        self.query_one("#metrics-legend", Static).update(legend(self.rows) if self.rows else "")
        chart = self.query_one("#metrics-chart", Static)
        if not self.rows:
            chart.update(
                "no predictions to compare yet: queue a re-sample with r in the browser, or "
                "run `ambiscope sample`"
            )
            return
        best = best_cells(self.rows, self.shown)
        for i, r in enumerate(self.rows):
            level = str(r["group"])
            table.add_row(
                r["dataset"],
                str(r["run_label"]),
                r["strategy"],
                Text(level, style=LEVEL_STYLE.get(level, "")),
                str(r.get("n", "")),
                *(cell(r, key, (i, key) in best) for key in self.shown),
            )
        chart.update(js_chart(self.rows, self.size.width - 2))
