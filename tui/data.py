"""Everything the TUI reads from or writes to the workspace, callable from worker threads.

A connection is never used by two threads at once: every call takes a read-only
connection from the pool in `ambiscope.db.access` and gives it back before returning, and
writes go through its single `writer()`.

Only db/ and core/ APIs are used here (no SQL): the TUI stays a client of the library.
Edits are described by `Edit` values whose application returns the inverse edit, which is
what the undo stack stores.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ambiscope.core.browse import query as browse
from ambiscope.core.browse.query import BrowseQuery, ClipHuman, ClipPrediction
from ambiscope.core.paths import dataset_file
from ambiscope.core.reference.human import HumanOptions, default_options, ensure_human
from ambiscope.db import Clip, Dataset, Run, Sample, VoteIn, VoteRow, Workspace
from ambiscope.db.access import WorkspaceAccess

ENVELOPE_COLUMNS = 512
MAX_AUDIO_SECONDS = 600.0


# ----------------------------------------------------------------------------- context
@dataclass(frozen=True)
class WorkspaceContext:
    """Workspace-wide facts the browser needs once (and after jobs finish)."""

    datasets: tuple[Dataset, ...]
    runs: tuple[Run, ...]
    strategies: dict[int, tuple[str, ...]]
    tag_names: tuple[str, ...]
    splits: tuple[str, ...]
    majorities: tuple[str, ...]
    total_clips: int

    def dataset(self, dataset_id: int | None) -> Dataset | None:
        return next((d for d in self.datasets if d.id == dataset_id), None)

    def run(self, run_id: int | None) -> Run | None:
        return next((r for r in self.runs if r.id == run_id), None)

    def runs_for(self, dataset_id: int | None) -> list[Run]:
        return [r for r in self.runs if dataset_id is None or r.dataset_id == dataset_id]


def load_context(access: WorkspaceAccess) -> WorkspaceContext:
    access.ensure_schema()
    with access.reader() as ws, ws.snapshot():
        datasets = tuple(ws.datasets())
        runs = tuple(ws.runs())
        strategies = {r.id: tuple(ws.strategies(r.id)) for r in runs}
        return WorkspaceContext(
            datasets=datasets,
            runs=runs,
            strategies=strategies,
            tag_names=tuple(ws.tag_names()),
            splits=tuple(browse.distinct_values(ws.conn, "split")),
            majorities=tuple(browse.distinct_values(ws.conn, "majority")),
            total_clips=ws.count_clips(),
        )


def human_options(ws: Workspace, ds: Dataset, include_own: bool) -> HumanOptions:
    """The dataset's reference options under the workspace's conventions, with the
    researcher's votes pooled in if asked."""
    opts = default_options(ws, ds)
    kinds = tuple(k for k in opts.kinds if k != "self")
    if include_own:
        kinds = (*kinds, "self")
    return replace(opts, kinds=kinds)


LABEL_LIST_RULES: tuple[tuple[str, float], ...] = (
    ("split", 0.0),
    ("each", 0.0),
    ("primary", 0.0),
    ("primary", 0.5),
)
"""(multi_label, secondary_weight) settings the TUI cycles through (`W`): how an IEMOCAP
evaluator's label list counts, and what MSP-Podcast's secondary emotions weigh."""


def describe_label_rule(multi_label: str, secondary_weight: float) -> str:
    lists = {
        "split": "each listed label 1/len(list)",
        "each": "each listed label 1",
        "primary": "first listed label only",
    }[multi_label]
    return f"label lists: {lists}; secondary labels weigh {secondary_weight:g}"


def cycle_label_rule(access: WorkspaceAccess) -> str:
    """Store the next `LABEL_LIST_RULES` entry in the workspace's default conventions
    (what every command then uses) and say what it is now."""
    from ambiscope.core.conventions import read_default, write_default

    with access.writer() as ws:
        current = read_default(ws.get_meta).conventions()
        now = (current.multi_label, current.secondary_weight)
        index = LABEL_LIST_RULES.index(now) + 1 if now in LABEL_LIST_RULES else 0
        rule, weight = LABEL_LIST_RULES[index % len(LABEL_LIST_RULES)]
        changed = current.with_overrides({"multi_label": rule, "secondary_weight": f"{weight:g}"})
        with ws.transaction():
            write_default(ws.set_meta, changed)
    return describe_label_rule(rule, weight)


def refresh_human_cache(access: WorkspaceAccess, include_own: bool) -> list[str]:
    """Bring every dataset's human cache in line with the own-vote setting (names changed)."""
    changed = []
    with access.writer() as ws:
        for ds in ws.datasets():
            if ensure_human(ws, ds, human_options(ws, ds, include_own)):
                changed.append(ds.name)
    return changed


# ------------------------------------------------------------------------------ detail
@dataclass(frozen=True, eq=False)
class ClipDetail:
    """Everything the detail pane shows about one clip (one read snapshot)."""

    clip: Clip
    dataset: Dataset
    votes: tuple[VoteRow, ...]
    human: ClipHuman | None
    run: Run | None
    strategy: str | None
    predictions: tuple[ClipPrediction, ...]
    samples: tuple[Sample, ...]
    run_status: tuple[str, str | None] | None
    flags: tuple[str, ...]
    tags: tuple[str, ...]
    note: str | None
    audio_path: Path | None

    @property
    def labels(self) -> tuple[str, ...]:
        return self.dataset.label_set


def audio_path(ds: Dataset, clip: Clip) -> Path | None:
    """The clip's audio file, or None without one or outside the dataset's root."""
    return dataset_file(ds.root, ds.options, clip.path) if clip.path else None


def load_detail(
    access: WorkspaceAccess, clip_id: int, run_id: int | None, strategy: str | None, user: str
) -> ClipDetail:
    with access.reader() as ws, ws.snapshot():
        clip = ws.get_clip(clip_id)
        ds = ws.get_dataset(clip.dataset_id)
        run = None
        if run_id is not None:
            candidate = ws.get_run(run_id)
            run = candidate if candidate.dataset_id == ds.id else None
        if run is None:
            runs = ws.runs(ds.id)
            run = runs[-1] if runs else None
        preds: list[ClipPrediction] = []
        samples: list[Sample] = []
        status = None
        if run is not None:
            preds = browse.clip_predictions(ws.conn, run.id, clip_id)
            samples = ws.samples(run.id, clip_id)
            status = browse.clip_run_status(ws.conn, run.id, clip_id)
            if strategy:  # the selected strategy first
                preds.sort(key=lambda p: p.strategy != strategy)
        return ClipDetail(
            clip=clip,
            dataset=ds,
            votes=tuple(ws.clip_votes(clip_id)),
            human=browse.clip_human(ws.conn, clip_id),
            run=run,
            strategy=strategy,
            predictions=tuple(preds),
            samples=tuple(samples),
            run_status=status,
            flags=tuple(ws.flags(clip_id)),
            tags=tuple(ws.tags(clip_id)),
            note=ws.get_note(clip_id, author=user),
            audio_path=audio_path(ds, clip),
        )


@dataclass(frozen=True, eq=False)
class Waveform:
    """A clip's min/max envelope for drawing, or why there is none."""

    clip_id: int
    envelope: np.ndarray | None
    duration: float = 0.0
    sample_rate: int = 0
    error: str | None = None
    warnings: tuple[str, ...] = ()


def load_waveform(path: Path | None, clip_id: int) -> Waveform:
    if path is None:
        return Waveform(clip_id, None, error="this clip has no audio file")
    # imported here: ambiscope.core.audio pulls in scipy.signal (~0.7 s at startup otherwise)
    from ambiscope.core.audio import AudioError, load_audio, waveform_envelope

    try:
        audio = load_audio(path, max_seconds=MAX_AUDIO_SECONDS)
    except (AudioError, ValueError) as exc:
        return Waveform(clip_id, None, error=str(exc).splitlines()[0])
    env = waveform_envelope(audio.samples, ENVELOPE_COLUMNS)
    return Waveform(
        clip_id, env, audio.duration_s, audio.sample_rate, warnings=tuple(audio.warnings)
    )


def export_clip_wav(source: Path | None, target: Path) -> Path:
    """Decode the clip (any format) and write it as 16-bit WAV at `target`."""
    from ambiscope.core.audio import AudioError, load_audio, write_wav

    if source is None:
        raise AudioError("this clip has no audio file")
    audio = load_audio(source)
    return write_wav(target, audio.samples, audio.sample_rate)


# -------------------------------------------------------------------------------- edits
BulkKind = Literal["bulk_flag", "bulk_tag"]
EditKind = Literal["flag", "tag", "note", "vote", "bulk_flag", "bulk_tag"]


@dataclass(frozen=True)
class Edit:
    """One audit change; `apply_edit` performs it and returns its inverse (for undo)."""

    kind: EditKind
    clip_ids: tuple[int, ...]
    name: str = ""
    on: bool = True
    text: str = ""  # note body
    votes: tuple[tuple[str, int, float], ...] = ()  # (label, rank, weight)
    annotator: str = ""  # external id of the researcher's own annotator
    description: str = ""

    @property
    def bulk(self) -> bool:
        return self.kind.startswith("bulk")


@dataclass(frozen=True)
class EditResult:
    edit: Edit
    inverse: Edit
    changed: int
    human_refreshed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _describe_flag(kind: str, name: str, on: bool, n: int = 1) -> str:
    what = "flag" if "flag" in kind else "tag"
    verb = "added" if on else "removed"
    target = f" on {n} clips" if n != 1 else ""
    return f"{what} {name!r} {verb}{target}"


def apply_edit(
    access: WorkspaceAccess, edit: Edit, user: str, include_own: bool = False
) -> EditResult:
    """Perform one edit in one transaction; the inverse restores the previous state."""
    with access.writer() as ws:
        if edit.kind in ("flag", "tag"):
            (clip_id,) = edit.clip_ids
            setter = ws.set_flag if edit.kind == "flag" else ws.set_tag
            with ws.transaction():
                was = setter(clip_id, edit.name, edit.on, author=user)
            inverse = replace(edit, on=was, description=_describe_flag(edit.kind, edit.name, was))
            return EditResult(edit, inverse, int(was != edit.on))
        if edit.kind == "note":
            (clip_id,) = edit.clip_ids
            previous = ws.set_note(clip_id, edit.text, author=user)
            inverse = replace(
                edit,
                text=previous or "",
                description="note restored" if previous else "note removed",
            )
            return EditResult(edit, inverse, 1)
        if edit.kind == "vote":
            (clip_id,) = edit.clip_ids
            clip = ws.get_clip(clip_id)
            ids = ws.ensure_annotators(clip.dataset_id, [(edit.annotator, "self")])
            ann = ids[edit.annotator]
            new = [VoteIn(clip_id, ann, label, rank, weight) for label, rank, weight in edit.votes]
            with ws.transaction():
                before = ws.replace_clip_votes(clip_id, ann, new)
            old_votes = tuple((v.label, v.rank, v.weight) for v in before)
            label = old_votes[0][0] if old_votes else None
            inverse = replace(
                edit,
                votes=old_votes,
                description=f"own vote back to {label}" if label else "own vote removed",
            )
            refreshed = False
            if include_own:
                ds = ws.get_dataset(clip.dataset_id)
                refreshed = ensure_human(ws, ds, human_options(ws, ds, True))
            return EditResult(edit, inverse, 1, human_refreshed=refreshed)
        if edit.kind in ("bulk_flag", "bulk_tag"):
            table = "flags" if edit.kind == "bulk_flag" else "tags"
            changed = ws.bulk_set(table, list(edit.clip_ids), edit.name, edit.on, author=user)
            inverse = replace(
                edit,
                on=not edit.on,
                description=_describe_flag(edit.kind, edit.name, not edit.on, len(edit.clip_ids)),
            )
            return EditResult(edit, inverse, changed)
    raise ValueError(f"unknown edit kind {edit.kind!r}")


def bulk_targets(
    access: WorkspaceAccess, query: BrowseQuery, kind: str, name: str, on: bool
) -> list[int]:
    """Clips of the filter whose flag/tag would actually change (so undo is exact)."""
    term = ("flag" if kind == "bulk_flag" else "tag") + ":" + shlex.quote(name)
    narrowed = query.with_(filter_text=f"{query.filter_text} {'-' if on else ''}{term}".strip())
    with access.reader() as ws:
        return browse.clip_ids_matching(ws.conn, narrowed)


def clip_ids_for(access: WorkspaceAccess, query: BrowseQuery) -> list[int]:
    with access.reader() as ws:
        return browse.clip_ids_matching(ws.conn, query)


def votes_summary(votes: Sequence[VoteRow]) -> dict[str, list[VoteRow]]:
    """Votes grouped by annotator kind, in a fixed display order."""
    order = ("human", "actor", "review", "synthetic", "self")
    grouped: dict[str, list[VoteRow]] = {k: [] for k in order}
    for v in votes:
        grouped.setdefault(v.kind, []).append(v)
    return {k: v for k, v in grouped.items() if v}


def vote_counts(votes: Sequence[VoteRow]) -> list[tuple[str, float]]:
    """Primary votes per label, summed by weight, most first (ties by name).

    A corpus that stores an anonymous crowd as one weighted row per label (CREMA-D: one
    `crowd-voice` annotator, `angry` weighing 6) and one that stores a row per rater both
    come out as `angry 6 · disgust 2 · neutral 1`; secondary labels (rank > 0) do not count.
    """
    totals: dict[str, float] = {}
    for v in votes:
        if v.rank == 0:
            totals[v.label] = totals.get(v.label, 0.0) + v.weight
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))


# ------------------------------------------------------------------------------ metrics
def evaluate_rows(
    access: WorkspaceAccess,
    include_own: bool,
    bootstrap: int = 0,
    should_stop: Any = None,
    seed: int = 0,
    reference: str = "human",
) -> list[dict[str, Any]]:
    """Metric rows for every dataset x run x strategy x ambiguity level.

    `reference` is what models are compared with: the human votes, the synthetic raters'
    votes or both pooled (read-only; ambiguity levels stay the human ones).

    ambiscope.core.evaluation.evaluate_human against the human reference the TUI shows (own
    votes pooled in or not): evaluate() uses the dataset's default reference and would rebuild
    the cache without them. The cache is brought up to date with one short write,
    then everything else is read-only, so a long bootstrap never holds the write lock.
    """
    from ambiscope.core.evaluation import evaluate_human
    from ambiscope.core.reference.human import read_human

    refresh_human_cache(access, include_own)
    out: list[dict[str, Any]] = []
    with access.reader() as ws:
        for ds in ws.datasets():
            runs = ws.runs(ds.id)
            if not runs:
                continue
            human = read_human(ws, ds)
            if reference != "human":
                from ambiscope.core.reference.pooled import load_reference

                human = load_reference(
                    ws,
                    ds,
                    reference,
                    human=human,
                    human_kinds=human_options(ws, ds, include_own).kinds,
                )
            out += evaluate_human(
                ws, human, runs, bootstrap=bootstrap, seed=seed, should_stop=should_stop
            )
            if should_stop is not None and should_stop():
                return out
    return out
