"""CREMA-D importer: the crowd's per-clip vote counts from `tabulatedVotes.csv`.

CREMA-D publishes no per-rater labels, only how many raters chose each of A D F H N S for
every clip and modality (voice only, face only, audio-visual). The counts are stored as
*weighted anonymous votes*: one vote per (clip, label with count > 0) from a single pool
annotator (`crowd-voice`, `crowd-face` or `crowd-av`) with weight = count, so the human
distribution of every clip is exactly the published one and agreement statistics that
need rater identities can tell that they are unavailable.

`PATH` is the CREMA-D root (holding `processedResults/`) or `tabulatedVotes.csv` itself.
Next to the table the importer reads, when present, `VideoDemographics.csv` (gender, age,
race, ethnicity per actor) and `SentenceFilenames.csv` (the stimulus list, to warn about
stimuli without votes). Audio is looked up in `AudioWAV/` and `AudioMP3/` under the root
or `--audio-root` (or directly in `--audio-root`); clips without audio are imported with
no path. Option `modality` (`voice` default, `face`, `av`) selects the rows.

Note: voice and face votes share clip keys (the file names), so import each modality
under its own `--name`; the pool annotator ids keep them apart but a dataset's
distribution would mix them.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ambiscope.core.audio import AudioError, audio_info
from ambiscope.core.corpora import corpus_format
from ambiscope.core.corpora.base import ImportFormatError, ImportOptions, ParsedCorpus, RawVote
from ambiscope.core.corpora.reading import open_csv
from ambiscope.core.labels import to_canonical
from ambiscope.db import ClipIn

FORMAT = "crema-d"

VOTE_COLUMNS: tuple[str, ...] = ("A", "D", "F", "H", "N", "S")
REQUIRED_COLUMNS: tuple[str, ...] = (*VOTE_COLUMNS, "fileName", "numResponses")

# queryType in the first column (100000 * queryType + clip number).
MODALITIES: dict[str, int] = {"voice": 1, "face": 2, "av": 3}
MODALITY_ALIASES: dict[str, str] = {
    "voice": "voice",
    "audio": "voice",
    "face": "face",
    "video": "face",
    "av": "av",
    "audio-visual": "av",
    "audiovisual": "av",
}

SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}

INTENSITIES = frozenset({"LO", "MD", "HI", "XX"})
FILE_NAME = re.compile(r"^(\d+)_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
GENDERS = {"male": "M", "female": "F"}
AUDIO_FOLDERS: tuple[tuple[str, str], ...] = (("AudioWAV", ".wav"), ("AudioMP3", ".mp3"))


@dataclass(frozen=True)
class _Layout:
    """Where the CREMA-D files are: the table, its dataset root and the audio base."""

    table: Path
    root: Path
    audio_base: Path


def default_name(path: Path) -> str:
    """Datasets are named after the corpus, whatever file or folder was given."""
    return "crema-d"


@corpus_format(
    FORMAT,
    default_name=default_name,
    summary="CREMA-D crowd vote counts (tabulatedVotes.csv)",
    extra=("modality",),
)
def read(path: Path, options: ImportOptions) -> ParsedCorpus:
    """Read one modality of `tabulatedVotes.csv` into clips and weighted pool votes."""
    modality = _modality(options)
    layout = _locate(path, options)
    parsed = ParsedCorpus(
        format=FORMAT,
        corpus="crema-d",
        root=str(layout.audio_base),
        options={
            "crema_d": {"modality": modality, "table": str(layout.table)},
            "compat": {"modality": modality},
        },
    )
    actors = _read_demographics(layout.root / "VideoDemographics.csv", parsed)
    audio = _AudioIndex(layout.audio_base, extra_flat=options.audio_root is not None)
    seen: set[str] = set()
    missing_actors: set[str] = set()
    for row in _rows(layout.table, MODALITIES[modality], parsed, options.skip_bad):
        if row.file_name in seen:
            parsed.fail(
                ImportFormatError(
                    layout.table,
                    row.line,
                    f"duplicate clip {row.file_name!r} for modality {modality}",
                    field="fileName",
                ),
                skip_bad=options.skip_bad,
            )
            continue
        seen.add(row.file_name)
        actor = actors.get(row.actor)
        if actor is None:
            missing_actors.add(row.actor)
        parsed.clips.append(_clip(row, modality, actor or {}, audio))
        parsed.votes.extend(_votes(row, modality, f"{layout.table}:{row.line}"))
    if actors and missing_actors:
        parsed.warnings.append(
            f"{len(missing_actors)} actors missing from VideoDemographics.csv "
            f"(e.g. {min(missing_actors)}): no gender for their clips"
        )
    _check_stimuli(layout.root / "SentenceFilenames.csv", seen, modality, parsed)
    audio.report(len(parsed.clips), parsed)
    return parsed


# ---------------------------------------------------------------------------- locating
def _modality(options: ImportOptions) -> str:
    raw = str(options.extra.get("modality", "voice")).strip().lower()
    if raw not in MODALITY_ALIASES:
        raise ValueError(f"crema-d: unknown modality {raw!r} (choose voice, face or av)")
    return MODALITY_ALIASES[raw]


def _locate(path: Path, options: ImportOptions) -> _Layout:
    """Accept the corpus root or the table itself; the root is where the side files are."""
    if path.is_dir():
        for candidate in (
            path / "processedResults" / "tabulatedVotes.csv",
            path / "tabulatedVotes.csv",
        ):
            if candidate.is_file():
                table = candidate
                break
        else:
            raise ImportFormatError(
                path,
                None,
                "no processedResults/tabulatedVotes.csv here; pass the CREMA-D "
                "root folder or the tabulatedVotes.csv file",
            )
    else:
        table = path
    table = table.resolve()
    root = table.parent.parent if table.parent.name == "processedResults" else table.parent
    audio_base = Path(options.audio_root).resolve() if options.audio_root else root
    return _Layout(table, root, audio_base)


# ----------------------------------------------------------------------------- parsing
@dataclass(frozen=True, slots=True)
class _Row:
    """One validated table row of the selected modality."""

    line: int
    query_id: int
    file_name: str
    actor: str
    sentence: str
    emotion: str
    intensity: str
    counts: tuple[int, ...]
    num_responses: int
    agreement: float | str | None
    emo_vote: str | None


def _rows(table: Path, query_type: int, parsed: ParsedCorpus, skip_bad: bool) -> Iterator[_Row]:
    """Yield valid rows of one query type; bad ones go through `parsed.fail`."""
    try:
        with open_csv(table) as reader:
            header = next(reader, None)
            if header is None:
                raise ImportFormatError(table, 1, "empty file (expected a CSV header)")
            index = _header_index(table, header)
            for fields in reader:
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue
                try:
                    row = _parse_row(table, reader.line_num, fields, index, query_type)
                except ImportFormatError as error:
                    parsed.fail(error, skip_bad=skip_bad)
                    continue
                if row is not None:
                    yield row
    except OSError as exc:
        raise ImportFormatError(table, None, f"cannot read: {exc.strerror or exc}") from None


def _header_index(table: Path, header: list[str]) -> dict[str, int]:
    """Column positions by name; the unnamed first column is the query id."""
    index = {name.strip(): i for i, name in enumerate(header) if i > 0}
    missing = [name for name in REQUIRED_COLUMNS if name not in index]
    if missing:
        raise ImportFormatError(
            table,
            1,
            f"missing columns {', '.join(missing)} (expected the CREMA-D tabulatedVotes.csv "
            f"header: query id, {', '.join(REQUIRED_COLUMNS)}, agreement, emoVote, ...)",
            field="header",
        )
    return index


def _parse_row(
    table: Path, line: int, fields: list[str], index: dict[str, int], query_type: int
) -> _Row | None:
    """Validate one row; None for rows of another modality (not validated further)."""

    def cell(name: str) -> str:
        pos = index[name]
        if pos >= len(fields):
            raise ImportFormatError(
                table,
                line,
                f"row has {len(fields)} fields, column {name} is number {pos + 1}",
                field=name,
            )
        return fields[pos].strip()

    query_id = _integer(table, line, fields[0].strip(), "query id (first column)")
    if query_id // 100000 not in MODALITIES.values():
        raise ImportFormatError(
            table,
            line,
            f"query id {query_id}: expected 100000 * queryType (1, 2 or 3) + clip number",
            field="query id",
        )
    if query_id // 100000 != query_type:
        return None
    counts = tuple(_integer(table, line, cell(name), name) for name in VOTE_COLUMNS)
    total = _integer(table, line, cell("numResponses"), "numResponses")
    if total != sum(counts):
        raise ImportFormatError(
            table,
            line,
            f"{total} responses but the counts A..S add up to {sum(counts)}",
            field="numResponses",
        )
    file_name = cell("fileName")
    actor, sentence, emotion, intensity = _split_file_name(table, line, file_name)
    return _Row(
        line,
        query_id,
        file_name,
        actor,
        sentence,
        emotion,
        intensity,
        counts,
        total,
        _optional_float(fields, index.get("agreement")),
        _optional_text(fields, index.get("emoVote")),
    )


def _integer(table: Path, line: int, text: str, field: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ImportFormatError(
            table, line, f"expected a non-negative integer, got {text!r}", field=field
        ) from None
    if value < 0:
        raise ImportFormatError(table, line, f"must not be negative, got {value}", field=field)
    return value


# CREMA-D's six emotion codes in file names -> canonical labels.
_EMOTIONS: dict[str, str] = {
    code: str(to_canonical(code, corpus="crema-d"))
    for code in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
}


def _split_file_name(table: Path, line: int, name: str) -> tuple[str, str, str, str]:
    """ActorID_Sentence_Emotion_Level, e.g. 1001_DFA_ANG_XX."""
    match = FILE_NAME.match(name)
    if match is None:
        raise ImportFormatError(
            table,
            line,
            f"{name!r} is not ActorID_Sentence_Emotion_Level (e.g. 1001_DFA_ANG_XX)",
            field="fileName",
        )
    actor, sentence, emotion, intensity = match.groups()
    if emotion not in _EMOTIONS:
        raise ImportFormatError(
            table,
            line,
            f"{name!r}: unknown emotion code {emotion!r} (expected ANG DIS FEA HAP NEU SAD)",
            field="fileName",
        )
    if intensity not in INTENSITIES:
        raise ImportFormatError(
            table,
            line,
            f"{name!r}: unknown level {intensity!r} (expected LO MD HI XX)",
            field="fileName",
        )
    return actor, sentence, emotion, intensity


def _optional_float(fields: list[str], pos: int | None) -> float | str | None:
    """Informational columns never block an import: unparseable text is kept as text."""
    text = _optional_text(fields, pos)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _optional_text(fields: list[str], pos: int | None) -> str | None:
    if pos is None or pos >= len(fields) or not fields[pos].strip():
        return None
    return fields[pos].strip()


# --------------------------------------------------------------------- clips and votes
def _clip(row: _Row, modality: str, actor: dict[str, str], audio: _AudioIndex) -> ClipIn:
    meta: dict[str, Any] = {
        "modality": modality,
        "query_id": row.query_id,
        "sentence": row.sentence,
        "intensity": row.intensity,
        "num_responses": row.num_responses,
        "agreement": row.agreement,
        "emo_vote": row.emo_vote,
    }
    for key in ("age", "race", "ethnicity"):
        if actor.get(key):
            meta[f"actor_{key}"] = int(actor[key]) if actor[key].isdigit() else actor[key]
    path, duration, rate = audio.lookup(row.file_name)
    return ClipIn(
        key=row.file_name,
        path=path,
        duration=duration,
        sample_rate=rate,
        speaker=row.actor,
        gender=actor.get("gender"),
        transcript=SENTENCES.get(row.sentence),
        intended_label=_EMOTIONS[row.emotion],
        meta=meta,
    )


def _votes(row: _Row, modality: str, source: str) -> Iterator[RawVote]:
    pool = f"crowd-{modality}"
    for label, count in zip(VOTE_COLUMNS, row.counts, strict=True):
        if count > 0:
            yield RawVote(row.file_name, pool, label, weight=float(count), source=source, pool=True)


# ----------------------------------------------------------------------- side files
def _read_demographics(path: Path, parsed: ParsedCorpus) -> dict[str, dict[str, str]]:
    """ActorID -> gender (M/F), age, race, ethnicity; empty (with a warning) if absent."""
    if not path.is_file():
        parsed.warnings.append(f"{path.name} not found next to the table: no speaker gender")
        return {}
    with open_csv(path, csv.DictReader) as reader:
        needed = {"ActorID", "Sex"}
        if not needed <= set(reader.fieldnames or ()):
            parsed.warnings.append(f"{path}: expected columns ActorID, Sex; ignored")
            return {}
        actors: dict[str, dict[str, str]] = {}
        for rec in reader:
            actor_id = (rec.get("ActorID") or "").strip()
            if not actor_id:
                continue
            sex = (rec.get("Sex") or "").strip()
            actors[actor_id] = {
                "gender": GENDERS.get(sex.lower(), sex),
                "age": (rec.get("Age") or "").strip(),
                "race": (rec.get("Race") or "").strip(),
                "ethnicity": (rec.get("Ethnicity") or "").strip(),
            }
    return actors


def _check_stimuli(path: Path, seen: set[str], modality: str, parsed: ParsedCorpus) -> None:
    """Warn about stimuli in SentenceFilenames.csv that got no votes for this modality."""
    if not path.is_file():
        return
    with open_csv(path, csv.DictReader) as reader:
        if "Filename" not in (reader.fieldnames or ()):
            parsed.warnings.append(f"{path}: no Filename column; stimulus check skipped")
            return
        stimuli = {(rec.get("Filename") or "").strip() for rec in reader} - {""}
    unvoted = sorted(stimuli - seen)
    if unvoted:
        parsed.warnings.append(
            f"{len(unvoted)} stimuli in {path.name} have no {modality} votes "
            f"(e.g. {', '.join(unvoted[:3])}); they are not imported"
        )
    unlisted = sorted(seen - stimuli)
    if unlisted:
        parsed.warnings.append(
            f"{len(unlisted)} voted clips are not in {path.name} (e.g. {unlisted[0]})"
        )


class _AudioIndex:
    """Finds clip audio by listing each candidate folder once (7k stat calls are slow
    on network file systems) and reads durations from file headers only."""

    def __init__(self, base: Path, *, extra_flat: bool) -> None:
        self.base = base
        self.folders: list[tuple[str, str, set[str]]] = []
        candidates = list(AUDIO_FOLDERS)
        if extra_flat:  # --audio-root may point straight at AudioWAV/ or AudioMP3/
            candidates += [("", ".wav"), ("", ".mp3")]
        for folder, ext in candidates:
            directory = base / folder if folder else base
            if directory.is_dir():
                names = {n for n in os.listdir(directory) if n.endswith(ext)}
                if names:
                    self.folders.append((folder, ext, names))
        self.found = 0
        self.unreadable: list[str] = []

    def lookup(self, file_name: str) -> tuple[str | None, float | None, int | None]:
        for folder, ext, names in self.folders:
            name = file_name + ext
            if name in names:
                relative = f"{folder}/{name}" if folder else name
                self.found += 1
                try:
                    info = audio_info(self.base / relative)
                except AudioError as exc:
                    self.unreadable.append(str(exc))
                    return relative, None, None
                return relative, info.duration_s, info.sample_rate
        return None, None, None

    def report(self, n_clips: int, parsed: ParsedCorpus) -> None:
        if not self.folders:
            parsed.warnings.append(
                f"no audio under {self.base} (AudioWAV/ or AudioMP3/): clips imported "
                "without audio; pass --audio-root to point at it"
            )
        elif self.found < n_clips:
            parsed.warnings.append(f"{n_clips - self.found} of {n_clips} clips have no audio file")
        if self.unreadable:
            parsed.warnings.append(
                f"{len(self.unreadable)} audio files unreadable, e.g. {self.unreadable[0]}"
            )
