"""The annotators screen: one dataset's raters with the numbers `ambiscope reliability show`
prints (both read `core.reference.reliability.rater_report`, so they cannot differ).

Why a screen: a clip's distribution is only as good as its raters. The table lists each
rater's vote count, agreement with the rest (share of their votes equal to the other
raters' majority on the clip) and the reliability of each stored fit (Dawid-Skene: the
probability their label is the true one; MACE: competence); under it, the highlighted
rater's confusion rows (row = true label, column = the label they gave). The title says
when a fit is stale or missing: the numbers then come from older votes or are absent,
and `ambiscope reliability fit` refreshes them. Fitting stays on the command line: it
needs crowd-kit and can take minutes on a large corpus.

Rater-less datasets (CREMA-D's anonymous pooled counts) show the one-line reason instead.
At 80x24 the table keeps ten rater rows and the confusion pane the remaining lines.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Static

from ambiscope.core.text import one_line
from ambiscope.tui.keys import bindings
from ambiscope.tui.screens.base import AppScreen


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


class AnnotatorsScreen(AppScreen):
    """See module docstring."""

    BINDINGS = bindings("annotators")
    DEFAULT_CSS: ClassVar[str] = """
    #annotators-table { height: 1fr; max-height: 12; }
    #annotators-confusion { height: auto; padding: 0 1; border-top: solid $primary-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.datasets: list[str] = []
        self.dataset_index = 0
        self.model = "ds"  # whose confusion rows are shown
        self.report: Any = None  # core.reference.reliability.RaterReport

    def compose(self) -> ComposeResult:
        yield Static("Annotators · reading…", id="annotators-title", classes="screen-title")
        yield DataTable(id="annotators-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="annotators-confusion")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.load()

    def on_screen_resume(self) -> None:
        self.load()  # votes may have changed in the browser: a fit may have gone stale

    @property
    def dataset(self) -> str | None:
        return self.datasets[self.dataset_index] if self.datasets else None

    @work(thread=True, exclusive=True, group="annotators")
    def load(self) -> None:
        from ambiscope.core.reference.reliability import rater_report

        try:
            with self.app.access.reader() as ws:
                names = [d.name for d in ws.datasets()]
                index = names.index(self.dataset) if self.dataset in names else 0
                report = rater_report(ws, names[index]) if names else None
        except Exception as exc:
            self.app.call_from_thread(self._failed, one_line(exc))
            return
        self.app.call_from_thread(self._show, names, index, report)

    def _failed(self, message: str) -> None:
        self.query_one("#annotators-title", Static).update(f"Annotators · {message}")

    def _show(self, names: list[str], index: int, report: Any) -> None:
        self.datasets, self.dataset_index, self.report = names, index, report
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear(columns=True)
        if report is None:
            self.query_one("#annotators-title", Static).update("Annotators · no datasets")
            return
        models = list(report.fits)
        if self.model not in models and models:
            self.model = models[0]
        table.add_columns("rater", "kind", "votes", "agree", *(f"rel {m}" for m in models))
        for row in report.rows:
            table.add_row(
                row.external_id,
                row.kind,
                str(row.n_votes),
                _num(row.agreement),
                *(_num(row.reliability.get(m)) for m in models),
            )
        if report.rows:
            table.move_cursor(row=min(keep, len(report.rows) - 1))
        self.query_one("#annotators-title", Static).update(self._title(report))
        self._show_confusion()

    def _title(self, report: Any) -> str:
        where = f"Annotators · {report.dataset.name}"
        if len(self.datasets) > 1:
            where += f" ({self.dataset_index + 1}/{len(self.datasets)}, d: next)"
        if report.skipped:
            return f"{where} · skipped: no rater ids"
        fits = [f"{m} {'STALE' if f['stale'] else 'fit'}" for m, f in report.fits.items()]
        state = ", ".join(fits) if fits else "no fit: ambiscope reliability fit"
        return f"{where} · {len(report.rows)} raters · {state}"

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._show_confusion()

    def _show_confusion(self) -> None:
        from ambiscope.core.reference.reliability import MODELS, confusion_rows

        pane = self.query_one("#annotators-confusion", Static)
        report = self.report
        if report is None or report.skipped:
            pane.update(report.skipped if report is not None else "")
            return
        row_index = self.query_one(DataTable).cursor_row
        if not report.rows or not 0 <= row_index < len(report.rows):
            pane.update("")
            return
        row = report.rows[row_index]
        matrix = row.confusion.get(self.model)
        if matrix is None:
            pane.update(f"{row.external_id}: no confusion without a fit")
            return
        head = f"{row.external_id} · {MODELS[self.model]} confusion (c: other model)"
        pane.update("\n".join([head, *confusion_rows(matrix, report.dataset.label_set)]))

    def action_next_dataset(self) -> None:
        if self.datasets:
            self.dataset_index = (self.dataset_index + 1) % len(self.datasets)
            self.load()  # reads the dataset at the new index

    def action_cycle_model(self) -> None:
        if self.report is not None and len(self.report.fits) > 1:
            models = list(self.report.fits)
            self.model = models[(models.index(self.model) + 1) % len(models)]
            self._show_confusion()
