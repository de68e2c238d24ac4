"""`ambiscope reliability fit|show`: annotator reliability models (Dawid-Skene, MACE).

A command group of its own rather than a `stats --raters` flag: fitting writes the
workspace and takes model settings, listing reads the stored fits, and both share the
dataset selection; `stats` stays a read-only summary that never needs crowd-kit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ambiscope.tui.cli.options import db_option, json_option

_MODELS = ("ds", "mace", "all")


@click.group()
@db_option(expose_value=False)
def reliability() -> None:
    """Annotator reliability: fit Dawid-Skene / MACE on rater votes, list raters.

    A fit gives each clip a posterior label distribution (the references human-ds and
    human-mace in compare, metrics, exports and the TUI) and each rater a reliability and
    a confusion matrix. Datasets without rater ids (CREMA-D's pooled counts) are skipped.
    """


@reliability.command("fit")
@click.option("--dataset", "-d", multiple=True, help="Datasets to fit (default: all).")
@click.option(
    "--model", type=click.Choice(_MODELS), default="all", show_default=True, help="Model."
)
@click.option(
    "--max-iter",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="EM iterations (Dawid-Skene: at most; MACE: exactly).",
)
@click.option(
    "--tol", type=float, default=1e-5, show_default=True, help="Dawid-Skene stopping tolerance."
)
@click.option("--seed", type=int, default=0, show_default=True, help="MACE's initialisation.")
@db_option
def fit(dataset: tuple[str, ...], model: str, db: Path, **settings: Any) -> None:
    """Fit the models on the current human votes and store them (replacing earlier fits)."""
    from ambiscope.core.reference.reliability import (
        FitSettings,
        NoRaters,
        fit_dataset,
        fit_line,
    )
    from ambiscope.db import Workspace

    options = FitSettings(**settings)
    models = ("ds", "mace") if model == "all" else (model,)
    with Workspace.open(db) as ws:
        for ds in [ws.get_dataset(d) for d in dataset] or ws.datasets():
            try:
                fits = fit_dataset(ws, ds, models, options)
            except NoRaters as exc:
                click.echo(str(exc))
                continue
            for result in fits:
                stored = ws.reliability_fit(ds.id, result.model)
                assert stored is not None
                click.echo(f"{ds.name}: {fit_line(result.model, stored)}")


@reliability.command("show")
@click.option("--dataset", "-d", multiple=True, help="Datasets to list (default: all).")
@click.option(
    "--confusion",
    type=click.Choice(("ds", "mace")),
    default=None,
    help="Also print each rater's confusion rows under this model (row = true label).",
)
@json_option
@db_option
def show(dataset: tuple[str, ...], confusion: str | None, as_json: bool, db: Path) -> None:
    """Raters with vote counts, agreement with the rest (share of their votes equal to the
    other raters' majority), reliability per stored fit; stale fits are marked."""
    from ambiscope.core.reference.reliability import format_report, rater_report, report_json
    from ambiscope.db import Workspace

    with Workspace.open(db, readonly=True) as ws:
        reports = [rater_report(ws, d) for d in (list(dataset) or ws.datasets())]
    if as_json:
        click.echo(json.dumps([report_json(r) for r in reports], indent=2))
        return
    click.echo("\n\n".join(format_report(r, confusion) for r in reports))
