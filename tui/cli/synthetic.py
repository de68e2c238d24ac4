"""Synthetic-rater commands: `annotate-synthetic`, `align` and `augment dime`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ambiscope.tui.cli.options import (
    base_urls,
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
    default="tone,words,subtle,overall",
    show_default=True,
    help="Preset names, or a file of 'name: instruction' lines; cycled over raters.",
)
@click.option("--jitter", default=0.05, show_default=True, help="+/- uniform temperature jitter.")
@click.option("--enqueue", is_flag=True, help="Queue a background job instead of running here.")
@db_option
def annotate_synthetic(db: Path, **kw: Any) -> None:
    """Let an ALM play K synthetic annotators and store their votes (kind `synthetic`).

    Each rater answers one emotion per clip with its own persona hint and temperature
    (bands cycled, jittered, seeded; all stored in the run's config). Unparseable answers
    give no vote and are kept as invalid samples. Re-running the same command resumes.
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
    kw["personas"] = parse_personas(kw["personas"])
    spec = SyntheticSpec(**kw)
    with Workspace.open(db) as ws:
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
@click.option("--orderings", default=20, show_default=True, help="Random rater orderings.")
@click.option("--seed", default=0, show_default=True, help="Seed of the orderings.")
@json_option
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    help="Write JS/BC-vs-k curves as PNG here (needs the `report` extra: matplotlib).",
)
@db_option
def align(
    dataset: str,
    run_id: int,
    orderings: int,
    seed: int,
    as_json: bool,
    plot: str | None,
    db: Path,
) -> None:
    """How synthetic (and combined) distributions approach the human ones as raters grow.

    JS and BC at k = 1..K raters (mean ± SD over random orderings) per ambiguity level, a
    fit of a - b exp(-c k) with its saturation point (smallest k within 10% of the way
    from f(1) to the limit a), and Fleiss' kappa of the synthetic raters.
    """
    from ambiscope.core.synthetic.alignment import align_run, format_report, plot_report
    from ambiscope.db import Workspace

    with Workspace.open(db) as ws:
        report = align_run(ws, dataset, run_id, orderings=orderings, seed=seed)
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
    help="Top minority classes up to ceil(ratio x majority count).",
)
@click.option("--k", "k", default=3, show_default=True, help="Nearest neighbours to mix with.")
@click.option("--seed", default=0, show_default=True)
@reference_option("Whose votes give the clip distributions and dominant labels.")
@force_option
@click.argument("out", type=click.Path(file_okay=False))
@db_option
def dime(dataset: str, out: str, db: Path, **kw: Any) -> None:
    """DiME-Aug: balance a split by mixing each minority clip with a near neighbour.

    Audio, transcript and emotion distribution are mixed with the same alpha ~ U(0, 1);
    OUT is an audiofolder (audio/, metadata.jsonl, provenance.json) holding the split's
    original clips plus the augmented ones (`augmented: true`).
    """
    from ambiscope.core.synthetic.augment.dime import DimeOptions, dime_augment
    from ambiscope.db import Workspace

    with Workspace.open(db) as ws:
        result = dime_augment(ws, dataset, out, DimeOptions(**kw))
    click.echo(result.summary())
