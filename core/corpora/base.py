"""What every corpus importer shares: parsed rows, label mapping, the one-transaction write.

An importer (one module per format) only *reads* files into a `ParsedCorpus`: clips,
raw votes with the corpus's own label spelling, and the bad lines it met. `write_corpus`
then maps labels to the canonical taxonomy, reports unknown ones with their counts, and
writes dataset, clips, annotators and votes in a single transaction, so a failed import
leaves the workspace exactly as it was and a repeated import adds nothing.
"""

from __future__ import annotations

import gc
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ambiscope.core.conventions import Conventions
from ambiscope.core.labels import (
    CORPUS_LABEL_SETS,
    LabelMapper,
    canonical_order,
)
from ambiscope.core.paths import ALLOW_OUTSIDE_ROOT, RootGuard, allows_outside_root
from ambiscope.db import ClipIn, Dataset, Workspace, WorkspaceError

UnknownPolicy = Literal["error", "other", "drop"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of acyclic rows are built.

    Every full collection walks all live containers; with ~1.5M votes that doubled the
    time of reading and writing a corpus. Nothing built during an import forms cycles,
    so reference counting frees it all.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ImportFormatError(ValueError):
    """Malformed input; `str()` is one line naming file, line and field."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        line: int | None,
        message: str,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        what = f"{field}: " if field else ""
        super().__init__(f"{where}: {what}{message}")


@dataclass(slots=True)
class RawVote:
    """One rater's label for one clip, spelled as the corpus spells it.

    Not frozen: frozen slotted dataclasses construct ~5x slower, and MSP-Podcast builds
    1.5 million of these.
    """

    clip_key: str
    annotator: str
    label: str
    rank: int = 0
    weight: float = 1.0
    kind: str = "human"  # human / actor / synthetic / self
    source: str | None = None  # "file:line" for error messages
    pool: bool = False  # an anonymous crowd count (CREMA-D, count manifests), not one rater


@dataclass(frozen=True)
class ClipSource:
    """Where one parsed clip came from, so its votes can land on a clip that already exists
    (a Label Studio task exported by ambiscope names its dataset and clip id)."""

    where: str  # "task id 7 (index 6)", for messages
    dataset: str | None = None  # the workspace dataset the input names
    clip_id: int | None = None  # that dataset's clip id
    key: str | None = None  # the clip key the input states, checked against the clip's
    names: tuple[str, ...] = ()  # keys to match by without ids: stated key, audio file stem


@dataclass
class ParsedCorpus:
    """Everything an importer read, before label mapping and writing."""

    format: str
    corpus: str | None  # key into ambiscope.core.labels.CORPUS_CODES, None for generic formats
    root: str | None
    clips: list[ClipIn] = field(default_factory=list)
    votes: list[RawVote] = field(default_factory=list)
    bad: list[ImportFormatError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    # model predictions found in the input (e.g. Label Studio), kept for a later run import
    predictions: list[dict[str, Any]] = field(default_factory=list)
    # labels the input declares in its own spelling (a Label Studio labeling config's
    # choices): part of the label set even when nobody chose them
    declared_labels: list[str] = field(default_factory=list)
    sources: dict[str, ClipSource] = field(default_factory=dict)  # clip key -> origin

    def fail(self, error: ImportFormatError, *, skip_bad: bool) -> None:
        """Record a bad line (with --skip-bad) or raise it at once."""
        if not skip_bad:
            raise error
        self.bad.append(error)


@dataclass(frozen=True)
class ImportOptions:
    """User options shared by every format (`ambiscope import FORMAT PATH ...`)."""

    name: str | None = None
    audio_root: str | None = None
    labels: tuple[str, ...] | None = None  # restrict the label set (votes outside dropped)
    merge_excited: bool = False
    label_map: Mapping[str, str] = field(default_factory=dict)  # --map WORD=label
    unknown: UnknownPolicy = "error"
    skip_bad: bool = False
    replace: bool = False
    allow_outside_root: bool = False  # audio paths may leave the dataset root (stored)
    extra: Mapping[str, Any] = field(default_factory=dict)  # format-specific (e.g. modality)
    # label_projection (when --labels is not given) and secondary_only; stored with the data
    conventions: Conventions = field(default_factory=Conventions)


@dataclass(frozen=True)
class SecondaryOnly:
    """Clips whose only in-set human votes are secondary (rank >= 1) under a restricted
    label set, and what the `secondary_only` convention did with them."""

    policy: str  # drop / keep
    clips: int

    def describe(self) -> str:
        done = "dropped" if self.policy == "drop" else "kept with those votes"
        return (
            f"clips whose only in-set votes are secondary: {self.clips} {done} "
            f"(secondary_only={self.policy})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "clips": self.clips}


@dataclass
class ImportResult:
    dataset: Dataset
    clips_added: int
    clips_total: int
    votes_written: int  # new vote rows
    votes_total: float  # the dataset's votes afterwards, counted by weight
    votes_dropped: Counter[str]
    unknown_labels: Counter[str]
    bad_lines: int
    bad_examples: list[str]
    warnings: list[str]
    conventions: str = ""  # the conventions' label (`Conventions.label()`)
    secondary_only: SecondaryOnly | None = None  # under a label restriction only

    def summary(self) -> str:
        named = f"; conventions: {self.conventions}" if self.conventions else ""
        lines = [
            f"imported {self.dataset.name} ({self.dataset.format}): "
            f"{self.clips_total} clips ({self.clips_added} new), "
            f"{self.votes_total:,.0f} votes ({self.votes_written} new vote rows), "
            f"labels {', '.join(self.dataset.label_set)}{named}"
        ]
        if self.secondary_only and self.secondary_only.clips:
            lines.append(f"  {self.secondary_only.describe()}")
        if self.votes_dropped:
            dropped = ", ".join(f"{k} {v}" for k, v in self.votes_dropped.most_common())
            lines.append(f"  dropped votes: {dropped}")
        if self.bad_lines:
            lines.append(f"  skipped {self.bad_lines} bad lines, e.g.:")
            lines += [f"    {ex}" for ex in self.bad_examples]
        lines += [f"  warning: {w}" for w in self.warnings[:10]]
        if len(self.warnings) > 10:
            lines.append(f"  ... and {len(self.warnings) - 10} more warnings")
        return "\n".join(lines)


def resolve_audio(root: Path, relative: str) -> str | None:
    """`relative` if the file exists under root, else None (clips without audio stay listed)."""
    return relative if (root / relative).is_file() else None


def check_audio_path(
    guard: RootGuard,
    full: Path,
    shown: str,
    *,
    source: str | os.PathLike[str],
    line: int | None,
    field: str,
    context: str = "",
) -> None:
    """Refuse an audio path that resolves outside the dataset root (see ambiscope.core.paths).

    Every importer goes through here: manifest and Label Studio call it per row, with the
    line and field, before probing the file; `write_corpus` calls it for every clip of
    every format, so a symlink out of a corpus folder is refused too.
    """
    if not guard.allowed(full):
        raise ImportFormatError(source, line, context + guard.refusal(shown), field=field)


def _check_clip_paths(parsed: ParsedCorpus, options: ImportOptions) -> None:
    guard = RootGuard(parsed.root, allow_outside=options.allow_outside_root)
    if guard.allow_outside:
        return
    for clip in parsed.clips:
        if clip.path:
            full = guard.full(clip.path)
            check_audio_path(
                guard,
                full,
                clip.path,
                source=full,
                line=None,
                field="path",
                context=f"clip {clip.key!r}: ",
            )


def _label_set(
    corpus: str | None, mapped: Iterable[str], options: ImportOptions
) -> tuple[str, ...]:
    if options.labels:
        return canonical_order(options.labels)
    base = CORPUS_LABEL_SETS.get(corpus or "", ())
    labels = set(base) | set(mapped)
    if options.merge_excited and "happy" in labels:
        labels.discard("excited")
    return canonical_order(labels)


def canonical_label(
    mapper: LabelMapper, raw: str, options: ImportOptions, dropped: Counter[str]
) -> str | None:
    """`raw`'s canonical label under the user's options (`--unknown other`,
    `--merge-excited`), or None for a vote that is dropped (counted in `dropped`: a
    no-agreement code, or an unknown word under `--unknown drop|error`)."""
    label = mapper.map(raw)
    if label is None:
        if not mapper.is_unknown(raw):
            dropped["no-agreement code"] += 1
            return None
        if options.unknown != "other":
            dropped["unknown label"] += 1
            return None
        return "other"
    if options.merge_excited and label == "excited":
        return "happy"
    return label


def check_unknown(mapper: LabelMapper, options: ImportOptions, where: str) -> None:
    """Under `--unknown error`, the words nobody mapped are one error listing them."""
    if mapper.unknown and options.unknown == "error":
        raise ImportFormatError(
            where,
            None,
            f"unknown labels {mapper.unknown_summary()}; map them with --map WORD=label "
            "or choose --unknown other|drop",
        )


def map_votes(
    parsed: ParsedCorpus, options: ImportOptions
) -> tuple[list[tuple[RawVote, str]], Counter[str], Counter[str], tuple[str, ...]]:
    """Map raw labels to canonical ones under the user's options.

    Returns (kept votes with their canonical label, dropped counts by reason, unknown
    label counts, label set). Raises ImportFormatError listing unknown labels when the
    policy is "error".
    """
    mapper = LabelMapper(corpus=parsed.corpus, extra=dict(options.label_map))
    dropped: Counter[str] = Counter()
    labels = [canonical_label(mapper, v.label, options, dropped) for v in parsed.votes]
    # the input's declared labels (a labeling config) are mapped like votes, never counted
    declared = [
        label
        for word in parsed.declared_labels
        if (label := canonical_label(mapper, word, options, Counter())) is not None
    ]
    check_unknown(mapper, options, parsed.root or parsed.format)
    resolved = [(v, lbl) for v, lbl in zip(parsed.votes, labels, strict=True) if lbl is not None]
    if not resolved and not declared and not options.labels:
        raise ImportFormatError(
            parsed.root or parsed.format,
            None,
            "no usable votes found, so the label set is unknown; pass --labels to import "
            "the clips without votes",
        )
    label_set = _label_set(parsed.corpus, [*(lbl for _, lbl in resolved), *declared], options)
    allowed = set(label_set)
    kept = []
    for vote, label in resolved:
        if label in allowed:
            kept.append((vote, label))
        else:
            dropped[f"outside label set ({label})"] += 1
    return fold_votes(kept), dropped, mapper.unknown, label_set


def fold_votes(votes: list[tuple[RawVote, str]]) -> list[tuple[RawVote, str]]:
    """One vote per (clip, annotator, canonical label), as the workspace stores them.

    Mapping can make two votes collide (`excited` folded into `happy`, two synonyms).
    Anonymous pool counts add up (happy=2 + excited=1 -> 3). One rater's colliding votes
    stay one vote: the lowest rank (their primary choice) wins, so "Happiness; Excited"
    under --merge-excited is one primary happy vote, never a double-counted one.
    """
    at: dict[tuple[str, str, str], int] = {}
    out: list[tuple[RawVote, str]] = []
    for vote, label in votes:
        key = (vote.clip_key, vote.annotator, label)
        i = at.get(key)
        if i is None:
            at[key] = len(out)
            out.append((vote, label))
            continue
        held = out[i][0]
        if vote.pool and held.pool and vote.rank == held.rank:
            out[i] = (replace(held, weight=held.weight + vote.weight), label)
        elif vote.rank < held.rank:
            out[i] = (vote, label)
    return out


SECONDARY_ONLY_KINDS: tuple[str, ...] = ("human",)
"""Annotator kinds whose votes make the human reference, so decide "secondary-only"."""


def secondary_only_clips(votes: Iterable[tuple[RawVote, str]]) -> set[str]:
    """Keys of clips whose kept human votes are all secondary (every rank >= 1).

    Under a restricted label set an IEMOCAP clip whose evaluators all wrote
    "Frustration; Anger" keeps only rank-1 `angry` votes: counted as primaries only, it
    has no vote at all; counted as anything else, it is one-hot `angry` from answers
    nobody gave first. Clips with no kept human vote are not in this set (they simply have
    no reference, as before).
    """
    lowest: dict[str, int] = {}
    for vote, _ in votes:
        if vote.kind in SECONDARY_ONLY_KINDS:
            held = lowest.get(vote.clip_key)
            if held is None or vote.rank < held:
                lowest[vote.clip_key] = vote.rank
    return {key for key, rank in lowest.items() if rank > 0}


def _apply_secondary_only(
    parsed: ParsedCorpus,
    options: ImportOptions,
    kept: list[tuple[RawVote, str]],
    dropped: Counter[str],
) -> tuple[list[ClipIn], list[tuple[RawVote, str]], SecondaryOnly | None]:
    """(clips, votes) after the `secondary_only` convention; only a restricted label set
    (a projection or --labels) can leave a clip with secondary votes alone."""
    if not options.labels:
        return parsed.clips, kept, None
    keys = secondary_only_clips(kept)
    policy = options.conventions.secondary_only
    if not keys or policy == "keep":
        return parsed.clips, kept, SecondaryOnly(policy, len(keys))
    clips = [c for c in parsed.clips if c.key not in keys]
    votes = [(v, label) for v, label in kept if v.clip_key not in keys]
    dropped["clip with only secondary in-set votes"] += len(kept) - len(votes)
    return clips, votes, SecondaryOnly(policy, len(keys))


def write_corpus(
    ws: Workspace, parsed: ParsedCorpus, options: ImportOptions, *, default_name: str
) -> ImportResult:
    """Write a parsed corpus into the workspace as one transaction (see module docstring)."""
    _check_clip_paths(parsed, options)
    kept, dropped, unknown, label_set = map_votes(parsed, options)
    clips, kept, secondary_only = _apply_secondary_only(parsed, options, kept, dropped)
    name = options.name or default_name
    clip_keys = {c.key for c in clips}
    orphans = sorted({v.clip_key for v, _ in kept} - clip_keys)
    if orphans:
        raise ImportFormatError(
            parsed.root or parsed.format,
            None,
            f"{len(orphans)} votes refer to clips that were not listed (e.g. {orphans[0]!r})",
        )
    stored_options = {
        "import": {
            "labels": list(options.labels) if options.labels else None,
            "merge_excited": options.merge_excited,
            "label_map": dict(options.label_map),
            "unknown": options.unknown,
            "skip_bad": options.skip_bad,
            ALLOW_OUTSIDE_ROOT: options.allow_outside_root,
            **{k: v for k, v in options.extra.items()},
            **({"secondary_only": secondary_only.to_dict()} if secondary_only else {}),
        },
        **parsed.options,
        "conventions": options.conventions.to_dict(),
    }
    with ws.transaction():
        existing = ws.find_dataset(name)
        if existing is not None and options.replace:
            ws.delete_dataset(existing.id)
            existing = None
        if existing is None:
            ds = ws.add_dataset(
                name, parsed.format, label_set, root=parsed.root, options=stored_options
            )
        else:
            ds = existing
            _check_compatible(ds, parsed, label_set)
            if options.allow_outside_root and not allows_outside_root(ds.options):
                raise WorkspaceError(
                    f"dataset {ds.name!r} was imported without --allow-outside-root; "
                    "re-import it with --replace to allow audio outside its root"
                )
        added = ws.add_clips(ds.id, clips)
        ids = ws.clip_ids(ds.id)
        annotators = ws.ensure_annotators(ds.id, sorted({(v.annotator, v.kind) for v, _ in kept}))
        written = ws.add_vote_rows(
            ds.id,
            (
                (ids[v.clip_key], annotators[v.annotator], label, v.rank, v.weight, v.label)
                for v, label in kept
            ),
        )
    ds = ws.get_dataset(ds.id)
    return ImportResult(
        dataset=ds,
        clips_added=added,
        clips_total=ws.count_clips(ds.id),
        votes_written=written,
        votes_total=ws.vote_weight(ds.id),
        votes_dropped=dropped,
        unknown_labels=unknown,
        bad_lines=len(parsed.bad),
        bad_examples=[str(e) for e in parsed.bad[:5]],
        warnings=parsed.warnings,
        conventions=options.conventions.label(),
        secondary_only=secondary_only,
    )


def _check_compatible(ds: Dataset, parsed: ParsedCorpus, label_set: Sequence[str]) -> None:
    """Refuse to merge a re-import that would mix different readings of a corpus.

    `parsed.options["compat"]` is the importer's statement of what makes two imports the
    same data (e.g. the CREMA-D rating modality); it must match the stored one.
    """
    stored, incoming = ds.options.get("compat"), parsed.options.get("compat")
    if stored != incoming:
        raise WorkspaceError(
            f"dataset {ds.name!r} was imported with {stored}, this import is {incoming}; "
            "choose another --name or use --replace"
        )
    if ds.format != parsed.format:
        raise WorkspaceError(
            f"dataset {ds.name!r} exists with format {ds.format!r}, not {parsed.format!r}; "
            "choose another --name or use --replace"
        )
    missing = set(label_set) - set(ds.label_set)
    if missing:
        raise WorkspaceError(
            f"dataset {ds.name!r} exists without labels {sorted(missing)}; re-import it "
            "with --replace"
        )
