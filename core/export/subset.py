"""Curated clip subsets: audiofolder, CSV, JSONL and Label Studio exports.

Every format carries one record per clip with the same fields: `key`, `dataset`,
`clip_id`, `split`, `speaker`, `gender`, `transcript`, `intended_label`, `duration`,
`source_path` (the original audio file), the human reference (`human` as {label: p},
`human_entropy` in bits, `human_norm_entropy`, `ambiguity`, `majority`, `n_votes`),
`votes` (one entry per annotator vote with its kind), the researcher's `flags`, `tags` and
`notes`, and `predictions`: one entry per selected run x strategy with the distribution
as {label: p}, its argmax `label`, and `js` / `bc` to the human distribution.

Audio is read only from inside each dataset's root (ambiscope.core.paths): a stored path
that resolves outside it (a hand-edited workspace) is skipped and counted unless the
dataset was imported with --allow-outside-root, and a file soundfile cannot open is never
copied or linked; both are counted and named in the result and in provenance.json.

All rows are read inside one read transaction, so a worker writing meanwhile cannot make
the export mix two states; files are then written into a temporary directory next to the
output and renamed into place at the end.

Each format is one writer decorated with `@SUBSET_FORMATS.register(name, audio=...)`
in a module `SUBSET_FORMATS` discovers (csv/jsonl/audiofolder/parquet here, their
Hugging Face layout in `hf.py`, Label Studio in `label_studio.py`): it gets the output
folder, the records (only clips with usable audio when the format declared `audio=True`;
with `file_name` under `audio/` unless it also declared `places_audio=True` and puts or
embeds the audio itself), the label set and the options, and returns messages to show.
Metadata `prepare(out, options) -> options` runs before anything is read: a format's own
checks and settings (Label Studio's document root).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ambiscope.core.audio import AudioError, audio_info
from ambiscope.core.export import SUBSET_FORMATS
from ambiscope.core.export._common import (
    ExportError,
    NameAllocator,
    Protected,
    atomic_dir,
    check_target_dir,
    dumps,
    safe_suffix,
)
from ambiscope.core.export.data import prepare_references
from ambiscope.core.export.hf import (
    CARD,
    METADATA,
    arrow_schema,
    data_dir_note,
    dataset_card,
    digest,
    features,
    hf_row,
    hf_split_names,
    ordered_splits,
    parquet_name,
    tree_size,
    write_parquet,
)
from ambiscope.core.export.provenance import PROVENANCE_FILE, build_provenance
from ambiscope.core.labels import canonical_order
from ambiscope.core.paths import RootGuard, allows_outside_root
from ambiscope.core.reference.human import snapshot_human
from ambiscope.db import Clip, Dataset, Run, Workspace, codec

AUDIO_DIR = "audio"
CSV_NESTED = ("human", "votes", "flags", "tags", "notes", "predictions")


@dataclass(frozen=True)
class SubsetOptions:
    where: str = ""
    format: str = "audiofolder"
    datasets: tuple[str, ...] = ()
    runs: tuple[int, ...] = ()
    strategies: tuple[str, ...] = ()
    link: bool = False
    force: bool = False
    # format-specific settings (e.g. Label Studio's `ls_root`); a format lists the keys it
    # reads in its registry metadata `extra`
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in SUBSET_FORMATS:
            raise ExportError(
                f"--format must be one of {', '.join(SUBSET_FORMATS.names())}, got {self.format!r}"
            )


@dataclass
class SubsetResult:
    out: Path
    format: str
    selected: int
    exported: int
    skipped_no_audio: int
    skipped_missing_file: int
    provenance: dict[str, Any]
    messages: list[str] = field(default_factory=list)
    skipped_outside_root: int = 0
    skipped_not_audio: int = 0

    def summary(self) -> str:
        text = f"exported {self.exported} of {self.selected} clips as {self.format} to {self.out}"
        skipped = Counter(
            no_audio=self.skipped_no_audio,
            missing_file=self.skipped_missing_file,
            outside_root=self.skipped_outside_root,
            not_audio=self.skipped_not_audio,
        )
        if skipped.total():
            text += f" (skipped {_skip_text(skipped)})"
        return "\n".join([text, *self.messages])


SKIP_REASONS = {
    "no_audio": "without audio",
    "missing_file": "with a missing audio file",
    "outside_root": "with audio outside the dataset root",
    "not_audio": "whose file is not readable audio",
}


def _skip_text(skipped: Counter[str]) -> str:
    """`2 without audio, 1 with a missing audio file` (reasons with a count only)."""
    return ", ".join(f"{skipped[k]} {why}" for k, why in SKIP_REASONS.items() if skipped[k])


# -------------------------------------------------------------------------- reading
@dataclass
class _Snapshot:
    """Everything the subset needs, read inside one transaction."""

    datasets: dict[int, Dataset]
    runs: list[Run]
    strategies: dict[int, list[str]]
    clips: list[Clip]
    records: list[dict[str, Any]]
    provenance: dict[str, Any]
    outside: dict[int, str]  # clip id -> stored path outside its dataset root (not read)


def _ids_json(ids: Sequence[int]) -> str:
    return json.dumps([int(i) for i in ids])


def _grouped(ws: Workspace, sql: str, ids_json: str) -> dict[int, list[tuple[Any, ...]]]:
    out: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in ws.conn.execute(sql, (ids_json,)):
        out[row[0]].append(row[1:])
    return out


_IN_IDS = "IN (SELECT value FROM json_each(?))"


def _select(ws: Workspace, opts: SubsetOptions, datasets: list[Dataset]) -> list[int]:
    from ambiscope.core.browse.query import checked_filter, select_clip_ids

    within = datasets[0].id if len(datasets) == 1 else None
    flt = checked_filter(ws.conn, opts.where, within)
    ids: list[int] = []
    for ds in datasets:
        ids += select_clip_ids(
            ws.conn,
            flt,
            dataset_id=ds.id,
            run_id=opts.runs[0] if opts.runs else None,
            strategy=opts.strategies[0] if opts.strategies else None,
        )
    return ids


def _selected_runs(ws: Workspace, opts: SubsetOptions, datasets: list[Dataset]) -> list[Run]:
    ds_ids = {ds.id for ds in datasets}
    if opts.runs:
        runs = [ws.get_run(int(r)) for r in dict.fromkeys(opts.runs)]
        for run in runs:
            if run.dataset_id not in ds_ids:
                raise ExportError(f"run {run.id} is not on the selected dataset(s)")
        return runs
    return [run for ds in datasets for run in ws.runs(ds.id)]


def _run_strategies(
    ws: Workspace, runs: list[Run], strategies: Sequence[str]
) -> dict[int, list[str]]:
    out = {}
    found: set[str] = set()
    for run in runs:
        have = ws.strategies(run.id)
        found.update(have)
        out[run.id] = [s for s in have if not strategies or s in strategies]
    missing = [s for s in strategies if s not in found]
    if missing:
        known = ", ".join(sorted(found)) or "none"
        raise ExportError(f"no predictions for strategy {', '.join(missing)} (known: {known})")
    return out


def _read(ws: Workspace, opts: SubsetOptions) -> _Snapshot:
    """Select and read every field of the subset; call inside ws.snapshot()."""
    datasets = (
        [ws.get_dataset(name) for name in dict.fromkeys(opts.datasets)]
        if opts.datasets
        else ws.datasets()
    )
    runs = _selected_runs(ws, opts, datasets)
    strategies = _run_strategies(ws, runs, opts.strategies)
    ids = _select(ws, opts, datasets)
    if not ids:
        raise ExportError(f"no clips match {opts.where!r}" if opts.where else "no clips to export")
    ids_json = _ids_json(ids)
    clips = [
        Clip.from_row(r)
        for r in ws.conn.execute(
            f"SELECT {Clip.COLUMNS} FROM clips WHERE id {_IN_IDS} ORDER BY id", (ids_json,)
        )
    ]
    by_id = {ds.id: ds for ds in ws.datasets()}
    sources, outside = _sources(clips, by_id)
    records = _records(ws, clips, by_id, sources, runs, strategies, ids_json)
    used = [by_id[i] for i in sorted({c.dataset_id for c in clips})]
    provenance = build_provenance(
        ws,
        export=f"subset/{opts.format}",
        datasets=used,
        runs=runs,
        filter_text=opts.where,
        options={
            "format": opts.format,
            "datasets": list(opts.datasets),
            "runs": [r.id for r in runs],
            "strategies": {str(k): v for k, v in strategies.items()},
            "link": opts.link,
            **opts.extra,  # format-specific settings, as the format's `prepare` filled them
        },
        counts={"selected": len(clips)},
    )
    return _Snapshot(by_id, runs, strategies, clips, records, provenance, outside)


def _records(
    ws: Workspace,
    clips: list[Clip],
    datasets: dict[int, Dataset],
    sources: dict[int, str | None],
    runs: list[Run],
    strategies: dict[int, list[str]],
    ids_json: str,
) -> list[dict[str, Any]]:
    votes = _grouped(
        ws,
        "SELECT v.clip_id, a.external_id, a.kind, v.label, v.rank, v.weight FROM votes v "
        f"JOIN annotators a ON a.id = v.annotator_id WHERE v.clip_id {_IN_IDS} "
        "ORDER BY v.clip_id, a.kind, a.external_id, v.rank",
        ids_json,
    )
    flags = _grouped(ws, _audit_sql("flags", "name"), ids_json)
    tags = _grouped(ws, _audit_sql("tags", "name"), ids_json)
    notes = _grouped(ws, _audit_sql("notes", "author, body"), ids_json)
    humans = {ds_id: _human_lookup(ws, datasets[ds_id]) for ds_id in {c.dataset_id for c in clips}}
    predictions = _predictions(ws, runs, strategies, datasets, ids_json)
    out = []
    for clip in clips:
        ds = datasets[clip.dataset_id]
        out.append(
            {
                "key": clip.key,
                "dataset": ds.name,
                "clip_id": clip.id,
                "split": clip.split,
                "speaker": clip.speaker,
                "gender": clip.gender,
                "transcript": clip.transcript,
                "intended_label": clip.intended_label,
                "duration": clip.duration,
                "source_path": sources[clip.id],
                **humans[clip.dataset_id](clip.id),
                "votes": [
                    {"annotator": a, "kind": kind, "label": label, "rank": rank, "weight": weight}
                    for a, kind, label, rank, weight in votes.get(clip.id, [])
                ],
                "flags": [r[0] for r in flags.get(clip.id, [])],
                "tags": [r[0] for r in tags.get(clip.id, [])],
                "notes": [{"author": a, "body": body} for a, body in notes.get(clip.id, [])],
                "predictions": predictions.get(clip.id, []),
            }
        )
    return out


def _audit_sql(table: str, columns: str) -> str:
    order = f"clip_id, {columns.split(',')[0]}"
    return f"SELECT clip_id, {columns} FROM {table} WHERE clip_id {_IN_IDS} ORDER BY {order}"


def _human_lookup(ws: Workspace, ds: Dataset) -> Any:
    human, _ = snapshot_human(ws, ds)
    index = {int(c): i for i, c in enumerate(human.clip_ids)}
    labels = ds.label_set

    def lookup(clip_id: int) -> dict[str, Any]:
        i = index.get(clip_id)
        if i is None or not human.valid[i]:
            return {
                "human": None,
                "human_entropy": None,
                "human_norm_entropy": None,
                "ambiguity": None,
                "majority": None,
                "n_votes": 0.0 if i is None else float(human.n_votes[i]),
            }
        return {
            "human": _as_dict(labels, human.dist[i]),
            "human_entropy": float(human.entropy[i]),
            "human_norm_entropy": float(human.norm_entropy[i]),
            "ambiguity": human.ambiguity[i] or None,
            "majority": labels[human.majority[i]] if human.majority[i] >= 0 else None,
            "n_votes": float(human.n_votes[i]),
        }

    return lookup


def _as_dict(labels: Sequence[str], values: np.ndarray) -> dict[str, float]:
    return {label: round(float(v), 6) for label, v in zip(labels, values, strict=True)}


def _predictions(
    ws: Workspace,
    runs: list[Run],
    strategies: dict[int, list[str]],
    datasets: dict[int, Dataset],
    ids_json: str,
) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        labels = datasets[run.dataset_id].label_set
        for strategy in strategies[run.id]:
            rows = ws.conn.execute(
                "SELECT clip_id, distribution, label, js, bc FROM predictions "
                f"WHERE run_id = ? AND strategy = ? AND clip_id {_IN_IDS} ORDER BY clip_id",
                (run.id, strategy, ids_json),
            ).fetchall()
            if not rows:
                continue
            dists = codec.decode_many((r[1] for r in rows), len(labels))
            dists = np.round(dists / dists.sum(axis=1, keepdims=True), 6).tolist()
            for (clip_id, _, label, js, bc), dist in zip(rows, dists, strict=True):
                out[clip_id].append(
                    {
                        "run": run.id,
                        "run_label": run.label,
                        "model": run.model,
                        "strategy": strategy,
                        "distribution": dict(zip(labels, dist, strict=True)),
                        "label": label,
                        "js": js,
                        "bc": bc,
                    }
                )
    return out


def _sources(
    clips: list[Clip], datasets: dict[int, Dataset]
) -> tuple[dict[int, str | None], dict[int, str]]:
    """Each clip's audio file as an absolute path, re-checked against its dataset's root.

    Returns (clip id -> path, None without audio or outside the root; clip id -> the
    stored path of each clip refused for lying outside its root).
    """
    guards = {
        ds.id: RootGuard(ds.root, allow_outside=allows_outside_root(ds.options))
        for ds in datasets.values()
    }
    sources: dict[int, str | None] = {}
    outside: dict[int, str] = {}
    for clip in clips:
        sources[clip.id] = None
        if not clip.path:
            continue
        guard = guards[clip.dataset_id]
        full = guard.full(clip.path)
        if guard.allowed(full):
            sources[clip.id] = os.path.abspath(full)
        else:
            outside[clip.id] = clip.path
    return sources, outside


# -------------------------------------------------------------------------- writing
def _usable_audio(
    records: list[dict[str, Any]], outside: dict[int, str]
) -> tuple[list[dict[str, Any]], Counter[str], list[str]]:
    """The records whose audio file exists inside its dataset root and is readable audio.

    Returns the kept records, skip counts by reason (`no_audio`, `missing_file`,
    `outside_root`, `not_audio`) and one warning per reason that is not routine.
    """
    kept: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    not_audio: list[str] = []
    for record in records:
        source = record["source_path"]
        if record["clip_id"] in outside:
            skipped["outside_root"] += 1
        elif source is None:
            skipped["no_audio"] += 1
        elif not os.path.isfile(source):
            skipped["missing_file"] += 1
        else:
            try:
                audio_info(source)
            except AudioError as exc:
                skipped["not_audio"] += 1
                not_audio.append(f"{record['key']}: {exc}")
                continue
            kept.append(record)
    warnings = []
    if not_audio:
        warnings.append(
            f"skipped {len(not_audio)} clips whose file is not readable audio (e.g. {not_audio[0]})"
        )
    return kept, skipped, warnings


def place_audio(
    records: list[dict[str, Any]], out: Path, folders: Sequence[str], *, link: bool
) -> list[dict[str, Any]]:
    """Copy or symlink each record's audio to OUT/<its folder>/<safe name>.

    Names are unique across the whole export (one allocator), so moving split folders
    together never clashes. Returns the records with `file_name` (relative to OUT) first.
    """
    names = NameAllocator()
    placed = []
    for folder in dict.fromkeys(folders):
        (out / folder).mkdir(parents=True)
    for record, folder in zip(records, folders, strict=True):
        source = record["source_path"]
        name = f"{folder}/{names.allocate(record['key'], safe_suffix(source))}"
        if link:
            os.symlink(source, out / name)
        else:
            shutil.copyfile(source, out / name)
        placed.append({"file_name": name, **record})
    return placed


def _outside_warning(outside: dict[int, str], clips: list[Clip]) -> list[str]:
    """One line naming how many clips' stored paths were refused, with an example."""
    if not outside:
        return []
    keys = {c.id: c.key for c in clips}
    clip_id, path = next(iter(outside.items()))
    return [
        f"{len(outside)} clips have an audio path outside their dataset root, not read "
        f"(e.g. {keys[clip_id]}: {path}); re-import with --allow-outside-root to allow it"
    ]


def _jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(dumps(r, indent=None) + "\n" for r in records)


@SUBSET_FORMATS.register("audiofolder", audio=True, places_audio=True)
def write_audiofolder(
    out: Path, records: list[dict[str, Any]], labels: Sequence[str], opts: SubsetOptions
) -> list[str]:
    """`<split>/audio/` + `<split>/metadata.parquet` per split and the dataset card:
    `datasets.load_dataset(OUT)` or `load_dataset("audiofolder", data_dir=OUT)` (see hf)."""
    splits = hf_split_names([r["split"] for r in records])
    records = place_audio(records, out, [f"{s}/{AUDIO_DIR}" for s in splits], link=opts.link)
    schema = arrow_schema(features(labels, audio="file_name"))
    by_split = _by_split(records, splits)
    for split, rows in by_split.items():
        prefix = f"{split}/"
        write_parquet(
            out / split / METADATA,
            (hf_row({**r, "file_name": r["file_name"].removeprefix(prefix)}, labels) for r in rows),
            schema,
        )
    files = {s: [f"{s}/{METADATA}", f"{s}/{AUDIO_DIR}/*"] for s in by_split}
    _write_card(out, labels, files, by_split, "audiofolder")
    return data_dir_note(list(by_split))


def _by_split(records: list[dict[str, Any]], splits: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by split name, splits in `datasets`' order."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record, split in zip(records, splits, strict=True):
        groups[split].append(record)
    return {s: groups[s] for s in ordered_splits(groups)}


@SUBSET_FORMATS.register("parquet", audio=True, places_audio=True)
def write_parquet_subset(
    out: Path, records: list[dict[str, Any]], labels: Sequence[str], opts: SubsetOptions
) -> list[str]:
    """`data/<split>-00000-of-00001.parquet` with the audio embedded as {bytes, path},
    and the dataset card: `datasets.load_dataset(OUT)`."""
    schema = arrow_schema(features(labels))
    by_split = _by_split(records, hf_split_names([r["split"] for r in records]))
    names = NameAllocator()
    for split, rows in by_split.items():
        write_parquet(
            out / parquet_name(split),
            (
                {
                    "audio": {
                        "bytes": Path(r["source_path"]).read_bytes(),
                        "path": names.allocate(r["key"], safe_suffix(r["source_path"])),
                    },
                    **hf_row(r, labels),
                }
                for r in rows
            ),
            schema,
        )
    _write_card(out, labels, {s: [parquet_name(s)] for s in by_split}, by_split, "parquet")
    return []


def _write_card(
    out: Path,
    labels: Sequence[str],
    files: dict[str, list[str]],
    by_split: dict[str, list[dict[str, Any]]],
    layout: str,
) -> None:
    """OUT/README.md, written after the data (the card records its size and a digest)."""
    counts = {s: len(rows) for s, rows in by_split.items()}
    rows = digest(out / f for names in files.values() for f in names if "*" not in f)
    card = dataset_card(
        labels, files, counts, layout=layout, download_size=tree_size(out), digest=rows
    )
    (out / CARD).write_text(card, encoding="utf-8")


@SUBSET_FORMATS.register("csv", audio=False)
def write_csv(
    out: Path, records: list[dict[str, Any]], labels: Sequence[str], opts: SubsetOptions
) -> list[str]:
    """`clips.csv`: every selected clip, nested fields as JSON text."""
    (out / "clips.csv").write_text(_csv(records), encoding="utf-8")
    return []


@SUBSET_FORMATS.register("jsonl", audio=False)
def write_jsonl(
    out: Path, records: list[dict[str, Any]], labels: Sequence[str], opts: SubsetOptions
) -> list[str]:
    """`clips.jsonl`: every selected clip, one JSON object per line."""
    (out / "clips.jsonl").write_text(_jsonl(records), encoding="utf-8")
    return []


def _csv(records: list[dict[str, Any]]) -> str:
    columns = list(records[0]) if records else []
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(
            {
                k: (dumps(v, indent=None) if k in CSV_NESTED else ("" if v is None else v))
                for k, v in record.items()
            }
        )
    return buf.getvalue()


def _labels(snapshot: _Snapshot) -> tuple[str, ...]:
    used = {c.dataset_id for c in snapshot.clips}
    union = {label for i in used for label in snapshot.datasets[i].label_set}
    return canonical_order(union)


def export_subset(ws: Workspace, out: str | Path, opts: SubsetOptions) -> SubsetResult:
    """Export the clips matching `opts.where` to `out` (see the module docstring)."""
    out = Path(out)
    protect = Protected.of(ws)
    check_target_dir(out, force=opts.force, protect=protect)  # fail before reading anything
    meta = SUBSET_FORMATS.meta(opts.format)
    if "prepare" in meta:  # the format's own checks and settings, before anything is read
        opts = meta["prepare"](out, opts)
    datasets = [ws.get_dataset(n) for n in opts.datasets] if opts.datasets else ws.datasets()
    prepare_references(ws, datasets)
    with ws.snapshot():
        snap = _read(ws, opts)
    records = snap.records
    skipped: Counter[str] = Counter()
    warnings = _outside_warning(snap.outside, snap.clips)
    messages: list[str] = []
    with atomic_dir(out, force=opts.force, protect=protect) as tmp:
        if meta["audio"]:
            records, skipped, unusable = _usable_audio(records, snap.outside)
            warnings += unusable
            if not records:
                without = [f for f in SUBSET_FORMATS if not SUBSET_FORMATS.meta(f)["audio"]]
                raise ExportError(
                    f"none of the {len(snap.records)} selected clips has an audio file "
                    f"to export as {opts.format} ({_skip_text(skipped)}); "
                    f"use --format {' or '.join(without)}"
                )
            if not meta.get("places_audio"):
                records = place_audio(records, tmp, [AUDIO_DIR] * len(records), link=opts.link)
        messages += SUBSET_FORMATS[opts.format](tmp, records, _labels(snap), opts)
        counts = {
            "selected": len(snap.records),
            "exported": len(records),
            "skipped_no_audio": skipped["no_audio"],
            "skipped_missing_file": skipped["missing_file"],
            "skipped_outside_root": skipped["outside_root"],
            "audio_outside_root": len(snap.outside),
            "skipped_not_audio": skipped["not_audio"],
            "votes": sum(len(r["votes"]) for r in records),
            "predictions": sum(len(r["predictions"]) for r in records),
        }
        snap.provenance["counts"] = counts
        snap.provenance["warnings"] += warnings
        (tmp / PROVENANCE_FILE).write_text(dumps(snap.provenance) + "\n", encoding="utf-8")
    return SubsetResult(
        out,
        opts.format,
        len(snap.records),
        len(records),
        skipped["no_audio"],
        skipped["missing_file"],
        snap.provenance,
        [*messages, *(f"warning: {w}" for w in warnings)],
        skipped_outside_root=skipped["outside_root"],
        skipped_not_audio=skipped["not_audio"],
    )
