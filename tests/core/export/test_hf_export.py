"""Hugging Face exports: split folders/files, pinned features, the card, loading with `datasets`.

The loading tests run the real `datasets` (3.x in the dev extra: it decodes audio with
soundfile on CPU) and skip only when it is not importable, or is >= 4 without torchcodec.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from ambiscope.core.export.hf import data_dir_note, features, hf_dict, hf_split_names
from ambiscope.core.export.subset import SubsetOptions, export_subset
from ambiscope.db import Workspace
from tests.core.test_export_data import demo_db, demo_template  # noqa: F401
from tests.core.test_export_subset import _manual_dataset

LABELS = ["neutral", "happy", "sad", "angry", "fear", "disgust"]  # the demo's, canonical order


def _load(datasets: Any, path: Path, *, data_dir: bool = False) -> Any:
    """`load_dataset` with the test's own cache (nothing left in ~/.cache/huggingface)."""
    cache = path.parent / "hf-cache"
    if data_dir:
        return datasets.load_dataset("audiofolder", data_dir=str(path), cache_dir=str(cache))
    return datasets.load_dataset(str(path), cache_dir=str(cache))


def _datasets() -> Any:
    datasets = pytest.importorskip(
        "datasets", reason="Hugging Face `datasets` is not installed (it is in the dev extra)"
    )
    if int(datasets.__version__.split(".")[0]) >= 4 and not importlib.util.find_spec("torchcodec"):
        pytest.skip("datasets >= 4 needs torchcodec (with FFmpeg) to build audio datasets")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return datasets


def _export(ws: Workspace, out: Path, where: str, fmt: str = "audiofolder") -> list[str]:
    opts = SubsetOptions(where=where, format=fmt, strategies=("vote",))
    return export_subset(ws, out, opts).messages


def _split_counts(ws: Workspace) -> dict[str, int]:
    rows = ws.conn.execute("SELECT split, count(*) FROM clips GROUP BY split").fetchall()
    return dict(rows)


# ----------------------------------------------------------------------------- units
def test_split_names_follow_the_datasets_conventions() -> None:
    corpus = ["Train", "Development", "dev", "val", "valid", "Test", "Test1", "Fold A", None]
    assert hf_split_names(corpus) == [
        "train",
        "validation",
        "validation",
        "validation",
        "validation",
        "test",
        "test1",
        "fold_a",
        "unsplit",  # some clips have a split: the others stay out of train
    ]
    assert hf_split_names([None, ""]) == ["train", "train"]  # an unsplit export is train
    assert hf_split_names(["all", "2024"]) == ["split_all", "split_2024"]


def test_the_export_says_how_data_dir_loading_treats_other_splits() -> None:
    assert data_dir_note(["train", "validation", "test"]) == []
    (note,) = data_dir_note(["train", "test1", "unsplit"])
    assert "folds test1 into test, skips unsplit" in note
    assert "every folder as train" in data_dir_note(["fold_a", "fold_b"])[0]


def test_card_yaml_lists_every_column_and_split(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    yaml = pytest.importorskip("yaml")
    pq = pytest.importorskip("pyarrow.parquet")
    with Workspace.open(demo_db) as ws:
        _export(ws, tmp_path / "af", "")
    text = (tmp_path / "af" / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    columns = [f["name"] for f in meta["dataset_info"]["features"]]
    stored = pq.read_schema(tmp_path / "af" / "test" / "metadata.parquet").names
    assert columns == ["audio", *stored[1:]] and stored[0] == "file_name"
    majority = next(f for f in meta["dataset_info"]["features"] if f["name"] == "majority")
    assert list(majority["dtype"]["class_label"]["names"].values()) == LABELS
    (config,) = meta["configs"]
    assert [d["split"] for d in config["data_files"]] == ["train", "validation", "test"]
    assert config["data_files"][2]["path"] == ["test/metadata.parquet", "test/audio/*"]


def test_datasets_with_different_label_sets_share_the_union(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    pq = pytest.importorskip("pyarrow.parquet")
    with Workspace.open(demo_db) as ws:
        _manual_dataset(ws, tmp_path / "src", ["m1", "m2"], [True, True])  # 4 of the 6 labels
        _export(ws, tmp_path / "af", "split:test")
    table = pq.read_table(tmp_path / "af" / "test" / "metadata.parquet")
    stored = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
    assert stored["majority"] == {"names": LABELS, "_type": "ClassLabel"}
    rows = {r["key"]: r for r in table.to_pylist()}
    assert rows["m1"]["human"] == {  # null: not a label of the clip's own dataset
        "neutral": 0.0,
        "happy": 0.5,
        "sad": 0.5,
        "angry": 0.0,
        "fear": None,
        "disgust": None,
    }
    assert list(table.schema.field("human").type.names) == LABELS


# -------------------------------------------------------------------- with datasets
def test_audiofolder_and_parquet_load_as_a_datasetdict(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    datasets = _datasets()
    with Workspace.open(demo_db) as ws:
        counts = _split_counts(ws)
        train_clip = next(c for c in ws.clips(1) if c.split == "train")
        ws.set_flag(train_clip.id, "odd-prosody", True)  # flags only in train
        assert _export(ws, tmp_path / "af", "") == []
        _export(ws, tmp_path / "pq", "", fmt="parquet")
    pinned = datasets.Features.from_dict({k: hf_dict(v) for k, v in features(LABELS).items()})
    loaded = {
        "card": _load(datasets, tmp_path / "af"),
        "data_dir": _load(datasets, tmp_path / "af", data_dir=True),
        "parquet": _load(datasets, tmp_path / "pq"),
    }
    for how, dsd in loaded.items():
        assert {s: len(d) for s, d in dsd.items()} == counts, how
        for split in dsd.values():
            assert split.features == pinned, how
        assert dsd["train"].features["majority"].names == LABELS
        assert dsd["validation"].features["flags"] == datasets.Sequence(datasets.Value("string"))
        row = dsd["test"][0]
        samples, rate = sf.read(row["source_path"])
        assert row["audio"]["sampling_rate"] == rate
        np.testing.assert_allclose(row["audio"]["array"], samples, atol=1e-6)
        assert LABELS[row["majority"]] in row["human"] and row["split"] == "test"
        assert row["predictions"][0]["strategy"] == "vote"
        flagged = dsd["train"].filter(lambda r: r["clip_id"] == train_clip.id)
        assert flagged[0]["flags"] == ["odd-prosody"]


def test_two_exports_concatenate_without_a_cast(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    datasets = _datasets()
    with Workspace.open(demo_db) as ws:
        clip = ws.clips(1)[0]
        ws.set_flag(clip.id, "odd-prosody", True)
        ws.set_note(clip.id, "sounds sad", author="me")
        _export(ws, tmp_path / "flagged", "flagged")  # one split, flags and notes
        _export(ws, tmp_path / "high", "ambiguity:high -flagged", fmt="parquet")  # none
    a = _load(datasets, tmp_path / "flagged")
    b = _load(datasets, tmp_path / "high")
    parts = [*a.values(), *b.values()]
    both = datasets.concatenate_datasets(parts)
    assert len(both) == sum(len(p) for p in parts)
    assert both.features["flags"] == datasets.Sequence(datasets.Value("string"))


def test_other_corpus_splits_stay_apart_with_the_card(demo_db: Path, tmp_path: Path) -> None:  # noqa: F811
    datasets = _datasets()
    with Workspace.open(demo_db) as ws:
        ids = [c.id for c in ws.clips(1) if c.split == "test"]
        for clip_id, split in zip(ids, ["Test1", "Test1", "Test2", None], strict=False):
            ws.conn.execute("UPDATE clips SET split = ? WHERE id = ?", (split, clip_id))
        (note,) = _export(ws, tmp_path / "af", "")
    assert "folds test1 into test, folds test2 into test, skips unsplit" in note
    card = _load(datasets, tmp_path / "af")
    assert list(card) == ["train", "validation", "test", "test1", "test2", "unsplit"]
    assert (len(card["test1"]), len(card["test2"]), len(card["unsplit"])) == (2, 1, 1)
    assert set(card["test1"]["split"]) == {"Test1"}  # the corpus's own name stays a column
    assert card["unsplit"][0]["split"] is None
    data_dir = _load(datasets, tmp_path / "af", data_dir=True)
    assert list(data_dir) == ["train", "validation", "test"]
    assert len(data_dir["test"]) == len(card["test"]) + 3  # test1 and test2 folded in


def test_a_re_export_into_the_same_folder_is_not_served_from_the_cache(
    demo_db: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """datasets 3.x keys a card's cache by folder name and card; the card's row digest
    must change when only a flag changed (same clips, same sizes)."""
    datasets = _datasets()
    with Workspace.open(demo_db) as ws:
        clip = next(c for c in ws.clips(1) if c.split == "test")
        ws.set_flag(clip.id, "aaa", True)
        _export(ws, tmp_path / "af", "split:test")
        assert _load(datasets, tmp_path / "af")["test"][0]["flags"] == ["aaa"]
        ws.set_flag(clip.id, "aaa", False)
        ws.set_flag(clip.id, "bbb", True)  # same length: same file sizes
        export_subset(ws, tmp_path / "af", SubsetOptions(where="split:test", force=True))
    assert _load(datasets, tmp_path / "af")["test"][0]["flags"] == ["bbb"]
