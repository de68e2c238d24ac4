"""MSP-Podcast importer: consensus table plus every rater's primary and secondary labels.

PATH is the release root (holding `Labels/`, optionally `Audios/` and `Transcripts/`) or
the `Labels` folder itself. File names are matched case-insensitively.

Consensus (clips, split, speaker, gender, consensus code and V/A/D), first found of:
`labels_consensus.csv` / `labels_concensus.csv` (older releases' spelling) with columns
`FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set`, or the JSON
equivalents keyed by file name (`{"x.wav": {"EmoClass": "N", ...}}`, a one-element list
per file is accepted too).

Per-rater labels, first found of (all checked against public parsers of the releases):

* `labels_detailed.csv`, v2.0: `FileName, WorkerID, EmoClass_Major, EmoClass_Second,
  EmoAct, EmoVal, EmoDom` (v1.6 spells the rater column `Workers`);
* `labels_detailed.csv`, v1.7-v1.12: `FileName, EmoDetail`, one row per rater, EmoDetail
  packed as `WORKER00014; Neutral; Other-Concerned,Sad; A:4.000000; V:4.000000; D:3.000000;`
  (the secondary field may be empty or absent);
* `labels_detailed.json`: `{"x.wav": {"WORKER00014": {"EmoClass_Major": ...,
  "EmoClass_Second": ..., "EmoAct": ...}}}`, or MSP-Face style `{"x.wav": {"Workers":
  [{"Name": "WORKER..", ...}]}}`;
* `labels.txt` / `Labels.txt` (v1.x text): a `x.wav; N; A:2.2; V:4.0; D:2.6;` line per
  file, then one packed `WORKER..; Major; Second; A:..; V:..; D:..;` line per rater. The
  file lines double as consensus when no consensus table exists.

Votes: the major label is rank 0; secondary labels are ranks 1, 2, ... in file order (MSP
asks for "all that apply", so the order carries no preference), which keeps them out of
the human distribution unless a secondary weight is chosen. `Other-xxx` maps to `other`.
A secondary word becomes a vote only when it maps (via --map, the corpus codes, the
synonyms or `Other-`) to a label of the dataset's label set (MSP-Podcast's nine, or
--labels, plus any --map target); the rest (Concerned, Amused, Frustrated, ...) would
otherwise add columns or block the import as unknown words, so they are kept as raw counts
in the clip's meta["secondary_other"] and summed in one warning. A secondary equal to the
rater's major label (releases repeat it) is not a second vote. Unknown *major* labels go
through write_corpus's unknown-label report (--map / --unknown). The format does not
declare `label_lists`: secondary emotions answer a separate question, so the `multi_label`
convention (for one rater's label list) does not apply and `secondary_weight` alone weighs
them. It declares the `4class` projection (the `scaling-ambiguity` preset's label set).

Clips: key = the file name without extension; split = Split_Set; gender M/F (Unknown ->
None); speaker = SpkrID (Unknown -> None); intended_label = the consensus code mapped
(X -> None); meta holds the consensus code, consensus and per-rater V/A/D as
[val, act, dom]. Files rated in the detailed table but missing from the consensus table
are still clips (counted in a warning); consensus rows without ratings are clips without
votes. Audio: `Audios/<FileName>` when present (listed once, probed with soundfile unless
extra={"probe_audio": False}); --audio-root may name the release root or the audio folder.

Scale: ~150k clips and ~1M rater rows. Everything streams through the csv module; the
audio and transcript folders are listed once instead of stat-ing 150k paths; label and
rater strings are interned; votes carry no per-row source string.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ambiscope.core.audio import AudioError, audio_info
from ambiscope.core.corpora import corpus_format
from ambiscope.core.corpora.base import (
    ImportFormatError,
    ImportOptions,
    ParsedCorpus,
    RawVote,
    gc_paused,
)
from ambiscope.core.corpora.reading import json_loads, open_csv, read_text, text_lines
from ambiscope.core.labels import CORPUS_LABEL_SETS, LabelError, to_canonical
from ambiscope.db import ClipIn

FORMAT = "msp-podcast"
CORPUS = "msp-podcast"

CONSENSUS_FILES = (
    "labels_consensus.csv",
    "labels_concensus.csv",
    "labels_consensus.json",
    "labels_concensus.json",
)
DETAILED_FILES = ("labels_detailed.csv", "labels_detailed.json", "labels.txt")
GENDERS = {"female": "F", "f": "F", "male": "M", "m": "M"}
UNKNOWN_VALUES = {"", "unknown", "nan", "none", "n/a"}

_intern = sys.intern


def default_name(path: Path) -> str:
    """Always "msp-podcast" (one release per workspace is the common case; use --name)."""
    return "msp-podcast"


# (val, act, dom) as floats or None
Vad = list[float | None]


@dataclass(slots=True)
class _Clip:
    """What the label files say about one file, gathered before the ClipIn is built."""

    name: str  # FileName as in the tables (with .wav)
    key: str  # clip key: the name without extension
    in_consensus: bool = False
    code: str | None = None
    vad: Vad | None = None
    speaker: str | None = None
    gender: str | None = None
    split: str | None = None
    raters: dict[str, Vad] = field(default_factory=dict)
    secondary_other: dict[str, int] | None = None  # plain dict: 150k Counters cost seconds


# One rater's answer for one file, whatever the file layout:
# (file name, worker, major label, comma-separated secondary labels, [val, act, dom]).
_Rating = tuple[str, str, str, str, Vad]
# A secondary word as (spelling, canonical key, counts as a vote).
_Word = tuple[str, str, bool]


class _Reader:
    """State of one import: clips by file name, votes, counts, label helpers.

    `rate` runs once per rater row (a million times for a full release), so everything
    that depends only on a label spelling or a secondary-label string is computed once and
    memoised: the distinct spellings number in the hundreds.
    """

    def __init__(self, options: ImportOptions) -> None:
        self.options = options
        self.parsed = ParsedCorpus(FORMAT, CORPUS, root=None)
        self.clips: dict[str, _Clip] = {}
        self.counts: Counter[str] = Counter()
        self.secondary_other: Counter[str] = Counter()
        self.key = _canonical_key(options)
        self.allowed = _secondary_targets(options)
        self._majors: dict[str, tuple[str, str]] = {}  # raw -> (spelling, canonical key)
        self._secondaries: dict[str, tuple[_Word, ...]] = {}  # raw field -> words

    def fail(self, path: Path, line: int | None, message: str, field: str | None = None) -> None:
        self.parsed.fail(
            ImportFormatError(path, line, message, field), skip_bad=self.options.skip_bad
        )

    def clip(self, name: str) -> _Clip:
        found = self.clips.get(name)
        if found is None:
            found = self.clips[name] = _Clip(name, _stem(name))
        return found

    def rate(self, name: str, worker: str, major: str, secondary: str, vad: Vad) -> None:
        """Turn one rater row into votes (see the module docstring for the rules)."""
        state = self.clips.get(name) or self.clip(name)
        worker = _intern(worker)
        if worker in state.raters:
            self.counts["repeated (file, rater) rows ignored"] += 1
            return
        state.raters[worker] = vad
        hit = self._majors.get(major)
        if hit is None:
            word = _intern(major.strip())
            hit = self._majors[major] = (word, self.key(word) if word else "")
        spelling, major_key = hit
        votes = self.parsed.votes
        if spelling:
            votes.append(RawVote(state.key, worker, spelling))
        else:
            self.counts["rater rows without a major label"] += 1
        if not secondary:
            return
        words = self._secondaries.get(secondary)
        if words is None:
            words = self._secondaries[secondary] = self._split_secondary(secondary)
        rank = 1
        for word, canon, is_vote in words:
            if canon == major_key:
                continue
            if is_vote:
                votes.append(RawVote(state.key, worker, word, rank))
                rank += 1
            else:
                self.secondary_other[word] += 1
                counts = state.secondary_other
                if counts is None:
                    counts = state.secondary_other = {}
                counts[word] = counts.get(word, 0) + 1

    def _split_secondary(self, text: str) -> tuple[_Word, ...]:
        """Distinct words of a secondary field with their canonical key and vote status."""
        out: dict[str, _Word] = {}
        for raw in text.split(","):
            word = _intern(raw.strip())
            if word:
                canon = self.key(word)
                out.setdefault(canon, (word, canon, canon in self.allowed))
        return tuple(out.values())


# ---------------------------------------------------------------------------- reading


@corpus_format(
    FORMAT,
    default_name=default_name,
    summary="MSP-Podcast consensus table and every rater's labels",
    extra=("probe_audio",),
    projections=("4class",),
)
def read(path: Path, options: ImportOptions) -> ParsedCorpus:
    """Read an MSP-Podcast release's label files into clips and raw votes."""
    release, files = _locate(path)
    consensus = _first(files, CONSENSUS_FILES)
    detailed = _first(files, DETAILED_FILES)
    if consensus is None and detailed is None:
        raise ImportFormatError(
            path,
            None,
            "no MSP-Podcast label files: expected Labels/labels_consensus.csv (or "
            "labels_concensus.csv / .json) and Labels/labels_detailed.csv (or .json, labels.txt)",
        )
    reader = _Reader(options)
    audio_base, prefix = _audio_base(release, options)
    reader.parsed.root = str(audio_base.resolve())
    with gc_paused():
        _read_tables(reader, consensus, detailed)
        reader.parsed.clips = _build_clips(reader, release, audio_base, prefix)
    reader.parsed.warnings[:0] = _warnings(reader)
    reader.parsed.options["msp_podcast"] = {
        "consensus_file": consensus.name if consensus else None,
        "detailed_file": detailed.name if detailed else None,
        "secondary_ranks": "1.. in file order; non-label words kept in meta.secondary_other",
    }
    return reader.parsed


def _read_tables(reader: _Reader, consensus: Path | None, detailed: Path | None) -> None:
    if consensus is not None:
        _read_consensus(reader, consensus)
    else:
        reader.parsed.warnings.append(
            "no consensus table: splits, speakers and genders are unknown"
        )
    if detailed is not None:
        _read_detailed(reader, detailed)
    else:
        reader.parsed.warnings.append("no per-rater labels file: clips have no votes")


def _locate(path: Path) -> tuple[Path, dict[str, Path]]:
    """(release root, lower-cased file name -> path) for the release or its Labels folder."""
    if not path.is_dir():
        raise ImportFormatError(path, None, "expected the MSP-Podcast release folder")
    if path.name.lower() == "labels":
        release, labels = path.parent, path
    else:
        subfolders = (p for p in path.iterdir() if p.is_dir() and p.name.lower() == "labels")
        release, labels = path, next(subfolders, path)
    return release, {p.name.lower(): p for p in labels.iterdir() if p.is_file()}


def _first(files: dict[str, Path], names: Iterable[str]) -> Path | None:
    return next((files[n] for n in names if n in files), None)


@dataclass
class _Table:
    """An open CSV file positioned after its header row."""

    path: Path
    rows: Any  # the csv reader: iterate it, read .line_num for error messages
    columns: dict[str, int]  # header name -> index
    header_line: int

    def column(self, *names: str, required: bool = True) -> int | None:
        """Index of the first of `names` present; a missing required one is an error."""
        for name in names:
            if name in self.columns:
                return self.columns[name]
        if required:
            found = ", ".join(self.columns) or "none"
            raise ImportFormatError(
                self.path, self.header_line, f"missing column (found: {found})", field=names[0]
            )
        return None


@contextmanager
def _open_table(path: Path) -> Iterator[_Table]:
    """Open a CSV table; rows are then read straight from the csv module (no extra layer)."""
    with open_csv(path) as rows:
        header = next((row for row in rows if row), None)
        if header is None:
            raise ImportFormatError(path, 1, "empty file, expected a header row")
        columns = {name.strip(): i for i, name in enumerate(header)}
        yield _Table(path, rows, columns, rows.line_num)


def _number(text: str | None) -> float | None:
    """A V/A/D value; empty or unparseable text is None (never worth failing an import)."""
    if text is None:
        return None
    text = str(text).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _vad_getter(*columns: int | None) -> Callable[[list[str]], Vad]:
    """row -> [val, act, dom]; the common all-numeric row costs three float() calls."""
    if None in columns:
        return lambda row: [None if i is None else _number(row[i]) for i in columns]
    i_val, i_act, i_dom = columns

    def get(row: list[str]) -> Vad:
        try:
            return [float(row[i_val]), float(row[i_act]), float(row[i_dom])]  # type: ignore[index]
        except ValueError:
            return [_number(row[i]) for i in columns]  # type: ignore[index]

    return get


def _clean(text: Any) -> str | None:
    value = "" if text is None else str(text).strip()
    return None if value.lower() in UNKNOWN_VALUES else value


def _consensus(
    reader: _Reader,
    path: Path,
    line: int | None,
    name: str,
    code: str,
    vad: Vad,
    speaker: Any,
    gender: Any,
    split: Any,
) -> None:
    """Record one consensus row (first one wins; duplicates are counted)."""
    if not name:
        reader.fail(path, line, "empty", field="FileName")
        return
    state = reader.clip(name)
    if state.in_consensus:
        reader.counts["repeated consensus rows ignored"] += 1
        return
    state.in_consensus = True
    state.code = _clean(code)
    state.vad = vad
    state.speaker = _clean(speaker)
    sex = _clean(gender)
    state.gender = GENDERS.get(sex.lower(), sex) if sex else None
    state.split = _clean(split)


def _read_consensus(reader: _Reader, path: Path) -> None:
    if path.suffix.lower() == ".json":
        _read_consensus_json(reader, path)
        return
    with _open_table(path) as table:
        _consensus_rows(reader, table)


def _consensus_rows(reader: _Reader, table: _Table) -> None:
    i_name = table.column("FileName")
    i_code = table.column("EmoClass", "EmoClass_Major")
    optional = [
        table.column(name, required=False)
        for name in ("EmoVal", "EmoAct", "EmoDom", "SpkrID", "Gender", "Split_Set")
    ]
    width = max(i for i in (i_name, i_code, *optional) if i is not None) + 1
    rows = table.rows
    for row in rows:
        if len(row) < width:
            if row:
                reader.fail(table.path, rows.line_num, f"expected {width} fields, got {len(row)}")
            continue
        val, act, dom, spk, sex, split = (None if i is None else row[i] for i in optional)
        _consensus(
            reader,
            table.path,
            rows.line_num,
            row[i_name].strip(),
            row[i_code],
            [_number(val), _number(act), _number(dom)],
            spk,
            sex,
            split,
        )


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json_loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise ImportFormatError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ImportFormatError(path, None, "expected a JSON object keyed by file name")
    return data


def _read_consensus_json(reader: _Reader, path: Path) -> None:
    for name, entry in _load_json(path).items():
        if isinstance(entry, list) and entry:
            entry = entry[0]
        if not isinstance(entry, dict):
            reader.fail(path, None, "expected an object with EmoClass, ...", field=name)
            continue
        code = entry.get("EmoClass", entry.get("EmoClass_Major"))
        if code is None:
            reader.fail(path, None, "missing EmoClass", field=name)
            continue
        vad = [_number(entry.get(k)) for k in ("EmoVal", "EmoAct", "EmoDom")]
        _consensus(
            reader,
            path,
            None,
            str(name).strip(),
            str(code),
            vad,
            entry.get("SpkrID"),
            entry.get("Gender"),
            entry.get("Split_Set"),
        )


def _read_detailed(reader: _Reader, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix in (".json", ".txt"):
        parse = _detailed_json if suffix == ".json" else _detailed_text
        for rating in parse(reader, path):
            reader.rate(*rating)
        return
    with _open_table(path) as table:
        if "EmoDetail" in table.columns:
            _detailed_packed_rows(reader, table)
        else:
            _detailed_rows(reader, table)


def _detailed_rows(reader: _Reader, table: _Table) -> None:
    """Per-column layout (v2 `WorkerID`, v1.6 `Workers`): the hot loop of a full import."""
    i_name = table.column("FileName")
    i_worker = table.column("WorkerID", "Workers", "Worker", "Name")
    i_major = table.column("EmoClass_Major")
    i_second = table.column("EmoClass_Second", required=False)
    i_val, i_act, i_dom = (
        table.column(name, required=False) for name in ("EmoVal", "EmoAct", "EmoDom")
    )
    vad = _vad_getter(i_val, i_act, i_dom)
    used = [i for i in (i_name, i_worker, i_major, i_second, i_val, i_act, i_dom) if i is not None]
    width = max(used) + 1
    rate, rows = reader.rate, table.rows
    for row in rows:
        if len(row) < width:
            if row:
                reader.fail(table.path, rows.line_num, f"expected {width} fields, got {len(row)}")
            continue
        name, worker = row[i_name].strip(), row[i_worker].strip()
        if not name or not worker:
            field = "FileName" if not name else _table_name(table, i_worker)
            reader.fail(table.path, rows.line_num, "empty", field=field)
            continue
        rate(name, worker, row[i_major], "" if i_second is None else row[i_second], vad(row))


def _table_name(table: _Table, index: int | None) -> str:
    """The header name of column `index` (for error messages)."""
    return next((name for name, i in table.columns.items() if i == index), "?")


def _detailed_packed_rows(reader: _Reader, table: _Table) -> None:
    """`FileName, EmoDetail` layout (v1.7-v1.12), one row per rater."""
    i_name = table.column("FileName")
    i_detail = table.columns["EmoDetail"]
    width = max(i_name, i_detail) + 1
    rows = table.rows
    for row in rows:
        if len(row) < width:
            if row:
                reader.fail(table.path, rows.line_num, f"expected {width} fields, got {len(row)}")
            continue
        name = row[i_name].strip()
        if not name:
            reader.fail(table.path, rows.line_num, "empty", field="FileName")
            continue
        rating = _packed(reader, table.path, rows.line_num, name, row[i_detail])
        if rating is not None:
            reader.rate(*rating)


def _packed(
    reader: _Reader, path: Path, line: int | None, name: str, detail: str
) -> _Rating | None:
    """Parse `WORKER; Major; Second,Labels; A:x; V:y; D:z;` (secondary field optional)."""
    parts = [p.strip() for p in detail.split(";")]
    while parts and not parts[-1]:
        parts.pop()
    if len(parts) < 2 or not parts[0]:
        reader.fail(
            path, line, "expected 'WORKER; Major; Second; A:x; V:y; D:z;'", field="EmoDetail"
        )
        return None
    dims: dict[str, float | None] = {}
    labels: list[str] = []
    for part in parts[2:]:
        tag, sep, value = part.partition(":")
        if sep and tag.strip() in ("A", "V", "D"):
            dims[tag.strip()] = _number(value)
        elif part:
            labels.append(part)
    vad = [dims.get("V"), dims.get("A"), dims.get("D")]
    return name, parts[0], parts[1], ",".join(labels), vad


def _detailed_text(reader: _Reader, path: Path) -> Iterator[_Rating]:
    """labels.txt: a `file.wav; CODE; A:..; V:..; D:..;` line, then its rater lines."""
    current: str | None = None
    with text_lines(path) as lines:
        for line, raw in enumerate(lines, 1):
            text = raw.strip()
            if not text:
                continue
            first = text.split(";", 1)[0].strip()
            if "." in first and not first.upper().startswith("WORKER"):
                current = first
                _text_consensus(reader, path, line, text)
                continue
            if current is None:
                reader.fail(path, line, "rater line before any file line", field="EmoDetail")
                continue
            rating = _packed(reader, path, line, current, text)
            if rating is not None:
                yield rating


def _text_consensus(reader: _Reader, path: Path, line: int, text: str) -> None:
    """Use a labels.txt file line as consensus when the consensus table lacks the file."""
    parts = [p.strip() for p in text.split(";") if p.strip()]
    name = parts[0]
    if name in reader.clips and reader.clips[name].in_consensus:
        return
    dims: dict[str, float | None] = {}
    for part in parts[2:]:
        tag, _, value = part.partition(":")
        dims[tag.strip()] = _number(value)
    code = parts[1] if len(parts) > 1 else ""
    vad = [dims.get("V"), dims.get("A"), dims.get("D")]
    _consensus(reader, path, line, name, code, vad, None, None, None)


def _detailed_json(reader: _Reader, path: Path) -> Iterator[_Rating]:
    for name, entry in _load_json(path).items():
        for worker, answer in _json_workers(entry):
            if not isinstance(answer, dict) or not worker:
                reader.fail(path, None, "expected {worker: {EmoClass_Major, ...}}", field=name)
                continue
            vad = [_number(answer.get(k)) for k in ("EmoVal", "EmoAct", "EmoDom")]
            second = answer.get("EmoClass_Second") or ""
            major = answer.get("EmoClass_Major") or ""
            yield str(name).strip(), str(worker), str(major), str(second), vad


def _json_workers(entry: Any) -> Iterator[tuple[str, Any]]:
    """(worker, answer) pairs of one file, for the keyed and the `Workers` list layouts."""
    if isinstance(entry, dict) and isinstance(entry.get("Workers"), list):
        entry = entry["Workers"]
    if isinstance(entry, list):
        for answer in entry:
            worker = ""
            if isinstance(answer, dict):
                worker = answer.get("Name") or answer.get("WorkerID") or ""
            yield str(worker), answer
    elif isinstance(entry, dict):
        yield from ((str(w), a) for w, a in entry.items())
    else:
        yield "", entry


# ---------------------------------------------------------------------------- clips


def _audio_base(release: Path, options: ImportOptions) -> tuple[Path, str]:
    """(root for clip paths, prefix of audio files under it)."""
    if options.audio_root:
        base = Path(options.audio_root)
        return base, "Audios/" if (base / "Audios").is_dir() else ""
    return release, "Audios/"


def _listing(folder: Path) -> frozenset[str]:
    """File names in `folder` (one directory read instead of one stat per clip)."""
    try:
        with os.scandir(folder) as entries:
            return frozenset(e.name for e in entries)
    except OSError:
        return frozenset()


def _build_clips(reader: _Reader, release: Path, audio_base: Path, prefix: str) -> list[ClipIn]:
    audio_dir = audio_base / prefix if prefix else audio_base
    audio = _listing(audio_dir)
    if not audio_dir.is_dir():
        reader.parsed.warnings.append(f"no audio folder {audio_dir}: clips have no audio path")
    probe = bool(reader.options.extra.get("probe_audio", True))
    transcripts_dir = release / "Transcripts"
    transcripts = _listing(transcripts_dir)
    options = reader.options
    codes: dict[str | None, str | None] = {}

    def intended(code: str | None) -> str | None:
        if code not in codes:
            codes[code] = intended_label(code, options)
        return codes[code]

    out: list[ClipIn] = []
    for state in reader.clips.values():
        key = state.key
        path = duration = rate = None
        if state.name in audio:
            path = prefix + state.name
            if probe:
                duration, rate = _probe(reader, audio_base / path)
        elif audio:
            reader.counts["clips without audio"] += 1
        transcript = None
        if key + ".txt" in transcripts:
            transcript = _read_text(transcripts_dir / (key + ".txt"))
        if not state.in_consensus:
            reader.counts["rated files missing from the consensus table"] += 1
        meta: dict[str, Any] = {"file": state.name, "consensus": state.code, "vad": state.vad}
        if state.raters:
            meta["rater_vad"] = state.raters
        if state.secondary_other:
            meta["secondary_other"] = dict(state.secondary_other)
        out.append(
            ClipIn(
                key=key,
                path=path,
                duration=duration,
                sample_rate=rate,
                speaker=state.speaker,
                gender=state.gender,
                split=state.split,
                transcript=transcript,
                intended_label=intended(state.code),
                meta=meta,
            )
        )
    return out


def _probe(reader: _Reader, path: Path) -> tuple[float | None, int | None]:
    try:
        info = audio_info(path)
    except AudioError:
        reader.counts["unreadable audio files"] += 1
        return None, None
    return info.duration_s, info.sample_rate


def _read_text(path: Path) -> str | None:
    if not path.is_file():  # absent, or a FIFO/device that would block or never end
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None


def _stem(name: str) -> str:
    """Clip key: the file name without its audio extension."""
    stem, dot, ext = name.rpartition(".")
    return stem if dot and ext.lower() in ("wav", "flac", "mp3", "mp4") else name


def intended_label(code: str | None, options: ImportOptions) -> str | None:
    """The canonical label of a consensus code under the user's options (None: no label)."""
    if not code:
        return None
    try:
        label = to_canonical(code, corpus=CORPUS, extra=dict(options.label_map))
    except LabelError:
        return None
    if label == "excited" and options.merge_excited:
        label = "happy"
    if label is not None and options.labels and label not in options.labels:
        return None
    return label


def _warnings(reader: _Reader) -> list[str]:
    out = [f"{what}: {n}" for what, n in sorted(reader.counts.items()) if n]
    if reader.secondary_other:
        words = ", ".join(f"{w} x{n}" for w, n in reader.secondary_other.most_common(8))
        more = len(reader.secondary_other) - 8
        out.append(
            f"secondary labels outside the label set kept in clip meta only, not as votes: "
            f"{words}{f' and {more} more' if more > 0 else ''} (count one with --map WORD=label)"
        )
    return out


# ---------------------------------------------------------------------------- labels


def _canonical_key(options: ImportOptions) -> Callable[[str], str]:
    """Label -> the canonical label it will become, or `raw:<word>` when unknown.

    Used to drop a secondary label that repeats the rater's major one: write_corpus keys
    votes by (clip, annotator, label), so a repeat would overwrite the rank-0 vote.
    """
    extra = dict(options.label_map)
    memo: dict[str, str] = {}

    def key(label: str) -> str:
        hit = memo.get(label)
        if hit is None:
            try:
                canon = to_canonical(label, corpus=CORPUS, extra=extra)
            except LabelError:
                canon = None
            if canon == "excited" and options.merge_excited:
                canon = "happy"
            hit = canon if canon is not None else "raw:" + label.strip().lower()
            memo[label] = hit
        return hit

    return key


def _secondary_targets(options: ImportOptions) -> frozenset[str]:
    """Canonical labels a secondary word may vote for (see the module docstring)."""
    labels = set(options.labels or CORPUS_LABEL_SETS[CORPUS])
    labels.update(options.label_map.values())
    return frozenset(labels)
