"""Label Studio re-annotation merged back onto the clips it was exported from.

`ambiscope export subset --format label-studio` writes tasks whose `data` names the
workspace dataset and clip (`dataset`, `clip_id`, `key`). Imported into the same
workspace, the annotated export is new votes on THOSE clips, not a new dataset: a
researcher sends ambiguous clips out, colleagues re-annotate them, and their votes appear
next to the original ones.

- **Which tasks are ours.** A task matches when `data.dataset` names a dataset here,
  `data.clip_id` is a clip of it, and `data.key` (when given) is that clip's key (or
  `dataset/key`, as an export spanning several datasets writes it). A clip id from
  another workspace never lands on an unrelated clip: the dataset or the key differs.
  - every task matches: its votes are merged;
  - none matches: the export is not ours and becomes a new dataset, as any export;
  - some match, some do not: refused with one line naming the count and an example.
    A researcher who mixed re-annotated clips with new audio has to say what the others
    are: `--skip-bad` merges the matching tasks and counts the rest, `--into DATASET`
    matches the rest by key or file name, `--name NAME` imports everything as a new dataset.
  `--name` or `--replace` always mean a new dataset.
- **`--into DATASET`**, for exports that lost the ids (tasks re-created by hand, a JSON-MIN
  export without those columns): a task matches a clip of DATASET by its ids when they
  point there, else by `data.key`/`data.clip`, else by the audio file name without its
  extension. An unmatched task is a one-line error naming it (`--skip-bad`: counted).
- **Votes.** Each annotator (`ls-<user id>`, of kind `human` or the `--kind` given) has
  their last answer per task, labels mapped as at import (`--map`, `--merge-excited`,
  `--unknown`). A label the dataset's label set lacks refuses the whole import: those
  votes would be silently dropped or change the label set under the stored runs. An answer
  equal to the annotator's stored votes on that clip changes nothing, so a re-import is a
  no-op; a different answer REPLACES their votes on that clip (they changed their mind in
  Label Studio). Cancelled or skipped annotations and answers choosing nothing change
  nothing. No clip is ever created; all datasets are written in one transaction.
- **Summary.** Per dataset: `merged N annotations from K annotators onto M clips of dataset
  D (V new vote rows, R replaced)`: N answers (annotator x task), V vote rows of answers
  that were new, R earlier answers replaced by a different one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from ambiscope.core.corpora.base import (
    ClipSource,
    ImportFormatError,
    ImportOptions,
    ParsedCorpus,
    RawVote,
    canonical_label,
    check_unknown,
    fold_votes,
)
from ambiscope.core.labels import LabelMapper
from ambiscope.db import Dataset, VoteIn, Workspace, WorkspaceError

Answer = frozenset[tuple[str, int, float]]  # (label, rank, weight) of one annotator on one clip


@dataclass(frozen=True)
class _Target:
    dataset: Dataset
    clip_id: int


@dataclass
class DatasetMerge:
    """What a merge did to one dataset."""

    dataset: Dataset
    annotations: int = 0  # answers (annotator x task) with at least one vote
    annotators: int = 0
    clips: int = 0
    new_rows: int = 0  # vote rows of answers the dataset did not have
    replaced: int = 0  # stored answers replaced by a different one

    def describe(self) -> str:
        return (
            f"merged {self.annotations} annotations from {self.annotators} annotators onto "
            f"{self.clips} clips of dataset {self.dataset.name} ({self.new_rows} new vote "
            f"rows, {self.replaced} replaced)"
        )


@dataclass
class MergeResult:
    """The outcome of merging an export onto existing clips (`ImportResult`'s sibling)."""

    merges: list[DatasetMerge]
    counts: str  # cancelled / empty / unannotated
    dropped: Counter[str] = field(default_factory=Counter)
    bad: list[ImportFormatError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def datasets(self) -> list[Dataset]:
        """The datasets that received votes (their human reference needs a refresh)."""
        return [m.dataset for m in self.merges]

    def summary(self) -> str:
        lines = [m.describe() for m in self.merges] or ["merged nothing: no task matched"]
        lines.append(f"  {self.counts}")
        if self.dropped:
            dropped = ", ".join(f"{k} {v}" for k, v in self.dropped.most_common())
            lines.append(f"  dropped votes: {dropped}")
        if self.bad:
            lines.append(f"  skipped {len(self.bad)} bad tasks, e.g.:")
            lines += [f"    {e}" for e in self.bad[:5]]
        lines += [f"  warning: {n}" for n in self.notes]
        return "\n".join(lines)


def merge_tasks(ws: Workspace, parsed: ParsedCorpus, options: ImportOptions) -> MergeResult | None:
    """Write the export's votes onto the clips its tasks came from, or return None when
    the export is not ours (see the module docstring)."""
    into = options.extra.get("into")
    if into and (options.name or options.replace):
        raise ValueError("--into merges onto an existing dataset: drop --name/--replace")
    if not into and (options.name or options.replace):
        return None
    if into:
        targets = _match_into(ws, parsed, str(into), options)
    else:
        targets, foreign = _match_ids(ws, parsed)
        if not targets:
            return None
        _mixed(parsed, targets, foreign, options)
    votes, dropped = _mapped(parsed, targets, options)
    datasets = {t.dataset.id: t.dataset for t in targets.values()}
    with ws.transaction():
        merges = [
            _merge_dataset(ws, datasets[ds_id], answers)
            for ds_id, answers in _answers(votes, targets).items()
        ]
    for merge in merges:
        merge.dataset = ws.get_dataset(merge.dataset.id)
    return MergeResult(merges, _counts(parsed), dropped, parsed.bad, _notes(parsed))


# ------------------------------------------------------------------------ matching
def _file(parsed: ParsedCorpus) -> str:
    return str(parsed.options.get("label_studio", {}).get("file", parsed.format))


def _by_ids(ws: Workspace, src: ClipSource, cache: dict[str, Dataset | None]) -> _Target | None:
    """The clip the task's ambiscope ids name here, when dataset, id and key all agree."""
    if src.dataset is None or src.clip_id is None:
        return None
    if src.dataset not in cache:
        cache[src.dataset] = ws.find_dataset(src.dataset)
    ds = cache[src.dataset]
    if ds is None:
        return None
    try:
        clip = ws.get_clip(src.clip_id)
    except WorkspaceError:
        return None
    if clip.dataset_id != ds.id or src.key not in (None, clip.key, f"{ds.name}/{clip.key}"):
        return None
    return _Target(ds, clip.id)


def _match_ids(ws: Workspace, parsed: ParsedCorpus) -> tuple[dict[str, _Target], list[str]]:
    """(clip key -> target for the tasks from this workspace, keys of the others)."""
    cache: dict[str, Dataset | None] = {}
    targets: dict[str, _Target] = {}
    foreign: list[str] = []
    for key, src in parsed.sources.items():
        target = _by_ids(ws, src, cache)
        if target is None:
            foreign.append(key)
        else:
            targets[key] = target
    return targets, foreign


def _mixed(
    parsed: ParsedCorpus, targets: dict[str, _Target], foreign: list[str], options: ImportOptions
) -> None:
    """Refuse an export mixing tasks from here with others, or (--skip-bad) count them."""
    if not foreign:
        return
    path = _file(parsed)
    if options.skip_bad:
        for key in foreign:
            src = parsed.sources[key]
            parsed.bad.append(
                ImportFormatError(
                    path, None, f"{src.where}: not a clip of this workspace", field="data.clip_id"
                )
            )
        return
    src = parsed.sources[foreign[0]]
    names = ", ".join(sorted({t.dataset.name for t in targets.values()}))
    raise ImportFormatError(
        path,
        None,
        f"{len(foreign)} of {len(parsed.sources)} tasks are not clips of this workspace "
        f"(e.g. {src.where}: {_claim(src)}) while {len(targets)} are clips of {names}; "
        "match the others by key or "
        "file name with --into DATASET, skip them with --skip-bad, or import the whole "
        "export as a new dataset with --name NAME",
        field="data.clip_id",
    )


def _claim(src: ClipSource) -> str:
    """What a task says it is, for messages."""
    if src.dataset is None or src.clip_id is None:
        return "no data.dataset and data.clip_id"
    return f"data.dataset {src.dataset!r}, data.clip_id {src.clip_id}, data.key {src.key!r}"


def _match_into(
    ws: Workspace, parsed: ParsedCorpus, into: str, options: ImportOptions
) -> dict[str, _Target]:
    """Tasks onto clips of dataset `into`: by ids pointing there, else by key or file stem."""
    ds = ws.find_dataset(into)
    if ds is None:
        have = ", ".join(d.name for d in ws.datasets()) or "none"
        raise ValueError(f"--into {into!r}: no such dataset (datasets: {have})")
    ids = ws.clip_ids(ds.id)
    cache: dict[str, Dataset | None] = {}
    targets: dict[str, _Target] = {}
    taken: dict[int, str] = {}
    for key, src in parsed.sources.items():
        by_ids = _by_ids(ws, src, cache)
        clip_id = by_ids.clip_id if by_ids and by_ids.dataset.id == ds.id else None
        names = [n.removeprefix(f"{ds.name}/") for n in src.names]
        clip_id = clip_id or next((ids[n] for n in names if n in ids), None)
        if clip_id is not None and clip_id not in taken:
            taken[clip_id] = src.where
            targets[key] = _Target(ds, clip_id)
            continue
        if clip_id is None:
            tried = " or ".join(repr(n) for n in names) or "nothing (no key, no audio file name)"
            problem = f"no clip of dataset {ds.name!r} matches {tried}"
        else:
            problem = f"matches the same clip as {taken[clip_id]}"
        error = ImportFormatError(_file(parsed), None, f"{src.where}: {problem}", field="data.key")
        parsed.fail(error, skip_bad=options.skip_bad)
    return targets


# -------------------------------------------------------------------------- labels
def _mapped(
    parsed: ParsedCorpus, targets: dict[str, _Target], options: ImportOptions
) -> tuple[list[tuple[RawVote, str]], Counter[str]]:
    """Votes of matched tasks with their canonical label; refuses labels a dataset lacks."""
    mapper = LabelMapper(corpus=parsed.corpus, extra=dict(options.label_map))
    dropped: Counter[str] = Counter()
    kept: list[tuple[RawVote, str]] = []
    missing: dict[tuple[str, str], list[RawVote]] = defaultdict(list)
    for vote in parsed.votes:
        target = targets.get(vote.clip_key)
        if target is None:
            continue
        label = canonical_label(mapper, vote.label, options, dropped)
        if label is None:
            continue
        if label in target.dataset.label_set:
            kept.append((vote, label))
        else:
            missing[(target.dataset.name, label)].append(vote)
    path = _file(parsed)
    check_unknown(mapper, options, path)
    if missing:
        raise ImportFormatError(path, None, _incompatible(parsed, targets, missing))
    return fold_votes(kept), dropped


def _incompatible(
    parsed: ParsedCorpus,
    targets: dict[str, _Target],
    missing: dict[tuple[str, str], list[RawVote]],
) -> str:
    (name, _), votes = next(iter(missing.items()))
    labels = ", ".join(
        f"{lbl} ({len(v)} vote{'s' * (len(v) != 1)})"
        for (ds, lbl), v in missing.items()
        if ds == name
    )
    first = votes[0]
    label_set = targets[first.clip_key].dataset.label_set
    return (
        f"dataset {name!r} ({', '.join(label_set)}) has no label {labels}, e.g. "
        f"{parsed.sources[first.clip_key].where}: {first.annotator} chose {first.label!r}; "
        "map the word with --map WORD=label or import the export as a new dataset with "
        "--name NAME"
    )


# ------------------------------------------------------------------------- writing
def _answers(
    votes: list[tuple[RawVote, str]], targets: dict[str, _Target]
) -> dict[int, dict[tuple[int, str, str], list[tuple[RawVote, str]]]]:
    """dataset id -> (clip id, annotator, kind) -> that annotator's votes on that clip."""
    out: dict[int, dict[tuple[int, str, str], list[tuple[RawVote, str]]]] = {}
    for vote, label in votes:
        target = targets[vote.clip_key]
        per_ds = out.setdefault(target.dataset.id, {})
        per_ds.setdefault((target.clip_id, vote.annotator, vote.kind), []).append((vote, label))
    return out


def _merge_dataset(
    ws: Workspace,
    ds: Dataset,
    answers: dict[tuple[int, str, str], list[tuple[RawVote, str]]],
) -> DatasetMerge:
    """Add new answers, replace changed ones, leave equal ones alone (inside the caller's
    transaction)."""
    annotator_ids = ws.ensure_annotators(ds.id, sorted({(a, k) for _, a, k in answers}))
    stored = _stored(ws, {clip_id for clip_id, _, _ in answers})
    merge = DatasetMerge(
        ds,
        annotations=len(answers),
        annotators=len({a for _, a, _ in answers}),
        clips=len({c for c, _, _ in answers}),
    )
    new_rows: list[tuple[Any, ...]] = []
    for (clip_id, annotator, _), votes in answers.items():
        ann_id = annotator_ids[annotator]
        answer: Answer = frozenset((label, v.rank, v.weight) for v, label in votes)
        before = stored.get((clip_id, ann_id))
        if before == answer:
            continue
        rows = [(clip_id, ann_id, label, v.rank, v.weight, v.label) for v, label in votes]
        if before is None:
            new_rows += rows
        else:
            ws.replace_clip_votes(clip_id, ann_id, [VoteIn(*row) for row in rows])
            merge.replaced += 1
    if new_rows:
        merge.new_rows = ws.add_vote_rows(ds.id, new_rows)
    return merge


def _stored(ws: Workspace, clip_ids: set[int]) -> dict[tuple[int, int], Answer]:
    """(clip id, annotator id) -> the votes stored for them."""
    by_pair: dict[tuple[int, int], set[tuple[str, int, float]]] = defaultdict(set)
    for clip_id in clip_ids:
        for v in ws.clip_votes(clip_id):
            by_pair[(clip_id, v.annotator_id)].add((v.label, v.rank, v.weight))
    return {pair: frozenset(answer) for pair, answer in by_pair.items()}


# ------------------------------------------------------------------------- summary
def _counts(parsed: ParsedCorpus) -> str:
    info = parsed.options.get("label_studio", {})
    return (
        f"{info.get('cancelled', 0)} cancelled or skipped annotations, "
        f"{info.get('empty', 0)} annotations choosing nothing, "
        f"{info.get('unannotated', 0)} tasks nobody annotated"
    )


def _notes(parsed: ParsedCorpus) -> list[str]:
    """The reader's findings that matter for a merge (audio and run hints do not)."""
    info = parsed.options.get("label_studio", {})
    notes = []
    if info.get("prediction_ids"):
        notes.append(
            f"{info['prediction_ids']} predictions are exported as ids only and were not read"
        )
    if info.get("predictions"):
        notes.append(
            f"{info['predictions']} model predictions not merged (votes only; the runs stay "
            "as stored)"
        )
    if info.get("export") == "json-min":
        notes.append("JSON-MIN export: it lists no cancelled annotations or unannotated tasks")
    return notes
