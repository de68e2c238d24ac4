"""Hugging Face `datasets` layouts for subset exports: split folders, pinned features, card.

Why splits are folders (or files): `datasets` turns directory names into splits, so a
flat folder loads as one `train` split and the clip's real split is only a column. Each
clip goes to the split its corpus gave it, under a name `datasets` accepts
(`hf_split_names`): Train/training -> `train`, Development/dev/val/valid -> `validation`,
Test/testing -> `test`, anything else lower-cased with other characters as `_`
(MSP-Podcast's Test1 -> `test1`). Clips without a split go to `train` when no clip of the
export has one (the usual meaning of an unsplit dataset) and to `unsplit` otherwise, so
they never leak into a real training split. The card's `configs:` lists every split's
files, so `load_dataset(OUT)` keeps `test1` and `test2` apart; the keyword patterns of
`load_dataset("audiofolder", data_dir=OUT)` ignore the card and fold `test1` into `test`
(and skip folders without a train/validation/test keyword), which the export says.

Why the metadata is Parquet with an explicit schema: `datasets` infers each split's
column types from its metadata file and refuses to load when two splits disagree. From
JSON, a split whose clips have no flags infers `flags` as a list of nulls, another split
as a list of strings, and the load fails (the same makes two exports refuse to
concatenate). A Parquet schema types every column whatever the values, and its
`huggingface` metadata carries the `datasets` features (ClassLabel for `majority`, the
Audio column), which both `load_dataset(OUT)` and `load_dataset("audiofolder",
data_dir=OUT)` read, so both give the same features as the card (checked with datasets
3.6.0; 5.2.0 reads the parquet layout the same way, with `List` for `Sequence`).

Why labels are the union of the exported datasets' label sets in canonical order: a
ClassLabel and the `human`/`distribution` structs need one fixed list of names, the same
for any subset of the same datasets, so two exports of them concatenate without a cast.
A clip's probability for a label outside its own dataset's set is null, not 0.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

CARD = "README.md"
PARQUET_DIR = "data"
METADATA = "metadata.parquet"
UNSPLIT = "unsplit"
BATCH_ROWS = 256  # rows per Parquet row group: bounded memory with embedded audio

_ALIASES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "devel": "validation",
    "development": "validation",
    "test": "test",
    "testing": "test",
}
STANDARD_SPLITS = ("train", "validation", "test")
# datasets.data_files.SPLIT_KEYWORDS and KEYWORDS_IN_DIR_NAME_BASE_PATTERNS (3.6, 5.2):
# a folder named KEYWORD, or KEYWORD next to a non-word character, belongs to that split
_DATA_DIR_KEYWORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}
_SEP = r"[-._ 0-9]"

# Feature types: "string" | "int64" | "float64" | "audio" | ("class_label", names) |
# ("sequence", type) (a list of scalars) | ("list", {struct}) | {name: type} (a struct).
Feature = Any


class _Formatted(Protocol):
    format: str


Options = TypeVar("Options", bound=_Formatted)  # SubsetOptions; subset.py imports this module


# ------------------------------------------------------------------------- splits
def _sanitise(name: str) -> str:
    key = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_") or "split"
    if key[0].isdigit() or key == "all":  # `all` is datasets' name for every split
        key = f"split_{key}"
    return _ALIASES.get(key, key)


def hf_split_names(splits: Sequence[str | None]) -> list[str]:
    """The `datasets` split name of each clip's corpus split (see the module docstring)."""
    missing = "train" if not any(splits) else UNSPLIT
    return [_sanitise(s) if s else missing for s in splits]


def ordered_splits(names: Iterable[str]) -> list[str]:
    """train, validation, test first (as `datasets` lists them), the rest sorted."""
    present = set(names)
    return [s for s in STANDARD_SPLITS if s in present] + sorted(present - set(STANDARD_SPLITS))


def _data_dir_split(name: str) -> str | None:
    """The split `load_dataset("audiofolder", data_dir=OUT)` puts folder NAME in, if any."""
    for split, keywords in _DATA_DIR_KEYWORDS.items():
        for kw in keywords:
            if re.fullmatch(rf"(.*{_SEP})?{kw}({_SEP}.*)?", name):
                return split
    return None


def data_dir_note(splits: Sequence[str]) -> list[str]:
    """A message when `data_dir=` loading would not keep the export's splits as written."""
    other = [s for s in splits if s not in STANDARD_SPLITS]
    if not other:
        return []
    mapped = {s: _data_dir_split(s) for s in splits}
    if not any(mapped.values()):
        fate = "reads every folder as train"
    else:
        parts = [f"folds {s} into {mapped[s]}" for s in other if mapped[s]]
        parts += [f"skips {s}" for s in other if not mapped[s]]
        fate = ", ".join(parts)
    return [
        f"splits {', '.join(other)} load apart with datasets.load_dataset(OUT) (the card "
        f"pins them); load_dataset('audiofolder', data_dir=OUT) {fate}"
    ]


# ----------------------------------------------------------------------- features
def features(labels: Sequence[str], *, audio: str = "audio") -> dict[str, Feature]:
    """Every column's type, in column order; `audio` is the first column's name/type."""
    dist = {label: "float64" for label in labels}
    first = {"audio": "audio"} if audio == "audio" else {"file_name": "string"}
    return {
        **first,
        "key": "string",
        "dataset": "string",
        "clip_id": "int64",
        "split": "string",
        "speaker": "string",
        "gender": "string",
        "transcript": "string",
        "intended_label": "string",
        "duration": "float64",
        "source_path": "string",
        "human": dist,
        "human_entropy": "float64",
        "human_norm_entropy": "float64",
        "ambiguity": "string",
        "majority": ("class_label", tuple(labels)),
        "n_votes": "float64",
        "votes": (
            "list",
            {
                "annotator": "string",
                "kind": "string",
                "label": "string",
                "rank": "int64",
                "weight": "float64",
            },
        ),
        "flags": ("sequence", "string"),
        "tags": ("sequence", "string"),
        "notes": ("list", {"author": "string", "body": "string"}),
        "predictions": (
            "list",
            {
                "run": "int64",
                "run_label": "string",
                "model": "string",
                "strategy": "string",
                "distribution": dist,
                "label": "string",
                "js": "float64",
                "bc": "float64",
            },
        ),
    }


def hf_dict(feature: Feature) -> Any:
    """`datasets.Features.to_dict()` form (what the Parquet `huggingface` metadata holds)."""
    if isinstance(feature, dict):
        return {k: hf_dict(v) for k, v in feature.items()}
    if feature == "audio":
        return {"_type": "Audio"}
    if isinstance(feature, str):
        return {"dtype": feature, "_type": "Value"}
    kind, inner = feature
    if kind == "class_label":
        return {"names": list(inner), "_type": "ClassLabel"}
    if kind == "sequence":
        return {"feature": hf_dict(inner), "_type": "Sequence"}
    return [hf_dict(inner)]


def _yaml_type(feature: Feature) -> dict[str, Any]:
    """One column's type in the card's `dataset_info.features` list (Features._to_yaml_list)."""
    if isinstance(feature, dict):
        return {"struct": [{"name": k, **_yaml_type(v)} for k, v in feature.items()]}
    if isinstance(feature, str):
        return {"dtype": feature}
    kind, inner = feature
    if kind == "class_label":
        return {"dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(inner)}}}}
    if kind == "sequence":
        return {"sequence": inner}
    return {"list": _yaml_type(inner)["struct"]}


def arrow_schema(columns: Mapping[str, Feature]) -> Any:
    """The pyarrow schema of COLUMNS, carrying them as `datasets` features metadata."""
    import pyarrow as pa

    def arrow(feature: Feature) -> Any:
        if isinstance(feature, dict):
            return pa.struct([(k, arrow(v)) for k, v in feature.items()])
        if feature == "audio":
            return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        if isinstance(feature, str):
            return {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}[feature]
        kind, inner = feature
        return pa.int64() if kind == "class_label" else pa.list_(arrow(inner))

    info = {"info": {"features": {k: hf_dict(v) for k, v in columns.items()}}}
    return pa.schema(
        [(k, arrow(v)) for k, v in columns.items()],
        metadata={"huggingface": json.dumps(info)},
    )


# --------------------------------------------------------------------------- rows
def hf_row(record: Mapping[str, Any], labels: Sequence[str]) -> dict[str, Any]:
    """A record in the pinned column types (majority as its ClassLabel index).

    Records hold plain Python values already (SQLite has no NaN), so only the label-keyed
    fields are reshaped; pyarrow checks every value against the schema.
    """
    row = dict(record)
    row["human"] = _full(row["human"], labels)
    majority = row["majority"]
    row["majority"] = None if majority is None else labels.index(majority)
    row["predictions"] = [
        {**p, "distribution": _full(p["distribution"], labels)} for p in row["predictions"]
    ]
    return row


def _full(dist: Mapping[str, float] | None, labels: Sequence[str]) -> dict[str, Any] | None:
    """A {label: p} over exactly LABELS (null for a label outside the clip's own set).

    A clip's labels are a subset of LABELS, so one as long holds them all (the common
    single-dataset export, left as it is: pyarrow matches struct fields by name).
    """
    if dist is None or len(dist) == len(labels):
        return dist
    return {label: dist.get(label) for label in labels}


def write_parquet(path: Path, rows: Iterable[dict[str, Any]], schema: Any) -> None:
    """Rows to one Parquet file, a row group of BATCH_ROWS at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, schema) as writer:
        for batch in _batches(rows, BATCH_ROWS):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def parquet_name(split: str) -> str:
    """`data/<split>-00000-of-00001.parquet`, the Hub's layout (one shard per split)."""
    return f"{PARQUET_DIR}/{split}-00000-of-00001.parquet"


# --------------------------------------------------------------------------- card
def digest(paths: Iterable[Path]) -> str:
    """sha256 over the files' bytes (the row data: metadata or shards), read 1 MiB at a time."""
    h = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def tree_size(folder: Path) -> int:
    """Bytes of every file below FOLDER (symlinked audio counted at its target's size)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _yaml(value: Any, indent: int = 0) -> str:
    """Block YAML for nested dicts/lists of strings and ints (strings JSON-quoted)."""
    pad = " " * indent
    lines = []
    items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
    for key, item in items:
        head = f"{pad}{json.dumps(key)}:" if key is not None else f"{pad}-"
        if isinstance(item, dict | list) and item:
            if key is None and isinstance(item, dict):  # "- name: x" then the rest aligned
                body = _yaml(item, indent + 2)
                lines.append(f"{pad}- {body.lstrip()}")
            else:
                lines.append(f"{head}\n{_yaml(item, indent + 2)}")
        else:
            lines.append(f"{head} {json.dumps(item)}")
    return "\n".join(lines)


def dataset_card(
    labels: Sequence[str],
    split_files: Mapping[str, Sequence[str]],
    counts: Mapping[str, int],
    *,
    layout: str,
    download_size: int,
    digest: str,
) -> str:
    """README.md: YAML front matter (features, splits, per-split data_files) and a body.

    Why the config's description holds a digest of the row data: datasets 3.x caches
    `load_dataset(OUT)` under the folder's name and a hash of the card, not of the files,
    so a re-export into a folder of the same name (a flag added, then `--force`) would be
    served from the old cache while its card stayed the same. Split sizes are checked
    when the dataset is built.
    """
    meta = {
        "dataset_info": {
            "features": [{"name": k, **_yaml_type(v)} for k, v in features(labels).items()],
            "splits": [{"name": s, "num_examples": counts[s]} for s in split_files],
            "download_size": download_size,
        },
        "configs": [
            {
                "config_name": "default",
                "description": f"ambiscope subset export, rows sha256 {digest}",
                "data_files": [
                    {"split": split, "path": list(files)} for split, files in split_files.items()
                ],
            }
        ],
    }
    return f"---\n{_yaml(meta)}\n---\n\n{_body(labels, list(split_files), layout)}"


def _body(labels: Sequence[str], splits: Sequence[str], layout: str) -> str:
    where = (
        "`<split>/audio/` holds the audio and `<split>/metadata.parquet` one row per clip"
        if layout == "audiofolder"
        else "`data/<split>-00000-of-00001.parquet` holds one row per clip, audio embedded"
    )
    return f"""# ambiscope subset export

Clips exported by `ambiscope export subset --format {layout}`; `provenance.json` records
the workspace, filter, datasets, runs and counts. {where}.

Load with `datasets.load_dataset("<this folder>")` (splits: {", ".join(splits)}).
`load_dataset("audiofolder", data_dir=...)` reads the same features but knows only
train/validation/test folder names. Decoding audio needs `soundfile` in datasets 3.x
and `torchcodec` with FFmpeg in datasets >= 4 (without it, load the parquet layout and
`cast_column("audio", Audio(decode=False))` for the file bytes).

Columns: `audio`; `key`, `dataset`, `clip_id`, `split` (the corpus's own split name),
`speaker`, `gender`, `transcript`, `intended_label`, `duration` (s), `source_path`;
the human reference `human` ({{label: p}}), `human_entropy` (bits), `human_norm_entropy`,
`ambiguity`, `majority` (ClassLabel), `n_votes`; `votes` (one per annotator vote with
its kind); the researcher's `flags`, `tags`, `notes`; `predictions` (one per run x
strategy: `distribution` {{label: p}}, its argmax `label`, `js` and `bc` to `human`).

Labels (the union of the exported datasets' label sets, canonical order; null where a
label is not in a clip's own dataset): {", ".join(labels)}.
"""
