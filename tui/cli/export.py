"""Click commands of the exports: `metrics`, `report` and the `export` group (`subset`).

Register them on the main group (core/cli.py) with::

    from ambiscope.tui.cli.export import COMMANDS
    for command in COMMANDS:
        main.add_command(command)

Only click is imported here; the export modules (numpy, matplotlib) load inside the
commands so `ambiscope --help` stays fast. Every anticipated error (unknown run, strategy
or dataset, a bad filter, an empty selection, an existing output) ends as one line on
stderr with exit status 1, whether or not the main group also catches it; set
AMBISCOPE_DEBUG=1 for the traceback. See core/export/__init__.py for the formats.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ambiscope.db.errors import WorkspaceError

BY_CHOICES = ("ambiguity", "split", "gender", "speaker", "none")
TABLE_FORMATS = ("table", "csv", "json", "md", "latex")
SUBSET_FORMATS = ("audiofolder", "csv", "jsonl", "label-studio")
REFERENCES = ("human", "synthetic", "combined")
DEFAULT_METRICS = "js,bc,r2_pearson,accuracy,macro_f1"
FILTER_HELP = "Clip filter, e.g. 'ambiguity:high disagree -flag:bad' (terms ANDed; see the README)."


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Anticipated errors -> click's one-line `Error: ...` and exit status 1."""
    try:
        yield
    except click.ClickException:
        raise
    except (WorkspaceError, ValueError, OSError) as exc:
        if os.environ.get("AMBISCOPE_DEBUG"):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise click.ClickException(message) from None


def _db_path(ctx: click.Context) -> Path:
    obj = ctx.find_root().obj or {}
    return Path(obj.get("db") or os.environ.get("AMBISCOPE_DB") or "ambiscope.db")


def _open(ctx: click.Context) -> Any:
    from ambiscope.db import Workspace

    return Workspace.open(_db_path(ctx))


def _metric_list(text: str) -> tuple[str, ...]:
    from ambiscope.core.metrics.bootstrap import SUPPORTED

    names = tuple(m.strip() for m in text.split(",") if m.strip())
    return SUPPORTED if names == ("all",) else names


def _table_options(**kw: Any) -> Any:
    from ambiscope.core.export.tables import TableOptions

    baseline = kw["baseline"]
    return TableOptions(
        metrics=_metric_list(kw["metrics"]),
        by=kw.get("by", "ambiguity"),
        bootstrap=kw["bootstrap"],
        seed=kw["seed"],
        baseline=None if baseline.lower() in ("none", "") else baseline,
        reference=kw["reference"],
    )


def _selection_options(func: Any) -> Any:
    """Options shared by `metrics` and `report`."""
    options = [
        click.option("--dataset", "-d", "datasets", multiple=True, help="Dataset (repeatable)."),
        click.option("--run", "runs", type=int, multiple=True, help="Run id (repeatable)."),
        click.option("--strategy", "strategies", multiple=True, help="Strategy (repeatable)."),
        click.option("--where", help=FILTER_HELP),
        click.option(
            "--bootstrap",
            type=click.IntRange(min=0),
            default=1000,
            show_default=True,
            help="Bootstrap resamples for CIs and paired tests (0: none).",
        ),
        click.option(
            "--baseline",
            default="single",
            show_default=True,
            help="Strategy each strategy is tested against (same run); 'none' to skip.",
        ),
        click.option(
            "--reference",
            type=click.Choice(REFERENCES),
            default="human",
            show_default=True,
            help="Distribution the models are compared to (ambiguity stays the human one).",
        ),
        click.option(
            "--metrics",
            default=DEFAULT_METRICS,
            show_default=True,
            help="Comma list of metrics, or 'all'.",
        ),
        click.option("--seed", default=0, show_default=True, help="Bootstrap seed."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command("metrics")
@_selection_options
@click.option(
    "--by", type=click.Choice(BY_CHOICES), default="ambiguity", show_default=True, help="Rows by."
)
@click.option(
    "--format", "fmt", type=click.Choice(TABLE_FORMATS), default="table", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write here (plus FILE.provenance.json) instead of stdout.",
)
@click.pass_context
def metrics_command(
    ctx: click.Context,
    datasets: tuple[str, ...],
    runs: tuple[int, ...],
    strategies: tuple[str, ...],
    where: str | None,
    fmt: str,
    output: str | None,
    **kw: Any,
) -> None:
    """The benchmark table: models x strategies x corpora by ambiguity, with 95% CIs.

    Each strategy is compared with the run's baseline on the same clips by a paired
    bootstrap; md/latex mark the best value per column.
    """
    with _one_line_errors():
        from ambiscope.core.export._common import atomic_write_text, dumps
        from ambiscope.core.export.tables import compute_benchmark, render

        options = _table_options(**kw)
        with _open(ctx) as ws:
            table, provenance = compute_benchmark(
                ws,
                datasets=datasets,
                runs=runs,
                strategies=strategies,
                where=where,
                options=options,
            )
        text = render(table, fmt, provenance)
        for warning in table.warnings:
            click.echo(f"warning: {warning}", err=True)
        if output is None:
            click.echo(text, nl=False)
            return
        out = Path(output)
        atomic_write_text(out, text)
        atomic_write_text(out.with_name(out.name + ".provenance.json"), dumps(provenance) + "\n")
        click.echo(f"wrote {len(table.rows)} rows to {out} (+ {out.name}.provenance.json)")


@click.command("report")
@click.argument("out_dir", type=click.Path(file_okay=False))
@_selection_options
@click.option(
    "--scaling-clips",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="Clips per run for the N-scaling curves (0: skip them).",
)
@click.option(
    "--scaling-strategies",
    default="vote,wbon",
    show_default=True,
    help="Strategies re-aggregated for the N-scaling curves.",
)
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it is not empty.")
@click.pass_context
def report_command(
    ctx: click.Context,
    out_dir: str,
    datasets: tuple[str, ...],
    runs: tuple[int, ...],
    strategies: tuple[str, ...],
    where: str | None,
    scaling_clips: int,
    scaling_strategies: str,
    force: bool,
    **kw: Any,
) -> None:
    """A self-contained report (Markdown + PNG figures) in OUT_DIR.

    Needs matplotlib: pip install 'ambiscope[report]'.
    """
    with _one_line_errors():
        from ambiscope.core.export.report import ReportOptions, build_report, require_matplotlib

        require_matplotlib()
        options = ReportOptions(
            datasets=datasets,
            runs=runs,
            strategies=strategies,
            where=where,
            table=_table_options(**kw),
            scaling_clips=scaling_clips,
            scaling_strategies=tuple(s.strip() for s in scaling_strategies.split(",") if s.strip()),
            force=force,
        )
        with _open(ctx) as ws:
            result = build_report(ws, out_dir, options)
        click.echo(
            f"report with {result.rows} table rows and {len(result.figures)} figures: "
            f"{Path(out_dir) / 'report.md'}"
        )


@click.group("export")
def export_group() -> None:
    """Export curated clip subsets (audiofolder, CSV, JSONL, Label Studio)."""


@export_group.command("subset")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--where", default="", help=FILTER_HELP)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(SUBSET_FORMATS),
    default="audiofolder",
    show_default=True,
)
@click.option("--dataset", "-d", "datasets", multiple=True, help="Dataset (repeatable).")
@click.option("--run", "runs", type=int, multiple=True, help="Runs to include (default: all).")
@click.option("--strategy", "strategies", multiple=True, help="Strategies (default: all).")
@click.option("--link", is_flag=True, help="Symlink audio files instead of copying them.")
@click.option("--force", is_flag=True, help="Replace OUT if it is not empty.")
@click.pass_context
def subset_command(
    ctx: click.Context,
    out: str,
    where: str,
    fmt: str,
    datasets: tuple[str, ...],
    runs: tuple[int, ...],
    strategies: tuple[str, ...],
    link: bool,
    force: bool,
) -> None:
    """Export the clips matching --where to OUT, with votes, audit and model distributions.

    Writes OUT/provenance.json; refuses a non-empty OUT without --force.
    """
    with _one_line_errors():
        from ambiscope.core.export.subset import SubsetOptions, export_subset

        options = SubsetOptions(
            where=where,
            format=fmt,
            datasets=datasets,
            runs=runs,
            strategies=strategies,
            link=link,
            force=force,
        )
        with _open(ctx) as ws:
            result = export_subset(ws, out, options)
        click.echo(result.summary())


COMMANDS: tuple[click.Command, ...] = (metrics_command, report_command, export_group)
"""What core/cli.py registers: `metrics`, `report`, `export` (with `subset`)."""
