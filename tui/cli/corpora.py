"""`ambiscope import`: read a corpus with every rater's vote into the workspace."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from ambiscope.tui.cli.options import (
    CORPUS_FORMATS,
    RegistryChoice,
    conventions_options,
    db_option,
)


@click.command("import")
@click.argument("format", metavar="FORMAT", type=RegistryChoice(CORPUS_FORMATS))
@click.argument("path", type=click.Path(exists=True))
@click.option("--name", help="Dataset name (default: derived from the corpus).")
@click.option("--audio-root", type=click.Path(file_okay=False), help="Where the audio lives.")
@click.option(
    "--labels",
    help="Restrict the label set: a comma list or `4class` (wins over the conventions' "
    "label_projection).",
)
@click.option("--merge-excited", is_flag=True, help="Fold excited into happy (IEMOCAP 4-class).")
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="WORD=LABEL",
    help="Map an unknown label word explicitly (repeatable).",
)
@click.option(
    "--unknown",
    type=click.Choice(["error", "other", "drop"]),
    default="error",
    show_default=True,
    help="What to do with label words nobody mapped.",
)
@click.option(
    "--modality",
    type=click.Choice(["voice", "face", "av"]),
    default="voice",
    show_default=True,
    help="CREMA-D: which rating modality to import.",
)
@click.option(
    "--into",
    metavar="DATASET",
    help="label-studio: merge the votes onto clips of DATASET, matched by data.key/data.clip "
    "or the audio file name (for exports that lost the dataset/clip_id ids).",
)
@click.option(
    "--kind",
    metavar="KIND",
    help="label-studio: the annotators' kind (default human; only human votes make the "
    "human reference, `review` keeps a re-annotation apart).",
)
@click.option(
    "--ls-config",
    type=click.Path(exists=True, dir_okay=False),
    help="label-studio: the project's labeling config, whose choices are the label set "
    "(default: labeling_config.xml next to the export).",
)
@click.option("--skip-bad", is_flag=True, help="Skip malformed lines (report a count).")
@click.option("--replace", is_flag=True, help="Delete and re-read the dataset.")
@click.option(
    "--allow-outside-root",
    is_flag=True,
    help="Accept audio paths that resolve outside the dataset root (stored in the "
    "dataset's options and shown in export provenance).",
)
@conventions_options
@db_option
def import_(
    format: str,
    path: str,
    name: str | None,
    audio_root: str | None,
    labels: str | None,
    merge_excited: bool,
    mapping: tuple[str, ...],
    unknown: str,
    modality: str,
    into: str | None,
    kind: str | None,
    ls_config: str | None,
    skip_bad: bool,
    replace: bool,
    allow_outside_root: bool,
    preset: str | None,
    set_conventions: dict[str, str],
    db: Path,
) -> None:
    """Import a corpus with every rater's vote.

    FORMAT is a registered corpus format (crema-d, iemocap, msp-podcast, label-studio,
    manifest, ...); PATH is the corpus folder (or export/manifest file) exactly as its
    owners ship it. The import is one transaction: on error nothing is written.
    Re-importing adds nothing new.

    A Label Studio export of tasks from `ambiscope export subset --format label-studio`
    merges onto the clips it came from (same workspace): new votes, no new clips; an
    annotator's changed answer replaces their earlier one. `--into DATASET` does the same
    for exports without the ids; `--name` imports an export as a new dataset.

    The conventions (--preset, --set; recorded in the dataset's options) apply at import:
    `label_projection=4class` imports IEMOCAP and MSP-Podcast as `--labels 4class` would
    (an explicit --labels wins), and `secondary_only` drops or keeps clips left with only
    secondary votes in a restricted label set.
    """
    from ambiscope.core.conventions import Conventions, resolve
    from ambiscope.core.corpora import import_corpus
    from ambiscope.core.corpora.base import ImportOptions
    from ambiscope.core.corpora.ls_merge import MergeResult
    from ambiscope.core.labels import parse_label_list, parse_mapping
    from ambiscope.core.reference.human import human_options, refresh_human
    from ambiscope.db import Workspace
    from ambiscope.db.models import ANNOTATOR_KINDS

    try:  # a bad --set is a usage error, found before the workspace is created
        Conventions().with_overrides(set_conventions)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if kind is not None and kind not in ANNOTATOR_KINDS:
        raise click.BadParameter(
            f"{kind!r} is not an annotator kind ({', '.join(ANNOTATOR_KINDS)})",
            param_hint="--kind",
        )
    ls_extra = {"into": into, "kind": kind, "ls_config": ls_config}
    if format != "label-studio" and any(ls_extra.values()):
        raise click.UsageError("--into, --kind and --ls-config apply to label-studio only")
    if into and (name or replace):
        raise click.UsageError("--into merges onto an existing dataset: drop --name/--replace")
    options = ImportOptions(
        name=name,
        audio_root=audio_root,
        labels=parse_label_list(labels) if labels else None,
        merge_excited=merge_excited,
        label_map=parse_mapping(list(mapping)),
        unknown=unknown,  # type: ignore[arg-type]
        skip_bad=skip_bad,
        replace=replace,
        allow_outside_root=allow_outside_root,
        extra={"modality": modality}
        if format == "crema-d"
        else {k: v for k, v in ls_extra.items() if v},
    )
    with Workspace.open(db, create=True) as ws:
        conventions = resolve(ws.get_meta, preset, set_conventions)
        result = import_corpus(
            ws, format, path, dataclasses.replace(options, conventions=conventions)
        )
        merged = isinstance(result, MergeResult)
        for dataset in result.datasets if merged else [result.dataset]:
            refresh_human(ws, dataset, human_options(conventions, dataset))
    click.echo(result.summary())
