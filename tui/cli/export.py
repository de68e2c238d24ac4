"""Export commands: `metrics`, `report` and `export subset` (formats: core/export)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ambiscope.tui.cli.options import (
    FILTER_HELP,
    METRICS,
    SUBSET_FORMATS,
    TABLE_FORMATS,
    RegistryChoice,
    RegistryNames,
    conventions_of,
    conventions_options,
    db_option,
    force_option,
    option_group,
    reference_option,
    strategies_option,
)

BY_CHOICES = "ambiscope.core.export.tables:BY_CHOICES"
DEFAULT_METRICS = "js,bc,r2_pearson,accuracy,macro_f1"
TABLE_METRICS = "ambiscope.core.metrics.bootstrap:cohort_metrics"  # what `--metrics all` means
SCALABLE_STRATEGIES = "ambiscope.core.scaling.strategies:scalable_strategies"
CALIBRATIONS = "ambiscope.core.metrics.calibration:CALIBRATIONS"


def _subset_selection(run_help: str, strategy_help: str) -> Any:
    """Which datasets, runs and strategies an export reads."""
    return option_group(
        [
            click.option(
                "--dataset", "-d", "datasets", multiple=True, help="Dataset (repeatable)."
            ),
            click.option("--run", "runs", type=int, multiple=True, help=run_help),
            strategies_option(strategy_help),
        ]
    )


_table_selection = option_group(
    [
        _subset_selection("Run id (repeatable).", "Strategy (repeatable)."),
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
        reference_option(
            "Distribution the models are compared to (ambiguity stays the human one)."
        ),
        click.option(
            "--metrics",
            type=RegistryNames(METRICS, every=TABLE_METRICS),
            default=DEFAULT_METRICS,
            show_default=True,
            help="Comma list of metrics, or 'all'.",
        ),
        click.option("--seed", default=0, show_default=True, help="Bootstrap seed."),
        click.option(
            "--calibrate-on",
            metavar="SPLIT",
            help="Calibrate each run x strategy on this split's clips against the reference "
            "and report the OTHER clips only, raw and calibrated (+cal rows); adds JS, BC "
            "and ECE; parameters in provenance.",
        ),
        click.option(
            "--calibration",
            type=RegistryChoice(CALIBRATIONS),
            help="Calibration map for --calibrate-on (default: temperature; vector: "
            "per-label scale and bias, L2-regularised).",
        ),
        conventions_options,
    ]
)
"""Options shared by `metrics` and `report`: what the benchmark table holds."""


def _table_options(ws: Any, kw: dict[str, Any]) -> Any:
    """The table options, with the conventions of --preset/--set (else the workspace's)."""
    from ambiscope.core.export.tables import TableOptions

    conventions = conventions_of(ws, kw)
    baseline = kw["baseline"]
    if kw["calibration"] and not kw["calibrate_on"]:
        raise click.UsageError("--calibration needs --calibrate-on SPLIT")
    return TableOptions(
        metrics=kw["metrics"],
        by=kw.get("by", "ambiguity"),
        bootstrap=kw["bootstrap"],
        seed=kw["seed"],
        baseline=None if baseline.lower() in ("none", "") else baseline,
        reference=kw["reference"],
        conventions=conventions,
        calibrate_on=kw["calibrate_on"],
        calibration=kw["calibration"] or "temperature",
    )


@click.command("metrics")
@_table_selection
@click.option(
    "--by", type=RegistryChoice(BY_CHOICES), default="ambiguity", show_default=True, help="Rows by."
)
@click.option(
    "--format", "fmt", type=RegistryChoice(TABLE_FORMATS), default="table", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write here (plus FILE.provenance.json) instead of stdout.",
)
@db_option
def metrics(
    datasets: tuple[str, ...],
    runs: tuple[int, ...],
    strategies: tuple[str, ...],
    where: str | None,
    fmt: str,
    output: str | None,
    db: Path,
    **kw: Any,
) -> None:
    """The benchmark table: models x strategies x corpora by ambiguity, with 95% CIs.

    Each strategy is compared with the run's baseline on the same clips by a paired
    bootstrap; md/latex mark the best value per column. Every format names the
    conventions (--preset / --set, else the workspace's); provenance records each field.
    """
    from ambiscope.core.export.tables import compute_benchmark, render, write_table
    from ambiscope.db import Workspace

    with Workspace.open(db) as ws:
        options = _table_options(ws, kw)
        table, provenance = compute_benchmark(
            ws, datasets=datasets, runs=runs, strategies=strategies, where=where, options=options
        )
    for warning in table.warnings:
        click.echo(f"warning: {warning}", err=True)
    if output is None:
        click.echo(render(table, fmt, provenance), nl=False)
        return
    beside = write_table(table, fmt, output, provenance)
    click.echo(f"wrote {len(table.rows)} rows to {output} (+ {beside.name})")


@click.command("report")
@click.argument("out_dir", type=click.Path(file_okay=False))
@_table_selection
@click.option(
    "--scaling-clips",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="Clips per run for the N-scaling curves (0: skip them).",
)
@click.option(
    "--scaling-strategies",
    type=RegistryNames(SCALABLE_STRATEGIES),
    help="Comma list of strategies re-aggregated for the N-scaling curves, or 'all' "
    "(default: those declared as default curves, e.g. vote,wbon).",
)
@force_option
@db_option
def report(
    out_dir: str,
    datasets: tuple[str, ...],
    runs: tuple[int, ...],
    strategies: tuple[str, ...],
    where: str | None,
    scaling_clips: int,
    scaling_strategies: tuple[str, ...] | None,
    force: bool,
    db: Path,
    **kw: Any,
) -> None:
    """A self-contained report (Markdown + PNG figures) in OUT_DIR.

    Numbers follow the conventions (--preset / --set, else the workspace's), named in
    report.md and recorded field by field in provenance.json. Needs matplotlib: pip
    install 'ambiscope[report]'.
    """
    from ambiscope.core.export.report import ReportOptions, build_report, require_matplotlib
    from ambiscope.db import Workspace

    require_matplotlib()
    curves = {} if scaling_strategies is None else {"scaling_strategies": scaling_strategies}
    with Workspace.open(db) as ws:
        options = ReportOptions(
            datasets=datasets,
            runs=runs,
            strategies=strategies,
            where=where,
            table=_table_options(ws, kw),
            scaling_clips=scaling_clips,
            force=force,
            **curves,
        )
        result = build_report(ws, out_dir, options)
    click.echo(
        f"report with {result.rows} table rows and {len(result.figures)} figures: "
        f"{Path(out_dir) / 'report.md'}"
    )


@click.group("export")
@db_option(expose_value=False)
def export() -> None:
    """Export curated clip subsets (audiofolder, CSV, JSONL, Label Studio, ...)."""


@export.command("subset")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--where", default="", help=FILTER_HELP)
@click.option(
    "--format",
    "fmt",
    type=RegistryChoice(SUBSET_FORMATS),
    default="audiofolder",
    show_default=True,
)
@_subset_selection("Runs to include (default: all).", "Strategies (default: all).")
@click.option("--link", is_flag=True, help="Symlink audio files instead of copying them.")
@click.option(
    "--ls-root",
    type=click.Path(file_okay=False, exists=True),
    help="label-studio: Label Studio's LOCAL_FILES_DOCUMENT_ROOT; OUT must lie inside it and "
    "task audio URLs are relative to it, so one instance serves every export below it "
    "(default: OUT).",
)
@force_option
@db_option
def subset(
    out: str,
    where: str,
    fmt: str,
    datasets: tuple[str, ...],
    runs: tuple[int, ...],
    strategies: tuple[str, ...],
    link: bool,
    ls_root: str | None,
    force: bool,
    db: Path,
) -> None:
    """Export the clips matching --where to OUT, with votes, audit and model distributions.

    Writes OUT/provenance.json; refuses a non-empty OUT without --force.
    """
    from ambiscope.core.export import SUBSET_FORMATS
    from ambiscope.core.export.subset import SubsetOptions, export_subset
    from ambiscope.db import Workspace

    if ls_root and "ls_root" not in SUBSET_FORMATS.meta(fmt).get("extra", ()):
        raise click.UsageError(f"--ls-root does not apply to --format {fmt}")
    options = SubsetOptions(
        where=where,
        format=fmt,
        datasets=datasets,
        runs=runs,
        strategies=strategies,
        link=link,
        force=force,
        extra={"ls_root": ls_root} if ls_root else {},
    )
    with Workspace.open(db) as ws:
        result = export_subset(ws, out, options)
    click.echo(result.summary())
