"""Synthetic-rater commands: `annotate-synthetic`, `align` and `augment dime`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ambiscope.tui.cli.options import (
    base_urls,
    conventions_of,
    conventions_options,
    db_option,
    force_option,
    interrupted,
    json_option,
    model_options,
    progress_printer,
    reference_option,
)


@click.command("annotate-synthetic")
@click.option("--dataset", "-d", required=True, help="Dataset to annotate.")
@click.option("--raters", "-k", default=10, show_default=True, help="Synthetic raters K.")
@model_options(
    max_new_tokens=16,
    prompt_help="Label-mode prompt template (TOML/JSON); the persona is put in front of it.",
)
@click.option("--seed", default=0, show_default=True, help="Seeds temperatures and sampling.")
@click.option(
    "--bands",
    default="0.1-0.3,0.3-0.5,0.5-0.7,0.7-0.9,0.9-0.93",
    show_default=True,
    help="Temperature bands LO-HI, cycled over raters.",
)
@click.option(
    "--personas",
    default=None,
    help="Preset names, or a file of 'name: instruction' lines; cycled over raters "
    "(default: tone,words,subtle,overall; under rater_personas=locked the five focus "
    "sentences of the official code, one per band).",
)
@click.option("--jitter", default=0.05, show_default=True, help="+/- uniform temperature jitter.")
@click.option("--enqueue", is_flag=True, help="Queue a background job instead of running here.")
@conventions_options
@db_option
def annotate_synthetic(db: Path, **kw: Any) -> None:
    """Let an ALM play K synthetic annotators and store their votes (kind `synthetic`).

    Each rater answers one emotion per clip with its own persona hint and temperature
    (bands cycled, jittered, seeded; all stored in the run's config). Unparseable answers
    give no vote and are kept as invalid samples. Re-running the same command resumes.
    The rater conventions (--preset/--set: rater_personas, rater_seed, rater_transcript,
    rater_parse) are part of the run: other conventions make another run.
    Compare the result with `ambiscope align --run ID` or `--reference synthetic|combined`.
    """
    from ambiscope.core.synthetic.job import describe_annotate, enqueue_synthetic
    from ambiscope.core.synthetic.personas import parse_bands, parse_personas
    from ambiscope.core.synthetic.raters import execute_synthetic
    from ambiscope.core.synthetic.spec import SyntheticSpec
    from ambiscope.db import Workspace

    where, limit, enqueue = kw.pop("where"), kw.pop("limit"), kw.pop("enqueue")
    kw["base_url"] = base_urls(kw.get("base_url"))
    kw["bands"] = parse_bands(kw["bands"])
    if kw["personas"] is None:
        kw.pop("personas")  # the spec's default: rotating personas, or locked focus ones
    else:
        kw["personas"] = parse_personas(kw["personas"])
    with Workspace.open(db) as ws:
        conventions = conventions_of(ws, kw)
        spec = SyntheticSpec(**kw).under(conventions)
        if enqueue:
            job = enqueue_synthetic(ws, spec, where=where, limit=limit)
            click.echo(f"queued job {job.id}: {describe_annotate(job.params)}")
            return
        try:
            result = execute_synthetic(
                ws, spec, where=where, limit=limit, on_progress=progress_printer()
            )
        except KeyboardInterrupt:
            raise interrupted() from None
    click.echo(result.summary())
    for key, error in result.failures[:5]:
        click.echo(f"  failed {key}: {error}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"next: ambiscope align --dataset {spec.dataset} --run {result.run.id}")


@click.command("align")
@click.option("--dataset", "-d", required=True, help="Dataset of the run.")
@click.option("--run", "run_id", type=int, required=True, help="Synthetic-annotator run id.")
@click.option(
    "--orderings",
    default=20,
    show_default=True,
    help="Random rater orderings (saturation=nested-fit; sampled-grid uses saturation_repeats).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of the orderings or samples [default: 0; 42 under saturation=sampled-grid, "
    "the official code's seeds 42 + repeat].",
)
@json_option
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    help="Write JS/BC-vs-k curves as PNG here (needs the `report` extra: matplotlib).",
)
@conventions_options
@db_option
def align(
    dataset: str,
    run_id: int,
    orderings: int,
    seed: int | None,
    as_json: bool,
    plot: str | None,
    db: Path,
    **kw: Any,
) -> None:
    """How synthetic (and combined) distributions approach the human ones as raters grow.

    JS and BC at k = 1..K raters (mean ± SD over random orderings) per ambiguity level, a
    fit of a - b exp(-c k) with its saturation point (smallest k within 10% of the way
    from f(1) to the limit a), and Fleiss' kappa of the synthetic raters. Under
    --set saturation=sampled-grid (preset scaling-ambiguity) each k is an independent
    sample of k raters instead, and the saturation point is read off a 100-point grid.
    """
    from ambiscope.core.synthetic.alignment import align_run, format_report, plot_report
    from ambiscope.db import Workspace

    with Workspace.open(db) as ws:
        conventions = conventions_of(ws, kw)
        if seed is None:
            seed = 42 if conventions.saturation == "sampled-grid" else 0
        report = align_run(
            ws, dataset, run_id, orderings=orderings, seed=seed, conventions=conventions
        )
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_report(report))
    if plot:
        written = plot_report(report, plot)
        if written is None:
            click.echo(
                "plot skipped: matplotlib is not installed (pip install 'ambiscope[report]')",
                err=True,
            )
        else:
            click.echo(f"plot written to {written}", err=True)


@click.group("augment")
@db_option(expose_value=False)
def augment() -> None:
    """Data augmentation for training sets (never touches test splits)."""


@augment.command("dime")
@click.option("--dataset", "-d", required=True)
@click.option("--split", default="train", show_default=True, help="Split to balance (not test).")
@click.option(
    "--target-ratio",
    default=0.3,
    show_default=True,
    help="Top minority classes up to ratio x majority count (rounded by dime_target).",
)
@click.option(
    "--k",
    "k",
    type=int,
    default=None,
    help="Neighbours, the clip itself counted (default: the conventions' dime_k).",
)
@click.option("--seed", default=0, show_default=True)
@reference_option("Whose votes give the clip distributions and dominant labels.")
@conventions_options
@force_option
@click.argument("out", type=click.Path(file_okay=False))
@db_option
def dime(dataset: str, out: str, db: Path, **kw: Any) -> None:
    """DiME-Aug: balance a split by mixing each minority clip with a near neighbour.

    Audio, transcript and emotion distribution are mixed with the same alpha ~ U(0, 1);
    OUT is an audiofolder (audio/, metadata.jsonl, provenance.json) holding the split's
    original clips plus the augmented ones (`augmented: true`). Features, k, target
    rounding, source draw and dominant label follow the conventions (`--preset
    scaling-ambiguity` = the official code; its librosa features need the `librosa` extra).
    """
    from ambiscope.core.synthetic.augment.dime import DimeOptions, dime_augment
    from ambiscope.db import Workspace

    with Workspace.open(db) as ws:
        conv = conventions_of(ws, kw)
        result = dime_augment(ws, dataset, out, DimeOptions(**kw, conventions=conv))
    click.echo(result.summary())
