"""Safe reading (issue 12, findings 5 and 6): inputs that crashed, hung or named no line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ambiscope.core.corpora import import_corpus
from ambiscope.core.corpora.base import ImportFormatError, ImportOptions
from ambiscope.core.corpora.reading import JSON_DEPTH_REPORTED, json_loads
from ambiscope.db import Workspace


@pytest.fixture
def ws(tmp_path):
    with Workspace.open(tmp_path / "w.db", create=True) as workspace:
        yield workspace


def refused(ws: Workspace, fmt: str, path: Path) -> str:
    """The one-line error of importing `path`, after checking nothing was written."""
    before = list(ws.conn.iterdump())
    with pytest.raises(ImportFormatError) as info:
        import_corpus(ws, fmt, path, ImportOptions())
    assert list(ws.conn.iterdump()) == before
    message = str(info.value)
    assert "\n" not in message
    return message


def test_huge_manifest_field_names_file_and_line(ws, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("clip,annotator,label\nc1,r1,happy\nc2,r1," + "x" * 200_000 + "\n")
    assert refused(ws, "manifest", path).startswith(f"{path}:3: a CSV field is longer than ")


def test_manifest_bad_byte_names_line_and_column(ws, tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"clip,annotator,label\nc1,r1,happy\nc2,r\xff1,sad\n")
    assert refused(ws, "manifest", path) == f"{path}:3: not UTF-8 (byte 0xff at column 5)"


def test_label_studio_bad_byte_names_the_line(ws, tmp_path):
    path = tmp_path / "export.json"
    path.write_bytes(b'[\n  {"data": {}},\n  {"data": {"audio": "a\xfe.wav"}}\n]\n')
    assert refused(ws, "label-studio", path) == f"{path}:3: not UTF-8 (byte 0xfe at column 24)"


def test_deep_json_is_one_line_with_its_line(ws, tmp_path):
    export = tmp_path / "export.json"
    export.write_text("[\n" + "[" * 100_000 + "]" * 100_000 + "\n]")
    message = refused(ws, "label-studio", export)
    assert message.startswith(f"{export}:2: invalid JSON: nested more than 500 levels deep")
    jsonl = tmp_path / "votes.jsonl"
    jsonl.write_text('{"clip": "c1", "annotator": "r1", "label": "happy"}\n{"x": ' + "[" * 100_000)
    message = refused(ws, "manifest", jsonl)
    assert message.startswith(f"{jsonl}:2: bad JSON line: nested more than 500 levels deep")


def test_json_loads_keeps_normal_depth():
    assert json_loads("[" * JSON_DEPTH_REPORTED + "]" * JSON_DEPTH_REPORTED) is not None


@pytest.mark.parametrize("fmt", ["label-studio", "manifest", "crema-d", "msp-podcast"])
def test_devices_are_refused_before_reading(ws, fmt):
    message = refused(ws, fmt, Path("/dev/zero"))
    assert "/dev/zero" in message


@pytest.mark.parametrize(("fmt", "name"), [("label-studio", "x.json"), ("manifest", "m.csv")])
def test_a_fifo_is_refused_instead_of_hanging(ws, tmp_path, fmt, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    assert "not a regular file (a FIFO, device or socket)" in refused(ws, fmt, fifo)
