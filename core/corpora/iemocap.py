"""IEMOCAP importer: every evaluator's categorical labels, actors' self-reports and V/A/D.

PATH is the `IEMOCAP_full_release` folder (holding Session1..Session5) or one `SessionN`
folder. Read per session:

* `dialog/EmoEvaluation/<dialog>.txt`: one block per utterance. The header line
  `[START - END]\\tTURN\\tCODE\\t[V, A, D]` gives the consensus code and consensus V/A/D;
  `C-E2:\\tFrustration; Anger;\\t(comment)` lines are evaluator labels (first rank 0, the
  rest rank 1, 2, ... in the order written); `C-F1:` / `C-M1:` lines are the two actors'
  own reports; `A-E3:\\tval 3; act 2; dom  2;\\t()` lines are per-rater V/A/D (clip meta).
* `dialog/EmoEvaluation/Categorical/<dialog>_<rater>_cat.txt`
  (`Ses01F_impro01_F000 :Neutral state; ()`): the same categorical answers split per rater;
  used only for (utterance, rater) pairs the main file lacks, so nobody is counted twice.
* `dialog/transcriptions/<dialog>.txt` (`Ses01F_impro01_F000 [006.2901-008.2357]: Excuse
  me.`); lines for non-utterance ids (`M_noise`, ...) are skipped.
* `sentences/wav/<dialog>/<utt>.wav`: listed once per dialog folder, probed with soundfile.

Decisions (stored in the dataset options under "iemocap"):

* Evaluator ids are per session (`Ses01-E2`): the release numbers evaluators E1..E6 in
  every session but never says that E2 of Session1 is E2 of Session3. Keeping them apart
  never merges two people by mistake; per-rater statistics can still group by the suffix.
  `extra={"evaluators": "global"}` uses the bare ids (`E2`) when you know they are shared.
* Actors' self-reports are annotators of kind "actor" with ids `Ses01-F1-self`: each session
  has its own two actors, and they rate both their own and their partner's turns. Kind
  "actor" keeps them out of the human reference distribution
  (ambiscope.core.reference.human pools "human").
* Clip paths are relative to the release folder (`Session1/sentences/wav/...`), also when
  PATH is one session, so sessions imported one by one into the same dataset agree.
  `--audio-root` replaces that folder for audio (same `SessionN/sentences/wav` layout).
* split = the session ("Session1".."Session5"), for leave-one-session-out evaluation;
  speaker = session + the letter of the actor who speaks (`Ses01F_impro01_M000` is
  spoken by `Ses01M`), gender = that letter.
* intended_label = the consensus code mapped (`xxx` -> None; `exc` -> happy with
  --merge-excited; None when outside --labels); the raw code stays in meta["consensus"].
* An evaluator's label list is stored as written (ranks 0, 1, ...) and the format declares
  `label_lists`, so the `multi_label` convention decides how a list counts (primary only,
  1/len(list) each, or 1 each). The `label_projection` convention `4class` (the
  `scaling-ambiguity` preset) imports as `--labels 4class` would, without folding
  `excited` into `happy`: the official code's IEMOCAP classes are Anger, Happiness,
  Neutral state and Sadness. A clip left with only secondary in-set votes is dropped or
  kept by the `secondary_only` convention (see ambiscope.core.corpora.base).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ambiscope.core.audio import AudioError, audio_info
from ambiscope.core.corpora import corpus_format
from ambiscope.core.corpora.base import ImportFormatError, ImportOptions, ParsedCorpus, RawVote
from ambiscope.core.labels import LabelError, to_canonical
from ambiscope.db import ClipIn

FORMAT = "iemocap"
CORPUS = "iemocap"

_SESSION_DIR = re.compile(r"^Session(\d+)$", re.IGNORECASE)
_SESSION_OF_TURN = re.compile(r"^Ses(\d{2})")
_NUMBER = r"[-+]?\d+(?:\.\d*)?"
_HEADER = re.compile(
    rf"^\[\s*(?P<start>{_NUMBER})\s*-\s*(?P<end>{_NUMBER})\s*\]\s+(?P<turn>\S+)\s+"
    rf"(?P<code>\S+)\s+\[\s*(?P<v>{_NUMBER})\s*,\s*(?P<a>{_NUMBER})\s*,\s*(?P<d>{_NUMBER})"
    r"\s*\]\s*$"
)
_RATER_LINE = re.compile(r"^(?P<what>[CA])-(?P<who>[A-Za-z])(?P<num>\d+)\s*:\s*(?P<rest>.*)$")
_DIMENSION = re.compile(rf"\b(?P<dim>val|act|dom)\w*\s*:?\s*(?P<value>{_NUMBER})", re.IGNORECASE)
_CATEGORICAL_FILE = re.compile(r"^(?P<dialog>.+)_(?P<who>[A-Za-z])(?P<num>\d+)_cat\.txt$")
_CATEGORICAL_LINE = re.compile(r"^(?P<turn>\S+)\s*:(?P<rest>.*)$")
_TRANSCRIPT_LINE = re.compile(r"^(?P<turn>\S+)\s+\[[^\]]*\]\s*:\s?(?P<text>.*)$")
_DIM_ORDER = ("val", "act", "dom")


def default_name(path: Path) -> str:
    """Always "iemocap": importing sessions one at a time fills one dataset."""
    return "iemocap"


@dataclass
class _Utterance:
    """One EmoEvaluation block while it is being read."""

    key: str
    dialog: str
    folder: str  # the session folder on disk, for the audio path
    session: str  # "Ses01"
    split: str  # "Session1"
    start: float
    end: float
    code: str
    vad: list[float]
    raters: set[str] = field(default_factory=set)  # annotator ids that gave labels
    rater_vad: dict[str, list[float | None]] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)


@dataclass
class _Reader:
    """Reading state shared by the files of one import (votes, counts, bad lines)."""

    parsed: ParsedCorpus
    options: ImportOptions
    utterances: dict[str, _Utterance] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    listings: dict[str, frozenset[str]] = field(default_factory=dict)  # audio folder -> names

    @property
    def global_evaluators(self) -> bool:
        return str(self.options.extra.get("evaluators", "per-session")) == "global"

    def fail(self, path: Path, line: int | None, message: str, field: str | None = None) -> None:
        self.parsed.fail(
            ImportFormatError(path, line, message, field), skip_bad=self.options.skip_bad
        )

    def rater(self, session: str, who: str, num: str) -> tuple[str, str]:
        """(annotator id, kind) for rater letter + number (see module docstring)."""
        letter = who.upper()
        if letter in "FM":
            return f"{session}-{letter}{num}-self", "actor"
        if letter != "E":
            self.counts["unknown rater letter"] += 1
        rid = f"{letter}{num}"
        return (rid if self.global_evaluators else f"{session}-{rid}"), "human"

    def add_labels(
        self, utt: _Utterance, annotator: str, kind: str, labels: list[str], source: str
    ) -> None:
        utt.raters.add(annotator)
        self.parsed.votes.extend(
            RawVote(utt.key, annotator, label, rank, kind=kind, source=source)
            for rank, label in enumerate(labels)
        )


# ---------------------------------------------------------------------------- reading


@corpus_format(
    FORMAT,
    default_name=default_name,
    summary="IEMOCAP evaluators' categorical labels, self-reports and V/A/D",
    extra=("evaluators",),
    label_lists=True,
    projections=("4class",),
)
def read(path: Path, options: ImportOptions) -> ParsedCorpus:
    """Read an IEMOCAP release (or one session) into clips and raw votes."""
    release, sessions = _locate(path)
    audio_base = Path(options.audio_root) if options.audio_root else release
    parsed = ParsedCorpus(FORMAT, CORPUS, root=str(audio_base.resolve()))
    reader = _Reader(parsed, options)
    for session_dir in sessions:
        _read_session(reader, session_dir)
    if not reader.utterances and not parsed.bad:
        raise ImportFormatError(path, None, "no utterances found in dialog/EmoEvaluation/*.txt")
    transcripts = _read_transcripts(reader, sessions)
    parsed.clips = [
        _clip(reader, utt, audio_base, transcripts.get(utt.key))
        for utt in reader.utterances.values()
    ]
    parsed.warnings.extend(_audio_warning(reader, audio_base) + _warnings(reader.counts))
    parsed.options["iemocap"] = {
        "evaluators": "global" if reader.global_evaluators else "per-session",
        "actor_ids": "SesNN-F1-self / SesNN-M1-self (kind actor)",
        "sessions": [d.name for d in sessions],
        "categorical_votes_added": reader.counts["categorical added"],
    }
    return parsed


def _locate(path: Path) -> tuple[Path, list[Path]]:
    """(release folder, session folders) for a release or a single session folder."""
    if not path.is_dir():
        raise ImportFormatError(path, None, "expected the IEMOCAP_full_release folder")
    if _is_session(path):
        return path.parent, [path]
    sessions = sorted(
        (p for p in path.iterdir() if p.is_dir() and _is_session(p)),
        key=lambda p: (_session_number(p.name), p.name),
    )
    if not sessions:
        raise ImportFormatError(
            path,
            None,
            "not an IEMOCAP release: expected Session1..Session5 folders (or one of them) "
            "holding dialog/EmoEvaluation/*.txt",
        )
    return path, sessions


def _is_session(path: Path) -> bool:
    return (path / "dialog" / "EmoEvaluation").is_dir()


def _session_number(name: str) -> int:
    m = _SESSION_DIR.match(name)
    return int(m.group(1)) if m else 1_000


def _real_files(folder: Path, suffix: str) -> list[Path]:
    """Files with `suffix` directly in `folder`, sorted, without macOS `._*` shadow files."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.name.endswith(suffix) and not p.name.startswith("._")
    )


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, raw in enumerate(fh, 1):
            yield number, raw.strip()


def _read_session(reader: _Reader, session_dir: Path) -> None:
    evaluation = session_dir / "dialog" / "EmoEvaluation"
    for file in _real_files(evaluation, ".txt"):
        _read_evaluation(reader, file, session_dir.name)
    for file in _real_files(evaluation / "Categorical", "_cat.txt"):
        _read_categorical(reader, file, session_dir.name)


def _session_of(turn: str, folder: str) -> tuple[str, str]:
    """("Ses01", "Session1") from the turn name, falling back to the folder name."""
    m = _SESSION_OF_TURN.match(turn)
    if m:
        return f"Ses{m.group(1)}", f"Session{int(m.group(1))}"
    folder_match = _SESSION_DIR.match(folder)
    if folder_match:
        number = int(folder_match.group(1))
        return f"Ses{number:02d}", f"Session{number}"
    return folder, folder


def _read_evaluation(reader: _Reader, path: Path, folder: str) -> None:
    """Parse one EmoEvaluation file (see the module docstring for the block layout)."""
    current: _Utterance | None = None
    skipping = False  # inside a block whose header was bad (with --skip-bad)
    for number, line in _read_lines(path):
        if not line or line.startswith("%"):
            continue
        if line.startswith("["):
            current = _start_block(reader, path, number, line, folder)
            skipping = current is None
            continue
        m = _RATER_LINE.match(line)
        if m is None:
            reader.fail(path, number, f"unrecognised line {line[:40]!r}")
            continue
        if current is None:
            if not skipping:
                reader.fail(
                    path,
                    number,
                    "evaluator line before any utterance header",
                    field=f"{m['what']}-{m['who']}{m['num']}",
                )
            continue
        source = f"{path}:{number}"
        if m["what"].upper() == "C":
            _categorical_line(reader, current, m, source, path, number)
        else:
            _dimension_line(reader, current, m, path, number)


def _start_block(
    reader: _Reader, path: Path, number: int, line: str, folder: str
) -> _Utterance | None:
    """The utterance a header line opens, or None (bad line recorded or raised)."""
    m = _HEADER.match(line)
    if m is None:
        reader.fail(
            path,
            number,
            "expected '[START - END]<TAB>TURN<TAB>EMOTION<TAB>[V, A, D]'",
            field="header",
        )
        return None
    turn = m["turn"]
    if turn in reader.utterances:
        reader.counts["duplicate utterance block"] += 1
        return None
    session, split = _session_of(turn, folder)
    utt = _Utterance(
        key=turn,
        dialog=path.stem,
        folder=folder,
        session=session,
        split=split,
        start=float(m["start"]),
        end=float(m["end"]),
        code=m["code"],
        vad=[float(m["v"]), float(m["a"]), float(m["d"])],
    )
    reader.utterances[turn] = utt
    return utt


def _split_labels(text: str) -> tuple[list[str], str]:
    """`Frustration; Anger;\t(comment)` -> (["Frustration", "Anger"], "comment").

    Labels never contain "(", while comments may hold ";" or nested parentheses, so the
    labels end at the first "(".
    """
    body, _, comment = text.partition("(")
    comment = comment.strip()
    comment = comment[:-1].strip() if comment.endswith(")") else comment
    labels = [part.strip().lstrip(":").strip() for part in body.split(";")]
    return [label for label in labels if label], comment


def _categorical_line(
    reader: _Reader, utt: _Utterance, m: re.Match[str], source: str, path: Path, number: int
) -> None:
    tag = f"C-{m['who']}{m['num']}"
    labels, comment = _split_labels(m["rest"])
    if not labels:
        reader.fail(path, number, "no emotion label", field=tag)
        return
    annotator, kind = reader.rater(utt.session, m["who"], m["num"])
    if annotator in utt.raters:
        reader.counts["repeated evaluator line"] += 1
        return
    reader.add_labels(utt, annotator, kind, labels, source)
    if comment:
        utt.comments[annotator] = comment


def _dimension_line(
    reader: _Reader, utt: _Utterance, m: re.Match[str], path: Path, number: int
) -> None:
    values: dict[str, float] = {}
    body, _ = _split_labels(m["rest"])
    for part in _DIMENSION.finditer(";".join(body)):
        values[part["dim"].lower()[:3]] = float(part["value"])
    if not values:
        reader.fail(
            path, number, "expected 'val N; act N; dom N;'", field=f"A-{m['who']}{m['num']}"
        )
        return
    annotator, _ = reader.rater(utt.session, m["who"], m["num"])
    utt.rater_vad[annotator] = [values.get(dim) for dim in _DIM_ORDER]


def _read_categorical(reader: _Reader, path: Path, folder: str) -> None:
    """Add per-rater Categorical answers the main EmoEvaluation file did not have."""
    name = _CATEGORICAL_FILE.match(path.name)
    if name is None:
        reader.counts["unrecognised Categorical file name"] += 1
        return
    for number, line in _read_lines(path):
        if not line:
            continue
        m = _CATEGORICAL_LINE.match(line)
        if m is None:
            reader.fail(path, number, "expected 'TURN :Label; Label; (comment)'")
            continue
        labels, _ = _split_labels(m["rest"])
        if not labels:
            reader.fail(path, number, "no emotion label", field=m["turn"])
            continue
        utt = reader.utterances.get(m["turn"])
        if utt is None:
            reader.counts["Categorical line for an unknown utterance"] += 1
            continue
        annotator, kind = reader.rater(utt.session, name["who"], name["num"])
        if annotator in utt.raters:
            reader.counts["categorical already in main file"] += 1
            continue
        reader.add_labels(utt, annotator, kind, labels, f"{path}:{number}")
        reader.counts["categorical added"] += 1


def _read_transcripts(reader: _Reader, sessions: list[Path]) -> dict[str, str]:
    """Utterance id -> transcript text, for ids that are utterances of this import."""
    out: dict[str, str] = {}
    for session_dir in sessions:
        for file in _real_files(session_dir / "dialog" / "transcriptions", ".txt"):
            for _, line in _read_lines(file):
                m = _TRANSCRIPT_LINE.match(line)
                if m and m["turn"] in reader.utterances:
                    out[m["turn"]] = m["text"].strip()
    return out


# ---------------------------------------------------------------------------- clips


def _clip(reader: _Reader, utt: _Utterance, audio_base: Path, transcript: str | None) -> ClipIn:
    letter = utt.key.rsplit("_", 1)[-1][:1].upper()
    speaker_letter = letter if letter in ("F", "M") else None
    if speaker_letter is None:
        reader.counts["turn name without F/M speaker letter"] += 1
    relative = f"{utt.folder}/sentences/wav/{utt.dialog}/{utt.key}.wav"
    path, duration, rate = _probe(reader, audio_base, relative)
    meta: dict[str, Any] = {
        "dialog": utt.dialog,
        "type": "improvised" if "_impro" in utt.dialog else "scripted",
        "start": utt.start,
        "end": utt.end,
        "consensus": utt.code,
        "vad": utt.vad,
    }
    if utt.rater_vad:
        meta["rater_vad"] = utt.rater_vad
    if utt.comments:
        meta["comments"] = utt.comments
    return ClipIn(
        key=utt.key,
        path=path,
        duration=duration,
        sample_rate=rate,
        speaker=f"{utt.session}{speaker_letter}" if speaker_letter else None,
        gender=speaker_letter,
        split=utt.split,
        transcript=transcript,
        intended_label=intended_label(utt.code, reader.options),
        meta=meta,
    )


def _probe(
    reader: _Reader, audio_base: Path, relative: str
) -> tuple[str | None, float | None, int | None]:
    """(relative path, duration, sample rate) when the WAV exists; one listing per folder."""
    folder, _, name = relative.rpartition("/")
    names = reader.listings.get(folder)
    if names is None:
        try:
            names = frozenset(os.listdir(audio_base / folder))
        except OSError:
            names = frozenset()
        reader.listings[folder] = names
    if name not in names:
        reader.counts["clips without audio"] += 1
        return None, None, None
    try:
        info = audio_info(audio_base / relative)
    except AudioError:
        reader.counts["unreadable audio files"] += 1
        return relative, None, None
    return relative, info.duration_s, info.sample_rate


def intended_label(code: str, options: ImportOptions) -> str | None:
    """The canonical label of a consensus code under the user's options (None: no label)."""
    try:
        label = to_canonical(code, corpus=CORPUS, extra=dict(options.label_map))
    except LabelError:
        return None
    if label == "excited" and options.merge_excited:
        label = "happy"
    if label is not None and options.labels and label not in options.labels:
        return None
    return label


def _audio_warning(reader: _Reader, audio_base: Path) -> list[str]:
    """One line for "no audio at all" (likely a wrong --audio-root), else a count."""
    missing = reader.counts.pop("clips without audio", 0)
    if missing and missing == len(reader.parsed.clips):
        return [
            f"no audio under {audio_base} (SessionN/sentences/wav/<dialog>/<utterance>.wav): "
            "clips have no audio path"
        ]
    return [f"clips without audio: {missing}"] if missing else []


def _warnings(counts: Counter[str]) -> list[str]:
    quiet = {"categorical added", "categorical already in main file"}
    return [f"{what}: {n}" for what, n in sorted(counts.items()) if what not in quiet and n]


# ---------------------------------------------------------------------------- votes
