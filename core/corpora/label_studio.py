"""Label Studio importer: an audio classification project's JSON export, every rater kept.

Reads the "JSON" export (a list of tasks, each with `data`, `annotations` and
`predictions`) and the flat "JSON-MIN" export (one record per annotation).

- **Back onto the same clips.** Tasks written by `ambiscope export subset --format
  label-studio` carry `data.dataset`, `data.clip_id` and `data.key`; imported into the
  workspace they came from, their votes merge onto those clips instead of making a dataset
  (`ambiscope.core.corpora.ls_merge`: matching, `--into`, mixed exports, replacements).
  Everything below describes what both paths read.

- **Votes.** Each non-cancelled annotation is one rater, `ls-<completed_by id>` (the
  e-mail when that is all the export has; `ls-annotation-<id>` when it names nobody), of
  kind `human` or the `kind` option (e.g. `review`: kept out of the human reference).
  Label Studio stores a skipped task as a cancelled annotation: skipped too.
  Labels come from the `choices` results of one control: option `from_name`, else the
  only choices control in the export, else the one called `emotion`. Several choices from
  one rater become several votes: the first rank 0, the next rank 1, 2... Label Studio
  stores choices in the order of the labeling config, not the order clicked, so rank > 0
  only says "also chosen"; choices that become one label (Happy and Excited under
  `--merge-excited`) keep the lowest rank. A rater's later annotation of the same task replaces an
  earlier one. Tasks without annotations are imported as clips without votes.
- **Clip key.** `data.key` or `data.clip` when present; else the audio file name (if it
  has an extension) without the extension and, for upload URLs only, without the
  8-hex-digit prefix Label Studio gives uploaded files (`/data/upload/1/3f2a9c1e-ses01.wav`
  -> `ses01`); else `task-<id>`. Two tasks with one key are an error: add `data.key`.
- **Audio** (`data.audio`, or option `audio_key`): relative paths resolve against
  `--audio-root` or the export's folder, absolute paths as they are. Upload URLs
  (`/data/upload/...`) are looked up under `--audio-root` (Label Studio's `media` folder,
  its `upload` folder, or a folder of the original files); `/data/local-files/?d=PATH`
  under `--audio-root`, else `/PATH`. Remote URLs (http, s3, gs...) and files not found
  give clips without audio; the original text is kept in `meta.audio_url`. A file found
  outside that root (the dataset root; symlinks resolved) is refused unless you pass
  `--allow-outside-root`. Other `data` fields go to `meta`, except `speaker`, `gender`,
  `split` and `transcript`.
- **Label set.** Label Studio's export does not carry the labeling config, so the labels
  nobody chose would be missing; the `<Choice>`s of the emotion `<Choices>` control of the
  config (option `ls_config`, else `labeling_config.xml` next to the export, as ambiscope's
  label-studio export writes it) are all declared labels of a new dataset.
- **Predictions** are not votes: they are kept in `ParsedCorpus.predictions` as
  `{clip_key, task_id, model_version, labels, label, score}` for a later run import.
  Exports that list predictions as bare ids (Label Studio's `predictions.only_id`
  serialization option) are counted in a warning: there is nothing to read.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from ambiscope.core.audio import AudioError, audio_info
from ambiscope.core.corpora import corpus_format
from ambiscope.core.corpora.base import (
    ClipSource,
    ImportFormatError,
    ImportOptions,
    ParsedCorpus,
    RawVote,
    check_audio_path,
)
from ambiscope.core.corpora.ls_merge import merge_tasks
from ambiscope.core.corpora.reading import json_loads, read_text
from ambiscope.core.paths import RootGuard
from ambiscope.db import ClipIn
from ambiscope.db.models import ANNOTATOR_KINDS

FORMAT = "label-studio"
CONFIG_NAME = "labeling_config.xml"  # what `ambiscope export subset --format label-studio` writes

UPLOAD_HASH = re.compile(r"^[0-9a-f]{8}-(?=.)")  # uuid4()[:8] + "-" in Label Studio uploads
CLIP_FIELDS: tuple[str, ...] = ("speaker", "gender", "split", "transcript")
KEY_FIELDS: tuple[str, ...] = ("key", "clip")
GENDERS = {"m": "M", "male": "M", "f": "F", "female": "F"}
# JSON-MIN bookkeeping fields (everything else is task data or a control's value)
MIN_RESERVED = frozenset(
    {"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement"}
)


def default_name(path: Path) -> str:
    """Exports are usually called `project-3-at-2024-...json`; name the dataset after it."""
    return path.stem


@corpus_format(
    FORMAT,
    default_name=default_name,
    summary="a Label Studio JSON export, one annotator per rater",
    extra=("audio_key", "from_name", "kind", "into", "ls_config"),
    merge=merge_tasks,
)
def read(path: Path, options: ImportOptions) -> ParsedCorpus:
    """Read a Label Studio JSON or JSON-MIN export (see the module docstring)."""
    kind = str(options.extra.get("kind", "human"))
    if kind not in ANNOTATOR_KINDS:
        raise ImportFormatError(
            path,
            None,
            f"unknown annotator kind {kind!r} (expected {', '.join(ANNOTATOR_KINDS)})",
            field="kind",
        )
    items = _load(path)
    audio_key = str(options.extra.get("audio_key", "audio"))
    if any(isinstance(item, dict) and ("data" in item or "annotations" in item) for item in items):
        flavour, tasks = "json", _tasks_from_json(items)
    elif all(isinstance(item, dict) for item in items):
        flavour, tasks = "json-min", _tasks_from_min(path, items, audio_key, options)
    else:
        raise ImportFormatError(
            path,
            None,
            "not a Label Studio export: expected a list of tasks with 'data' "
            "(JSON export) or flat annotation records (JSON-MIN export)",
        )
    from_name = _pick_from_name(path, tasks, options)
    config = _config_path(path, options)
    base = Path(options.audio_root).resolve() if options.audio_root else path.resolve().parent
    parsed = ParsedCorpus(format=FORMAT, corpus=None, root=str(base))
    parsed.options["label_studio"] = {
        "export": flavour,
        "from_name": from_name,
        "file": str(path.resolve()),
    }
    locator = _AudioLocator(
        base, bool(options.audio_root), allow_outside=options.allow_outside_root
    )
    if config is not None:
        from_name, parsed.declared_labels = _config_choices(config, from_name)
        parsed.options["label_studio"]["config"] = str(config.resolve())
    builder = _Builder(path, parsed, from_name, audio_key, locator, kind)
    for task in tasks:
        try:
            builder.add(task)
        except ImportFormatError as error:
            parsed.fail(error, skip_bad=options.skip_bad)
    builder.finish(flavour)
    return parsed


# -------------------------------------------------------------------------- loading
def _load(path: Path) -> list[Any]:
    try:
        text = read_text(path)
    except OSError as exc:
        raise ImportFormatError(path, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        data = json_loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(
            path, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})"
        ) from None
    if isinstance(data, dict) and "data" in data:  # a single task
        data = [data]
    if not isinstance(data, list):
        raise ImportFormatError(
            path, None, f"expected a JSON list of Label Studio tasks, got {type(data).__name__}"
        )
    if not data:
        raise ImportFormatError(path, None, "the export holds no tasks")
    return data


@dataclass
class _Annotation:
    annotator: str
    results: list[Any]
    cancelled: bool = False


@dataclass
class _Task:
    """One task in a flavour-independent form."""

    index: int
    id: Any
    data: Any
    annotations: list[_Annotation] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    prediction_ids: int = 0  # predictions exported as ids only (nothing to read)
    problem: tuple[str, str] | None = None  # (field, message) found while loading

    @property
    def where(self) -> str:
        if self.id is None:
            return f"task at index {self.index}"
        return f"task id {self.id} (index {self.index})"


def _tasks_from_json(items: list[Any]) -> list[_Task]:
    """Full JSON export; structural problems are noted per task so --skip-bad can skip it."""
    tasks: list[_Task] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            tasks.append(_Task(index, None, None, problem=("task", "expected an object")))
            continue
        task = _Task(index, item.get("id"), item.get("data"))
        tasks.append(task)
        raw = item.get("annotations") or item.get("completions") or []  # LS < 1.0: completions
        if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
            task.problem = ("annotations", "expected a list of objects")
            continue
        for ann in raw:
            task.annotations.append(
                _Annotation(
                    _annotator(ann.get("completed_by"), ann.get("id")),
                    ann.get("result") or [],
                    bool(ann.get("was_cancelled") or ann.get("skipped")),
                )
            )
        predictions = item.get("predictions") or []
        task.predictions = predictions if isinstance(predictions, list) else []
        task.prediction_ids = sum(_is_id(p) for p in task.predictions)
    return tasks


def _is_id(value: Any) -> bool:
    """Label Studio exports predictions as bare ids unless asked for full objects."""
    return isinstance(value, int | str) and not isinstance(value, bool)


def _as_clip_id(value: Any) -> int | None:
    """`data.clip_id` as ambiscope wrote it (an int; a digit string from a spreadsheet)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _tasks_from_min(
    path: Path, items: list[Any], audio_key: str, options: ImportOptions
) -> list[_Task]:
    """JSON-MIN: one record per annotation, `{from_name: "Happy" | {"choices": [...]}}`."""
    control = _min_control(path, items, audio_key, options)
    by_id: dict[Any, _Task] = {}
    for index, record in enumerate(items):
        task_id = record.get("id")
        group = task_id if task_id is not None else f"index-{index}"  # no id: its own task
        task = by_id.get(group)
        if task is None:
            data = {k: v for k, v in record.items() if k not in MIN_RESERVED and k != control}
            task = by_id[group] = _Task(index, task_id, data)
        value = record.get(control)
        choices = _min_choices(value)
        result = [{"type": "choices", "from_name": control, "value": {"choices": choices}}]
        annotator = _annotator(record.get("annotator"), record.get("annotation_id"))
        task.annotations.append(_Annotation(annotator, result if choices else []))
    return list(by_id.values())


def _min_control(path: Path, items: list[Any], audio_key: str, options: ImportOptions) -> str:
    if options.extra.get("from_name"):
        return str(options.extra["from_name"])
    keys = {k for item in items for k in item}
    if "emotion" in keys:
        return "emotion"
    dict_valued = sorted(
        {
            k
            for item in items
            for k, v in item.items()
            if isinstance(v, dict) and isinstance(v.get("choices"), list)
        }
    )
    if len(dict_valued) == 1:
        return dict_valued[0]
    candidates = sorted(keys - MIN_RESERVED - {audio_key})
    raise ImportFormatError(
        path,
        None,
        "JSON-MIN export: cannot tell which field holds the emotion choices "
        f"(fields: {', '.join(candidates)}); name it with the from_name option",
        field="from_name",
    )


def _min_choices(value: Any) -> list[str]:
    """JSON-MIN writes one choice as a string, several as {"choices": [...]}."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [str(c) for c in value.get("choices") or []]
    if isinstance(value, list):
        return [c for v in value for c in _min_choices(v)]
    return [str(value)]


def _annotator(completed_by: Any, annotation_id: Any) -> str:
    """`ls-<user id>`; exports write completed_by as an id, a user object or an e-mail."""
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("id", completed_by.get("email"))
    if completed_by is None or completed_by == "":
        return f"ls-annotation-{annotation_id}"
    return f"ls-{completed_by}"


def _stated_key(data: dict[str, Any]) -> str | None:
    """`data.key` or `data.clip`, when the task states one."""
    for name in KEY_FIELDS:
        value = data.get(name)
        if isinstance(value, str | int) and str(value).strip():
            return str(value).strip()
    return None


def _file_stem(audio_name: str) -> str | None:
    """The audio file name without extension; "stream?id=3" names no file."""
    name = PurePosixPath(audio_name)
    return name.stem if name.suffix and name.stem else None


# -------------------------------------------------------------------------- config
def _config_path(path: Path, options: ImportOptions) -> Path | None:
    """The labeling config: `ls_config`, else `labeling_config.xml` next to the export.

    Label Studio's export does not carry the config, and without it the label set is only
    the labels somebody chose, not the ones they could choose.
    """
    explicit = options.extra.get("ls_config")
    if explicit:
        return Path(explicit)
    beside = path.parent / CONFIG_NAME
    return beside if beside.is_file() else None


def _config_choices(config: Path, from_name: str | None) -> tuple[str, list[str]]:
    """(control name, its choices) of the emotion `<Choices>` control of a labeling config:
    the one the annotations use, else the only one, else the one called `emotion`."""
    try:
        root = ET.fromstring(read_text(config))
    except OSError as exc:
        raise ImportFormatError(config, None, f"cannot read: {exc.strerror or exc}") from None
    except ET.ParseError as exc:
        raise ImportFormatError(config, exc.position[0], f"invalid XML: {exc}") from None
    controls = {c.get("name", ""): c for c in root.iter("Choices")}
    if from_name is None and len(controls) == 1:
        from_name = next(iter(controls))
    control = controls.get(from_name or "emotion")
    if control is None:
        wanted = from_name or "emotion"
        have = ", ".join(sorted(controls)) or "none"
        raise ImportFormatError(
            config, None, f"no <Choices name={wanted!r}> control (Choices controls: {have})"
        )
    values = [c.get("alias") or c.get("value") or "" for c in control.iter("Choice")]
    return control.get("name", ""), [v.strip() for v in values if v.strip()]


# ------------------------------------------------------------------------ controls
def _choice_results(results: Any) -> Iterable[tuple[str, list[Any]]]:
    """(from_name, choices) of every choices result in an annotation or prediction."""
    if not isinstance(results, list):
        return
    for result in results:
        if not isinstance(result, dict):
            continue
        value = result.get("value")
        if not isinstance(value, dict) or not isinstance(value.get("choices"), list):
            continue
        if result.get("type", "choices") != "choices":
            continue
        yield str(result.get("from_name", "")), value["choices"]


def _pick_from_name(path: Path, tasks: list[_Task], options: ImportOptions) -> str | None:
    if options.extra.get("from_name"):
        return str(options.extra["from_name"])
    names = Counter(
        name
        for task in tasks
        for ann in task.annotations
        for name, _ in _choice_results(ann.results)
    )
    if len(names) <= 1:
        return next(iter(names), None)
    if "emotion" in names:
        return "emotion"
    raise ImportFormatError(
        path,
        None,
        f"several choices controls ({', '.join(sorted(names))}); name the "
        "emotion one with the from_name option",
        field="from_name",
    )


# ------------------------------------------------------------------------ building
class _Builder:
    """Turns tasks into clips, votes and kept predictions, counting what it skipped."""

    def __init__(
        self,
        path: Path,
        parsed: ParsedCorpus,
        from_name: str | None,
        audio_key: str,
        audio: _AudioLocator,
        kind: str,
    ) -> None:
        self.path = path
        self.kind = kind
        self.parsed = parsed
        self.from_name = from_name
        self.audio_key = audio_key
        self.audio = audio
        self.keys: dict[str, Any] = {}
        self.cancelled = 0
        self.replaced = 0
        self.empty = 0
        self.unannotated = 0
        self.prediction_ids = 0
        self.models: Counter[str] = Counter()

    def add(self, task: _Task) -> None:
        """Check the task fully before recording anything, so a bad task leaves no trace."""
        if task.problem is not None:
            field_name, message = task.problem
            raise ImportFormatError(self.path, None, f"{task.where}: {message}", field=field_name)
        if not isinstance(task.data, dict):
            raise ImportFormatError(
                self.path, None, f"{task.where}: expected an object", field="data"
            )
        audio = task.data.get(self.audio_key)
        if not isinstance(audio, str) or not audio.strip():
            raise ImportFormatError(
                self.path, None, f"{task.where}: no audio", field=f"data.{self.audio_key}"
            )
        located = self.audio.locate(
            audio.strip(), lambda shown, full: self._check_inside(task, shown, full)
        )
        key = self._key(task, located.name)
        if key in self.keys:
            raise ImportFormatError(
                self.path,
                None,
                f"{task.where}: clip key {key!r} already used by task id "
                f"{self.keys[key]}; give the tasks a data.key",
                field="data.key",
            )
        votes = self._votes(task, key)
        self.keys[key] = task.id
        self.parsed.clips.append(self._clip(task, key, located))
        self.parsed.sources[key] = self._source(task, located.name)
        self.parsed.votes.extend(votes)
        self.unannotated += not task.annotations
        self.prediction_ids += task.prediction_ids
        self._predictions(task, key)

    def _check_inside(self, task: _Task, shown: str, full: Path) -> None:
        check_audio_path(
            self.audio.guard,
            full,
            shown,
            source=self.path,
            line=None,
            field=f"data.{self.audio_key}",
            context=f"{task.where}: ",
        )

    def _key(self, task: _Task, audio_name: str) -> str:
        return (
            _stated_key(task.data)
            or _file_stem(audio_name)
            or f"task-{task.id if task.id is not None else task.index}"
        )

    def _source(self, task: _Task, audio_name: str) -> ClipSource:
        """What the task says about its clip: ambiscope's ids, the stated key, the file."""
        data = task.data
        dataset = data.get("dataset")
        stated = _stated_key(data)
        return ClipSource(
            where=task.where,
            dataset=dataset.strip() if isinstance(dataset, str) and dataset.strip() else None,
            clip_id=_as_clip_id(data.get("clip_id")),
            key=stated,
            names=tuple(dict.fromkeys(n for n in (stated, _file_stem(audio_name)) if n)),
        )

    def _votes(self, task: _Task, key: str) -> list[RawVote]:
        by_rater: dict[str, list[RawVote]] = {}
        source = f"{self.path}: {task.where}"
        for ann in task.annotations:
            if ann.cancelled:
                self.cancelled += 1
                continue
            choices = self._choices(ann.results)
            if ann.annotator in by_rater:
                self.replaced += 1
            if not choices:
                self.empty += 1
            by_rater[ann.annotator] = [
                RawVote(key, ann.annotator, label, rank=rank, kind=self.kind, source=source)
                for rank, label in enumerate(choices)
            ]
        return [vote for votes in by_rater.values() for vote in votes]

    def _choices(self, results: Any) -> list[str]:
        """The chosen labels of one control, without repeats, in stored order."""
        out: dict[str, None] = {}
        for name, choices in _choice_results(results):
            if name == self.from_name:
                out.update(dict.fromkeys(str(c).strip() for c in choices if str(c).strip()))
        return list(out)

    def _clip(self, task: _Task, key: str, located: _Located) -> ClipIn:
        data = task.data
        values = {f: str(data[f]).strip() for f in CLIP_FIELDS if data.get(f) not in (None, "")}
        if "gender" in values:
            values["gender"] = GENDERS.get(values["gender"].lower(), values["gender"])
        skip = {self.audio_key, *KEY_FIELDS, *CLIP_FIELDS}
        meta: dict[str, Any] = {k: v for k, v in data.items() if k not in skip}
        meta["ls_task_id"] = task.id
        if located.path is None:
            meta["audio_url"] = located.original
        return ClipIn(
            key=key,
            path=located.path,
            duration=located.duration,
            sample_rate=located.sample_rate,
            meta=meta,
            **values,
        )

    def _predictions(self, task: _Task, key: str) -> None:
        for pred in task.predictions:
            if not isinstance(pred, dict):
                continue
            results = pred.get("result") or []
            labels = self._choices(results)
            if not labels:
                continue
            score = pred.get("score")
            if score is None:
                score = next(
                    (
                        r.get("score")
                        for r in results
                        if isinstance(r, dict) and r.get("score") is not None
                    ),
                    None,
                )
            version = str(pred.get("model_version") or "unknown")
            self.models[version] += 1
            self.parsed.predictions.append(
                {
                    "clip_key": key,
                    "task_id": task.id,
                    "model_version": version,
                    "labels": labels,
                    "label": labels[0],
                    "score": score,
                }
            )

    def finish(self, flavour: str) -> None:
        warn = self.parsed.warnings.append
        if self.from_name is None:
            warn("no choices results in the export: clips imported without votes")
        if self.cancelled:
            warn(f"skipped {self.cancelled} cancelled annotations")
        if self.replaced:
            warn(f"{self.replaced} annotations replaced by a later one of the same rater")
        if self.empty:
            warn(f"{self.empty} annotations chose nothing in {self.from_name!r}")
        if self.models:
            models = ", ".join(f"{m} x{n}" for m, n in self.models.most_common())
            warn(
                f"kept {sum(self.models.values())} model predictions ({models}) for a "
                "later run import; they are not votes"
            )
        if self.prediction_ids:
            warn(
                f"{self.prediction_ids} predictions are exported as ids only and were not "
                "read; export with predictions as full objects to keep them"
            )
        if flavour == "json-min":
            warn(
                "JSON-MIN export: it has no cancelled annotations, tasks without "
                "annotations or predictions; use the JSON export to get them"
            )
        self.parsed.options["label_studio"].update(
            predictions=sum(self.models.values()),
            prediction_ids=self.prediction_ids,
            cancelled=self.cancelled,
            empty=self.empty,
            unannotated=self.unannotated,
        )
        self.parsed.warnings.extend(self.audio.warnings())


# --------------------------------------------------------------------------- audio
@dataclass(frozen=True)
class _Located:
    original: str
    name: str  # file name for the clip key (upload hash removed), "" if none
    path: str | None = None
    duration: float | None = None
    sample_rate: int | None = None


class _AudioLocator:
    """Maps Label Studio audio references to files under the dataset root."""

    def __init__(self, base: Path, explicit_root: bool, *, allow_outside: bool) -> None:
        self.base = base
        self.explicit_root = explicit_root
        self.guard = RootGuard(base, allow_outside=allow_outside)
        self.unresolved: Counter[str] = Counter()
        self.unreadable: list[str] = []

    def locate(self, audio: str, check: Callable[[str, Path], None]) -> _Located:
        """Find the file `audio` refers to; `check(audio, file)` runs before it is probed."""
        url = urlparse(audio)
        if "/data/upload/" in url.path:
            relative = unquote(url.path.split("/data/upload/", 1)[1])
            name = PurePosixPath(relative).name
            original = UPLOAD_HASH.sub("", name)
            candidates = [Path("upload") / relative, Path(relative), Path(name), Path(original)]
            return self._found(
                check, audio, original, candidates if self.explicit_root else [], "upload URL"
            )
        if url.path.rstrip("/").endswith("/data/local-files"):
            relative = unquote((parse_qs(url.query).get("d") or [""])[0]).lstrip("/")
            name = PurePosixPath(relative).name
            if self.explicit_root:
                candidates = [Path(relative), Path(name)]
            else:  # LOCAL_FILES_DOCUMENT_ROOT defaults to "/"
                candidates = [Path("/") / relative]
            return self._found(
                check, audio, name, candidates if relative else [], "local-files URL"
            )
        if url.scheme == "file":
            local = unquote(url.path)
            return self._found(check, audio, PurePosixPath(local).name, [Path(local)], "path")
        if url.scheme and len(url.scheme) > 1:  # http, https, s3, gs, azure-blob... (not C:)
            self.unresolved["remote URL"] += 1
            return _Located(audio, PurePosixPath(unquote(url.path)).name)
        return self._found(check, audio, PurePosixPath(audio).name, [Path(audio)], "path")

    def _found(
        self,
        check: Callable[[str, Path], None],
        audio: str,
        name: str,
        candidates: list[Path],
        kind: str,
    ) -> _Located:
        for candidate in candidates:
            full = candidate if candidate.is_absolute() else self.base / candidate
            if full.is_file():
                check(audio, full)
                return self._probe(audio, name, full)
        self.unresolved[kind] += 1
        return _Located(audio, name)

    def _probe(self, audio: str, name: str, full: Path) -> _Located:
        try:
            stored = full.relative_to(self.base).as_posix()
        except ValueError:
            stored = str(full)
        try:
            info = audio_info(full)
        except AudioError as exc:
            self.unreadable.append(str(exc))
            return _Located(audio, name, stored)
        return _Located(audio, name, stored, info.duration_s, info.sample_rate)

    def warnings(self) -> Iterable[str]:
        if self.unresolved:
            kinds = ", ".join(f"{n} {k}" for k, n in self.unresolved.most_common())
            hint = "" if self.explicit_root else "; pass --audio-root to look for them"
            yield f"audio not found for {sum(self.unresolved.values())} clips ({kinds}){hint}"
        if self.unreadable:
            yield f"{len(self.unreadable)} audio files unreadable, e.g. {self.unreadable[0]}"
