"""Generic manifest importer: any corpus as a CSV/TSV/JSONL table of votes or vote counts.

### Manifest format (`ambiscope import manifest FILE`)

A UTF-8 table: `.csv` (comma), `.tsv` (tab) with a header row, or `.jsonl` /
`.json-lines` (one JSON object per line; blank lines ignored). Column names are
case-insensitive. Two shapes, told apart by the columns:

**(a) one row per vote** — has `annotator` and `label` columns:

- `clip` (required; aliases `clip_id`, `key`): clip id, unique within the dataset.
- `path` (aliases `file_name`, `filepath`, `audio`): the audio file; repeat it on every
  row of the clip or give it on one row only.
- `annotator` (required): rater id.
- `label` (required): a canonical label (`neutral happy sad angry fear disgust surprise
  contempt frustrated excited other`) or a synonym (`Happiness`, `anger`...); other words
  need `--map WORD=label`.
- `weight`: vote weight, a number >= 0 (default 1).
- `rank`: 0 = primary label (default); 1, 2... = the same rater's secondary labels.
- `kind`: `human` (default), `synthetic`, `self` or `actor`.

A row with empty `annotator` and `label` lists a clip without a vote. The same
(clip, annotator, label) twice is an error; labels that only meet under
`--merge-excited` keep the rater's lowest rank.

**(b) one row per clip with vote counts** — no `annotator`/`label` columns; every column
named by a canonical label or synonym (e.g. `neutral,happy,sad,angry`, or a word mapped
with `--map`) holds that label's count (a number >= 0, empty = 0). Counts become weighted
votes of one anonymous pool annotator, `crowd`, so distributions are exact
(`--merge-excited` adds the excited count to happy). In JSONL a
`counts` object (`{"happy": 3, "sad": 1}`) may replace the label columns.

Both shapes accept the clip columns `split`, `speaker`, `gender` (`M`/`F` for m, male,
f, female; other text kept), `transcript` and `intended_label` (a label, e.g. the acted
emotion). Any other column is stored in the clip's `meta` (in shape (a) only when all
rows of the clip agree on it). Non-empty clip columns must agree across a clip's rows.

Relative paths are resolved against `--audio-root` if given, else the manifest's folder
(the dataset root); absolute paths are kept. A path that resolves outside the root
(absolute elsewhere, climbing out with `../`, or a symlink pointing out) is refused unless
you pass `--allow-outside-root`. A path whose file does not exist (or a URL) is imported as no
audio, its text kept in `meta.source_path`. Errors name `file:line: column: problem`;
`--skip-bad` skips bad rows and reports them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ambiscope.core.audio import AudioError, audio_info
from ambiscope.core.corpora import corpus_format
from ambiscope.core.corpora.base import (
    ImportFormatError,
    ImportOptions,
    ParsedCorpus,
    RawVote,
    check_audio_path,
)
from ambiscope.core.corpora.reading import json_loads, open_csv, text_lines
from ambiscope.core.labels import LabelError, to_canonical
from ambiscope.core.paths import RootGuard
from ambiscope.core.text import one_line
from ambiscope.db import ClipIn
from ambiscope.db.models import ANNOTATOR_KINDS

FORMAT = "manifest"
POOL_ANNOTATOR = "crowd"

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
JSONL_SUFFIXES = {".jsonl", ".json-lines", ".jsonlines", ".ndjson"}

# role -> accepted column names (lower case), in priority order
ALIASES: dict[str, tuple[str, ...]] = {
    "clip": ("clip", "clip_id", "key"),
    "path": ("path", "file_name", "filepath", "audio"),
    "annotator": ("annotator",),
    "label": ("label",),
    "weight": ("weight",),
    "rank": ("rank",),
    "kind": ("kind",),
    "split": ("split",),
    "speaker": ("speaker",),
    "gender": ("gender",),
    "transcript": ("transcript",),
    "intended_label": ("intended_label",),
    "counts": ("counts",),
}
CLIP_FIELDS: tuple[str, ...] = (
    "path",
    "split",
    "speaker",
    "gender",
    "transcript",
    "intended_label",
)
GENDERS = {"m": "M", "male": "M", "f": "F", "female": "F"}


def default_name(path: Path) -> str:
    """A manifest is named after its file (`votes.csv` -> `votes`)."""
    return path.stem


@corpus_format(
    FORMAT,
    default_name=default_name,
    summary="any corpus as a CSV/TSV/JSONL table of votes or vote counts",
)
def read(path: Path, options: ImportOptions) -> ParsedCorpus:
    """Read a manifest of either shape (see the module docstring)."""
    if path.is_dir():
        raise ImportFormatError(path, None, "is a folder; pass the manifest file")
    table = _load(path, options.skip_bad)
    base = Path(options.audio_root).resolve() if options.audio_root else path.resolve().parent
    parsed = ParsedCorpus(format=FORMAT, corpus=None, root=str(base))
    parsed.bad.extend(table.bad)
    roles = _roles(table)
    label_columns = _label_columns(table, roles, options)
    shape = _shape(table, roles, label_columns)
    parsed.options["manifest"] = {"shape": shape, "file": str(path.resolve())}
    reader = _Reader(table, roles, label_columns, options, parsed)
    for line, row in table.rows:
        try:
            reader.add_row(line, row, shape)
        except ImportFormatError as error:
            parsed.fail(error, skip_bad=options.skip_bad)
    column = roles.get("path", "path")
    reader.finish(_AudioResolver(base, path, column, allow_outside=options.allow_outside_root))
    return parsed


def stored_label_key(options: ImportOptions) -> Callable[[str], str]:
    """Label text -> the label a vote will be stored under (raw text if unknown).

    Mirrors write_corpus's mapping, including --merge-excited, because the workspace keys
    votes by (clip, annotator, label): two votes that land on one label would silently
    overwrite each other there.
    """
    extra = dict(options.label_map)
    memo: dict[str, str] = {}

    def key(label: str) -> str:
        hit = memo.get(label)
        if hit is None:
            try:
                canon = to_canonical(label, extra=extra)
            except LabelError:
                canon = None
            if canon == "excited" and options.merge_excited:
                canon = "happy"
            hit = memo[label] = canon or "raw:" + label.strip().lower()
        return hit

    return key


# ------------------------------------------------------------------------ loading
@dataclass
class _Table:
    """Rows as dicts keyed by the file's column names (stripped), with line numbers."""

    path: Path
    columns: list[str]
    rows: list[tuple[int, dict[str, Any]]]
    bad: list[ImportFormatError] = field(default_factory=list)


def _load(path: Path, skip_bad: bool) -> _Table:
    suffix = path.suffix.lower()
    try:
        if suffix in CSV_SUFFIXES:
            return _load_csv(path, CSV_SUFFIXES[suffix], skip_bad)
        if suffix in JSONL_SUFFIXES:
            return _load_jsonl(path, skip_bad)
    except OSError as exc:
        raise ImportFormatError(path, None, f"cannot read: {exc.strerror or exc}") from None
    raise ImportFormatError(
        path, None, f"unknown manifest extension {suffix!r} (use .csv, .tsv or .jsonl)"
    )


def _load_csv(path: Path, delimiter: str, skip_bad: bool) -> _Table:
    with open_csv(path, delimiter=delimiter) as reader:
        header = next(reader, None)
        if header is None or not any(name.strip() for name in header):
            raise ImportFormatError(path, 1, "empty file (expected a header row)")
        columns = [name.strip() for name in header]
        _check_unique(path, columns)
        table = _Table(path, columns, [])
        for fields in reader:
            if not any(cell.strip() for cell in fields):
                continue
            if len(fields) > len(columns):
                error = ImportFormatError(
                    path,
                    reader.line_num,
                    f"{len(fields)} fields but the header has {len(columns)}",
                )
                if not skip_bad:
                    raise error
                table.bad.append(error)
                continue
            table.rows.append((reader.line_num, dict(zip(columns, fields, strict=False))))
    return table


def _load_jsonl(path: Path, skip_bad: bool) -> _Table:
    table = _Table(path, [], [])
    seen: dict[str, None] = {}
    with text_lines(path) as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                obj = json_loads(text)
                if not isinstance(obj, dict):
                    raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
            except ValueError as exc:  # JSONDecodeError is a ValueError
                error = ImportFormatError(path, line, f"bad JSON line: {one_line(exc)}")
                if not skip_bad:
                    raise error from None
                table.bad.append(error)
                continue
            row = {str(k).strip(): v for k, v in obj.items()}
            seen.update(dict.fromkeys(row))
            table.rows.append((line, row))
    table.columns = list(seen)
    _check_unique(path, table.columns)
    return table


def _check_unique(path: Path, columns: list[str]) -> None:
    lowered = [c.lower() for c in columns]
    dupes = sorted({c for c in lowered if lowered.count(c) > 1 and c})
    if dupes:
        raise ImportFormatError(path, 1, f"duplicate columns {', '.join(dupes)}", field="header")


# -------------------------------------------------------------------------- shape
def _roles(table: _Table) -> dict[str, str]:
    """Map roles (clip, path, ...) to the file's column names; one column per role."""
    by_lower = {c.lower(): c for c in table.columns}
    roles: dict[str, str] = {}
    for role, aliases in ALIASES.items():
        present = [by_lower[a] for a in aliases if a in by_lower]
        if len(present) > 1:
            raise ImportFormatError(
                table.path,
                1,
                f"columns {' and '.join(present)} both give the {role}",
                field="header",
            )
        if present:
            roles[role] = present[0]
    if "clip" not in roles:
        raise ImportFormatError(
            table.path,
            1,
            f"missing required column (found: {', '.join(table.columns) or 'none'})",
            field="clip",
        )
    return roles


def _label_columns(table: _Table, roles: dict[str, str], options: ImportOptions) -> dict[str, str]:
    """Columns named by an emotion label (column -> canonical label)."""
    reserved = set(roles.values())
    mapped = {k.strip().lower() for k in options.label_map}
    out: dict[str, str] = {}
    for column in table.columns:
        if column in reserved or not column:
            continue
        try:
            label = to_canonical(column, extra=dict(options.label_map))
        except LabelError:
            continue
        name = column.strip().lower()
        if label == "other" and name != "other" and name not in mapped:
            continue  # "other_notes" is metadata, not the label `other` (labels.py prefix rule)
        if label is not None:
            out[column] = label
    return out


def _shape(table: _Table, roles: dict[str, str], label_columns: dict[str, str]) -> str:
    if "annotator" in roles and "label" in roles:
        return "votes"
    if "annotator" in roles or "label" in roles:
        have, need = ("annotator", "label") if "annotator" in roles else ("label", "annotator")
        raise ImportFormatError(
            table.path,
            1,
            f"column {have} needs a {need} column (one row per vote)",
            field=need,
        )
    if label_columns or "counts" in roles:
        return "counts"
    raise ImportFormatError(
        table.path,
        1,
        "cannot tell the shape: expected annotator and label columns (one row per vote) "
        "or count columns named by labels such as neutral,happy,sad,angry (one row per clip)",
        field="header",
    )


# ------------------------------------------------------------------------- values
def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _number(path: Path, line: int, column: str, value: Any, default: float) -> float:
    """A finite number >= 0; empty means `default`."""
    if isinstance(value, bool | dict | list):
        raise ImportFormatError(path, line, f"expected a number, got {value!r}", field=column)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImportFormatError(
            path, line, f"expected a number, got {value!r}", field=column
        ) from None
    if not math.isfinite(number) or number < 0:
        raise ImportFormatError(
            path, line, f"must be a finite number >= 0, got {value!r}", field=column
        )
    return number


# ------------------------------------------------------------------------- reading
@dataclass
class _ClipDraft:
    """A clip's fields as they accumulate over its rows (shape (a) repeats them)."""

    key: str
    line: int
    fields: dict[str, tuple[str, int]] = field(default_factory=dict)  # role -> (value, line)
    meta: dict[str, Any] = field(default_factory=dict)
    varying: set[str] = field(default_factory=set)


class _Reader:
    """Turns rows into clip drafts and raw votes, checking each row as it goes."""

    def __init__(
        self,
        table: _Table,
        roles: dict[str, str],
        label_columns: dict[str, str],
        options: ImportOptions,
        parsed: ParsedCorpus,
    ) -> None:
        self.path = table.path
        self.roles = roles
        self.label_columns = label_columns
        self.options = options
        self.parsed = parsed
        reserved = set(roles.values()) | set(label_columns)
        self.meta_columns = [c for c in table.columns if c and c not in reserved]
        self.clips: dict[str, _ClipDraft] = {}
        self.vote_lines: dict[tuple[str, str, str], int] = {}
        self.varying_columns: set[str] = set()
        # the stored label ignoring --merge-excited: two spellings of one label from one
        # rater are an error; labels that only meet by merging are folded later
        self._canonical = stored_label_key(replace(options, merge_excited=False))

    def cell(self, row: dict[str, Any], role: str) -> Any:
        column = self.roles.get(role)
        return None if column is None else row.get(column)

    def add_row(self, line: int, row: dict[str, Any], shape: str) -> None:
        """Check one row completely, then record it (a bad row leaves no trace)."""
        key = _text(self.cell(row, "clip"))
        if not key:
            raise ImportFormatError(self.path, line, "empty clip id", field=self.roles["clip"])
        votes = (
            self._vote_row(line, key, row) if shape == "votes" else self._count_row(line, key, row)
        )
        fields = self._clip_fields(line, row)
        draft = self.clips.get(key)
        if draft is not None and shape == "counts":
            raise ImportFormatError(
                self.path,
                line,
                f"duplicate clip {key!r} (first at line {draft.line})",
                field=self.roles["clip"],
            )
        if draft is not None:
            self._check_agree(line, draft, fields)
        else:
            draft = self.clips[key] = _ClipDraft(key, line)
        for role, value in fields.items():
            draft.fields.setdefault(role, (value, line))
        self._merge_meta(draft, row)
        for vote in votes:
            self.vote_lines[(vote.clip_key, vote.annotator, self._canonical(vote.label))] = line
            self.parsed.votes.append(vote)

    def _vote_row(self, line: int, key: str, row: dict[str, Any]) -> list[RawVote]:
        annotator = _text(self.cell(row, "annotator"))
        label = _text(self.cell(row, "label"))
        if not annotator and not label:
            return []  # lists the clip without a vote
        if not annotator:
            raise ImportFormatError(
                self.path, line, "empty annotator id", field=self.roles["annotator"]
            )
        if not label:
            raise ImportFormatError(self.path, line, "empty label", field=self.roles["label"])
        weight = self._role_number(line, row, "weight", 1.0)
        rank = self._role_number(line, row, "rank", 0.0)
        if not rank.is_integer():
            raise ImportFormatError(
                self.path, line, f"must be a whole number, got {rank}", field=self.roles["rank"]
            )
        kind = _text(self.cell(row, "kind")).lower() or "human"
        if kind not in ANNOTATOR_KINDS:
            raise ImportFormatError(
                self.path,
                line,
                f"unknown kind {kind!r} (expected {', '.join(ANNOTATOR_KINDS)})",
                field=self.roles["kind"],
            )
        first = self.vote_lines.get((key, annotator, self._canonical(label)))
        if first is not None:
            raise ImportFormatError(
                self.path,
                line,
                f"duplicate vote {label!r} by {annotator!r} "
                f"on clip {key!r} (first at line {first})",
                field=self.roles["label"],
            )
        source = f"{self.path}:{line}"
        return [RawVote(key, annotator, label, int(rank), weight, kind, source)]

    def _role_number(self, line: int, row: dict[str, Any], role: str, default: float) -> float:
        if role not in self.roles:
            return default
        return _number(self.path, line, self.roles[role], self.cell(row, role), default)

    def _count_row(self, line: int, key: str, row: dict[str, Any]) -> list[RawVote]:
        counts: list[tuple[str, float]] = [
            (column, _number(self.path, line, column, row.get(column), 0.0))
            for column in self.label_columns
        ]
        nested = self.cell(row, "counts")
        if nested not in (None, ""):
            if not isinstance(nested, dict):
                raise ImportFormatError(
                    self.path, line, "expected an object {label: count}", field=self.roles["counts"]
                )
            counts += [
                (str(label).strip(), _number(self.path, line, f"counts.{label}", n, 0.0))
                for label, n in nested.items()
            ]
        seen: dict[str, str] = {}
        for label, _ in counts:
            canonical = self._canonical(label)
            if canonical in seen:
                raise ImportFormatError(
                    self.path,
                    line,
                    f"{seen[canonical]!r} and {label!r} both count {canonical!r}",
                    field=label,
                )
            seen[canonical] = label
        source = f"{self.path}:{line}"
        return [
            RawVote(key, POOL_ANNOTATOR, label, weight=n, source=source, pool=True)
            for label, n in counts
            if n > 0
        ]

    def _clip_fields(self, line: int, row: dict[str, Any]) -> dict[str, str]:
        fields: dict[str, str] = {}
        for role in CLIP_FIELDS:
            value = _text(self.cell(row, role))
            if not value:
                continue
            if role == "gender":
                value = GENDERS.get(value.lower(), value)
            elif role == "intended_label":
                value = self._intended(line, value)
            fields[role] = value
        return fields

    def _intended(self, line: int, text: str) -> str:
        try:
            label = to_canonical(text, extra=dict(self.options.label_map))
        except LabelError as exc:
            raise ImportFormatError(
                self.path,
                line,
                f"{exc}; map it with --map WORD=label",
                field=self.roles["intended_label"],
            ) from None
        return label or ""

    def _check_agree(self, line: int, draft: _ClipDraft, fields: dict[str, str]) -> None:
        for role, value in fields.items():
            known = draft.fields.get(role)
            if known is not None and known[0] != value:
                raise ImportFormatError(
                    self.path,
                    line,
                    f"clip {draft.key!r} has {role} {value!r} here but "
                    f"{known[0]!r} at line {known[1]}",
                    field=self.roles[role],
                )

    def _merge_meta(self, draft: _ClipDraft, row: dict[str, Any]) -> None:
        """Other columns go to meta; a column whose value varies within a clip is dropped."""
        for column in self.meta_columns:
            value = row.get(column)
            if value is None or value == "" or column in draft.varying:
                continue
            if column not in draft.meta:
                draft.meta[column] = value
            elif draft.meta[column] != value:
                del draft.meta[column]
                draft.varying.add(column)
                self.varying_columns.add(column)

    def finish(self, audio: _AudioResolver) -> None:
        """Build the clips (probing audio) and add the summary warnings."""
        for draft in self.clips.values():
            values = {role: value for role, (value, _) in draft.fields.items()}
            text, line = draft.fields.get("path", ("", draft.line))
            values.pop("path", None)
            try:
                path, duration, rate, extra = audio.resolve(text, line)
            except ImportFormatError as error:  # outside the root: refused, or skipped
                self.parsed.fail(error, skip_bad=self.options.skip_bad)
                path, duration, rate, extra = None, None, None, {"source_path": text}
            meta = {**draft.meta, **extra}
            self.parsed.clips.append(
                ClipIn(
                    key=draft.key,
                    path=path,
                    duration=duration,
                    sample_rate=rate,
                    speaker=values.get("speaker"),
                    gender=values.get("gender"),
                    split=values.get("split"),
                    transcript=values.get("transcript"),
                    intended_label=values.get("intended_label") or None,
                    meta=meta or None,
                )
            )
        if self.varying_columns:
            self.parsed.warnings.append(
                f"columns {', '.join(sorted(self.varying_columns))} differ between votes of "
                "one clip; not stored for those clips"
            )
        self.parsed.warnings.extend(audio.warnings())


# --------------------------------------------------------------------------- audio
class _AudioResolver:
    """Checks manifest paths against the root and the disk; reads durations from headers."""

    def __init__(self, base: Path, manifest: Path, column: str, *, allow_outside: bool) -> None:
        self.base = base
        self.guard = RootGuard(base, allow_outside=allow_outside)
        self.manifest = manifest
        self.column = column
        self.missing: list[str] = []
        self.remote = 0
        self.unreadable: list[str] = []
        self.no_path = 0

    def resolve(
        self, text: str, line: int
    ) -> tuple[str | None, float | None, int | None, dict[str, Any]]:
        """(stored path, duration, sample rate, meta additions) for one clip.

        Raises ImportFormatError for a path outside the root, before the file is touched.
        """
        if not text:
            self.no_path += 1
            return None, None, None, {}
        if "://" in text:
            self.remote += 1
            return None, None, None, {"source_path": text}
        full = self.guard.full(text)
        check_audio_path(self.guard, full, text, source=self.manifest, line=line, field=self.column)
        if not full.is_file():
            self.missing.append(text)
            return None, None, None, {"source_path": text}
        try:
            info = audio_info(full)
        except AudioError as exc:
            self.unreadable.append(str(exc))
            return text, None, None, {}
        return text, info.duration_s, info.sample_rate, {}

    def warnings(self) -> Iterable[str]:
        if self.missing:
            yield (
                f"{len(self.missing)} audio files not found under {self.base} "
                f"(e.g. {self.missing[0]}); imported without audio (see --audio-root)"
            )
        if self.remote:
            yield f"{self.remote} clips have remote audio URLs; imported without local audio"
        if self.unreadable:
            yield f"{len(self.unreadable)} audio files unreadable, e.g. {self.unreadable[0]}"
