"""Workspace commands: `init`, `demo`, `stats` and `make-tiny-model`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ambiscope.tui.cli.options import (
    RegistryChoice,
    conventions_options,
    db_option,
    json_option,
    progress_printer,
    set_pairs,
)


@click.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@db_option
def init(path: str | None, db: Path) -> None:
    """Create an empty workspace (or upgrade an existing one) at PATH or --db."""
    from ambiscope.db import Workspace

    target = Path(path) if path else db
    with Workspace.open(target, create=True) as ws:
        click.echo(f"workspace {target} ready (schema {ws.schema_version})")


@click.command()
@click.option("--clips", default=60, show_default=True, help="Number of demo clips.")
@click.option("--seed", default=7, show_default=True, help="Random seed for votes and prosody.")
@click.option("--n", "n", default=8, show_default=True, help="Model candidates per clip.")
@click.option("--force", is_flag=True, help="Rebuild the demo dataset if it exists.")
@click.option("--no-model", is_flag=True, help="Skip sampling the tiny model.")
@click.option("--no-tui", is_flag=True, help="Do not open the TUI afterwards.")
@db_option
def demo(
    clips: int, seed: int, n: int, force: bool, no_model: bool, no_tui: bool, db: Path
) -> None:
    """Build the demo workspace, sample the tiny model on it, open the workbench.

    Clips are synthesised offline with eSpeak NG (prosody standing in for emotions) as
    16 kHz WAV files next to the workspace, and 3-12 simulated raters vote on each clip so
    that unanimous, mixed and split clips all occur. Then a tiny random-weight
    Qwen2-Audio checkpoint (built offline) answers N times per clip and every strategy
    (including the model as its own verifier and exact label likelihood) is computed, so
    every screen has data. The run resumes if interrupted. The TUI opens when the
    terminal is interactive.
    """
    from ambiscope.core.demo import DemoSpec, build_demo, demo_run_spec, format_summary

    summary = build_demo(db, DemoSpec(n_clips=clips, seed=seed), force=force)
    click.echo(format_summary(summary))
    if not no_model:
        from ambiscope.core.alm.tiny import build_tiny_model
        from ambiscope.core.evaluation import evaluate, format_table
        from ambiscope.core.scaling.run import execute_run
        from ambiscope.db import Workspace

        model_dir = db.parent / f"{db.stem}-tiny-model"
        if not (model_dir / "config.json").is_file():
            build_tiny_model(model_dir)
        click.echo(f"\nsampling the tiny model ({model_dir}), {n} candidates per clip:", err=True)
        with Workspace.open(db) as ws:
            result = execute_run(ws, demo_run_spec(model_dir, n), on_progress=progress_printer())
            rows = evaluate(ws, "demo", runs=[result.run.id], by="none")
        click.echo(format_table(rows, ("js", "bc", "accuracy", "invalid_rate")))
        click.echo("(a random-weight model: expect near-chance numbers and invalid answers)")
    if no_tui or not (sys.stdin.isatty() and sys.stdout.isatty()):
        click.echo(f"\nopen the workbench with: ambiscope --db {db}")
        return
    from ambiscope.tui.cli.app import run_tui

    run_tui(db)


@click.command()
@click.option("--dataset", "-d", multiple=True, help="Limit to these datasets (repeatable).")
@click.option(
    "--raters",
    is_flag=True,
    help="Also list each rater: votes, agreement with the rest, reliability per stored fit "
    "(as `ambiscope reliability show`).",
)
@conventions_options
@json_option
@db_option
def stats(
    dataset: tuple[str, ...],
    raters: bool,
    preset: str | None,
    set_conventions: dict[str, str],
    as_json: bool,
    db: Path,
) -> None:
    """Per-dataset clips, votes (weighted votes count by weight), raters per clip, label
    histogram, ambiguity and agreement, under the active conventions (--preset)."""
    import json

    from ambiscope.core.conventions import resolve
    from ambiscope.core.stats import format_stats, workspace_stats
    from ambiscope.db import Workspace

    with Workspace.open(db, readonly=True) as ws:
        conventions = resolve(ws.get_meta, preset, set_conventions)
        result = workspace_stats(ws, list(dataset) or None, conventions)
        if raters:
            from ambiscope.core.reference.reliability import rater_report

            reports = [rater_report(ws, d) for d in (list(dataset) or ws.datasets())]
    if as_json:
        if raters:
            from ambiscope.core.reference.reliability import report_json

            result["raters"] = [report_json(r) for r in reports]
        click.echo(json.dumps(result, indent=2))
        return
    text = format_stats(result)
    if raters:
        from ambiscope.core.reference.reliability import format_report

        text += "\n\n" + "\n\n".join(format_report(r) for r in reports)
    click.echo(text)


@click.group()
@db_option(expose_value=False)
def config() -> None:
    """Workspace settings: the default conventions preset every command uses."""


@config.command("preset")
@click.argument("name", type=RegistryChoice("ambiscope.core.conventions:PRESETS"))
@click.option(
    "--set",
    "set_conventions",
    multiple=True,
    metavar="NAME=VALUE",
    callback=set_pairs,
    help="Store an override with the preset (repeatable).",
)
@db_option
def config_preset(name: str, set_conventions: dict[str, str], db: Path) -> None:
    """Make NAME (plus --set overrides) this workspace's default conventions."""
    from ambiscope.core.conventions import preset, write_default
    from ambiscope.db import Workspace

    conventions = preset(name).with_overrides(set_conventions)
    with Workspace.open(db) as ws, ws.transaction():
        write_default(ws.set_meta, conventions)
    click.echo(f"default conventions: {conventions.label()}")


@config.command("show")
@click.option("--preset", type=RegistryChoice("ambiscope.core.conventions:PRESETS"))
@json_option
@db_option
def config_show(preset: str | None, as_json: bool, db: Path) -> None:
    """Every convention of the workspace's default (or --preset) with its value and choices."""
    import json

    from ambiscope.core.conventions import Conventions, resolve
    from ambiscope.db import Workspace

    with Workspace.open(db, readonly=True) as ws:
        conventions = resolve(ws.get_meta, preset)
    if as_json:
        click.echo(json.dumps(conventions.to_dict(), indent=2))
        return
    click.echo(f"conventions: {conventions.label()}")
    for name in Conventions.field_names():
        choices = Conventions.CHOICES.get(name)
        hint = f"  ({' | '.join(choices)})" if choices else ""
        click.echo(f"  {name} = {getattr(conventions, name)}{hint}")


@click.command("make-tiny-model")
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--family",
    type=RegistryChoice("ambiscope.core.alm.families:tiny_families"),
    default="qwen2_audio",
    show_default=True,
    help="Model family whose architecture, processor and chat template to build.",
)
@click.option("--seed", default=0, show_default=True)
@db_option(expose_value=False)
def make_tiny_model(out: str, family: str, seed: int) -> None:
    """Build a tiny random-weight checkpoint of one ALM family in OUT (offline, seconds).

    It loads by its folder like a real model (the family's processor, auto class and
    chat template), so the whole sampling pipeline can be exercised without downloading
    weights.
    """
    from ambiscope.core.alm.tiny import build_tiny_model

    path = build_tiny_model(Path(out), family=family, seed=seed)
    click.echo(f"tiny {family} checkpoint written to {path}")
